"""Synthetic virtual-wardrobe try-on data: 2D avatars dressed in colourised Fashion-MNIST garments.

Every example pairs a frontal avatar, whose body varies along interpretable :class:`BodyShape` parameters, with a
flat garment image made from a Fashion-MNIST top, shirt, pullover, coat, dress or trousers (:func:`make_garment`),
and renders the ground truth: the garment warped non-rigidly onto the body (:func:`dress`). The torso of a garment
follows the body's shoulder, waist and hip widths, sleeves follow the arms through the elbow, trouser legs follow
the legs and dresses flare; arms stay in front of the garment, so a bent forearm occludes it. Rendering is pure
numpy + PIL and deterministic: a :class:`Wardrobe` turns ``(seed, avatar_id)`` into the same avatar and
``(seed, garment_id)`` into the same garment every time, so any (avatar, garment) pair can be rendered, including
the unpaired ground truth that real try-on datasets lack.

Dataset columns (:func:`build_wardrobe_dataset`, :func:`wardrobe_dataset_dict`), named after the VITON-HD
folders; images are ``datasets.Image()`` (RGB, or mode ``L`` for masks stored as 0/255 and for label maps). The first
eight (:data:`TRYON_COLUMNS`) are also what :func:`hf_vaegan.data.load_viton_hd` returns for the real dataset:

================================  ====================================================================================
``image``                         the person wearing the garment: the try-on target (VITON-HD ``image/``)
``cloth``                         the flat garment, centred on white (``cloth/``)
``cloth_mask``                    binary mask of ``cloth`` (``cloth-mask/``)
``agnostic``                      ``image`` with the region any garment of this category could cover filled with
                                  VITON's grey (128, 128, 128) (``agnostic-v3.2/``)
``agnostic_mask``                 binary mask of that grey region; outside it ``image == agnostic == avatar``
``image_parse``                   CIHP/LIP label map as in VITON-HD (:data:`PARSE_LABELS`) (``image-parse-v3/``)
``body_mask``                     binary silhouette of the undressed avatar (cloth-agnostic)
``pose_keypoints``                18 x [x, y, confidence] in pixels, OpenPose COCO-18 order (:data:`POSE_KEYPOINTS`)
``avatar``                        the undressed avatar (in a light tank top, shorts and shoes) on its background
``warped_cloth``                  the garment as worn, without arm occlusion, on white: supervision for warping
``warped_cloth_mask``             binary mask of ``warped_cloth``
``avatar_id``, ``garment_id``     avatar identity and the Fashion-MNIST source index of the garment
``garment_label``                 Fashion-MNIST class (``ClassLabel``)
body parameters                   one float column per :class:`BodyShape` field (``height``, ``shoulder_width``, ...)
``unpaired_*``                    optional: another garment of the same category (``unpaired_cloth``,
                                  ``unpaired_cloth_mask``, ``unpaired_garment_id``, ``unpaired_garment_label``) and
                                  ``unpaired_image``, this avatar wearing it: the unpaired ground truth
================================  ====================================================================================

Garments of one category group (:data:`GARMENT_GROUPS`: upper body, trousers, dress) share the agnostic region,
so an unpaired garment of the same group is a well-posed try-on for the same ``agnostic``.
"""

from __future__ import annotations

import colorsys
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property, reduce
from typing import Any

import datasets
import numpy as np
from datasets.utils import tqdm as hf_tqdm
from PIL import Image, ImageFilter

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
GARMENT_LABELS = (0, 1, 2, 3, 4, 6)
GARMENT_GROUPS = {"upper": (0, 2, 4, 6), "lower": (1,), "dress": (3,)}
PARSE_LABELS = (
    "background",
    "hat",
    "hair",
    "glove",
    "sunglasses",
    "upper_clothes",
    "dress",
    "coat",
    "socks",
    "pants",
    "torso_skin",
    "scarf",
    "skirt",
    "face",
    "left_arm",
    "right_arm",
    "left_leg",
    "right_leg",
    "left_shoe",
    "right_shoe",
)
POSE_KEYPOINTS = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
# Columns shared with :func:`hf_vaegan.data.load_viton_hd`, so one training script reads either dataset.
TRYON_COLUMNS = (
    "image",
    "cloth",
    "cloth_mask",
    "agnostic",
    "agnostic_mask",
    "image_parse",
    "body_mask",
    "pose_keypoints",
)
AGNOSTIC_FILL = (128, 128, 128)
DEFAULT_RESOLUTION = (128, 96)
# Test avatars get ids from here on, so an avatar id names one avatar across both splits.
TEST_AVATAR_ID_OFFSET = 1_000_000

BODY_SHAPE_RANGES: dict[str, tuple[float, float]] = {
    "height": (0.78, 0.94),
    "shoulder_width": (0.19, 0.27),
    "waist_width": (0.12, 0.21),
    "hip_width": (0.16, 0.25),
    "right_arm_angle": (3.0, 40.0),
    "left_arm_angle": (3.0, 40.0),
    "right_elbow_bend": (0.0, 120.0),
    "left_elbow_bend": (0.0, 120.0),
    "skin_tone": (0.0, 1.0),
    "hair_tone": (0.0, 1.0),
}

_LABEL = {name: index for index, name in enumerate(PARSE_LABELS)}
_SKIN_TONES = np.array([[255, 222, 196], [234, 186, 150], [198, 134, 98], [142, 88, 58], [86, 52, 34]], np.float32)
_HAIR_TONES = np.array([[24, 20, 20], [62, 40, 28], [112, 72, 40], [168, 118, 62], [226, 192, 122]], np.float32)
_TANK_TOP = np.array([236, 234, 228], np.float32) / 255
_SHORTS = np.array([52, 58, 74], np.float32) / 255
_SHOES = np.array([38, 34, 32], np.float32) / 255
_EYES = np.array([30, 24, 24], np.float32) / 255
# Fashion-MNIST items fill a 28 x 28 frame; cloth geometry is measured in these "frame units".
_FRAME = 28.0
_SPLITS = ("train", "test")
_STREAM_AVATAR, _STREAM_GARMENT, _STREAM_PAIRING, _STREAM_SPLIT = 0, 1, 2, 3


def _palette(tones: np.ndarray, position: float) -> np.ndarray:
    scaled = position * (len(tones) - 1)
    low = min(int(scaled), len(tones) - 2)
    return (tones[low] + (tones[low + 1] - tones[low]) * (scaled - low)) / 255


def _rng(rng: np.random.Generator | int | Sequence[int] | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def check_resolution(resolution: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` from an int (square) or a pair; ``ValueError`` unless height >= 32 and not too narrow."""
    if isinstance(resolution, (int, np.integer)):
        resolution = (resolution, resolution)
    if len(resolution) != 2 or not all(isinstance(size, (int, np.integer)) for size in resolution):
        raise ValueError(f"resolution must be (height, width) integers, got {resolution!r}")
    height, width = int(resolution[0]), int(resolution[1])
    if height < 32 or width < 0.6 * height:
        raise ValueError(f"resolution must have height >= 32 and width >= 0.6 * height, got {(height, width)}")
    return height, width


@dataclass(frozen=True)
class BodyShape:
    """Interpretable body parameters of an avatar; each must lie in its :data:`BODY_SHAPE_RANGES` range.

    Lengths are fractions of the image height, so a shape renders alike at any resolution. "Right" and "left" are
    the person's (right is on the image's left), as in OpenPose and the CIHP labels.

    Args:
        height: head top to soles (0.78-0.94); the feet stay on the same floor line.
        shoulder_width: across the shoulders (0.19-0.27).
        waist_width: at the waist (0.12-0.21).
        hip_width: at the hips (0.16-0.25).
        right_arm_angle, left_arm_angle: upper arm away from the body, degrees (3-40).
        right_elbow_bend, left_elbow_bend: forearm folded towards the body, degrees (0 straight - 120); beyond
            about 60 degrees the forearm crosses in front of the torso.
        skin_tone: 0 light to 1 dark.
        hair_tone: 0 black to 1 blond.
    """

    height: float = 0.86
    shoulder_width: float = 0.23
    waist_width: float = 0.165
    hip_width: float = 0.205
    right_arm_angle: float = 12.0
    left_arm_angle: float = 12.0
    right_elbow_bend: float = 10.0
    left_elbow_bend: float = 10.0
    skin_tone: float = 0.3
    hair_tone: float = 0.3

    def __post_init__(self) -> None:
        for name, (low, high) in BODY_SHAPE_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"BodyShape.{name} must be a number, got {type(value).__name__}")
            if not low <= value <= high:
                raise ValueError(f"BodyShape.{name} must be in [{low}, {high}], got {value}")
            object.__setattr__(self, name, float(value))

    @classmethod
    def sample(cls, rng: np.random.Generator | int | None = None) -> BodyShape:
        """Draws every parameter uniformly from its range."""
        rng = _rng(rng)
        return cls(**{name: rng.uniform(low, high) for name, (low, high) in BODY_SHAPE_RANGES.items()})

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


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


class _Body:
    """Geometry of an avatar in pixels, derived from its shape; x grows rightwards, y downwards."""

    def __init__(self, shape: BodyShape, resolution: tuple[int, int]):
        height, width = resolution
        self.resolution = resolution
        self.row_ys = np.arange(height, dtype=np.float32)
        unit = self.unit = shape.height * height
        top = 0.975 * height - unit
        self.cx = (width - 1) / 2

        def level(fraction: float) -> float:
            return top + fraction * unit

        self.head_center = (self.cx, level(0.066))
        self.head_radii = (0.05 * unit, 0.066 * unit)
        self.neck_half = 0.55 * self.head_radii[0]
        self.y_neck_base = level(0.165)
        self.y_shoulder = level(0.185)
        self.y_waist, self.y_hip, self.y_crotch = level(0.4), level(0.5), level(0.535)
        self.y_knee, self.y_ankle, self.y_ground = level(0.745), level(0.955), level(1.0)

        shoulder_half = shape.shoulder_width * height / 2
        waist_half, hip_half = shape.waist_width * height / 2, shape.hip_width * height / 2
        arm_radius = 0.03 * unit
        self.hip_half = hip_half
        self.torso_knots = np.array([self.y_shoulder, level(0.27), self.y_waist, self.y_hip, self.y_crotch])
        self.torso_halves = np.array(
            [shoulder_half - arm_radius, shoulder_half - 1.1 * arm_radius, waist_half, hip_half, 0.97 * hip_half]
        )

        self.arms, self.hands = [], []
        for side, angle, bend in (
            (-1, shape.right_arm_angle, shape.right_elbow_bend),
            (1, shape.left_arm_angle, shape.left_elbow_bend),
        ):
            shoulder = np.array([self.cx + side * (shoulder_half - arm_radius), self.y_shoulder + arm_radius])
            upper = np.radians(angle)
            fore = np.radians(angle - bend)
            elbow = shoulder + 0.17 * unit * np.array([side * np.sin(upper), np.cos(upper)])
            fore_direction = np.array([side * np.sin(fore), np.cos(fore)])
            wrist = elbow + 0.145 * unit * fore_direction
            self.arms.append(
                _Limb(np.stack([shoulder, elbow, wrist]), np.array([arm_radius, 0.024 * unit, 0.018 * unit]))
            )
            hand_start, hand_end = wrist + 0.022 * unit * fore_direction, wrist + 0.058 * unit * fore_direction
            self.hands.append(
                _Limb(np.stack([hand_start, (hand_start + hand_end) / 2, hand_end]), np.full(3, 0.021 * unit))
            )

        self.legs, self.feet = [], []
        for side in (-1, 1):
            hip = np.array([self.cx + side * 0.5 * hip_half, self.y_hip])
            knee = np.array([self.cx + side * (0.42 * hip_half + 0.012 * unit), self.y_knee])
            ankle = np.array([self.cx + side * (0.36 * hip_half + 0.035 * unit), self.y_ankle])
            self.legs.append(
                _Limb(np.stack([hip, knee, ankle]), np.array([0.49 * hip_half, 0.032 * unit, 0.019 * unit]))
            )
            self.feet.append((ankle[0] + side * 0.012 * unit, self.y_ground - 0.019 * unit))

    def torso_half_width(self, ys: np.ndarray, extend_below: bool = False) -> np.ndarray:
        """Half width of the torso at rows ``ys``; with ``extend_below``, hip-wide below the crotch too."""
        halves = self.torso_halves.copy()
        if extend_below:
            halves[-1] = halves[-2]
        return _smoothstep_interp(ys, self.torso_knots, halves)

    def shoulder_line(self, xs: np.ndarray) -> np.ndarray:
        """Top outline of the torso: flat at the neck base, falling along the trapezius to the shoulders."""
        inner, outer = self.neck_half * 1.1, self.torso_halves[0]
        t = np.clip((np.abs(xs - self.cx) - inner) / (outer - inner), 0.0, 1.0)
        return self.y_neck_base + (self.y_shoulder - self.y_neck_base) * t * t * (3 - 2 * t)

    @cached_property
    def arm_fields(self) -> list[_LimbField]:
        # Wide enough for the loosest sleeve, which the same field also maps.
        return [_limb_field(arm, arm.window(self.resolution, 1.5 * arm.radii.max() + 1)) for arm in self.arms]

    def keypoints(self) -> np.ndarray:
        (hx, hy), (rx, ry) = self.head_center, self.head_radii
        points = [(hx, hy + 0.25 * ry), (self.cx, self.y_shoulder + self.arms[0].radii[0])]
        points += [tuple(joint) for arm in self.arms for joint in arm.joints]
        points += [tuple(joint) for leg in self.legs for joint in leg.joints]
        points += [(hx - 0.36 * rx, hy + 0.02 * ry), (hx + 0.36 * rx, hy + 0.02 * ry), (hx - rx, hy), (hx + rx, hy)]
        keypoints = np.ones((len(POSE_KEYPOINTS), 3), np.float32)
        keypoints[:, :2] = points
        return keypoints


class _Canvas:
    """Back-to-front compositing of an RGB image together with its CIHP label map."""

    def __init__(self, background: np.ndarray):
        self.rgb = background.astype(np.float32) / 255
        self.parse = np.zeros(background.shape[:2], np.uint8)

    def paint(self, window: _Window, coverage: np.ndarray, color: np.ndarray, label: int) -> None:
        """Blends ``color`` ((3,) or per pixel of the window) over the window with ``coverage``."""
        rgb = self.rgb[window.index]
        rgb += (color - rgb) * coverage[..., None]
        self.parse[window.index][coverage > 0.5] = label

    def copy(self) -> _Canvas:
        clone = _Canvas.__new__(_Canvas)
        clone.rgb, clone.parse = self.rgb.copy(), self.parse.copy()
        return clone

    def image(self) -> np.ndarray:
        return np.clip(np.rint(self.rgb * 255), 0, 255).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class _Part:
    """A rendered part over a window: coverage and colour ((3,) or per pixel)."""

    window: _Window
    coverage: np.ndarray
    color: np.ndarray

    def paint_on(self, canvas: _Canvas, label: int, alpha: np.ndarray | float = 1.0) -> None:
        canvas.paint(self.window, self.coverage * alpha, self.color, label)


@dataclass(frozen=True)
class _ArmLayer:
    arm: _Part
    hand: _Part
    label: int


@dataclass(frozen=True, eq=False)
class Avatar:
    """An undressed avatar, as rendered by :func:`render_avatar`.

    Attributes:
        shape: its body parameters.
        background: (H, W, 3) uint8 background it stands on.
        image: (H, W, 3) uint8 render (light tank top, dark shorts, shoes).
        body_mask: (H, W) bool silhouette.
        keypoints: (18, 3) float32 [x, y, confidence] in pixels, :data:`POSE_KEYPOINTS` order.
        parse: (H, W) uint8 label map, :data:`PARSE_LABELS` ids.
    """

    shape: BodyShape
    background: np.ndarray = field(repr=False)
    image: np.ndarray = field(repr=False)
    body_mask: np.ndarray = field(repr=False)
    keypoints: np.ndarray = field(repr=False)
    parse: np.ndarray = field(repr=False)
    # What a garment goes between: the render behind it, the arms and hands in front, and their joint coverage.
    _body: _Body = field(repr=False)
    _back: _Canvas = field(repr=False)
    _arms: tuple[_ArmLayer, ...] = field(repr=False)
    _in_front: np.ndarray = field(repr=False)

    @property
    def resolution(self) -> tuple[int, int]:
        return self.image.shape[:2]


def make_background(
    rng: np.random.Generator | int | None = None, resolution: Sequence[int] = DEFAULT_RESOLUTION
) -> np.ndarray:
    """A random studio-like backdrop: a tinted wall with a soft gradient, sometimes striped, over a floor."""
    rng = _rng(rng)
    height, width = check_resolution(resolution)
    wall = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.03, 0.3), rng.uniform(0.72, 0.97)), np.float32)
    floor = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.35), rng.uniform(0.35, 0.7)), np.float32)
    ys = np.arange(height, dtype=np.float32)[:, None, None] / height
    xs = np.arange(width, dtype=np.float32)[None, :, None]
    wall_shade = 1 + rng.uniform(-0.15, 0.15) * (ys - 0.5)
    if rng.random() < 0.35:
        period = rng.uniform(0.06, 0.16) * width
        wall_shade = wall_shade * (1 + 0.05 * np.sign(np.sin(2 * np.pi * xs / period)))
    horizon = rng.uniform(0.78, 0.9)
    floor_weight = np.clip((ys - horizon) * height + 0.5, 0.0, 1.0)
    rgb = wall * wall_shade * (1 - floor_weight) + floor * (1 - 0.2 * (ys - horizon)) * floor_weight
    return np.clip(np.rint(np.broadcast_to(rgb, (height, width, 3)) * 255), 0, 255).astype(np.uint8)


def _background_array(background: Any, resolution: tuple[int, int]) -> np.ndarray:
    if background is None:
        background = (236, 236, 236)
    array = np.asarray(background)
    if array.shape == (3,):
        return np.broadcast_to(array.astype(np.uint8), (*resolution, 3)).copy()
    if array.shape != (*resolution, 3) or array.dtype != np.uint8:
        raise ValueError(
            f"background must be None, an RGB triple or a uint8 array of shape {(*resolution, 3)}, "
            f"got {array.dtype} array of shape {array.shape}"
        )
    return array


def render_avatar(shape: BodyShape, resolution: Sequence[int] = DEFAULT_RESOLUTION, background: Any = None) -> Avatar:
    """Renders a frontal avatar of ``shape``.

    Args:
        shape: body parameters.
        resolution: (height, width) in pixels, portrait; default (128, 96), VITON's 256 x 192 at half scale.
        background: None (light grey), an RGB triple, or a (H, W, 3) uint8 image such as :func:`make_background`.

    Returns:
        An :class:`Avatar` with ``image``, ``body_mask`` and ``keypoints`` (and ``parse``); pass it to
        :func:`dress`.
    """
    if not isinstance(shape, BodyShape):
        raise TypeError(f"shape must be a BodyShape, got {type(shape).__name__}")
    resolution = check_resolution(resolution)
    background = _background_array(background, resolution)
    body = _Body(shape, resolution)
    unit, cx = body.unit, body.cx
    skin = _palette(_SKIN_TONES, shape.skin_tone)
    canvas = _Canvas(background)

    y_shorts_end = body.y_crotch + 0.09 * unit
    for leg, foot, label, shoe_label in zip(
        body.legs, body.feet, ("right_leg", "left_leg"), ("right_shoe", "left_shoe"), strict=True
    ):
        leg_field = _limb_field(leg, leg.window(resolution, leg.radii.max()))
        canvas.paint(leg_field.window, leg_field.coverage, skin * _shade(leg_field.depth), _LABEL[label])
        shorts = leg_field.coverage * np.clip(y_shorts_end - leg_field.window.ys, 0, 1)
        canvas.paint(
            leg_field.window, shorts, _SHORTS * _shade(1 - leg_field.distance / leg.radii[0]), _LABEL["pants"]
        )
        window, distance = _ellipse(resolution, foot, (0.034 * unit, 0.019 * unit))
        canvas.paint(window, _coverage(distance), _SHOES, _LABEL[shoe_label])

    (hx, hy), (hrx, hry) = body.head_center, body.head_radii
    window = _window(resolution, cx - body.neck_half, cx + body.neck_half, hy, body.y_shoulder + 2)
    neck = _coverage(np.abs(window.xs - cx) - body.neck_half) * (window.ys < body.y_shoulder + 2)
    canvas.paint(window, neck, skin * 0.9, _LABEL["torso_skin"])

    half = body.torso_half_width(body.row_ys)
    window = _window(resolution, cx - half.max(), cx + half.max(), body.y_neck_base, body.y_crotch)
    ys, xs = window.ys, window.xs
    half = half[window.rows][:, None]
    torso = _coverage(_intersection([np.abs(xs - cx) - half, body.shoulder_line(xs) - ys, ys - body.y_crotch]))
    torso_shade = _shade(1 - np.abs(xs - cx) / half)
    canvas.paint(window, torso, skin * torso_shade, _LABEL["torso_skin"])
    y_top_edge, y_shorts_top = body.y_shoulder + 0.055 * unit, body.y_waist + 0.3 * (body.y_hip - body.y_waist)
    tank_top = torso * np.clip(ys - y_top_edge + 0.5, 0, 1) * np.clip(y_shorts_top - ys + 0.5, 0, 1)
    canvas.paint(window, tank_top, _TANK_TOP * torso_shade, _LABEL["upper_clothes"])
    canvas.paint(window, torso * np.clip(ys - y_shorts_top + 0.5, 0, 1), _SHORTS * torso_shade, _LABEL["pants"])
    for side in (-1, 1):
        strap_x = cx + side * 0.55 * body.torso_halves[0]
        y_strap_top = float(body.shoulder_line(np.float32(strap_x))) - 1
        strap = _Limb(
            np.array([[strap_x, y_top_edge], [strap_x, (y_top_edge + y_strap_top) / 2], [strap_x, y_strap_top]]),
            np.full(3, 0.011 * unit),
        )
        strap_field = _limb_field(strap, strap.window(resolution, strap.radii[0]))
        canvas.paint(strap_field.window, strap_field.coverage, _TANK_TOP, _LABEL["upper_clothes"])

    window, distance = _ellipse(resolution, (hx, hy - 0.12 * hry), (1.1 * hrx, hry))
    canvas.paint(window, _coverage(distance), _palette(_HAIR_TONES, shape.hair_tone), _LABEL["hair"])
    window, distance = _ellipse(resolution, (hx, hy), (hrx, hry))
    hairline = hy - 0.5 * hry + 0.45 * hry * ((window.xs - hx) / hrx) ** 2
    face = _coverage(distance) * np.clip(window.ys - hairline + 0.5, 0, 1)
    canvas.paint(window, face, skin * _shade(-distance / hrx), _LABEL["face"])
    for eye_x in (hx - 0.36 * hrx, hx + 0.36 * hrx):
        window, distance = _ellipse(
            resolution, (eye_x, hy + 0.02 * hry), (max(0.12 * hrx, 0.55), max(0.08 * hry, 0.5))
        )
        canvas.paint(window, _coverage(distance), _EYES, _LABEL["face"])
    window, distance = _ellipse(resolution, (hx, hy + 0.5 * hry), (0.22 * hrx, max(0.045 * hry, 0.45)))
    canvas.paint(window, 0.6 * _coverage(distance), skin * np.array([0.7, 0.45, 0.45], np.float32), _LABEL["face"])

    back = canvas.copy()
    arms = []
    in_front = np.zeros(resolution, np.float32)
    for arm_field, hand, label in zip(body.arm_fields, body.hands, ("right_arm", "left_arm"), strict=True):
        hand_field = _limb_field(hand, hand.window(resolution, hand.radii[0]))
        layer = _ArmLayer(
            arm=_Part(arm_field.window, arm_field.coverage, skin * _shade(arm_field.depth)),
            hand=_Part(hand_field.window, hand_field.coverage, skin * _shade(hand_field.depth)),
            label=_LABEL[label],
        )
        for part in (layer.arm, layer.hand):
            part.paint_on(canvas, layer.label)
            np.maximum(in_front[part.window.index], part.coverage, out=in_front[part.window.index])
        arms.append(layer)

    return Avatar(
        shape=shape,
        background=background,
        image=canvas.image(),
        body_mask=canvas.parse > 0,
        keypoints=body.keypoints(),
        parse=canvas.parse,
        _body=body,
        _back=back,
        _arms=tuple(arms),
        _in_front=in_front,
    )


@dataclass(frozen=True)
class _Template:
    """How a Fashion-MNIST category's 28 x 28 frame lands on the body.

    The outer ``sleeve_share`` of the cloth's width on either side, from the shoulder down, is a sleeve; the middle is
    the torso (or both trouser legs). ``top`` and ``hem`` place the frame's first and last rows on the body.
    """

    parse_label: int
    top: tuple[str, float]
    hem: tuple[str, float]
    sleeve_share: float = 0.2


_TEMPLATES = {
    0: _Template(_LABEL["upper_clothes"], ("neck", 0.0), ("hip", 0.02), sleeve_share=0.19),
    1: _Template(_LABEL["pants"], ("trouser_waist", 0.0), ("ankle", 0.01), sleeve_share=0.0),
    2: _Template(_LABEL["upper_clothes"], ("neck", 0.0), ("hip", 0.03)),
    3: _Template(_LABEL["dress"], ("neck", 0.01), ("knee", 0.03), sleeve_share=0.0),
    4: _Template(_LABEL["coat"], ("neck", 0.0), ("hip", 0.15)),
    6: _Template(_LABEL["upper_clothes"], ("neck", 0.0), ("hip", 0.05)),
}
# A sleeve starts within this many frame rows of the top and is at least this wide.
_SLEEVE_START, _SLEEVE_MIN_WIDTH = 10.0, 1.5
_UPPER_HEM = ("hip", 0.15)
_MAX_FLARE = 1.7


def _garment_frame(resolution: tuple[int, int]) -> tuple[int, int, int]:
    """(x0, y0, size) of the square that holds the 28 x 28 Fashion-MNIST frame in a cloth image."""
    height, width = resolution
    size = round(0.88 * min(height, width))
    return (width - size) // 2, (height - size) // 2, size


def _check_label(label: int) -> int:
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        raise TypeError(f"garment label must be an int, got {type(label).__name__}")
    if int(label) not in GARMENT_LABELS:
        name = FASHION_MNIST_CLASSES[label] if 0 <= label < len(FASHION_MNIST_CLASSES) else "unknown"
        allowed = ", ".join(f"{index} {FASHION_MNIST_CLASSES[index]}" for index in GARMENT_LABELS)
        raise ValueError(f"Fashion-MNIST label {label} ({name}) is not a wearable garment; allowed: {allowed}")
    return int(label)


@dataclass(frozen=True, eq=False)
class _ClothProfile:
    """Per-row extents of a cloth's torso (or trouser legs) in frame units, indexed by the frame-square row."""

    has: np.ndarray
    left: np.ndarray
    right: np.ndarray
    # Tops: per side (image left, image right), the sleeve's extents, False after the cuff.
    sleeves: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...] = ()
    # Trousers only: each leg's extents, and the frame row where the legs part.
    right_leg: tuple[np.ndarray, np.ndarray] | None = None
    left_leg: tuple[np.ndarray, np.ndarray] | None = None
    crotch: float = 9.0
    # Dresses only: hem width over hip width, bounded to [1, _MAX_FLARE].
    flare: float = 1.0


def _row_extents(mask: np.ndarray, columns: np.ndarray, low: float, high: float):
    inside = mask & (columns >= low) & (columns <= high)
    has = inside.any(axis=1)
    pixel = _FRAME / mask.shape[1]
    first = np.argmax(inside, axis=1)
    last = mask.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1)
    return has, columns[first] - pixel / 2, columns[last] + pixel / 2


@dataclass(frozen=True, eq=False)
class Garment:
    """A flat garment (the "cloth" of try-on datasets), as made by :func:`make_garment`.

    Attributes:
        image: (H, W, 3) uint8 garment on white.
        mask: (H, W) bool, True on the garment; ``image`` is pure white elsewhere.
        label: Fashion-MNIST class, one of :data:`GARMENT_LABELS`.

    A garment built from stored ``cloth``/``cloth_mask`` columns can be dressed again, since the warp reads only
    these arrays.
    """

    image: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    label: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", _check_label(self.label))
        image, mask = np.asarray(self.image), np.asarray(self.mask)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"Garment.image must be a (H, W, 3) uint8 array, got {image.dtype} {image.shape}")
        if mask.shape != image.shape[:2]:
            raise ValueError(f"Garment.mask must have shape {image.shape[:2]}, got {mask.shape}")
        check_resolution(image.shape[:2])
        if not mask.any():
            raise ValueError("Garment.mask is empty")
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "mask", mask.astype(bool))

    @property
    def resolution(self) -> tuple[int, int]:
        return self.image.shape[:2]

    @cached_property
    def _texture(self) -> np.ndarray:
        """(H, W, 4) float: colour premultiplied by the mask, then the mask, for fringe-free bilinear sampling."""
        alpha = self.mask.astype(np.float32)[..., None]
        return np.concatenate([self.image.astype(np.float32) / 255 * alpha, alpha], axis=2)

    @cached_property
    def _profile(self) -> _ClothProfile:
        x0, y0, size = _garment_frame(self.resolution)
        square = self.mask[y0 : y0 + size, x0 : x0 + size]
        columns = (np.arange(size, dtype=np.float32) + 0.5) * _FRAME / size
        template = _TEMPLATES[self.label]
        occupied = columns[square.any(axis=0)]
        sleeve = template.sleeve_share * (occupied[-1] - occupied[0])
        band = (occupied[0] + sleeve, occupied[-1] - sleeve) if sleeve else (0.0, _FRAME)
        has, left, right = _row_extents(square, columns, *band)
        rows = (np.arange(size) + 0.5) * _FRAME / size
        if self.label == 1:
            center = float(np.median((left[has] + right[has]) / 2)) if has.any() else _FRAME / 2
            right_leg = _row_extents(square, columns, 0.0, center)
            left_leg = _row_extents(square, columns, center, _FRAME)
            gap = ~(square & (np.abs(columns - center) < 0.6)).any(axis=1) & has & (rows > 3.0)
            crotch = float(np.clip(rows[np.argmax(gap)] if gap.any() else 9.0, 5.0, 16.0))
            return _ClothProfile(has, left, right, right_leg=right_leg[1:], left_leg=left_leg[1:], crotch=crotch)
        if self.label == 3:
            width = np.where(has, right - left, np.nan)
            hip, hem = np.nanmean(width[(rows > 9) & (rows < 13)]), np.nanmean(width[rows > 24])
            flare = float(np.clip(hem / hip, 1.0, _MAX_FLARE)) if np.isfinite(hem / hip) else 1.0
            return _ClothProfile(has, left, right, flare=flare)
        sides = (
            _row_extents(square, columns, 0.0, band[0]),
            _row_extents(square, columns, band[1], _FRAME),
        )
        return _ClothProfile(has, left, right, sleeves=tuple(_sleeve_rows(rows, *side) for side in sides))


def _sleeve_rows(rows: np.ndarray, has: np.ndarray, left: np.ndarray, right: np.ndarray) -> tuple:
    """Keeps the first run of wide-enough rows that starts near the top: the sleeve, not a flared hem below it."""
    wide = has & (right - left >= _SLEEVE_MIN_WIDTH)
    start = int(np.argmax(wide))
    if not wide.any() or rows[start] > _SLEEVE_START:
        return np.zeros_like(wide), left, right
    end = start + (int(np.argmin(wide[start:])) if not wide[start:].all() else len(wide) - start)
    sleeve = np.zeros_like(wide)
    sleeve[start:end] = True
    return sleeve, left, right


_PATTERNS = ("plain", "horizontal", "vertical", "diagonal", "checks", "dots", "block")
_PATTERN_WEIGHTS = (0.3, 0.16, 0.1, 0.1, 0.12, 0.12, 0.1)


def _square_wave(phase: np.ndarray) -> np.ndarray:
    """Antialiased 0/1 stripes with period 1 in ``phase``."""
    return np.clip(3 * np.sin(2 * np.pi * phase), -1, 1) * 0.5 + 0.5


def _garment_colors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if rng.random() < 0.25:
        main = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.12), rng.choice([0.15, 0.3, 0.5, 0.75, 0.95]))
    else:
        main = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.35, 0.85), rng.uniform(0.4, 0.95))
    hue, saturation, value = colorsys.rgb_to_hsv(*main)
    if rng.random() < 0.5:
        accent = colorsys.hsv_to_rgb((hue + rng.choice([0.5, 0.1, -0.1])) % 1, saturation, value)
    else:
        accent = colorsys.hsv_to_rgb(hue, saturation * 0.5, 1 - 0.7 * value)
    return np.array(main, np.float32), np.array(accent, np.float32)


def _upscale(item: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(item).resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255


def make_garment(
    fashion_mnist_image: np.ndarray,
    label: int,
    rng: np.random.Generator | int | None = None,
    resolution: Sequence[int] = DEFAULT_RESOLUTION,
) -> Garment:
    """Colourises and patterns a Fashion-MNIST item into a flat cloth image with its mask.

    The item is upscaled into a centred square; its grey levels shade a random colour, over which a random pattern
    (stripes, checks, dots, colour block, or none) is laid in the garment's own frame, so patterns warp with it.

    Args:
        fashion_mnist_image: (28, 28) uint8 item, 0 = background.
        label: its Fashion-MNIST class; one of :data:`GARMENT_LABELS` (0 T-shirt/top, 1 Trouser, 2 Pullover,
            3 Dress, 4 Coat, 6 Shirt), other classes raise ``ValueError``.
        rng: generator or seed for colours and pattern.
        resolution: (height, width) of the cloth image; use the avatars' resolution.
    """
    label = _check_label(label)
    item = np.asarray(fashion_mnist_image)
    if item.dtype != np.uint8:
        raise TypeError(f"fashion_mnist_image must be uint8, got {item.dtype}")
    if item.shape != (28, 28):
        raise ValueError(f"fashion_mnist_image must have shape (28, 28), got {item.shape}")
    if not item.any():
        raise ValueError("fashion_mnist_image is empty (all zeros)")
    rng = _rng(rng)
    resolution = check_resolution(resolution)
    x0, y0, size = _garment_frame(resolution)
    intensity = _upscale(item, size)
    peak = np.percentile(intensity[intensity > 0], 95)
    mask = intensity > 0.2 * peak
    # Fashion-MNIST outlines fade to black; shading from the dilated item keeps stretched edges from going dark.
    filled = np.maximum(item, np.asarray(Image.fromarray(item).filter(ImageFilter.MaxFilter(3)), np.float32) * 0.9)
    lightness = np.clip(_upscale(filled.astype(np.uint8), size) / peak, 0.0, 1.1)[..., None]

    frame = (np.arange(size, dtype=np.float32) + 0.5) * _FRAME / size
    u, v = frame[None, :], frame[:, None]
    period = rng.uniform(1.6, 3.6)
    pattern = rng.choice(_PATTERNS, p=_PATTERN_WEIGHTS)
    if pattern == "plain":
        weight = np.zeros((size, size), np.float32)
    elif pattern == "horizontal":
        weight = np.broadcast_to(_square_wave(v / period), (size, size))
    elif pattern == "vertical":
        weight = np.broadcast_to(_square_wave(u / period), (size, size))
    elif pattern == "diagonal":
        weight = _square_wave((u + rng.choice([-1, 1]) * v) / (1.4 * period))
    elif pattern == "checks":
        weight = np.abs(_square_wave(u / period) - _square_wave(v / period))
    elif pattern == "dots":
        du, dv = (u / period) % 1 - 0.5, (v / period + 0.5 * (np.floor(u / period) % 2)) % 1 - 0.5
        weight = _coverage((np.sqrt(du * du + dv * dv) - 0.22) * period * size / _FRAME)
    else:
        weight = np.broadcast_to(np.clip((v - rng.uniform(8, 18)) * size / _FRAME + 0.5, 0, 1), (size, size))
    main, accent = _garment_colors(rng)
    color = main + (accent - main) * np.asarray(weight, np.float32)[..., None]
    rgb = np.clip(color * (0.35 + 0.65 * lightness), 0, 1)

    image = np.full((*resolution, 3), 255, np.uint8)
    full_mask = np.zeros(resolution, bool)
    full_mask[y0 : y0 + size, x0 : x0 + size] = mask
    image[full_mask] = np.rint(rgb[mask] * 255).astype(np.uint8)
    return Garment(image=image, mask=full_mask, label=label)


def _sample(texture: np.ndarray, frame_u: np.ndarray, frame_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear colour and alpha of a garment texture at frame coordinates (1D arrays)."""
    height, width = texture.shape[:2]
    x0, y0, size = _garment_frame((height, width))
    cols = np.clip(x0 + frame_u * size / _FRAME - 0.5, 0, width - 1)
    rows = np.clip(y0 + frame_v * size / _FRAME - 0.5, 0, height - 1)
    c0, r0 = np.minimum(cols.astype(np.intp), width - 2), np.minimum(rows.astype(np.intp), height - 2)
    fc, fr = (cols - c0)[:, None], (rows - r0)[:, None]
    top = texture[r0, c0] * (1 - fc) + texture[r0, c0 + 1] * fc
    bottom = texture[r0 + 1, c0] * (1 - fc) + texture[r0 + 1, c0 + 1] * fc
    value = top * (1 - fr) + bottom * fr
    alpha = value[:, 3]
    return value[:, :3] / np.maximum(alpha, 1e-6)[:, None], alpha


def _level(body: _Body, spec: tuple[str, float]) -> float:
    """Height of a body landmark plus an offset in figure heights, e.g. ``("hip", 0.02)``."""
    name, offset = spec
    base = {
        "neck": body.y_neck_base - 0.01 * body.unit,
        "trouser_waist": body.y_waist + 0.35 * (body.y_hip - body.y_waist),
        "hip": body.y_hip,
        "knee": body.y_knee,
        "ankle": body.y_ankle,
    }[name]
    return base + offset * body.unit


def _fill_part(window: _Window, region, frame_u, frame_v, depth, garment: Garment, valid=None) -> _Part:
    """Samples the garment at per-pixel frame coordinates inside ``region`` (and where ``valid``)."""
    shape = region.shape
    alpha = np.zeros(shape, np.float32)
    color = np.zeros((*shape, 3), np.float32)
    inside = region > 0 if valid is None else (region > 0) & valid
    if inside.any():
        frame_u, frame_v = np.broadcast_to(frame_u, shape), np.broadcast_to(frame_v, shape)
        sampled_color, sampled_alpha = _sample(garment._texture, frame_u[inside], frame_v[inside])
        alpha[inside] = sampled_alpha
        color[inside] = sampled_color * _shade(np.broadcast_to(depth, shape)[inside])
    return _Part(window, alpha * region, color)


@dataclass(frozen=True, eq=False)
class _TorsoDomain:
    """Where a top or dress can lie: eased around the torso, flared below the hips, down to a hem."""

    window: _Window
    distance: np.ndarray
    half: np.ndarray  # (h, 1) half width per row


def _torso_domain(body: _Body, hem_spec: tuple[str, float], flare: float) -> _TorsoDomain:
    y_end = _level(body, hem_spec)
    half = body.torso_half_width(body.row_ys, extend_below=True) * 1.06 + 1.0
    half = half + np.clip(body.row_ys - body.y_hip, 0, None) / (y_end - body.y_hip) * body.hip_half * (flare - 1)
    reach = half[: math.ceil(y_end) + 1].max()
    window = _window(body.resolution, body.cx - reach, body.cx + reach, body.y_neck_base - 1, y_end)
    half = half[window.rows][:, None]
    distance = _intersection(
        [np.abs(window.xs - body.cx) - half, body.shoulder_line(window.xs) - 1.0 - window.ys, window.ys - y_end]
    )
    return _TorsoDomain(window, distance, half)


def _torso_part(body: _Body, garment: Garment, hem_spec: tuple[str, float], flare: float) -> _Part:
    """The garment's body part (tops, dresses) mapped row by row onto the torso: each cloth row spans the region."""
    template, profile = _TEMPLATES[garment.label], garment._profile
    domain = _torso_domain(body, hem_spec, flare)
    ys, xs, half = domain.window.ys, domain.window.xs, domain.half
    y_top, y_hem = _level(body, template.top), _level(body, template.hem)
    frame_v = (ys - y_top) / (y_hem - y_top) * _FRAME
    row = _profile_row(frame_v, profile)
    valid = (frame_v >= 0) & (frame_v <= _FRAME) & profile.has[row]
    t = (xs - body.cx + half) / (2 * half)
    frame_u = profile.left[row] + t * (profile.right[row] - profile.left[row])
    depth = 1 - np.abs(xs - body.cx) / half
    return _fill_part(domain.window, _coverage(domain.distance), frame_u, frame_v, depth, garment, valid)


def _profile_row(frame_v: np.ndarray, profile: _ClothProfile) -> np.ndarray:
    rows = len(profile.has)
    return np.clip(np.rint(frame_v / _FRAME * rows - 0.5).astype(np.intp), 0, rows - 1)


@dataclass(frozen=True, eq=False)
class _TrouserDomain:
    """Where trousers can lie: a hip band from the waistband to the crotch, then a tube around each leg."""

    window: _Window
    hips: np.ndarray  # signed distance to the hip band
    hip_half: np.ndarray  # (h, 1) its half width
    legs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per leg: signed distance, (h, 1) centre and half width

    @property
    def distance(self) -> np.ndarray:
        return reduce(np.minimum, [leg[0] for leg in self.legs], self.hips)


def _trouser_domain(body: _Body) -> _TrouserDomain:
    y_top, y_hem = _level(body, _TEMPLATES[1].top), _level(body, _TEMPLATES[1].hem)
    reach = max(np.abs(leg.joints[:, 0] - body.cx).max() + 1.25 * leg.radii.max() + 1 for leg in body.legs)
    reach = max(reach, 1.05 * body.torso_halves.max() + 1)
    window = _window(body.resolution, body.cx - reach, body.cx + reach, y_top, y_hem)
    ys, xs = window.ys, window.xs
    hip_half = body.torso_half_width(ys) * 1.05 + 1.0
    hips = _intersection([np.abs(xs - body.cx) - hip_half, y_top - ys, ys - body.y_crotch])
    legs = []
    for leg in body.legs:
        center = np.interp(ys, leg.joints[:, 1], leg.joints[:, 0])
        half = np.interp(ys, leg.joints[:, 1], leg.radii) * 1.25 + 1.0
        legs.append((_intersection([np.abs(xs - center) - half, body.y_crotch - 1 - ys, ys - y_hem]), center, half))
    return _TrouserDomain(window, hips, hip_half, legs)


def _trouser_part(body: _Body, garment: Garment) -> _Part:
    """Trousers: cloth rows map across the hip band, then each cloth leg along the matching body leg."""
    profile = garment._profile
    domain = _trouser_domain(body)
    ys, xs = domain.window.ys, domain.window.xs
    y_top, y_hem = _level(body, _TEMPLATES[1].top), _level(body, _TEMPLATES[1].hem)
    frame_v = np.interp(ys, [y_top, body.y_crotch, y_hem], [0.0, profile.crotch, _FRAME])
    row = _profile_row(frame_v, profile)
    valid = (ys >= y_top) & (ys <= y_hem) & profile.has[row]
    t = (xs - body.cx + domain.hip_half) / (2 * domain.hip_half)
    frame_u = profile.left[row] + t * (profile.right[row] - profile.left[row])
    depth = 1 - np.abs(xs - body.cx) / domain.hip_half
    nearest = domain.hips
    for (tube, center, half), (leg_left, leg_right) in zip(
        domain.legs, (profile.right_leg, profile.left_leg), strict=True
    ):
        on_leg = (tube < nearest) & (np.sign(xs - body.cx) == np.sign(center - body.cx))
        t = (xs - center + half) / (2 * half)
        frame_u = np.where(on_leg, leg_left[row] + t * (leg_right[row] - leg_left[row]), frame_u)
        depth = np.where(on_leg, 1 - np.abs(xs - center) / half, depth)
        nearest = np.minimum(nearest, tube)
    return _fill_part(domain.window, _coverage(nearest), frame_u, frame_v, depth, garment, valid)


def _sleeve_distance(arm_field: _LimbField, arm_length: float) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance to the sleeve region around an arm (looser below the shoulder) and its radius."""
    ease = np.interp(arm_field.along, [0.0, 0.12 * arm_length], [1.12, 1.4])
    radius = arm_field.radius * ease + 0.7
    return arm_field.distance - radius, radius


def _sleeve_part(body: _Body, garment: Garment, index: int) -> _Part | None:
    """One sleeve of the cloth (0: image left) laid along the matching arm, bending at the elbow.

    Cloth rows below the shoulder run down the arm at the torso's vertical scale, so short sleeves end on the upper
    arm; each row spans the arm's width, its outer edge on the arm's outer side.
    """
    template, profile = _TEMPLATES[garment.label], garment._profile
    has, left, right = profile.sleeves[index]
    if not has.any():
        return None
    arm_field = body.arm_fields[index]
    distance, radius = _sleeve_distance(arm_field, float(body.arms[index].lengths.sum()))
    scale = (_level(body, template.hem) - _level(body, template.top)) / _FRAME
    first_row = (np.argmax(has) + 0.5) * _FRAME / len(has)
    frame_v = first_row + np.maximum(arm_field.along, 0.0) / scale
    row = _profile_row(frame_v, profile)
    # The arm's normal points to the image's left when it hangs, so +across is the outer side on the image-left arm.
    t = (arm_field.across + radius) / (2 * radius)
    frame_u = right[row] - t * (right[row] - left[row])
    depth = 1 - np.abs(arm_field.across) / radius
    return _fill_part(arm_field.window, _coverage(distance), frame_u, frame_v, depth, garment, has[row])


def _group_of(label: int) -> str:
    return next(group for group, labels in GARMENT_GROUPS.items() if label in labels)


def agnostic_region(avatar: Avatar, group: str) -> np.ndarray:
    """(H, W) bool: every pixel a garment of ``group`` ("upper", "lower" or "dress") can cover on ``avatar``.

    It depends on the body only, never on the worn garment, so it leaks neither sleeve length nor silhouette.
    """
    if group not in GARMENT_GROUPS:
        raise ValueError(f"group must be one of {sorted(GARMENT_GROUPS)}, got {group!r}")
    body = avatar._body
    if group == "lower":
        domain = _trouser_domain(body)
        pieces = [(domain.window, domain.distance)]
    else:
        if group == "upper":
            domain = _torso_domain(body, _UPPER_HEM, 1.0)
        else:
            domain = _torso_domain(body, _TEMPLATES[3].hem, _MAX_FLARE)
        pieces = [(domain.window, domain.distance)]
        if group == "upper":
            for arm, arm_field in zip(body.arms, body.arm_fields, strict=True):
                pieces.append((arm_field.window, _sleeve_distance(arm_field, float(arm.lengths.sum()))[0]))
    region = np.zeros(avatar.resolution, bool)
    for window, distance in pieces:
        region[window.index] |= _coverage(distance) > 0
    return region


@dataclass(frozen=True, eq=False)
class DressedAvatar:
    """An avatar wearing a garment, as returned by :func:`dress`; arrays are (H, W[, 3]).

    Attributes:
        image: uint8 person wearing the garment.
        parse: uint8 label map (:data:`PARSE_LABELS`).
        warped_cloth: uint8 garment as worn, without occlusion by the arms, on white.
        warped_cloth_mask: bool mask of ``warped_cloth``.
        agnostic_mask: bool region any garment of this category could cover (see :func:`agnostic_region`).
    """

    image: np.ndarray
    parse: np.ndarray
    warped_cloth: np.ndarray
    warped_cloth_mask: np.ndarray
    agnostic_mask: np.ndarray


def dress(avatar: Avatar, garment: Garment) -> DressedAvatar:
    """Renders ``avatar`` wearing ``garment``: the try-on ground truth for any (avatar, garment) pair.

    The garment is warped non-rigidly: its torso rows stretch to the body's width at each height (eased, and flared
    for dresses), sleeves follow each arm from shoulder to wrist and bend at the elbow, trouser legs follow the legs.
    Arms and hands are drawn in front of the garment's body, hands in front of sleeves.
    """
    if not isinstance(avatar, Avatar):
        raise TypeError(f"avatar must be an Avatar from render_avatar, got {type(avatar).__name__}")
    if not isinstance(garment, Garment):
        raise TypeError(f"garment must be a Garment from make_garment, got {type(garment).__name__}")
    if garment.resolution != avatar.resolution:
        raise ValueError(f"garment resolution {garment.resolution} differs from avatar resolution {avatar.resolution}")
    body, template = avatar._body, _TEMPLATES[garment.label]
    group = _group_of(garment.label)
    if group == "lower":
        main = _trouser_part(body, garment)
    else:
        main = _torso_part(body, garment, _UPPER_HEM if group == "upper" else template.hem, garment._profile.flare)
    sleeves = [_sleeve_part(body, garment, index) if template.sleeve_share else None for index in (0, 1)]

    canvas = avatar._back.copy()
    main.paint_on(canvas, template.parse_label, 1 - avatar._in_front[main.window.index])
    for arm, sleeve in zip(avatar._arms, sleeves, strict=True):
        arm.arm.paint_on(canvas, arm.label)
        if sleeve is not None:
            hand = np.zeros(avatar.resolution, np.float32)
            hand[arm.hand.window.index] = arm.hand.coverage
            sleeve.paint_on(canvas, template.parse_label, 1 - hand[sleeve.window.index])
        arm.hand.paint_on(canvas, arm.label)

    warped = _Canvas(np.full((*avatar.resolution, 3), 255, np.uint8))
    for part in (main, *sleeves):
        if part is not None:
            part.paint_on(warped, 1)
    return DressedAvatar(
        image=canvas.image(),
        parse=canvas.parse,
        warped_cloth=warped.image(),
        warped_cloth_mask=warped.parse > 0,
        agnostic_mask=agnostic_region(avatar, group),
    )


def agnostic(person: np.ndarray, mask: np.ndarray, fill: Sequence[int] = AGNOSTIC_FILL) -> np.ndarray:
    """The cloth-agnostic person image: ``person`` (H, W, 3) uint8 with ``mask`` filled by VITON's grey."""
    person, mask = np.asarray(person), np.asarray(mask, bool)
    if person.ndim != 3 or person.shape[:2] != mask.shape:
        raise ValueError(f"person must be (H, W, 3) with H, W = mask shape {mask.shape}, got {person.shape}")
    result = person.copy()
    result[mask] = np.asarray(fill, np.uint8)
    return result


def _check_fashion_mnist(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"images must be a (N, 28, 28) uint8 array, got {images.dtype} {images.shape}")
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
    return images, labels.astype(np.int64)


class Wardrobe:
    """Deterministic avatars and garments: the same seed and id always render the same avatar or garment.

    Args:
        images: (N, 28, 28) uint8 Fashion-MNIST items; a garment id is an index into them.
        labels: (N,) their classes.
        resolution: (height, width) of every image.
        seed: base seed of all randomness.

    Example:
        >>> wardrobe = Wardrobe(images, labels, seed=0)
        >>> avatar, coat = wardrobe.avatar(7), wardrobe.garment(123)
        >>> person = dress(avatar, coat).image
    """

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, resolution: Sequence[int] = DEFAULT_RESOLUTION, seed: int = 0
    ):
        self.images, self.labels = _check_fashion_mnist(images, labels)
        self.resolution = check_resolution(resolution)
        self.seed = int(seed)
        # Consecutive examples usually share an avatar; keep the last one rendered.
        self._last_avatar: tuple[int, Avatar] | None = None

    def avatar(self, avatar_id: int) -> Avatar:
        if self._last_avatar is None or self._last_avatar[0] != avatar_id:
            rng = np.random.default_rng([self.seed, _STREAM_AVATAR, int(avatar_id)])
            shape = BodyShape.sample(rng)
            background = make_background(rng, self.resolution)
            self._last_avatar = (avatar_id, render_avatar(shape, self.resolution, background))
        return self._last_avatar[1]

    def garment(self, garment_id: int) -> Garment:
        if not 0 <= garment_id < len(self.images):
            raise ValueError(f"garment_id must be in [0, {len(self.images)}), got {garment_id}")
        rng = np.random.default_rng([self.seed, _STREAM_GARMENT, int(garment_id)])
        return make_garment(self.images[garment_id], int(self.labels[garment_id]), rng, self.resolution)

    def example(self, avatar_id: int, garment_id: int, unpaired_garment_id: int | None = None) -> dict[str, Any]:
        """One dataset row (see the module docstring) as numpy arrays, masks as 0/255 uint8."""
        avatar = self.avatar(avatar_id)
        garment = self.garment(garment_id)
        dressed = dress(avatar, garment)
        row = {
            "image": dressed.image,
            "cloth": garment.image,
            "cloth_mask": _mask_image(garment.mask),
            "agnostic": agnostic(dressed.image, dressed.agnostic_mask),
            "agnostic_mask": _mask_image(dressed.agnostic_mask),
            "image_parse": dressed.parse,
            "body_mask": _mask_image(avatar.body_mask),
            "pose_keypoints": avatar.keypoints.tolist(),
            "avatar": avatar.image,
            "warped_cloth": dressed.warped_cloth,
            "warped_cloth_mask": _mask_image(dressed.warped_cloth_mask),
            "avatar_id": int(avatar_id),
            "garment_id": int(garment_id),
            "garment_label": garment.label,
            **avatar.shape.to_dict(),
        }
        if unpaired_garment_id is not None:
            unpaired = self.garment(unpaired_garment_id)
            row |= {
                "unpaired_cloth": unpaired.image,
                "unpaired_cloth_mask": _mask_image(unpaired.mask),
                "unpaired_image": dress(avatar, unpaired).image,
                "unpaired_garment_id": int(unpaired_garment_id),
                "unpaired_garment_label": unpaired.label,
            }
        return row


def _mask_image(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.uint8) * 255


def wardrobe_features(unpaired: bool = False) -> datasets.Features:
    """The ``datasets.Features`` of a wardrobe dataset (see the module docstring)."""
    rgb, gray = datasets.Image(mode="RGB"), datasets.Image(mode="L")
    label = datasets.ClassLabel(names=list(FASHION_MNIST_CLASSES))
    features = {
        "image": rgb,
        "cloth": rgb,
        "cloth_mask": gray,
        "agnostic": rgb,
        "agnostic_mask": gray,
        "image_parse": gray,
        "body_mask": gray,
        "pose_keypoints": datasets.List(datasets.List(datasets.Value("float32"), length=3), length=18),
        "avatar": rgb,
        "warped_cloth": rgb,
        "warped_cloth_mask": gray,
        "avatar_id": datasets.Value("int32"),
        "garment_id": datasets.Value("int32"),
        "garment_label": label,
        **{name: datasets.Value("float32") for name in BODY_SHAPE_RANGES},
    }
    if unpaired:
        features |= {
            "unpaired_cloth": rgb,
            "unpaired_cloth_mask": gray,
            "unpaired_image": rgb,
            "unpaired_garment_id": datasets.Value("int32"),
            "unpaired_garment_label": label,
        }
    return datasets.Features(features)


def split_garments(labels: np.ndarray, seed: int = 0, test_fraction: float = 0.2) -> dict[str, np.ndarray]:
    """Disjoint train/test source indices of the wearable items, stratified by class."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, _STREAM_SPLIT])
    splits = {"train": [], "test": []}
    for label in GARMENT_LABELS:
        indices = rng.permutation(np.flatnonzero(labels == label))
        num_test = round(test_fraction * len(indices))
        splits["test"].append(indices[:num_test])
        splits["train"].append(indices[num_test:])
    return {name: np.sort(np.concatenate(parts)) for name, parts in splits.items()}


def _plan(labels, pool, num_samples, garments_per_avatar, seed, split, unpaired) -> Iterator[tuple]:
    """(avatar_id, garment_id, unpaired_garment_id) per sample; garments are used round-robin in shuffled order."""
    rng = np.random.default_rng([seed, _STREAM_PAIRING, _SPLITS.index(split)])
    order = rng.permutation(pool)
    groups = {group: pool[np.isin(labels[pool], group_labels)] for group, group_labels in GARMENT_GROUPS.items()}
    offset = TEST_AVATAR_ID_OFFSET if split == "test" else 0
    for index in range(num_samples):
        garment_id = int(order[index % len(order)])
        unpaired_id = None
        if unpaired:
            candidates = groups[_group_of(int(labels[garment_id]))]
            if len(candidates) < 2:
                raise ValueError(f"the {split} split has a single garment of its group; cannot pick an unpaired one")
            unpaired_id = garment_id
            while unpaired_id == garment_id:
                unpaired_id = int(rng.choice(candidates))
        yield offset + index // garments_per_avatar, garment_id, unpaired_id


def build_wardrobe_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    num_samples: int,
    garments_per_avatar: int = 2,
    resolution: Sequence[int] = DEFAULT_RESOLUTION,
    seed: int = 0,
    split: str = "train",
    test_fraction: float = 0.2,
    unpaired: bool = False,
    chunk_size: int = 1000,
) -> datasets.Dataset:
    """Renders one split of the synthetic try-on dataset as an in-memory ``datasets.Dataset``.

    Args:
        images, labels: Fashion-MNIST items and classes; items of other classes than :data:`GARMENT_LABELS` are
            skipped.
        num_samples: number of rows.
        garments_per_avatar: consecutive rows share an avatar wearing this many different garments.
        resolution: (height, width).
        seed: same seed, same bytes.
        split: "train" or "test"; the splits share no avatar (test ids start at :data:`TEST_AVATAR_ID_OFFSET`) and
            no garment (:func:`split_garments` with ``seed`` and ``test_fraction``).
        unpaired: also render ``unpaired_*`` columns: another garment of the same group and its ground truth.
        chunk_size: rows encoded at a time; bounds the memory of raw arrays.

    Returns:
        A dataset with the columns of the module docstring; save it with ``save_to_disk`` or ``push_to_hub``.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if num_samples < 1 or garments_per_avatar < 1:
        raise ValueError(f"num_samples and garments_per_avatar must be >= 1, got {num_samples}, {garments_per_avatar}")
    wardrobe = Wardrobe(images, labels, resolution, seed)
    pool = split_garments(wardrobe.labels, seed, test_fraction)[split]
    if len(pool) == 0:
        raise ValueError(f"no wearable garment in the {split} split; labels must include some of {GARMENT_LABELS}")
    features = wardrobe_features(unpaired)
    chunks, rows = [], []
    plan = _plan(wardrobe.labels, pool, num_samples, garments_per_avatar, seed, split, unpaired)
    for avatar_id, garment_id, unpaired_id in hf_tqdm(plan, total=num_samples, desc=f"Rendering {split}"):
        rows.append(wardrobe.example(avatar_id, garment_id, unpaired_id))
        if len(rows) == chunk_size:
            chunks.append(_encode(rows, features))
            rows = []
    if rows:
        chunks.append(_encode(rows, features))
    dataset = datasets.concatenate_datasets(chunks) if len(chunks) > 1 else chunks[0]
    dataset.info.description = "Synthetic virtual-wardrobe try-on pairs (hf_vaegan.data.wardrobe)."
    return dataset


def _encode(rows: list[dict[str, Any]], features: datasets.Features) -> datasets.Dataset:
    columns = {name: [row[name] for row in rows] for name in features}
    for name, feature in features.items():
        if isinstance(feature, datasets.Image):
            columns[name] = [{"bytes": _png(array), "path": None} for array in columns[name]]
    return datasets.Dataset.from_dict(columns, features=features)


def _png(array: np.ndarray) -> bytes:
    # Fastest zlib level: encoding is half the generation time at the default level, for ~10% smaller files.
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def wardrobe_dataset_dict(
    images: np.ndarray,
    labels: np.ndarray,
    num_train: int,
    num_test: int,
    garments_per_avatar: int = 2,
    resolution: Sequence[int] = DEFAULT_RESOLUTION,
    seed: int = 0,
    test_fraction: float = 0.2,
    unpaired_test: bool = True,
) -> datasets.DatasetDict:
    """``DatasetDict({"train", "test"})`` with disjoint avatars and garments; see :func:`build_wardrobe_dataset`.

    ``unpaired_test`` adds the unpaired columns to the test split, for unpaired evaluation with ground truth.
    """
    common = {"garments_per_avatar": garments_per_avatar, "resolution": resolution, "seed": seed}
    common["test_fraction"] = test_fraction
    return datasets.DatasetDict(
        train=build_wardrobe_dataset(images, labels, num_train, split="train", **common),
        test=build_wardrobe_dataset(images, labels, num_test, split="test", unpaired=unpaired_test, **common),
    )
