"""Signed-distance geometry of the renderer: windows, limbs as capsules, smooth coverage and shading."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, reduce

import numpy as np


def _palette(tones: np.ndarray, position: float) -> np.ndarray:
    scaled = position * (len(tones) - 1)
    low = min(int(scaled), len(tones) - 2)
    return (tones[low] + (tones[low + 1] - tones[low]) * (scaled - low)) / 255


@dataclass(frozen=True, eq=False)
class _Window:
    """A rectangle of the image: its slices, and the pixel coordinates of its rows (h, 1) and columns (1, w)."""

    rows: slice
    cols: slice
    ys: np.ndarray
    xs: np.ndarray

    @property
    def index(self) -> tuple[slice, slice]:
        return self.rows, self.cols


def _window(resolution: tuple[int, int], x_min: float, x_max: float, y_min: float, y_max: float) -> _Window:
    """The pixels of the box [x_min, x_max] x [y_min, y_max] plus a one-pixel antialiasing margin, clipped."""
    height, width = resolution
    r0, r1 = max(math.floor(y_min) - 1, 0), max(min(math.ceil(y_max) + 2, height), 0)
    c0, c1 = max(math.floor(x_min) - 1, 0), max(min(math.ceil(x_max) + 2, width), 0)
    r1, c1 = max(r1, r0), max(c1, c0)
    rows, cols = np.arange(r0, r1, dtype=np.float32), np.arange(c0, c1, dtype=np.float32)
    return _Window(slice(r0, r1), slice(c0, c1), rows[:, None], cols[None, :])


@dataclass(frozen=True)
class _Limb:
    """A three-joint polyline (shoulder-elbow-wrist or hip-knee-ankle) with a radius at each joint."""

    joints: np.ndarray  # (3, 2) x, y
    radii: np.ndarray  # (3,)

    @cached_property
    def lengths(self) -> np.ndarray:
        return np.linalg.norm(np.diff(self.joints, axis=0), axis=1)

    def window(self, resolution: tuple[int, int], margin: float) -> _Window:
        (x_min, y_min), (x_max, y_max) = self.joints.min(axis=0) - margin, self.joints.max(axis=0) + margin
        return _window(resolution, x_min, x_max, y_min, y_max)


@dataclass(frozen=True, eq=False)
class _LimbField:
    """Per-pixel coordinates around a limb over a window: distance to its axis, arc length, signed offset across it
    and the limb's radius there."""

    window: _Window
    distance: np.ndarray
    along: np.ndarray
    across: np.ndarray
    radius: np.ndarray

    @property
    def coverage(self) -> np.ndarray:
        return _coverage(self.distance - self.radius)

    @property
    def depth(self) -> np.ndarray:
        return 1 - self.distance / self.radius


def _limb_field(limb: _Limb, window: _Window) -> _LimbField:
    best = None
    offset = 0.0
    for segment in range(2):
        (ax, ay), (bx, by) = limb.joints[segment], limb.joints[segment + 1]
        length = limb.lengths[segment]
        ux, uy = (bx - ax) / length, (by - ay) / length
        px, py = window.xs - ax, window.ys - ay
        t = np.clip(px * ux + py * uy, 0.0, length)
        dx, dy = px - t * ux, py - t * uy
        distance = np.sqrt(dx * dx + dy * dy)
        # The normal (-uy, ux) keeps garment and body frames equally oriented, so sleeves are not mirrored.
        across = px * -uy + py * ux
        radius = limb.radii[segment] + (limb.radii[segment + 1] - limb.radii[segment]) * (t / length)
        candidate = (distance, t + offset, across, radius)
        if best is None:
            best = candidate
        else:
            closer = candidate[0] - candidate[3] < best[0] - best[3]
            best = tuple(np.where(closer, new, old) for new, old in zip(candidate, best, strict=True))
        offset += length
    return _LimbField(window, *best)


def _smoothstep_interp(x: np.ndarray, knots: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Piecewise smoothstep interpolation: smooth curves with flat tangents at the knots, no overshoot."""
    index = np.clip(np.searchsorted(knots, x) - 1, 0, len(knots) - 2)
    t = np.clip((x - knots[index]) / (knots[index + 1] - knots[index]), 0.0, 1.0)
    return values[index] + (values[index + 1] - values[index]) * t * t * (3 - 2 * t)


def _intersection(distances: list[np.ndarray]) -> np.ndarray:
    """Signed distance of the intersection of shapes (broadcast together)."""
    return reduce(np.maximum, distances)


def _coverage(signed_distance: np.ndarray) -> np.ndarray:
    """Antialiased coverage of a shape from its signed distance in pixels (negative inside)."""
    return np.clip(0.5 - signed_distance, 0.0, 1.0)


def _shade(depth: np.ndarray) -> np.ndarray:
    """Soft volume: 1 on a part's axis, darker towards its outline (depth 1 on the axis, 0 on the edge)."""
    return (0.8 + 0.2 * np.sqrt(np.clip(depth, 0.0, 1.0)))[..., None]


def _ellipse(resolution, center, radii) -> tuple[_Window, np.ndarray]:
    """Window around an ellipse and the (approximate) signed distance to it there."""
    window = _window(
        resolution, center[0] - radii[0], center[0] + radii[0], center[1] - radii[1], center[1] + radii[1]
    )
    norm = np.sqrt(((window.xs - center[0]) / radii[0]) ** 2 + ((window.ys - center[1]) / radii[1]) ** 2)
    return window, (norm - 1.0) * min(radii)
