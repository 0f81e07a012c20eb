"""Garment images -> outline sketches (dark lines on white), and sketch/garment pair datasets for pix2pix.

The sketch is what a designer would draw: the silhouette of the garment (including holes, e.g. between sandal
straps) plus its strongest interior edges (sleeves, collars, soles), found with a Canny-style detector (Gaussian
smoothing, Sobel gradients, non-maximum suppression, hysteresis). An optional seeded jitter wobbles the strokes and
varies their darkness for a hand-drawn look; the same seed always gives the same bytes.

    from hf_vaegan.data.sketch import garment_to_sketch, make_sketch_pairs

    sketch = garment_to_sketch(pil_image, jitter=0.6, seed=0)  # PIL "L" image, same size
    pairs = make_sketch_pairs(images, labels, seed=0)  # datasets.Dataset: sketch, image, label
    pairs.save_to_disk("fashion_sketch_pairs")  # then: train_pix2pix.py --dataset_name fashion_sketch_pairs
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import numpy as np
from PIL import Image
from scipy import ndimage

from .images import to_canonical_mode
from .loading import ImageDatasetInfo, PairedDatasetInfo

# Neighbour offsets (dy, dx) along the gradient for directions 0, 45, 90 and 135 degrees.
_GRADIENT_NEIGHBOURS = ((0, 1), (1, 1), (1, 0), (1, -1))
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _as_gray(image: np.ndarray | Image.Image) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"image arrays must be uint8, got dtype {image.dtype}")
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 3, 4))):
            raise ValueError(f"image arrays must have shape (H, W) or (H, W, C), C in (1, 3, 4), got {image.shape}")
        image = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)
    elif not isinstance(image, Image.Image):
        raise TypeError(f"image must be a uint8 numpy array or a PIL image, got {type(image).__name__}")
    return np.asarray(to_canonical_mode(image, 1), dtype=np.float64) / 255.0


def _silhouette(gray: np.ndarray, min_area: int) -> np.ndarray:
    """Foreground mask: pixels that differ from the background, taken as the median of the border pixels."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    mask = ndimage.gaussian_filter(np.abs(gray - np.median(border)), 0.5) > 0.1
    components, count = ndimage.label(mask)
    areas = ndimage.sum(mask, components, np.arange(1, count + 1))
    return np.isin(components, 1 + np.flatnonzero(areas >= min_area))


def _interior_edges(
    gray: np.ndarray, inside: np.ndarray, sigma: float, threshold: float, min_length: int
) -> np.ndarray:
    smoothed = ndimage.gaussian_filter(gray, sigma)
    grad_x, grad_y = ndimage.sobel(smoothed, axis=1), ndimage.sobel(smoothed, axis=0)
    magnitude = np.hypot(grad_x, grad_y)
    direction = np.round(np.arctan2(grad_y, grad_x) / (np.pi / 4)).astype(int) % 4
    padded = np.pad(magnitude, 1)
    height, width = magnitude.shape
    is_ridge = np.zeros(magnitude.shape, dtype=bool)
    for index, (dy, dx) in enumerate(_GRADIENT_NEIGHBOURS):
        ahead = padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
        behind = padded[1 - dy : 1 - dy + height, 1 - dx : 1 - dx + width]
        is_ridge |= (direction == index) & (magnitude >= ahead) & (magnitude >= behind)
    ridges = np.where(is_ridge & inside, magnitude, 0.0)
    high = threshold * magnitude.max()
    # Hysteresis: keep weak ridge pixels only when connected to a strong one, and drop specks shorter than min_length.
    chains, count = ndimage.label(ridges > high / 2, structure=_EIGHT_CONNECTED)
    if count == 0:
        return np.zeros_like(inside)
    labels = np.arange(1, count + 1)
    keep = (ndimage.maximum(ridges, chains, labels) > high) & (ndimage.sum(ridges > 0, chains, labels) >= min_length)
    return np.isin(chains, labels[keep])


def _hand_drawn(ink: np.ndarray, jitter: float, seed: int | Sequence[int]) -> np.ndarray:
    """Wobble the strokes by up to ``jitter`` pixels along a smooth random field and vary their pressure."""
    rng = np.random.default_rng(seed)
    height, width = ink.shape

    def smooth_noise(scale: float) -> np.ndarray:
        noise = ndimage.gaussian_filter(rng.standard_normal((height, width)), scale)
        return noise / max(np.abs(noise).max(), 1e-12)

    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    warped = ndimage.map_coordinates(
        ink, [rows + jitter * smooth_noise(3.0), cols + jitter * smooth_noise(3.0)], order=1, mode="constant"
    )
    pressure = 1.1 - 0.3 * np.abs(smooth_noise(2.0))
    return np.clip(warped * pressure, 0.0, 1.0)


def garment_to_sketch(
    image: np.ndarray | Image.Image,
    *,
    jitter: float = 0.0,
    seed: int | Sequence[int] = 0,
    detail: float = 0.4,
    sigma: float = 0.7,
) -> np.ndarray | Image.Image:
    """Draw the outline sketch of a garment: dark lines on a white background, same size as the input.

    Works on either polarity (light garment on dark background, as Fashion-MNIST, or a product photo on white): the
    background is the median color of the image border.

    Args:
        image: uint8 array ``(H, W)`` or ``(H, W, C)``, or a PIL image of any mode.
        jitter: Maximum stroke displacement in pixels for a hand-drawn look; 0 draws crisp 1-pixel lines.
        seed: Seed of the jitter (an int or a sequence of ints such as ``(seed, index)``); unused without jitter.
        detail: Interior edges must reach this fraction of the strongest gradient; higher draws fewer interior lines.
        sigma: Gaussian smoothing before edge detection, in pixels; tuned for small images (28-64 px), raise it for
            larger photos.

    Returns:
        The sketch as a uint8 ``(H, W)`` array (255 = paper, 0 = ink) for array input, or a PIL ``L`` image for PIL
        input.
    """
    if jitter < 0:
        raise ValueError(f"jitter must be >= 0, got {jitter}")
    if not 0 < detail <= 1:
        raise ValueError(f"detail must be in (0, 1], got {detail}")
    gray = _as_gray(image)
    silhouette = _silhouette(gray, min_area=4)
    outline = silhouette & ~ndimage.binary_erosion(silhouette, border_value=0)
    interior = _interior_edges(gray, ndimage.binary_erosion(silhouette), sigma, detail, min_length=3)
    # Interior lines are drawn a little lighter than the silhouette, as a designer would.
    ink = np.maximum(outline * 1.0, interior * 0.8)
    if jitter > 0:
        ink = _hand_drawn(ink, jitter, seed)
    sketch = np.rint(255.0 * (1.0 - ink)).astype(np.uint8)
    return Image.fromarray(sketch, mode="L") if isinstance(image, Image.Image) else sketch


def make_sketch_pairs(
    images: np.ndarray | Sequence[np.ndarray | Image.Image],
    labels: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
    *,
    jitter: float = 0.6,
    class_names: Sequence[str] | None = None,
) -> datasets.Dataset:
    """Pair every garment image with its sketch, for sketch -> garment (pix2pix) training.

    Args:
        images: uint8 array ``(N, H, W)``/``(N, H, W, C)`` (e.g. Fashion-MNIST) or a sequence of images.
        labels: Optional integer class per image.
        seed: Image ``i`` is sketched with seed ``(seed, i)``: the dataset is reproducible.
        jitter: See :func:`garment_to_sketch`; on by default so the model also learns from imperfect strokes like
            the ones people draw.
        class_names: Names of the label classes; default ``"0"``..``"K-1"``.

    Returns:
        A ``datasets.Dataset`` with ``Image`` columns ``sketch`` and ``image`` (the input, unchanged) and, with
        labels, a ``ClassLabel`` column ``label``.
    """
    columns = {
        "sketch": [garment_to_sketch(image, jitter=jitter, seed=(seed, index)) for index, image in enumerate(images)],
        "image": list(images),
    }
    features = {"sketch": datasets.Image(), "image": datasets.Image()}
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(columns["image"]),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels must be {len(columns['image'])} integers (one per image), "
                f"got shape {labels.shape} dtype {labels.dtype}"
            )
        labels = labels.astype(np.int64)
        num_classes = len(class_names) if class_names is not None else int(labels.max(initial=-1)) + 1
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")
        columns["label"] = labels.tolist()
        features["label"] = datasets.ClassLabel(
            names=list(class_names) if class_names is not None else [str(index) for index in range(num_classes)]
        )
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def sketch_pairs_from_images(info: ImageDatasetInfo, seed: int = 0, jitter: float = 0.6) -> PairedDatasetInfo:
    """Pair every image of an image dataset with its sketch (:func:`hf_vaegan.data.sketch.make_sketch_pairs`).

    The result has a ``sketch`` (source) and an ``image`` (target) column; the sketches are a function of the images
    and ``seed`` only, so anyone can regenerate the same pairs.
    """
    labels = info.dataset[info.label_column] if info.label_column is not None else None
    class_names = info.class_names if labels is not None else None
    pairs = make_sketch_pairs(info.dataset[info.image_column], labels, seed, jitter=jitter, class_names=class_names)
    return PairedDatasetInfo(pairs, "sketch", "image", 1, info.num_channels)
