"""Images in, tensors out: the one conversion of images of any kind to the models' inputs.

PIL images of any mode go through :func:`to_canonical_mode`, which training, the sketch data and the Space use too, so
that an image means the same thing everywhere (16-bit, float, transparent, palette...). :func:`images_to_tensor`
extends it to numpy arrays and torch tensors: it is the input contract of every pipeline. :class:`ImageTransform`
adds the resize, crop and flip of the training data.

The input contract (:func:`images_to_tensor`), one image or a list of them:

- **PIL images**, any mode (``1``, ``L``, ``P``, ``RGB``, ``RGBA``, ``LA``, ``PA``, ``I;16``, ``I``, ``F``, ``CMYK``,
  ``YCbCr``...), converted by :func:`to_canonical_mode`: 8-bit values 0..255 map to [-1, 1].
- **numpy arrays**, channels last: ``(H, W)``, ``(H, W, C)``, ``(N, H, W)`` or ``(N, H, W, C)``, with C = 1, 3 or 4
  (RGBA); a 3-D array is one image when its last axis is 1, 3 or 4 long, else a batch of grey images. ``uint8`` in
  [0, 255], ``uint16`` in [0, 65535], ``bool`` (black and white), or floats in [0, 1].
- **torch tensors**, channels first: ``(H, W)``, ``(C, H, W)`` or ``(N, C, H, W)``, C = 1, 3 or 4. Floats in
  [-1, 1] (the models' range: a tensor in [0, 1] is read as the upper half of it), or ``uint8``, ``uint16``,
  ``bool`` as for numpy.

Transparent pixels are composited on ``background`` (white by default), RGB becomes grey by ITU-R 601 luma (as PIL's
``convert("L")``) and grey is replicated to RGB. Floats may stray 1e-3 outside their range (rounding). Everything
else raises a ``TypeError`` or ``ValueError`` naming the input and the problem: other dtypes or layouts, NaN or
infinite values, floats out of range, empty images, file paths, and PIL images whose values cannot be 8-bit pixels
(negative or NaN ``F`` images, ``I`` images beyond 16 bits).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

Resolution = int | tuple[int, int]
ImageInput = Image.Image | np.ndarray | torch.Tensor
Background = int | tuple[int, int, int]

_SINGLE_CHANNEL_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
# Integer and bool pixels: the value that means white.
_NUMPY_WHITE = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535, np.dtype(np.bool_): 1}
_TORCH_WHITE = {torch.uint8: 255, torch.uint16: 65535, torch.bool: 1}
# Float pixels may stray this far outside their range (rounding); they are then clamped.
RANGE_TOLERANCE = 1e-3
# ITU-R 601 luma, as PIL's convert("L").
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def height_and_width(resolution: Resolution) -> tuple[int, int]:
    """``(height, width)`` of a resolution: ``N`` stands for ``(N, N)``."""
    return (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)


def infer_num_channels(image: Image.Image) -> int:
    """1 for grayscale PIL modes (``1``, ``L``, ``LA``, ``I``, ``I;16``, ``F``...), else 3."""
    return 1 if image.mode in _SINGLE_CHANNEL_MODES else 3


def _to_8bit(image: Image.Image) -> Image.Image:
    """Map high-bit-depth grayscale modes to ``L``; PIL's own conversion clips instead of rescaling."""
    values = np.asarray(image, dtype=np.float64)
    low, high = (values.min(), values.max()) if values.size else (0.0, 0.0)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"The mode {image.mode!r} image contains NaN or infinite values.")
    limit = 1.0 if image.mode == "F" and high <= 1.0 else 255.0 if image.mode == "F" else 65535.0
    if low < 0 or high > limit:
        raise ValueError(
            f"The mode {image.mode!r} image holds values in [{low:.4g}, {high:.4g}], which are not pixels: "
            + ("float images must lie in [0, 1] or [0, 255]." if image.mode == "F" else "expected [0, 65535].")
        )
    if image.mode.startswith("I;16") or (image.mode == "I" and high > 255):
        values = values / 257.0
    elif image.mode == "F" and high <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def to_canonical_mode(image: Image.Image, num_channels: int, *, background: Background = 255) -> Image.Image:
    """Convert a PIL image of any mode to ``L`` (``num_channels=1``) or ``RGB`` (3).

    - Transparent images (``RGBA``, ``LA``, ``PA``, palette or grayscale with a transparent color) are composited
      on ``background`` (a grey level or an RGB colour; default white, the usual backdrop of garment cut-outs)
      rather than having their alpha dropped (which would reveal whatever color the transparent pixels happen to
      store). Models trained on light garments on black (Fashion-MNIST) want ``background=0``.
    - 16-bit ``I;16`` images are scaled from [0, 65535]; 32-bit ``I`` images likewise when any value exceeds 255,
      else taken as 8-bit values; float ``F`` images are scaled from [0, 1] when their maximum is <= 1, else taken
      as 8-bit values. Values that cannot be pixels (NaN, negative, ``F`` above 255, ``I`` above 65535) raise
      ``ValueError``.
    - ``1``, ``P``, ``CMYK``, ``YCbCr`` and the rest go through PIL's own conversion; modes it cannot convert
      (``LAB``) raise ``ValueError``.
    """
    if num_channels not in (1, 3):
        raise ValueError(f"num_channels must be 1 or 3, got {num_channels}")
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _to_8bit(image)
    elif image.mode in _ALPHA_MODES or "transparency" in image.info:
        # PIL converts premultiplied grey (La) only to LA
        rgba = (image.convert("LA") if image.mode == "La" else image).convert("RGBA")
        fill = (background,) * 3 if isinstance(background, int) else tuple(background)
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (*fill, 255)), rgba)
    target_mode = "L" if num_channels == 1 else "RGB"
    if image.mode == target_mode:
        return image
    try:
        return image.convert(target_mode)
    except ValueError as error:
        raise ValueError(f"Cannot read mode {image.mode!r} images ({error}); convert them to RGB first.") from None


def _has_channel_axis(shape: tuple[int, ...]) -> bool:
    """Whether a channels-last (numpy) image shape ends with channels: 4-D, or 3-D with a last axis of 1, 3 or 4
    (else a 3-D array is a batch of grey images)."""
    return len(shape) == 4 or (len(shape) == 3 and shape[-1] in (1, 3, 4))


def image_size(image: ImageInput) -> tuple[int, int]:
    """``(height, width)`` of one input of :func:`images_to_tensor`, read without converting it."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    if isinstance(image, (np.ndarray, torch.Tensor)) and image.ndim >= 2:
        if isinstance(image, np.ndarray) and _has_channel_axis(image.shape):
            return tuple(image.shape[-3:-1])
        return tuple(image.shape[-2:])
    raise TypeError(_not_an_image_message(image, "image"))


def count_images(image: ImageInput) -> int:
    """How many images one input of :func:`images_to_tensor` holds, read without converting it (1 for a non-image,
    which the conversion refuses)."""
    if isinstance(image, np.ndarray) and image.ndim >= 3 and not (image.ndim == 3 and _has_channel_axis(image.shape)):
        return image.shape[0]
    if isinstance(image, torch.Tensor) and image.ndim == 4:
        return image.shape[0]
    return 1


def images_to_tensor(
    images: ImageInput | Sequence[ImageInput],
    num_channels: int,
    size: tuple[int, int] | None = None,
    *,
    background: Background = 255,
    name: str = "images",
) -> torch.Tensor:
    """Images of any kind -> one float32 batch ``(N, num_channels, height, width)`` in [-1, 1], on the CPU.

    Args:
        images: One image or a list: PIL images, numpy arrays or torch tensors, mixed freely (the module docstring
            states what each may be).
        num_channels: 1 (grey) or 3 (RGB).
        size: ``(height, width)`` to resize every image to (PIL images with Lanczos, arrays and tensors with
            antialiased bicubic); ``None`` keeps the sizes, which must then be equal.
        background: The grey level or RGB colour transparent pixels are composited on.
        name: What the error messages call the input (``images[i]`` for the items of a list).

    Raises:
        TypeError: An input that is not an image (a file path, a list of numbers...), or an unsupported dtype.
        ValueError: No image, an empty one, a bad layout or channel count, NaN or out-of-range values, PIL values
            that cannot be pixels, or images of different sizes without ``size``.
    """
    if num_channels not in (1, 3):
        raise ValueError(f"num_channels must be 1 or 3, got {num_channels}")
    is_list = isinstance(images, (list, tuple))
    items = list(images) if is_list else [images]
    if not items or any(item is None for item in items):
        raise ValueError(f"No image was given (`{name}`): pass a PIL image, numpy array, tensor, or a list of them.")
    batches = [
        _image_to_tensor(item, num_channels, size, background, f"{name}[{index}]" if is_list else name)
        for index, item in enumerate(items)
    ]
    sizes = sorted({tuple(batch.shape[2:]) for batch in batches})
    if len(sizes) > 1:
        raise ValueError(f"Images of one call must have the same size (or be resized to one), got sizes {sizes}.")
    return torch.cat(batches)


def _not_an_image_message(value, name: str) -> str:
    if isinstance(value, (str, os.PathLike)):
        return (
            f"`{name}` is a path ({os.fspath(value)!r}), not an image: pass PIL images, numpy arrays or torch tensors "
            "(open the file with PIL.Image.open)."
        )
    return f"`{name}` must be a PIL image, a numpy array or a torch tensor, got {type(value).__name__}."


def _image_to_tensor(image, num_channels: int, size, background: Background, name: str) -> torch.Tensor:
    """One input -> float32 ``(N, num_channels, H, W)`` in [-1, 1]."""
    if isinstance(image, Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"`{name}` is an empty {image.width}x{image.height} image.")
        try:
            image = to_canonical_mode(image, num_channels, background=background)
        except ValueError as error:
            message = str(error)
            raise ValueError(f"`{name}`: {message[:1].lower()}{message[1:]}") from None
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.Resampling.LANCZOS)
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        pixels = pixels[None, None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)[None]
        return torch.from_numpy(np.ascontiguousarray(pixels)) * 2 - 1
    if isinstance(image, np.ndarray):
        batch = _as_nchw(_numpy_pixels(image, name), channels_last=True, name=name)
    elif isinstance(image, torch.Tensor):
        batch = _as_nchw(_torch_pixels(image, name), channels_last=False, name=name)
    else:
        raise TypeError(_not_an_image_message(image, name))
    batch = _convert_channels(batch, num_channels, background)
    if size is not None and tuple(batch.shape[2:]) != tuple(size):
        batch = F.interpolate(batch, size=tuple(size), mode="bicubic", antialias=True).clamp(-1, 1)
    return batch


def _numpy_pixels(array: np.ndarray, name: str) -> torch.Tensor:
    """A numpy image -> a float32 tensor of the same shape in [-1, 1]."""
    if array.size == 0:
        raise ValueError(f"`{name}` is empty (shape {array.shape}).")
    if array.dtype in _NUMPY_WHITE:
        return torch.from_numpy(array.astype(np.float32) / _NUMPY_WHITE[array.dtype]) * 2 - 1
    if array.dtype.kind != "f":
        raise TypeError(
            f"`{name}`: numpy images must be uint8 or float in [0, 1] (or uint16, bool), got dtype {array.dtype}; "
            "8-bit values of another integer type: .astype(np.uint8)."
        )
    values = torch.from_numpy(np.array(array, dtype=np.float32))  # a copy: the input may be read-only
    _check_float_range(values, name, "float numpy images", 0.0)
    return values.clamp(0, 1) * 2 - 1


def _torch_pixels(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """An image tensor -> a float32 CPU tensor of the same shape in [-1, 1]."""
    if tensor.numel() == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(tensor.shape)}).")
    tensor = tensor.detach().cpu()
    if tensor.dtype in _TORCH_WHITE:
        return tensor.float() / _TORCH_WHITE[tensor.dtype] * 2 - 1
    if not tensor.is_floating_point():
        raise TypeError(
            f"`{name}`: image tensors must be float in [-1, 1] (or uint8, uint16, bool), got dtype {tensor.dtype}."
        )
    values = tensor.float()
    _check_float_range(values, name, "image tensors", -1.0)
    return values.clamp(-1, 1)


def _check_float_range(values: torch.Tensor, name: str, kind: str, low: float) -> None:
    minimum, maximum = torch.stack(torch.aminmax(values)).tolist()
    if not (math.isfinite(minimum) and math.isfinite(maximum)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    if minimum < low - RANGE_TOLERANCE or maximum > 1 + RANGE_TOLERANCE:
        hint = "; 8-bit values: pass uint8" if maximum > 1.5 else ""
        raise ValueError(
            f"`{name}`: {kind} must lie in [{low:g}, 1], got values in [{minimum:.4g}, {maximum:.4g}]{hint}."
        )


def _as_nchw(tensor: torch.Tensor, channels_last: bool, name: str) -> torch.Tensor:
    """An image tensor as ``(N, C, H, W)``. Channels last (numpy): ``(H, W)``, ``(H, W, C)``, ``(N, H, W)`` or
    ``(N, H, W, C)``; channels first (torch): ``(H, W)``, ``(C, H, W)`` or ``(N, C, H, W)``; C in 1, 3, 4."""
    shape = tuple(tensor.shape)
    if tensor.ndim == 2 or (channels_last and tensor.ndim == 3 and not _has_channel_axis(tuple(tensor.shape))):
        tensor = tensor.unsqueeze(-1 if channels_last else 0)
    if tensor.ndim == 3:
        tensor = tensor[None]
    if tensor.ndim != 4:
        raise ValueError(f"`{name}`: image arrays must have 2, 3 or 4 dimensions, got shape {shape}.")
    if channels_last:
        # default strides: with channels-last ones, convolutions take another code path (other rounding)
        tensor = tensor.permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format)
    if tensor.shape[1] not in (1, 3, 4):
        layout = "(N, H, W, C)" if channels_last else "(N, C, H, W)"
        raise ValueError(f"`{name}`: images must have 1, 3 or 4 channels in the layout {layout}, got shape {shape}.")
    return tensor


def _convert_channels(batch: torch.Tensor, num_channels: int, background: Background) -> torch.Tensor:
    """``(N, 1, 3 or 4, H, W)`` in [-1, 1] -> ``(N, num_channels, H, W)``: RGBA composited on ``background``."""
    if batch.shape[1] == 4:
        fill = (background,) * 3 if isinstance(background, int) else tuple(background)
        fill = torch.tensor(fill, dtype=batch.dtype).view(1, 3, 1, 1) / 127.5 - 1
        alpha = (batch[:, 3:] + 1) / 2
        batch = batch[:, :3] * alpha + fill * (1 - alpha)
    if batch.shape[1] == 3 and num_channels == 1:
        return torch.einsum("nchw,c->nhw", batch, torch.tensor(LUMA_WEIGHTS, dtype=batch.dtype)).unsqueeze(1)
    if batch.shape[1] == 1 and num_channels == 3:
        return batch.expand(-1, 3, -1, -1)
    return batch


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
        height, width = height_and_width(resolution)
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
