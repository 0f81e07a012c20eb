"""Uploads in, pictures out: safe decoding of user images and the conversions the models need.

Every upload goes through :func:`open_upload`, which opens only files Gradio received (`safety.uploaded_file`) and
refuses what cannot be decoded safely (not an image, truncated, too many pixels, too small, an unconvertible mode)
with a `gr.Error` naming the problem, before any pixel is decoded. Conversion to a model input reuses the package's
`to_canonical_mode` (every PIL mode: RGBA, 16-bit, palette, CMYK...).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.utils import make_image_grid
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from hf_vaegan.data.images import to_canonical_mode
from hf_vaegan.data.wardrobe.garment import BACKGROUND_THRESHOLD, MIN_GARMENT_COVERAGE
from hf_vaegan.data.wardrobe.garment import garment_coverage as wardrobe_garment_coverage
from hf_vaegan.data.wardrobe.schema import garment_gan_label

from .safety import bad_input, not_uploaded, uploaded_file

# 16.7 megapixels (4096 x 4096): more than any phone photo, and at most 67 MB decoded as RGBA.
MAX_UPLOAD_PIXELS = 4096 * 4096
MIN_UPLOAD_SIDE = 8
# The modes `to_canonical_mode` converts; PIL cannot convert LAB or HSV to RGB or greyscale.
CONVERTIBLE_MODES = {
    *("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"),
    *("I", "I;16", "I;16L", "I;16B", "I;16N", "F"),
}
# Mean border brightness above which an upload is taken as a dark garment on a light background.
LIGHT_BACKGROUND = 127.5
# An upload is a colour garment, worn as it comes, when more than COLOUR_SHARE of its pixels have channels this far
# apart (of 255); greyscale garments (Fashion-MNIST items, drawings) are colourised by the try-on's colour seed.
# Muted colours count (the wardrobe's pale pink has channels 18 apart); a greyscale JPEG decodes to within 1 or 2.
COLOUR_SPREAD = 8
COLOUR_SHARE = 0.01
# A colour garment's pixel this close to its background colour (largest channel difference, of 255) is background:
# `Garment.from_image`'s default threshold (0.12).
BACKGROUND_TOLERANCE = BACKGROUND_THRESHOLD * 255
SPECK_SHARE = 0.05
# The try-on's GAN button takes the first of a seed's candidates that covers MIN_GARMENT_COVERAGE of its image.
GAN_GARMENT_CANDIDATES = 8
# A sketch pixel this much darker than white paper is part of a line.
SKETCH_INK_CONTRAST = 32
# Gradio refuses bigger files before they reach the app.
MAX_FILE_SIZE = "20mb"
# The transparent-background test looks at the image at most this wide and tall.
TRANSPARENCY_PREVIEW = 256


def upload_path(upload: Any, name: str) -> str:
    """The resolved path of an uploaded image: an image input sent without Gradio's preprocessing (a `FileData`
    dict), or a path; either must lie in Gradio's upload cache.

    Raises:
        gr.Error: no upload, not a file reference, or a file Gradio did not receive (`safety.uploaded_file`).
    """
    if upload is None or upload == "":
        raise bad_input(f"No {name} image: upload one or pick an example.")
    path = upload.get("path") if isinstance(upload, dict) else upload
    if not isinstance(path, (str, os.PathLike)):
        raise not_uploaded(name)
    return str(uploaded_file(path, name))


def open_upload(upload: Any, name: str = "garment") -> Image.Image:
    """Decodes an uploaded image (first frame, EXIF orientation applied), refusing unsafe or unusable files.

    The size is read from the header before decoding, so a 10000 x 10000 image costs nothing to refuse.

    Raises:
        gr.Error: not uploaded (see `upload_path`), gone from the cache, not an image, truncated, more than
            `MAX_UPLOAD_PIXELS` pixels, a side below `MIN_UPLOAD_SIDE`, or a mode outside `CONVERTIBLE_MODES`.
    """
    path = upload_path(upload, name)
    try:
        image = Image.open(path)
    except Image.DecompressionBombError:
        raise bad_input(_too_large_message(name, None)) from None
    except FileNotFoundError:
        message = f"The {name} upload is no longer on the server (uploads are kept a day): upload it again."
        raise bad_input(message) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise bad_input(f"The {name} upload is not an image (PNG, JPEG, WebP, GIF, BMP, TIFF...).") from None
    width, height = image.size
    if width * height > MAX_UPLOAD_PIXELS:
        raise bad_input(_too_large_message(name, image.size))
    if min(width, height) < MIN_UPLOAD_SIDE:
        raise bad_input(
            f"The {name} image is {width} x {height} pixels; it needs at least {MIN_UPLOAD_SIDE} pixels per side."
        )
    if image.mode not in CONVERTIBLE_MODES:
        raise bad_input(
            f"The {name} image is in the {image.mode} colour mode, which cannot be converted: save it as RGB or "
            "greyscale."
        )
    try:
        image.load()
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError):
        raise bad_input(f"The {name} upload is damaged (truncated or corrupt image data).") from None


def _too_large_message(name: str, size: tuple[int, int] | None) -> str:
    actual = f"{size[0]} x {size[1]} = {size[0] * size[1] / 1e6:.1f} megapixels" if size else "too many pixels"
    limit = MAX_UPLOAD_PIXELS / 1e6
    return f"The {name} image is too large ({actual}); the limit is {limit:.1f} megapixels. Downscale it first."


def border_color(image: Image.Image) -> tuple[int, ...]:
    """Median colour of the outermost pixel ring: the background of a centred object."""
    pixels = np.asarray(image)
    ring = np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])
    return tuple(int(value) for value in np.atleast_1d(np.median(ring, axis=0)))


def transparent_background(image: Image.Image) -> int:
    """The grey level a transparent image is composited on: black under a light object (a cut-out of a white
    garment, white strokes), white under a dark one, so that the object stands out either way; the border test then
    turns it the way the model wants it. 0 for an image without transparency (where the colour is never used)."""
    if not image.has_transparency_data:
        return 0
    preview = image.convert("RGBA")
    preview.thumbnail((TRANSPARENCY_PREVIEW, TRANSPARENCY_PREVIEW), Image.Resampling.BOX)
    luminance, alpha = (np.asarray(band, dtype=np.float64) for band in preview.convert("LA").split())
    if not alpha.any():
        return 0
    return 0 if np.average(luminance, weights=alpha) > LIGHT_BACKGROUND else 255


def canonical(image: Image.Image, num_channels: int) -> Image.Image:
    """`to_canonical_mode` with transparency on the background the image stands out from, and a `gr.Error` for an
    image whose values cannot be pixels (a float image with negative values, say)."""
    return canonical_on(image, num_channels, transparent_background(image))


def canonical_on(image: Image.Image, num_channels: int, background: int) -> Image.Image:
    """`to_canonical_mode` with transparency on the grey level `background`, and a `gr.Error` for an image whose
    values cannot be pixels."""
    try:
        return to_canonical_mode(image, num_channels, background=background)
    except ValueError as error:
        raise bad_input(f"This upload cannot be used: {error}") from None


def to_model_input(image: Image.Image, resolution: int, num_channels: int) -> tuple[Image.Image, bool]:
    """An upload -> a `resolution` x `resolution` image like the training data: a light garment on a dark background.

    The image is converted to grayscale or RGB (a transparent background becomes black under a light garment, white
    under a dark one), inverted when its border is light (a dark garment photographed on white), and fitted into the
    square without cropping, padded with its own background colour.

    Returns:
        The model input (mode `L` or `RGB`) and whether it was inverted.
    """
    image = canonical(image, num_channels)
    inverted = float(np.mean(border_color(image))) > LIGHT_BACKGROUND
    if inverted:
        image = ImageOps.invert(image)
    background = border_color(image)
    return fit(image, resolution, background[0] if num_channels == 1 else background), inverted


def garment_coverage(image: Image.Image) -> float:
    """The share of a garment image on white that the garment covers (`Garment.from_image`'s mask)."""
    return wardrobe_garment_coverage(np.asarray(image.convert("RGB")))


def gan_garment_for_tryon(pipeline: Any, wearable_index: int, generator: torch.Generator) -> Image.Image:
    """The garment a GAN pipeline draws for the try-on, of the `wearable_index`-th wearable class: a greyscale GAN's
    sample (light on black, colourised by the try-on), or the first of a colour GAN's `GAN_GARMENT_CANDIDATES` samples
    that covers `MIN_GARMENT_COVERAGE` of its image.

    Raises:
        gr.Error: the GAN has neither the wearable classes nor Fashion-MNIST's.
    """
    try:
        label = garment_gan_label(wearable_index, pipeline.gan.config.num_classes)
    except ValueError as error:
        raise bad_input(f"The loaded GAN cannot draw this class: {error}.") from None
    candidates = pipeline(batch_size=GAN_GARMENT_CANDIDATES, class_labels=label, generator=generator).images
    if pipeline.gan.config.out_channels == 1:
        return candidates[0]
    visible = (image for image in candidates if garment_coverage(image) >= MIN_GARMENT_COVERAGE)
    return next(visible, candidates[0])


def colour_garment_input(image: Image.Image) -> np.ndarray | None:
    """A colour garment upload -> a square uint8 RGB image of the garment alone on white, cropped to the garment:
    the input of `Garment.from_image(..., framed=False)`; None for a greyscale garment (see `COLOUR_SPREAD`), which
    the try-on colourises instead.

    Transparent pixels become white; the border's colour is the background, and every pixel within
    `BACKGROUND_TOLERANCE` of it becomes white, so that a garment photographed on light grey paper keeps only itself;
    specks apart from the garment become white too.

    Raises:
        gr.Error: a dark background (the garment could not be told from it without inventing colours), or no garment.
    """
    pixels = np.array(canonical_on(image, 3, background=255))
    if float(np.mean(np.ptp(pixels.astype(np.int16), axis=2) > COLOUR_SPREAD)) <= COLOUR_SHARE:
        return None
    background = np.array(border_color(Image.fromarray(pixels)), dtype=np.int16)
    if float(np.mean(background)) <= LIGHT_BACKGROUND:
        raise bad_input(
            "A colour garment needs a light, plain background (a dark one would be taken for part of it): "
            "photograph it on white, or upload a greyscale garment to have it colourised."
        )
    garment = np.abs(pixels.astype(np.int16) - background).max(axis=2) > BACKGROUND_TOLERANCE
    if not garment.any():
        raise bad_input("The garment image is empty (nothing stands out from its background).")
    # Specks away from the garment (noise, dust on the photo) would stretch its frame: only the garment's own parts
    # (8-connected regions of at least SPECK_SHARE of the largest) are kept.
    regions, _ = ndimage.label(garment, structure=np.ones((3, 3)))
    sizes = np.bincount(regions.ravel())[1:]
    garment = np.isin(regions, 1 + np.flatnonzero(sizes >= SPECK_SHARE * sizes.max()))
    pixels[~garment] = 255
    rows, columns = np.flatnonzero(garment.any(axis=1)), np.flatnonzero(garment.any(axis=0))
    crop = Image.fromarray(pixels[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1])
    return np.asarray(fit(crop, max(crop.size), (255, 255, 255)))


def sketch_to_model_input(image: Image.Image, resolution: int) -> tuple[Image.Image, bool]:
    """A drawing -> a `resolution` x `resolution` sketch like the sketch model's training inputs: dark lines on white,
    the drawing's longer side filling the frame (Fashion-MNIST garments touch their frame), centred. A sketch of
    exactly that size is taken as already framed.

    A drawing with a dark border (light lines on black) is inverted first, and transparent strokes are composited
    on the colour they stand out from. A drawing smaller than the frame is scaled up, a larger one down (averaging,
    so that a thick pen stroke becomes a line a pixel or two wide).

    Returns:
        The model input (mode `L`) and whether the drawing was inverted.

    Raises:
        gr.Error: the drawing has no line.
    """
    image = canonical(image, 1)
    inverted = float(np.mean(border_color(image))) < LIGHT_BACKGROUND
    if inverted:
        image = ImageOps.invert(image)
    ink = np.asarray(image) < 255 - SKETCH_INK_CONTRAST
    if not ink.any():
        raise bad_input("The sketch is empty: draw the outline of a garment (dark lines on white) or pick an example.")
    if image.size == (resolution, resolution):
        return image, inverted
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    drawing = image.crop((columns[0], rows[0], columns[-1] + 1, rows[-1] + 1))
    return fit(drawing, resolution, 255), inverted


def fit(image: Image.Image, resolution: int, background: int | tuple[int, ...]) -> Image.Image:
    """`image` scaled so that its longer side is `resolution` and centred on a `resolution` square of `background`.

    Unlike `ImageOps.pad`, a line thinner than a pixel once scaled (a long, thin upload or stroke) stays a pixel
    wide instead of failing; the canvas never grows with the input.
    """
    scale = resolution / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new(image.mode, (resolution, resolution), background)
    offset = ((resolution - size[0]) // 2, (resolution - size[1]) // 2)
    canvas.paste(image.resize(size, Image.Resampling.LANCZOS), offset)
    return canvas


def enlarge(image: Image.Image, factor: int) -> Image.Image:
    """Scales a small image up `factor` times with square pixels, so that browsers do not blur it."""
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def grid(images: Sequence[Image.Image], columns: int) -> Image.Image:
    """Images of equal size in rows of `columns` (the last row padded with black)."""
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    blank = Image.new(images[0].mode, images[0].size)
    return make_image_grid([*images, *[blank] * (rows * columns - len(images))], rows=rows, cols=columns)


class OutputFiles:
    """Result images as PNG files named by their content, written atomically, for Gradio to serve.

    Gradio 6.31 stores a returned PIL image by rewriting, in place, the cache file named after its content, so two
    concurrent requests with the same result (the same seed: every visitor who keeps the default) can truncate the
    file while it is being sent, and the client receives an empty body. Given a finished file instead, Gradio copies
    it into its cache under a temporary name and renames it, never rewriting an existing copy.

    Gradio copies a file as soon as the handler returns it, so files older than `max_age` seconds are deleted.
    """

    def __init__(self, max_age: float = 600.0):
        self._folder = tempfile.TemporaryDirectory(prefix="wardrobe-space-")
        self.folder = Path(self._folder.name)
        self.max_age = max_age
        self._last_prune = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, image: Image.Image) -> str:
        """The path of a PNG file holding `image`."""
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
        path = self.folder / f"{hashlib.sha256(data).hexdigest()[:40]}.png"
        # Replacing an identical file is harmless: a reader of the old one keeps reading it whole.
        descriptor, staging = tempfile.mkstemp(dir=self.folder, suffix=".partial")
        with os.fdopen(descriptor, "wb") as staging_file:
            staging_file.write(data)
        os.replace(staging, path)
        self._prune()
        return str(path)

    def _prune(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_prune < self.max_age / 10:
                return
            self._last_prune = now
        cutoff = time.time() - self.max_age
        for path in self.folder.glob("*.png"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                continue
