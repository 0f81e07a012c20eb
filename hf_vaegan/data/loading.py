"""Image datasets from any source, as the training scripts, the CLI and the benchmarks read them.

``load_image_dataset`` accepts four kinds of source:

- a Hub dataset id (``user/name``), loaded with :func:`datasets.load_dataset`;
- a local folder: of images, where each subfolder is a class (``datasets`` infers the ``imagefolder`` builder), or a
  local clone of a dataset repository (parquet/arrow files);
- a local ``.npz`` file with an ``images`` array (``(N, H, W)`` or ``(N, H, W, C)``), optionally ``labels`` (``(N,)``
  integers) and ``class_names`` (strings);
- a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``.

::

    info = load_image_dataset("fashion_mnist/train.npz")
    dataloader = make_dataloader(info.with_image_transform(28, random_flip=True), batch_size=64, seed=0)
    for batch in dataloader:
        batch["pixel_values"]  # (B, C, H, W) float32 in [-1, 1]
        batch.get("labels")  # (B,) int64, absent when the dataset has no label column

Image-to-image data uses :func:`load_paired_dataset`, whose batches hold ``source_pixel_values`` and
``target_pixel_values`` augmented identically; CycleGAN's two domains :class:`UnpairedImageDataset`.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .images import ImageTransform, Resolution, infer_num_channels, make_image_transform

logger = logging.getLogger(__name__)

# Loading


def _is_valid_hub_id(name: str) -> bool:
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _select_split(dataset_dict: datasets.DatasetDict, split: str, source: str) -> datasets.Dataset:
    if split not in dataset_dict:
        raise ValueError(f"split {split!r} does not exist in {source!r}; available splits: {sorted(dataset_dict)}")
    return dataset_dict[split]


def _is_saved_dataset(path: str) -> bool:
    """Whether ``path`` was written by ``DatasetDict.save_to_disk`` or ``Dataset.save_to_disk``."""
    if os.path.isfile(os.path.join(path, "dataset_dict.json")):
        return True
    return all(os.path.isfile(os.path.join(path, name)) for name in ("dataset_info.json", "state.json"))


def _load_saved_dataset(path: str, split: str) -> datasets.Dataset:
    loaded = datasets.load_from_disk(path)
    if isinstance(loaded, datasets.DatasetDict):
        return _select_split(loaded, split, path)
    if loaded.split is not None and str(loaded.split) != split:
        raise ValueError(f"split {split!r} does not exist in {path!r}; it holds only the split {str(loaded.split)!r}")
    return loaded


def _images_to_uint8(images: np.ndarray, path: str) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    if images.dtype == np.bool_:
        return images.astype(np.uint8) * 255
    low, high = (images.min(), images.max()) if images.size else (0, 0)
    if np.issubdtype(images.dtype, np.integer):
        if low < 0 or high > 255:
            raise ValueError(f"integer 'images' in {path!r} must lie in [0, 255], got [{low}, {high}]")
        return images.astype(np.uint8)
    if np.issubdtype(images.dtype, np.floating):
        if low < 0 or high > 255:
            raise ValueError(f"float 'images' in {path!r} must lie in [0, 1] or [0, 255], got [{low}, {high}]")
        # Float images in [0, 1] are the common convention; anything larger is taken as 0-255 values.
        return np.rint(images * 255 if high <= 1 else images).astype(np.uint8)
    raise ValueError(f"'images' in {path!r} must hold numbers, got dtype {images.dtype}")


def _load_npz(path: str) -> datasets.Dataset:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            contents = {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path!r} is not a readable .npz file (object arrays are refused): {error}") from error
    if "images" not in contents:
        raise ValueError(f"{path!r} has no 'images' array; it holds: {sorted(contents)}")
    images, labels, class_names = contents["images"], contents.get("labels"), contents.get("class_names")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (3, 4))):
        raise ValueError(
            f"'images' in {path!r} must have shape (N, H, W) or (N, H, W, C) with C in (1, 3, 4), "
            f"got shape {images.shape}"
        )
    columns = {"image": list(_images_to_uint8(images, path))}
    features = {"image": datasets.Image()}
    if labels is not None:
        if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"'labels' in {path!r} must be {len(images)} integers (one per image), "
                f"got shape {labels.shape} dtype {labels.dtype}"
            )
        if len(labels) and labels.min() < 0:
            raise ValueError(f"'labels' in {path!r} must be >= 0, got {labels.min()}")
        if class_names is None:
            names = [str(index) for index in range(_count_classes(labels, f"'labels' in {path!r}"))]
        else:
            if class_names.dtype.kind != "U" or class_names.ndim != 1:
                raise ValueError(
                    f"'class_names' in {path!r} must be a 1-d string array, "
                    f"got shape {class_names.shape} dtype {class_names.dtype}"
                )
            names = [str(name) for name in class_names]
            if len(labels) and labels.max() >= len(names):
                raise ValueError(
                    f"'labels' in {path!r} go up to {labels.max()} but there are only {len(names)} class_names"
                )
        columns["label"] = labels.astype(np.int64).tolist()
        features["label"] = datasets.ClassLabel(names=names)
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def _load_split(
    dataset_name: str | None, dataset_config_name: str | None, split: str, cache_dir: str | None
) -> datasets.Dataset:
    if not dataset_name:
        raise ValueError("dataset_name is required: a Hub dataset id, a local folder, a .npz file or a saved dataset")
    path = os.path.expanduser(dataset_name)
    if os.path.isfile(path):
        if not path.endswith(".npz"):
            raise ValueError(f"{dataset_name!r} is a file but not a .npz; pass a .npz file, a folder or a Hub id")
        return _load_npz(path)
    if os.path.isdir(path):
        if _is_saved_dataset(path):
            return _load_saved_dataset(path, split)
        try:
            loaded = datasets.load_dataset(path, dataset_config_name, cache_dir=cache_dir)
        except datasets.data_files.EmptyDatasetError as error:
            raise ValueError(f"the folder {dataset_name!r} holds no images or data files: {error}") from error
        return _select_split(loaded, split, dataset_name)
    if path.endswith(".npz") or not _is_valid_hub_id(dataset_name):
        raise ValueError(f"the local path {dataset_name!r} does not exist")
    try:
        loaded = datasets.load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir)
    except (ConnectionError, datasets.exceptions.DatasetNotFoundError, FileNotFoundError) as error:
        raise ValueError(
            f"{dataset_name!r} is not an existing local path, and loading it as a Hub dataset id failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    return _select_split(loaded, split, dataset_name)


def _subsample(dataset: datasets.Dataset, max_train_samples: int | None, seed: int | None) -> datasets.Dataset:
    if max_train_samples is None or max_train_samples >= len(dataset):
        return dataset
    if max_train_samples <= 0:
        raise ValueError(f"max_train_samples must be positive, got {max_train_samples}")
    return dataset.shuffle(seed=seed).select(range(max_train_samples))


def _describe_features(dataset: datasets.Dataset) -> str:
    return ", ".join(f"{name!r} ({type(feature).__name__})" for name, feature in dataset.features.items())


def _resolve_image_column(dataset: datasets.Dataset, column: str | None, role: str = "image") -> str:
    image_columns = [name for name, feature in dataset.features.items() if isinstance(feature, datasets.Image)]
    if column is None:
        if not image_columns:
            raise ValueError(f"the dataset has no Image column; its columns are: {_describe_features(dataset)}")
        return image_columns[0]
    if column not in dataset.column_names:
        raise ValueError(f"{role} column {column!r} does not exist; available columns: {_describe_features(dataset)}")
    if column not in image_columns:
        raise ValueError(
            f"{role} column {column!r} must have a datasets.Image feature, got {dataset.features[column]}; "
            f"image columns: {image_columns}"
        )
    return column


def _resolve_label_column(
    dataset: datasets.Dataset, column: str | None
) -> tuple[str | None, int | None, list[str] | None]:
    if column is None:
        column = next(
            (name for name, feature in dataset.features.items() if isinstance(feature, datasets.ClassLabel)), None
        )
        if column is None:
            return None, None, None
    if column not in dataset.column_names:
        raise ValueError(f"label column {column!r} does not exist; available columns: {_describe_features(dataset)}")
    feature = dataset.features[column]
    if isinstance(feature, datasets.ClassLabel):
        labels = np.asarray(dataset[column])
        if labels.size and (labels.min() < 0 or labels.max() >= feature.num_classes):
            bad = int(np.flatnonzero((labels < 0) | (labels >= feature.num_classes))[0])
            raise ValueError(
                f"label column {column!r} holds the label {labels[bad]} at index {bad}, outside its "
                f"{feature.num_classes} classes {feature.names}"
            )
        return column, feature.num_classes, list(feature.names)
    if not (isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint"))):
        raise ValueError(f"label column {column!r} must be a ClassLabel or an integer Value, got {feature}")
    labels = np.asarray(dataset[column])
    if labels.size and labels.min() < 0:
        raise ValueError(f"label column {column!r} must hold labels >= 0, got {labels.min()}")
    num_classes = _count_classes(labels, f"label column {column!r}")
    return column, num_classes, [str(index) for index in range(num_classes)]


def _count_classes(labels: np.ndarray, source: str) -> int:
    """The number of classes of integer labels without class names, ``max + 1``; refused when most of the classes
    ``0..max`` would have no example (a stray label of 1000 would otherwise make a 1001-class model of a 10-class
    dataset), with a warning naming the empty classes when only some are."""
    if not labels.size:
        return 0
    present = np.unique(labels)
    num_classes = int(present[-1]) + 1
    missing = sorted(set(range(num_classes)) - set(present.tolist()))
    if len(missing) > len(present):
        example = int(np.flatnonzero(labels == present[-1])[0])
        raise ValueError(
            f"{source} go up to {num_classes - 1} (e.g. at index {example}) but only {len(present)} of the "
            f"{num_classes} classes 0..{num_classes - 1} occur; fix the labels, or name the classes (an .npz "
            "'class_names' array, a ClassLabel column) if the empty ones are meant"
        )
    if missing:
        logger.warning("%s: no example of the classes %s of 0..%d", source, missing, num_classes - 1)
    return num_classes


def _load_nonempty(
    dataset_name: str | None,
    dataset_config_name: str | None,
    split: str,
    cache_dir: str | None,
    max_train_samples: int | None,
    seed: int | None,
) -> datasets.Dataset:
    dataset = _subsample(_load_split(dataset_name, dataset_config_name, split, cache_dir), max_train_samples, seed)
    if len(dataset) == 0:
        raise ValueError(f"split {split!r} of {dataset_name!r} has no examples")
    return dataset


@dataclass
class ImageDatasetInfo:
    """A loaded image dataset and what the training scripts need to know about it.

    Attributes:
        dataset: The dataset, images still as PIL images (call :meth:`with_image_transform` for tensors).
        image_column: The column holding the images.
        label_column: The column holding integer class labels, or ``None``.
        num_classes: Number of classes, or ``None`` without a label column.
        num_channels: 1 (grayscale) or 3 (RGB): what the transform produces.
        class_names: Names of the classes (``"0"``..``"K-1"`` when the source has none), or ``None``.
    """

    dataset: datasets.Dataset
    image_column: str
    label_column: str | None
    num_classes: int | None
    num_channels: int
    class_names: list[str] | None = None

    def with_image_transform(
        self, resolution: Resolution, *, random_flip: bool = False, center_crop: bool = True
    ) -> datasets.Dataset:
        """The dataset, lazily yielding ``{"pixel_values": (C, H, W) in [-1, 1], "labels": int}`` examples."""
        transform = make_image_transform(resolution, self.num_channels, random_flip, center_crop)
        return self.dataset.with_transform(
            _ImageBatchTransform(self.image_column, self.label_column, transform),
            columns=[self.image_column] + ([self.label_column] if self.label_column else []),
        )

    def to_tensors(self, resolution: Resolution, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every image ``(N, C, H, W)`` in [-1, 1] and its label ``(N,)`` (``None`` without labels), in order."""
        batches = list(make_dataloader(self.with_image_transform(resolution), batch_size, shuffle=False))
        images = torch.cat([batch["pixel_values"] for batch in batches])
        labels = torch.cat([batch["labels"] for batch in batches]) if self.label_column else None
        return images, labels


def load_image_dataset(
    dataset_name: str,
    dataset_config_name: str | None = None,
    split: str = "train",
    image_column: str | None = None,
    label_column: str | None = None,
    cache_dir: str | None = None,
    max_train_samples: int | None = None,
    seed: int | None = None,
    num_channels: int | None = None,
) -> ImageDatasetInfo:
    """Load one split of an image dataset from any of the sources ``--dataset_name`` accepts (see module docstring).

    Args:
        dataset_name: Hub id, local folder, ``.npz`` file (a single split: ``split`` is not checked) or
            ``save_to_disk`` folder.
        dataset_config_name: Config of a Hub or folder dataset.
        split: The split to load.
        image_column: Column of images; default: the first ``datasets.Image`` column.
        label_column: Column of integer labels; default: the first ``datasets.ClassLabel`` column, if any.
        cache_dir: Where ``datasets`` caches downloaded and prepared data.
        max_train_samples: Keep a random subset of this many examples (drawn with ``seed``).
        seed: Seed of that subset.
        num_channels: 1 or 3; default: inferred from the first image with :func:`infer_num_channels`.

    Raises:
        ValueError: Missing path, unreachable Hub id, unknown split or column, labels that are not integers, or an
            ``.npz`` without a valid ``images`` array.
    """
    if num_channels not in (None, 1, 3):
        raise ValueError(f"num_channels must be 1, 3 or None (infer), got {num_channels}")
    dataset = _load_nonempty(dataset_name, dataset_config_name, split, cache_dir, max_train_samples, seed)
    image_column = _resolve_image_column(dataset, image_column)
    label_column, num_classes, class_names = _resolve_label_column(dataset, label_column)
    if num_channels is None:
        num_channels = infer_num_channels(dataset[0][image_column])
    return ImageDatasetInfo(dataset, image_column, label_column, num_classes, num_channels, class_names)


def select_classes(info: ImageDatasetInfo, classes: Sequence[str]) -> ImageDatasetInfo:
    """Keep the examples of ``classes`` (class names or integer ids, as strings), e.g. one domain of a CycleGAN.

    Raises ``ValueError`` naming the unknown classes, or when the dataset has no label column.
    """
    if info.label_column is None:
        raise ValueError(f"selecting classes {list(classes)} needs a dataset with a label column")
    ids = set()
    for name in classes:
        if name in info.class_names:
            ids.add(info.class_names.index(name))
        elif name.isdigit() and int(name) < len(info.class_names):
            ids.add(int(name))
        else:
            raise ValueError(f"unknown class {name!r}; the classes are {info.class_names} (or their ids)")
    selected = info.dataset.filter(lambda label: label in ids, input_columns=info.label_column)
    if len(selected) == 0:
        raise ValueError(f"the dataset has no example of the classes {list(classes)}")
    return ImageDatasetInfo(
        selected, info.image_column, info.label_column, info.num_classes, info.num_channels, info.class_names
    )


@dataclass
class PairedDatasetInfo:
    """A loaded image-to-image dataset (e.g. sketch -> garment).

    Attributes:
        dataset: The dataset, images still as PIL images (call :meth:`with_image_transform` for tensors).
        source_column: The column of input images.
        target_column: The column of images to produce.
        source_num_channels: 1 or 3, inferred from the first source image.
        target_num_channels: 1 or 3, inferred from the first target image.
    """

    dataset: datasets.Dataset
    source_column: str
    target_column: str
    source_num_channels: int
    target_num_channels: int

    def with_image_transform(
        self, resolution: Resolution, *, random_flip: bool = False, center_crop: bool = True
    ) -> datasets.Dataset:
        """The dataset, lazily yielding ``{"source_pixel_values", "target_pixel_values"}`` (C, H, W) in [-1, 1].

        Each pair gets the same flip and crop.
        """
        return self.dataset.with_transform(
            _PairedBatchTransform(
                self.source_column,
                self.target_column,
                make_image_transform(resolution, self.source_num_channels, random_flip, center_crop),
                make_image_transform(resolution, self.target_num_channels, random_flip, center_crop),
            ),
            columns=[self.source_column, self.target_column],
        )


def load_paired_dataset(
    dataset_name: str,
    dataset_config_name: str | None = None,
    split: str = "train",
    source_column: str = "sketch",
    target_column: str = "image",
    cache_dir: str | None = None,
    max_train_samples: int | None = None,
    seed: int | None = None,
) -> PairedDatasetInfo:
    """Load one split of an image-to-image dataset; sources as in :func:`load_image_dataset`.

    The defaults of ``source_column``/``target_column`` match :func:`hf_vaegan.data.sketch.make_sketch_pairs`.
    """
    dataset = _load_nonempty(dataset_name, dataset_config_name, split, cache_dir, max_train_samples, seed)
    source_column = _resolve_image_column(dataset, source_column, role="source")
    target_column = _resolve_image_column(dataset, target_column, role="target")
    first = dataset[0]
    return PairedDatasetInfo(
        dataset,
        source_column,
        target_column,
        infer_num_channels(first[source_column]),
        infer_num_channels(first[target_column]),
    )


# Batch transforms


class _ImageBatchTransform:
    """``datasets`` batch transform (a class, not a closure, so DataLoader workers can pickle it)."""

    def __init__(self, image_column: str, label_column: str | None, transform: ImageTransform):
        self.image_column = image_column
        self.label_column = label_column
        self.transform = transform

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        output = {"pixel_values": [self.transform(image) for image in batch[self.image_column]]}
        if self.label_column is not None:
            output["labels"] = batch[self.label_column]
        return output


class _PairedBatchTransform:
    def __init__(
        self,
        source_column: str,
        target_column: str,
        source_transform: ImageTransform,
        target_transform: ImageTransform,
    ):
        self.source_column = source_column
        self.target_column = target_column
        self.source_transform = source_transform
        self.target_transform = target_transform

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        sources, targets = [], []
        for source, target in zip(batch[self.source_column], batch[self.target_column], strict=True):
            augmentation = self.source_transform.sample_augmentation()
            sources.append(self.source_transform(source, augmentation))
            targets.append(self.target_transform(target, augmentation))
        return {"source_pixel_values": sources, "target_pixel_values": targets}


# Batching


def collate_examples(examples: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Stack transformed examples: tensors into ``(B, ...)`` float tensors, integer labels into ``(B,)`` int64."""
    return {
        key: torch.stack([example[key] for example in examples])
        if isinstance(value, torch.Tensor)
        else torch.tensor([example[key] for example in examples], dtype=torch.long)
        for key, value in examples[0].items()
    }


def make_dataloader(
    dataset: torch.utils.data.Dataset,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int | None = None,
    drop_last: bool = False,
    num_workers: int = 0,
    collate_fn: Callable[[Sequence[dict]], dict] = collate_examples,
) -> torch.utils.data.DataLoader:
    """A DataLoader over a transformed dataset; ``seed`` makes the shuffling order reproducible."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=collate_fn,
        generator=generator,
        persistent_workers=num_workers > 0,
    )


def first_examples(dataset: torch.utils.data.Dataset, count: int) -> dict[str, torch.Tensor]:
    """The first ``count`` examples of a transformed dataset, stacked: the fixed inputs of the sample grids."""
    return collate_examples([dataset[index] for index in range(min(count, len(dataset)))])


class UnpairedImageDataset(torch.utils.data.Dataset):
    """Two image datasets read side by side, without pairing: ``{"pixel_values_a", "pixel_values_b"}``.

    Its length is that of the larger domain; example ``i`` holds image ``i`` of each domain, wrapping around the
    smaller one. Only the batch composition couples the domains (every CycleGAN loss is a sum of per-domain terms), and
    the shuffled sampler draws new compositions every epoch.

    Args:
        domain_a: Dataset yielding ``{"pixel_values": (C, H, W)}`` (e.g. ``ImageDatasetInfo.with_image_transform``).
        domain_b: The same for domain B.
    """

    def __init__(self, domain_a: datasets.Dataset, domain_b: datasets.Dataset):
        if len(domain_a) == 0 or len(domain_b) == 0:
            raise ValueError(f"both domains need images, got {len(domain_a)} and {len(domain_b)}")
        self.domain_a = domain_a
        self.domain_b = domain_b

    def __len__(self) -> int:
        return max(len(self.domain_a), len(self.domain_b))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "pixel_values_a": self.domain_a[index % len(self.domain_a)]["pixel_values"],
            "pixel_values_b": self.domain_b[index % len(self.domain_b)]["pixel_values"],
        }
