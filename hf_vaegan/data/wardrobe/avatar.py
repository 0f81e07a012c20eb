"""Avatars: bodies rendered from a :class:`~hf_vaegan.data.wardrobe.schema.BodyShape`, on a background."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .geometry import (
    _coverage,
    _ellipse,
    _intersection,
    _Limb,
    _limb_field,
    _LimbField,
    _palette,
    _shade,
    _smoothstep_interp,
    _Window,
    _window,
)
from .schema import _LABEL, DEFAULT_RESOLUTION, POSE_KEYPOINTS, BodyShape, _rng, check_resolution

_SKIN_TONES = np.array([[255, 222, 196], [234, 186, 150], [198, 134, 98], [142, 88, 58], [86, 52, 34]], np.float32)

_HAIR_TONES = np.array([[24, 20, 20], [62, 40, 28], [112, 72, 40], [168, 118, 62], [226, 192, 122]], np.float32)

_TANK_TOP = np.array([236, 234, 228], np.float32) / 255

_SHORTS = np.array([52, 58, 74], np.float32) / 255

_SHOES = np.array([38, 34, 32], np.float32) / 255

_EYES = np.array([30, 24, 24], np.float32) / 255


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
    """A rendered part over a window: coverage and colour ((3,) or per pixel); a garment part also has the
    ``(h, w, 2)`` position (x, y) in the cloth image, in pixels, that each of its pixels shows (NaN where none)."""

    window: _Window
    coverage: np.ndarray
    color: np.ndarray
    cloth_positions: np.ndarray | None = None

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


def random_avatar(seed: int, resolution: Sequence[int] = DEFAULT_RESOLUTION) -> Avatar:
    """The avatar of ``seed``: random body parameters (bent arms included) on a random backdrop, the same every time
    (the Space's avatar gallery, and the try-on benchmark of its inputs)."""
    rng = np.random.default_rng(seed)
    return render_avatar(BodyShape.sample(rng), resolution, make_background(rng, resolution))
