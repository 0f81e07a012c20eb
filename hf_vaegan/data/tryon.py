"""Try-on datasets as tensors: the synthetic wardrobe, VITON-HD folders and saved wardrobe datasets, one schema.

:func:`load_tryon_dataset` reads any of the three sources; :class:`TryOnTransform` turns their rows into the tensors
``TryOnModel`` takes (:func:`model_inputs`) and its training targets, at one resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .loading import load_image_dataset, make_dataloader
from .viton import load_viton_hd
from .wardrobe import PARSE_LABELS, TRYON_COLUMNS, build_wardrobe_dataset

DEFAULT_TRYON_RESOLUTION = (128, 96)
# The model's inputs, by the name of the batch entries that hold them.
MODEL_INPUTS = ("agnostic", "agnostic_mask", "body_mask", "pose_keypoints", "cloth", "cloth_mask")
# Parse labels of the garments VITON-HD tries on: where the person's own garment is, the target of the warp.
GARMENT_PARSE_LABELS = tuple(PARSE_LABELS.index(name) for name in ("upper_clothes", "dress", "coat"))
_MASK_COLUMNS = ("cloth_mask", "agnostic_mask", "body_mask", "warped_cloth_mask", "unpaired_cloth_mask")
_UNPAIRED_COLUMNS = ("unpaired_cloth", "unpaired_cloth_mask", "unpaired_image")


@dataclass
class TryOnDatasetInfo:
    """A loaded try-on split.

    Attributes:
        dataset: The rows, with at least :data:`~hf_vaegan.data.TRYON_COLUMNS` (images still PIL).
        source: What ``dataset_name`` was: ``"wardrobe"`` (a saved or Hub dataset), ``"viton-hd"`` (a VITON-HD
            folder) or ``"rendered"`` (a wardrobe rendered from a Fashion-MNIST ``.npz``).
    """

    dataset: datasets.Dataset
    source: str

    def with_transform(self, resolution: tuple[int, int]) -> datasets.Dataset:
        """The dataset yielding the tensors of :class:`TryOnTransform`."""
        return self.dataset.with_transform(TryOnTransform(resolution))


def _is_viton_root(path: Path) -> bool:
    return any((path / f"{split}_pairs.txt").is_file() for split in ("train", "test"))


def load_tryon_dataset(
    dataset_name: str,
    split: str = "train",
    resolution: tuple[int, int] = DEFAULT_TRYON_RESOLUTION,
    *,
    dataset_config_name: str | None = None,
    cache_dir: str | None = None,
    max_samples: int | None = None,
    seed: int | None = None,
    num_wardrobe_samples: int = 8000,
    wardrobe_seed: int = 0,
) -> TryOnDatasetInfo:
    """One split of a try-on dataset, from any of three sources:

    - a Fashion-MNIST ``.npz`` (``images``, ``labels``): the synthetic wardrobe is rendered from it
      (``num_wardrobe_samples`` rows, with ``wardrobe_seed``; the test split has the unpaired columns);
    - a VITON-HD folder (with ``train_pairs.txt`` or ``test_pairs.txt``): read with
      :func:`hf_vaegan.data.load_viton_hd`;
    - a wardrobe dataset written by ``save_to_disk`` or pushed to the Hub (anything ``--dataset_name`` of the other
      scripts takes), which must hold :data:`~hf_vaegan.data.TRYON_COLUMNS`.

    ``max_samples`` keeps a random subset (drawn with ``seed``).

    Raises:
        ValueError: An unknown source or split, or a dataset without the try-on columns.
        FileNotFoundError: Missing VITON-HD files.
    """
    path = Path(dataset_name).expanduser()
    if path.is_file() and path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            if not {"images", "labels"} <= set(arrays.files):
                raise ValueError(f"{dataset_name!r} must hold Fashion-MNIST 'images' and 'labels', got {arrays.files}")
            images, labels = arrays["images"], arrays["labels"]
        if split not in ("train", "test"):
            raise ValueError(
                f"a wardrobe rendered from {dataset_name!r} has the splits 'train' and 'test', not {split!r}"
            )
        count = num_wardrobe_samples if max_samples is None else min(max_samples, num_wardrobe_samples)
        dataset = build_wardrobe_dataset(
            images, labels, count, resolution=resolution, seed=wardrobe_seed, split=split, unpaired=split == "test"
        )
        return TryOnDatasetInfo(dataset, "rendered")
    if path.is_dir() and _is_viton_root(path):
        dataset = load_viton_hd(path, split, resolution=resolution, cache_dir=cache_dir)
        source = "viton-hd"
    else:
        dataset = load_image_dataset(
            dataset_name, dataset_config_name, split=split, image_column="image", cache_dir=cache_dir
        ).dataset
        source = "wardrobe"
    missing = [column for column in TRYON_COLUMNS if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{dataset_name!r} (split {split!r}) is not a try-on dataset: it lacks the columns {missing}; pass a "
            "wardrobe dataset (examples/make_wardrobe_dataset.py), a VITON-HD folder or a Fashion-MNIST .npz"
        )
    if max_samples is not None and max_samples < len(dataset):
        dataset = dataset.shuffle(seed=seed).select(range(max_samples))
    return TryOnDatasetInfo(dataset, source)


def rgb_tensor(image: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """A PIL image -> ``(3, H, W)`` float in [-1, 1] at ``size`` (height, width)."""
    image = image.convert("RGB")
    if image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0)


def mask_tensor(mask: Image.Image | np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """A mask (PIL image or array; nonzero = inside) -> ``(1, H, W)`` float in {0, 1} at ``size``."""
    array = np.asarray(mask)
    if array.ndim == 3:
        array = array.max(axis=-1)
    binary = array > (127 if array.dtype == np.uint8 else 0)
    if binary.shape != size:
        resized = Image.fromarray(binary).resize((size[1], size[0]), Image.Resampling.NEAREST)
        binary = np.asarray(resized)
    return torch.from_numpy(binary.astype(np.float32))[None]


def keypoints_tensor(keypoints, from_size: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """``(18, 3)`` [x, y, confidence] in pixels of ``from_size`` -> float tensor in pixels of ``size``."""
    points = torch.tensor(keypoints, dtype=torch.float32)
    points[:, 0] *= size[1] / from_size[1]
    points[:, 1] *= size[0] / from_size[0]
    return points


class TryOnTransform:
    """``datasets`` batch transform: try-on rows -> tensors at ``resolution`` (height, width).

    Yields ``image``, ``agnostic``, ``cloth`` ``(3, H, W)`` in [-1, 1]; ``agnostic_mask``, ``body_mask``,
    ``cloth_mask`` ``(1, H, W)`` in {0, 1}; ``pose_keypoints`` ``(18, 3)``; where the rows have it (the synthetic
    wardrobe), the undressed ``avatar`` ``(3, H, W)`` (the person's own pixels) and the ``garment_label`` (and
    ``unpaired_garment_label``) as integer tensors; the warp's target ``warped_cloth``
    (garment as worn, white elsewhere) and ``warped_cloth_mask``; and, where the rows have them, ``unpaired_cloth``,
    ``unpaired_cloth_mask`` and ``unpaired_image``, and the renderer's ``warped_cloth_flow`` ``(2, H, W)`` (float32,
    NaN off the garment; resized to the nearest pixel, since its values are in units of the whole image).
    """

    def __init__(self, resolution: tuple[int, int]):
        self.resolution = tuple(resolution)

    def _example(self, row: Mapping) -> dict[str, torch.Tensor]:
        size = self.resolution
        person = row["image"].convert("RGB")
        example = {
            name: mask_tensor(row[name], size) if name in _MASK_COLUMNS else rgb_tensor(row[name], size)
            for name in ("image", "agnostic", "agnostic_mask", "body_mask", "cloth", "cloth_mask")
        }
        example["pose_keypoints"] = keypoints_tensor(row["pose_keypoints"], person.size[::-1], size)
        if row.get("avatar") is not None:
            example["avatar"] = rgb_tensor(row["avatar"], size)
        for name in ("garment_label", "unpaired_garment_label"):
            if row.get(name) is not None:
                example[name] = torch.tensor(int(row[name]))
        if row.get("warped_cloth") is not None:
            example["warped_cloth"] = rgb_tensor(row["warped_cloth"], size)
            example["warped_cloth_mask"] = mask_tensor(row["warped_cloth_mask"], size)
        else:
            worn = np.isin(np.asarray(row["image_parse"]), GARMENT_PARSE_LABELS)
            example["warped_cloth_mask"] = mask_tensor(worn, size)
            example["warped_cloth"] = torch.where(example["warped_cloth_mask"] > 0, example["image"], 1.0)
        for name in _UNPAIRED_COLUMNS:
            if row.get(name) is not None:
                example[name] = mask_tensor(row[name], size) if name in _MASK_COLUMNS else rgb_tensor(row[name], size)
        if row.get("warped_cloth_flow") is not None:
            flow = torch.from_numpy(np.asarray(row["warped_cloth_flow"], dtype=np.float32))
            if flow.shape[1:] != size:
                flow = F.interpolate(flow[None], size=size, mode="nearest")[0]
            example["warped_cloth_flow"] = flow
        return example

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        examples = [self._example(row) for row in rows]
        return {name: [example[name] for example in examples] for name in examples[0]}


def model_inputs(batch: Mapping[str, torch.Tensor], garment_prefix: str = "") -> dict[str, torch.Tensor]:
    """The keyword arguments of ``TryOnModel`` from a batch; ``garment_prefix="unpaired_"`` tries on the unpaired
    garment. The person's own pixels (``person_image``) are the batch's ``avatar`` where it has one, else
    ``agnostic``; ``garment_class`` is the garment's Fashion-MNIST label where the batch has it, else ``None``."""
    return {
        "agnostic": batch["agnostic"],
        "agnostic_mask": batch["agnostic_mask"],
        "body_mask": batch["body_mask"],
        "keypoints": batch["pose_keypoints"],
        "cloth": batch[f"{garment_prefix}cloth"],
        "cloth_mask": batch[f"{garment_prefix}cloth_mask"],
        "person_image": batch["avatar"] if "avatar" in batch else batch["agnostic"],
        "garment_class": batch.get(f"{garment_prefix}garment_label"),
    }


def evaluation_batches(
    info: TryOnDatasetInfo, resolution: tuple[int, int], batch_size: int = 50
) -> torch.utils.data.DataLoader:
    """The held-out split's :class:`TryOnTransform` batches, in order; iterable again (decoding the images again
    rather than holding thousands of examples in memory)."""
    return make_dataloader(info.with_transform(resolution), batch_size, shuffle=False)
