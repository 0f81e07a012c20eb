"""Flat garments: Fashion-MNIST items colourised with patterns, with the profile the dressing follows."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from PIL import Image, ImageFilter

from .geometry import _coverage
from .schema import _FRAME, _LABEL, DEFAULT_RESOLUTION, _check_label, _rng, check_resolution


@dataclass(frozen=True)
class _Template:
    """How a Fashion-MNIST category's 28 x 28 frame lands on the body.

    The outer ``sleeve_share`` of the cloth's width on either side, from the shoulder down, is a sleeve; the middle is
    the torso (or both trouser legs). ``top`` and ``hem`` place the frame's first and last rows on the body. With
    ``sleeves_end_above_hem``, outer columns that run down to the hem are the sides of a sleeveless top, not sleeves.
    """

    parse_label: int
    top: tuple[str, float]
    hem: tuple[str, float]
    sleeve_share: float = 0.2
    sleeves_end_above_hem: bool = False


_TEMPLATES = {
    0: _Template(_LABEL["upper_clothes"], ("neck", 0.0), ("hip", 0.02), sleeve_share=0.19, sleeves_end_above_hem=True),
    1: _Template(_LABEL["pants"], ("trouser_waist", 0.0), ("ankle", 0.01), sleeve_share=0.0),
    2: _Template(_LABEL["upper_clothes"], ("neck", 0.0), ("hip", 0.03)),
    3: _Template(_LABEL["dress"], ("neck", 0.01), ("knee", 0.03), sleeve_share=0.0),
    4: _Template(_LABEL["coat"], ("neck", 0.0), ("hip", 0.15)),
    6: _Template(_LABEL["upper_clothes"], ("neck", 0.0), ("hip", 0.05)),
}

# A sleeve starts within this many frame rows of the top and is at least this wide.
_SLEEVE_START, _SLEEVE_MIN_WIDTH = 10.0, 1.5
# A short sleeve ends more than this many frame rows above the garment's last row.
_SLEEVE_HEM_GAP = 2.0

_UPPER_HEM = ("hip", 0.15)

_MAX_FLARE = 1.7


def _garment_frame(resolution: tuple[int, int]) -> tuple[int, int, int]:
    """(x0, y0, size) of the square that holds the 28 x 28 Fashion-MNIST frame in a cloth image."""
    height, width = resolution
    size = round(0.88 * min(height, width))
    return (width - size) // 2, (height - size) // 2, size


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


# Off white by more than this (in [0, 1], the largest channel difference), a pixel of a flat-garment image is garment.
BACKGROUND_THRESHOLD = 0.12
# A colour garment GAN draws about one garment in ten so light that little of it stands out from the white background
# (real garments of the data cover at least 15% of their image in 99 cases in 100, trousers and dresses included):
# dressed, only its shading would show. Drawn garments that cover less are not used.
MIN_GARMENT_COVERAGE = 0.15


def garment_coverage(image: np.ndarray, background_threshold: float = BACKGROUND_THRESHOLD) -> float:
    """The share of a flat-garment image on white, (H, W, 3) uint8, that the garment covers (``Garment.from_image``'s
    mask)."""
    return float(np.mean(255 - np.asarray(image).min(axis=2) > background_threshold * 255))


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

    @classmethod
    def from_image(
        cls,
        image: np.ndarray,
        label: int,
        resolution: Sequence[int] = DEFAULT_RESOLUTION,
        background_threshold: float = BACKGROUND_THRESHOLD,
        framed: bool = True,
    ) -> Garment:
        """A garment from a square flat-garment image on white of any size, e.g. a colour garment GAN's sample.

        With ``framed`` the image is laid out as :func:`make_garment` lays out a garment at that size (the item's
        frame centred, 88 % of the side); without, the whole image is the frame (a garment photo cropped to the
        garment). That frame is rescaled into the cloth frame at ``resolution``. The mask is where the colour is off
        white by more than ``background_threshold`` (in [0, 1], the largest channel difference), so the garment you
        generate is the garment that gets dressed, colours and patterns included.

        Args:
            image: (S, S, 3) uint8 RGB, white background.
            label: its Fashion-MNIST class, one of :data:`GARMENT_LABELS`.
            resolution: (height, width) of the cloth image; use the avatars' resolution.
            background_threshold: distance from white below which a pixel is background.
            framed: whether the image has the margin of :func:`make_garment`'s layout around the item's frame.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.shape[0] != image.shape[1]:
            raise ValueError(f"image must be a square (S, S, 3) uint8 array, got {image.dtype} {image.shape}")
        if not 0 < background_threshold < 1:
            raise ValueError(f"background_threshold must be in (0, 1), got {background_threshold}")
        resolution = check_resolution(resolution)
        source_x0, source_y0, source_size = _garment_frame(image.shape[:2]) if framed else (0, 0, image.shape[0])
        frame = image[source_y0 : source_y0 + source_size, source_x0 : source_x0 + source_size]
        x0, y0, size = _garment_frame(resolution)
        frame = np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BICUBIC))
        mask = np.zeros(resolution, bool)
        mask[y0 : y0 + size, x0 : x0 + size] = (255 - frame.min(axis=2)) > background_threshold * 255
        if not mask.any():
            raise ValueError(f"image holds no garment: no pixel is off white by more than {background_threshold}")
        cloth = np.full((*resolution, 3), 255, np.uint8)
        cloth[y0 : y0 + size, x0 : x0 + size] = frame
        cloth[~mask] = 255
        return cls(image=cloth, mask=mask, label=label)

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
        sleeves = tuple(_sleeve_rows(rows, *side) for side in sides)
        if template.sleeves_end_above_hem and _reach_hem([sleeve[0] for sleeve in sleeves], rows, square.any(axis=1)):
            # A tank top: its whole width is the torso, and it is worn with bare arms.
            has, left, right = _row_extents(square, columns, 0.0, _FRAME)
            sleeves = tuple((np.zeros_like(has), *sleeve[1:]) for sleeve in sleeves)
        return _ClothProfile(has, left, right, sleeves=sleeves)


def _reach_hem(sleeves: list[np.ndarray], rows: np.ndarray, occupied: np.ndarray) -> bool:
    """Whether a sleeve's rows run down to within :data:`_SLEEVE_HEM_GAP` of the garment's last row."""
    hem = rows[len(occupied) - 1 - np.argmax(occupied[::-1])]
    return any(
        sleeve.any() and hem - rows[len(sleeve) - 1 - np.argmax(sleeve[::-1])] <= _SLEEVE_HEM_GAP for sleeve in sleeves
    )


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
