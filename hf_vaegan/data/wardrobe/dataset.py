"""The wardrobe as data: seeded avatars and garments (:class:`Wardrobe`), splits, ``datasets`` rows.

``datasets`` is imported by the functions that build datasets: the try-on pipeline uses the wardrobe's avatars and
garments, and a pipeline import should not pay for ``datasets``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .avatar import Avatar, make_background, render_avatar
from .dress import agnostic, dress
from .garment import Garment, make_garment
from .schema import (
    _SPLITS,
    _STREAM_AVATAR,
    _STREAM_GARMENT,
    _STREAM_PAIRING,
    _STREAM_SPLIT,
    BODY_SHAPE_RANGES,
    DEFAULT_RESOLUTION,
    FASHION_MNIST_CLASSES,
    GARMENT_GROUPS,
    GARMENT_LABELS,
    TEST_AVATAR_ID_OFFSET,
    BodyShape,
    _group_of,
    check_resolution,
)

if TYPE_CHECKING:
    import datasets


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
        drawn_garments: optional ``(images, labels)``: (M, S, S, 3) uint8 flat colour garments on white, laid out as
            :func:`make_garment` lays out an item (a colour garment GAN's samples), worn as they are
            (``Garment.from_image``); garment ids N to N + M - 1. :func:`build_wardrobe_dataset` puts them in the
            train split only.

    Example:
        >>> wardrobe = Wardrobe(images, labels, seed=0)
        >>> avatar, coat = wardrobe.avatar(7), wardrobe.garment(123)
        >>> person = dress(avatar, coat).image
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        resolution: Sequence[int] = DEFAULT_RESOLUTION,
        seed: int = 0,
        drawn_garments: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        self.images, self.labels = _check_fashion_mnist(images, labels)
        self.num_items = len(self.images)
        self.drawn_images = np.zeros((0, 1, 1, 3), np.uint8)
        if drawn_garments is not None:
            self.drawn_images, drawn_labels = (np.asarray(array) for array in drawn_garments)
            shape = self.drawn_images.shape
            if (
                self.drawn_images.ndim != 4
                or shape[3] != 3
                or shape[1] != shape[2]
                or self.drawn_images.dtype != np.uint8
            ):
                raise ValueError(
                    f"drawn garment images must be a (M, S, S, 3) uint8 array, got {self.drawn_images.dtype} {shape}"
                )
            if drawn_labels.shape != (len(self.drawn_images),) or not np.isin(drawn_labels, GARMENT_LABELS).all():
                raise ValueError(f"drawn garment labels must be {len(self.drawn_images)} classes of {GARMENT_LABELS}")
            self.labels = np.concatenate([self.labels, drawn_labels.astype(np.int64)])
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
        if not 0 <= garment_id < len(self.labels):
            raise ValueError(f"garment_id must be in [0, {len(self.labels)}), got {garment_id}")
        if garment_id >= self.num_items:
            image = self.drawn_images[garment_id - self.num_items]
            return Garment.from_image(image, int(self.labels[garment_id]), self.resolution)
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
            "warped_cloth_flow": dressed.warped_cloth_flow.transpose(2, 0, 1).astype(np.float16),
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


def wardrobe_features(unpaired: bool = False, resolution: Sequence[int] = DEFAULT_RESOLUTION) -> datasets.Features:
    """The ``datasets.Features`` of a wardrobe dataset of images of ``resolution`` (see the module docstring)."""
    import datasets

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
        "warped_cloth_flow": datasets.Array3D(shape=(2, *check_resolution(resolution)), dtype="float16"),
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
    drawn_garments: tuple[np.ndarray, np.ndarray] | None = None,
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
        drawn_garments: colour garments drawn by a GAN, added to the train split's garments (see :class:`Wardrobe`),
            so that a try-on model learns the garments it will be given; the test split keeps Fashion-MNIST's only.

    Returns:
        A dataset with the columns of the module docstring; save it with ``save_to_disk`` or ``push_to_hub``.
    """
    import datasets
    from datasets.utils import tqdm as hf_tqdm

    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if num_samples < 1 or garments_per_avatar < 1:
        raise ValueError(f"num_samples and garments_per_avatar must be >= 1, got {num_samples}, {garments_per_avatar}")
    wardrobe = Wardrobe(images, labels, resolution, seed, drawn_garments)
    pool = split_garments(wardrobe.labels[: wardrobe.num_items], seed, test_fraction)[split]
    if split == "train":
        pool = np.concatenate([pool, np.arange(wardrobe.num_items, len(wardrobe.labels))])
    if len(pool) == 0:
        raise ValueError(f"no wearable garment in the {split} split; labels must include some of {GARMENT_LABELS}")
    features = wardrobe_features(unpaired, wardrobe.resolution)
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
    import datasets

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
    drawn_garments: tuple[np.ndarray, np.ndarray] | None = None,
) -> datasets.DatasetDict:
    """``DatasetDict({"train", "test"})`` with disjoint avatars and garments; see :func:`build_wardrobe_dataset`.

    ``unpaired_test`` adds the unpaired columns to the test split, for unpaired evaluation with ground truth;
    ``drawn_garments`` go to the train split.
    """
    import datasets

    common = {"garments_per_avatar": garments_per_avatar, "resolution": resolution, "seed": seed}
    common["test_fraction"] = test_fraction
    return datasets.DatasetDict(
        train=build_wardrobe_dataset(
            images, labels, num_train, split="train", drawn_garments=drawn_garments, **common
        ),
        test=build_wardrobe_dataset(images, labels, num_test, split="test", unpaired=unpaired_test, **common),
    )
