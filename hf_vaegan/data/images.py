"""Images in, tensors out: the one conversion of PIL images of any mode to the models' inputs.

Training, the pipelines, the sketch data and the Space all go through :func:`to_canonical_mode`, so that an image
means the same thing everywhere (16-bit, float, transparent, palette...); :class:`ImageTransform` adds the resize,
crop and flip of the training data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

Resolution = int | tuple[int, int]

_SINGLE_CHANNEL_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


def infer_num_channels(image: Image.Image) -> int:
    """1 for grayscale PIL modes (``1``, ``L``, ``LA``, ``I``, ``I;16``, ``F``...), else 3."""
    return 1 if image.mode in _SINGLE_CHANNEL_MODES else 3


def _to_8bit(image: Image.Image) -> Image.Image:
    """Map high-bit-depth grayscale modes to ``L``; PIL's own conversion clips instead of rescaling."""
    values = np.asarray(image, dtype=np.float64)
    high = values.max() if values.size else 0.0
    if image.mode.startswith("I;16") or (image.mode == "I" and high > 255):
        values = values / 257.0
    elif image.mode == "F" and high <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def to_canonical_mode(
    image: Image.Image, num_channels: int, *, background: int | tuple[int, int, int] = 255
) -> Image.Image:
    """Convert a PIL image of any mode to ``L`` (``num_channels=1``) or ``RGB`` (3).

    - Transparent images (``RGBA``, ``LA``, ``PA``, palette or grayscale with a transparent color) are composited
      on ``background`` (a grey level or an RGB colour; default white, the usual backdrop of garment cut-outs)
      rather than having their alpha dropped (which would reveal whatever color the transparent pixels happen to
      store). Models trained on light garments on black (Fashion-MNIST) want ``background=0``.
    - 16-bit ``I;16`` images are scaled from [0, 65535]; 32-bit ``I`` images likewise when any value exceeds 255,
      else taken as 8-bit values; float ``F`` images are scaled from [0, 1] when their maximum is <= 1, else clipped
      to [0, 255].
    - ``1``, ``P``, ``CMYK``, ``YCbCr`` and the rest go through PIL's own conversion.
    """
    if num_channels not in (1, 3):
        raise ValueError(f"num_channels must be 1 or 3, got {num_channels}")
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _to_8bit(image)
    elif image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        fill = (background,) * 3 if isinstance(background, int) else tuple(background)
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (*fill, 255)), rgba)
    target_mode = "L" if num_channels == 1 else "RGB"
    return image if image.mode == target_mode else image.convert(target_mode)


@dataclass(frozen=True)
class Augmentation:
    """Random choices applied to an image; shared by both images of a pair.

    Attributes:
        flip: Mirror horizontally.
        crop_top: Where the crop starts vertically, as a fraction of the spare height (0.5 = centered).
        crop_left: Same, horizontally.
    """

    flip: bool = False
    crop_top: float = 0.5
    crop_left: float = 0.5


class ImageTransform:
    """PIL image of any mode and size -> float tensor ``(C, H, W)`` in [-1, 1] (see :func:`make_image_transform`)."""

    def __init__(self, resolution: Resolution, num_channels: int, random_flip: bool = False, center_crop: bool = True):
        height, width = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
        if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
            raise ValueError(f"resolution must be a positive int or (height, width), got {resolution!r}")
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 or 3, got {num_channels}")
        self.size = (height, width)
        self.num_channels = num_channels
        self.random_flip = random_flip
        self.center_crop = center_crop

    def sample_augmentation(self) -> Augmentation:
        """Draw the flip and crop position from torch's RNG (seeded per worker by the DataLoader)."""
        flip = self.random_flip and bool(torch.rand(()) < 0.5)
        if self.center_crop:
            return Augmentation(flip=flip)
        crop_top, crop_left = torch.rand(2).tolist()
        return Augmentation(flip=flip, crop_top=crop_top, crop_left=crop_left)

    def __call__(self, image: Image.Image, augmentation: Augmentation | None = None) -> torch.Tensor:
        """Transform ``image``, drawing a fresh :class:`Augmentation` unless one is given."""
        if augmentation is None:
            augmentation = self.sample_augmentation()
        image = to_canonical_mode(image, self.num_channels)
        height, width = self.size
        if image.size != (width, height):
            # Scale so the image covers the target, keeping its aspect ratio, then crop the excess.
            scale = max(height / image.height, width / image.width)
            resized = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
            image = image.resize(resized, Image.Resampling.BILINEAR)
            left = round(augmentation.crop_left * (image.width - width))
            top = round(augmentation.crop_top * (image.height - height))
            image = image.crop((left, top, left + width, top + height))
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        pixels = torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy())
        return pixels.flip(-1) if augmentation.flip else pixels


def make_image_transform(
    resolution: Resolution, num_channels: int, random_flip: bool = False, center_crop: bool = True
) -> ImageTransform:
    """Build the transform from PIL images to training tensors.

    Args:
        resolution: Output size: an int for a square, or ``(height, width)``.
        num_channels: 1 (grayscale) or 3 (RGB); images of any mode are converted (see :func:`to_canonical_mode`).
        random_flip: Mirror half of the images horizontally.
        center_crop: After the aspect-preserving resize, crop the excess at the center; else at a random place.

    Returns:
        A callable mapping a PIL image to a float32 tensor ``(num_channels, height, width)`` in [-1, 1].
    """
    return ImageTransform(resolution, num_channels, random_flip, center_crop)
