"""The dataset and dataloader flags every training script shares (``--dataset_name``, ``--resolution``,
``--train_batch_size``...), named as in diffusers' examples, and the datasets they load."""

from __future__ import annotations

import argparse

from ..data.images import Resolution
from ..data.loading import ImageDatasetInfo, PairedDatasetInfo, load_image_dataset, load_paired_dataset


def parse_resolution(value: str) -> Resolution:
    """Parse ``--resolution``: ``"64"`` for a square, ``"64x48"`` (height x width) otherwise."""
    parts = value.lower().replace(",", "x").split("x")
    try:
        sizes = [int(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution must be N or HxW (e.g. 32 or 64x48), got {value!r}") from None
    if len(sizes) not in (1, 2) or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"resolution must be N or HxW with positive sizes, got {value!r}")
    return sizes[0] if len(sizes) == 1 else (sizes[0], sizes[1])


def add_dataset_args(
    parser: argparse.ArgumentParser, *, paired: bool = False, default_resolution: int = 32
) -> argparse._ArgumentGroup:
    """Add the dataset and dataloader flags shared by every training script (``paired``: ``--source_column`` and
    ``--target_column`` for image-to-image pairs instead of ``--image_column``, ``--label_column`` and
    ``--num_channels``); returns their group."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset_name",
        type=str,
        required=True,
        help=(
            "The training data: a dataset id on the Hugging Face Hub (e.g. 'user/fashion'); a local folder of images "
            "where each subfolder is a class, or a local clone of a dataset repository; a local .npz file with an "
            "'images' array (N, H, W) or (N, H, W, C) and optionally 'labels' (N,) and 'class_names'; or a folder "
            "written by Dataset.save_to_disk / DatasetDict.save_to_disk."
        ),
    )
    group.add_argument(
        "--dataset_config_name",
        type=str,
        default=None,
        help="The config of the dataset, leave as None if there's only one config.",
    )
    group.add_argument("--dataset_split", type=str, default="train", help="The split to train on (default: 'train').")
    if paired:
        group.add_argument(
            "--source_column",
            type=str,
            default="sketch",
            help="The column holding the input images (e.g. sketches) of the image-to-image pairs.",
        )
        group.add_argument(
            "--target_column",
            type=str,
            default="image",
            help="The column holding the images to produce from the source images.",
        )
    else:
        group.add_argument(
            "--image_column",
            type=str,
            default=None,
            help="The column holding the images. Default: the first column with an Image feature.",
        )
        group.add_argument(
            "--label_column",
            type=str,
            default=None,
            help="The column holding integer class labels. Default: the first column with a ClassLabel feature.",
        )
        group.add_argument(
            "--num_channels",
            type=int,
            choices=(1, 3),
            default=None,
            help="Train on grayscale (1) or RGB (3) images. Default: inferred from the first image.",
        )
    group.add_argument(
        "--resolution",
        type=parse_resolution,
        default=default_resolution,
        help=(
            "The resolution images are resized to: N for N x N, or HxW. Images keep their aspect ratio and are "
            f"cropped to fit. Default: {default_resolution}."
        ),
    )
    group.add_argument(
        "--center_crop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Crop images at their center after resizing (default); --no-center_crop crops at random places.",
    )
    group.add_argument("--random_flip", action="store_true", help="Flip images horizontally at random.")
    group.add_argument(
        "--max_train_samples",
        type=int,
        default=None,
        help="For debugging or quicker training, train on a random subset of this many examples (drawn with --seed).",
    )
    group.add_argument(
        "--train_batch_size", type=int, default=32, help="Batch size (per device) for the training dataloader."
    )
    group.add_argument(
        "--dataloader_num_workers",
        type=int,
        default=0,
        help="Number of subprocesses for data loading; 0 loads the data in the main process.",
    )
    group.add_argument(
        "--cache_dir",
        type=str,
        default=None,
        help="The directory where the downloaded and prepared datasets are stored.",
    )
    return group


def load_image_dataset_from_args(
    args: argparse.Namespace, dataset_name: str | None = None, **overrides
) -> ImageDatasetInfo:
    """:func:`load_image_dataset` with the flags of :func:`add_dataset_args` and ``--seed``; ``dataset_name`` (default
    ``--dataset_name``) and ``overrides`` (its keywords, e.g. ``split="test"``) load other images with those flags."""
    flags = {
        "split": args.dataset_split,
        "image_column": args.image_column,
        "label_column": args.label_column,
        "cache_dir": args.cache_dir,
        "max_train_samples": args.max_train_samples,
        "seed": args.seed,
        "num_channels": args.num_channels,
    }
    return load_image_dataset(dataset_name or args.dataset_name, args.dataset_config_name, **(flags | overrides))


def load_paired_dataset_from_args(args: argparse.Namespace) -> PairedDatasetInfo:
    """:func:`load_paired_dataset` with the flags of ``add_dataset_args(parser, paired=True)`` and ``--seed``."""
    return load_paired_dataset(
        args.dataset_name,
        args.dataset_config_name,
        split=args.dataset_split,
        source_column=args.source_column,
        target_column=args.target_column,
        cache_dir=args.cache_dir,
        max_train_samples=args.max_train_samples,
        seed=args.seed,
    )
