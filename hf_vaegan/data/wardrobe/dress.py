"""Dressing an avatar: each garment part warped onto the body, the arms in front; the agnostic region."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

import numpy as np

from .avatar import Avatar, _Body, _Canvas, _Part
from .garment import _MAX_FLARE, _TEMPLATES, _UPPER_HEM, Garment, _ClothProfile, _garment_frame
from .geometry import _coverage, _intersection, _LimbField, _shade, _Window, _window
from .schema import _FRAME, AGNOSTIC_FILL, GARMENT_GROUPS, _group_of


def _cloth_positions(resolution: tuple[int, int], frame_u: np.ndarray, frame_v: np.ndarray) -> np.ndarray:
    """The points (x, y) of a cloth image, in pixels (pixel centres at .5), at frame coordinates: (..., 2)."""
    x0, y0, size = _garment_frame(resolution)
    return np.stack([x0 + frame_u * size / _FRAME, y0 + frame_v * size / _FRAME], axis=-1)


def _sample(texture: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear colour and alpha of a garment texture at cloth positions ``(N, 2)`` (see :func:`_cloth_positions`)."""
    height, width = texture.shape[:2]
    cols = np.clip(positions[:, 0] - 0.5, 0, width - 1)
    rows = np.clip(positions[:, 1] - 0.5, 0, height - 1)
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
    positions = np.full((*shape, 2), np.nan)
    inside = region > 0 if valid is None else (region > 0) & valid
    if inside.any():
        frame_u, frame_v = np.broadcast_to(frame_u, shape), np.broadcast_to(frame_v, shape)
        positions[inside] = _cloth_positions(garment.resolution, frame_u[inside], frame_v[inside])
        sampled_color, sampled_alpha = _sample(garment._texture, positions[inside])
        alpha[inside] = sampled_alpha
        color[inside] = sampled_color * _shade(np.broadcast_to(depth, shape)[inside])
    return _Part(window, alpha * region, color, positions)


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
        warped_cloth_flow: float32 (H, W, 2), the warp that makes ``warped_cloth`` from the cloth image, as a
            ``TryOnModel`` predicts it (``TryOnOutput.flow``, channels last): where each pixel samples the cloth, as
            (x, y) offsets from its own position in ``grid_sample`` coordinates (``align_corners=False``, [-1, 1]
            across the image); NaN where no garment part covers the pixel by more than half.
    """

    image: np.ndarray
    parse: np.ndarray
    warped_cloth: np.ndarray
    warped_cloth_mask: np.ndarray
    agnostic_mask: np.ndarray
    warped_cloth_flow: np.ndarray


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
    positions = np.full((*avatar.resolution, 2), np.nan)
    for part in (main, *sleeves):
        if part is not None:
            part.paint_on(warped, 1)
            covered = part.coverage > 0.5  # the part painted last (a sleeve over the torso) is the one seen
            positions[part.window.index][covered] = part.cloth_positions[covered]
    return DressedAvatar(
        image=canvas.image(),
        parse=canvas.parse,
        warped_cloth=warped.image(),
        warped_cloth_mask=warped.parse > 0,
        agnostic_mask=agnostic_region(avatar, group),
        warped_cloth_flow=_flow(positions),
    )


def _flow(positions: np.ndarray) -> np.ndarray:
    """Cloth positions (H, W, 2) in pixels as offsets from each pixel's centre in ``grid_sample`` units."""
    height, width = positions.shape[:2]
    centres = np.stack(np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5), axis=-1)
    return ((positions - centres) * (2 / np.array([width, height]))).astype(np.float32)


def agnostic(person: np.ndarray, mask: np.ndarray, fill: Sequence[int] = AGNOSTIC_FILL) -> np.ndarray:
    """The cloth-agnostic person image: ``person`` (H, W, 3) uint8 with ``mask`` filled by VITON's grey."""
    person, mask = np.asarray(person), np.asarray(mask, bool)
    if person.ndim != 3 or person.shape[:2] != mask.shape:
        raise ValueError(f"person must be (H, W, 3) with H, W = mask shape {mask.shape}, got {person.shape}")
    result = person.copy()
    result[mask] = np.asarray(fill, np.uint8)
    return result
