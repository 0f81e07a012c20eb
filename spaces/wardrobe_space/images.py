"""Uploads in, pictures out: safe decoding of user images and the conversions the models need.

Every upload goes through :func:`open_upload`, which refuses what cannot be decoded safely (not an image, truncated,
too many pixels, too small) with a `gr.Error` naming the problem, before any pixel is decoded. Conversion to a model
input reuses the package's `to_canonical_mode` (every PIL mode: RGBA, 16-bit, palette, CMYK...).
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

import gradio as gr
import numpy as np
from diffusers.utils import make_image_grid
from PIL import Image, ImageOps, UnidentifiedImageError

from hf_vaegan.data.images import to_canonical_mode

# 16.7 megapixels (4096 x 4096): more than any phone photo, and at most 67 MB decoded as RGBA.
MAX_UPLOAD_PIXELS = 4096 * 4096
MIN_UPLOAD_SIDE = 8
# Mean border brightness above which an upload is taken as a dark garment on a light background.
LIGHT_BACKGROUND = 127.5
# A sketch pixel this much darker than white paper is part of a line.
SKETCH_INK_CONTRAST = 32
# Gradio refuses bigger files before they reach the app.
MAX_FILE_SIZE = "20mb"


def bad_input(message: str) -> gr.Error:
    """The error for a request the user can fix: shown in the UI and to API clients, not logged as a crash."""
    return gr.Error(message, title="Cannot do that", print_exception=False)


def upload_path(upload: Any, name: str) -> str:
    """The file path of an image input sent without Gradio's preprocessing (a `FileData` dict), or a path."""
    if upload is None or upload == "":
        raise bad_input(f"No {name} image: upload one or pick an example.")
    path = upload.get("path") if isinstance(upload, dict) else upload
    if not isinstance(path, (str, os.PathLike)):
        raise bad_input(f"The {name} image must be an uploaded file, got {type(upload).__name__}.")
    return os.fspath(path)


def open_upload(upload: Any, name: str = "garment") -> Image.Image:
    """Decodes an uploaded image (first frame, EXIF orientation applied), refusing unsafe or unusable files.

    The size is read from the header before decoding, so a 10000 x 10000 image costs nothing to refuse.

    Raises:
        gr.Error: not an image, truncated, more than `MAX_UPLOAD_PIXELS` pixels, or a side below `MIN_UPLOAD_SIDE`.
    """
    path = upload_path(upload, name)
    try:
        image = Image.open(path)
    except Image.DecompressionBombError:
        raise bad_input(_too_large_message(name, None)) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise bad_input(f"The {name} upload is not an image (PNG, JPEG, WebP, GIF, BMP, TIFF...).") from None
    width, height = image.size
    if width * height > MAX_UPLOAD_PIXELS:
        raise bad_input(_too_large_message(name, image.size))
    if min(width, height) < MIN_UPLOAD_SIDE:
        raise bad_input(
            f"The {name} image is {width} x {height} pixels; it needs at least {MIN_UPLOAD_SIDE} pixels per side."
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


def to_model_input(image: Image.Image, resolution: int, num_channels: int) -> tuple[Image.Image, bool]:
    """An upload -> a `resolution` x `resolution` image like the training data: a light garment on a dark background.

    The image is converted to grayscale or RGB, inverted when its border is light (a dark garment photographed on
    white), and fitted into the square without cropping, padded with its own background colour.

    Returns:
        The model input (mode `L` or `RGB`) and whether it was inverted.
    """
    image = to_canonical_mode(image, num_channels)
    inverted = float(np.mean(border_color(image))) > LIGHT_BACKGROUND
    if inverted:
        image = ImageOps.invert(image)
    background = border_color(image)
    fitted = ImageOps.pad(
        image,
        (resolution, resolution),
        method=Image.Resampling.LANCZOS,
        color=background[0] if num_channels == 1 else background,
    )
    return fitted, inverted


def sketch_to_model_input(image: Image.Image, resolution: int) -> tuple[Image.Image, bool]:
    """A drawing -> a `resolution` x `resolution` sketch like the sketch model's training inputs: dark lines on white,
    the drawing's longer side filling the frame (Fashion-MNIST garments touch their frame), centred. A sketch of
    exactly that size is taken as already framed.

    A drawing with a dark border (light lines on black) is inverted first. A drawing smaller than the frame is
    scaled up, a larger one down (averaging, so that a thick pen stroke becomes a line a pixel or two wide).

    Returns:
        The model input (mode `L`) and whether the drawing was inverted.

    Raises:
        gr.Error: the drawing has no line.
    """
    image = to_canonical_mode(image, 1)
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
    side = max(drawing.size)
    square = Image.new("L", (side, side), 255)
    square.paste(drawing, ((side - drawing.width) // 2, (side - drawing.height) // 2))
    return square.resize((resolution, resolution), Image.Resampling.LANCZOS), inverted


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
