"""The flags every training script shares, named as in diffusers' examples, and their validation.

A script adds the shared groups (:func:`add_dataset_args`: ``--dataset_name``, ``--resolution``... and
:func:`add_training_args`: ``--output_dir``, ``--seed``, ``--mixed_precision``...), then its own model and loss flags,
and calls :func:`parse_and_validate`, which refuses bad values naming the flag before any work starts.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from diffusers.optimization import SchedulerType

from ..data.images import Resolution
from ..data.loading import ImageDatasetInfo, PairedDatasetInfo, load_image_dataset, load_paired_dataset
from .checkpoints import CHECKPOINT_PREFIX, checkpoint_step
from .pretrained import add_pretrained_args, validate_pretrained_args
from .trackers import check_report_to

# Dataset flags


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


# Training flags


def _positive_int(value: str) -> int:
    if (number := int(value)) <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return number


def _positive_float(value: str) -> float:
    if not (number := float(value)) > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _non_negative_float(value: str) -> float:
    if not (number := float(value)) >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {value!r}")
    return number


def add_training_args(
    parser: argparse.ArgumentParser,
    *,
    default_output_dir: str,
    default_num_epochs: int = 20,
    default_sample_steps: int = 500,
    default_checkpointing_steps: int = 500,
    default_ema_decay: float = 0.999,
) -> argparse._ArgumentGroup:
    """Add the flags every training script shares, named as in diffusers' examples, with the script's defaults;
    returns their group. Model-specific flags (architecture, learning rates, losses) stay in the scripts."""
    add_pretrained_args(parser)
    group = parser.add_argument_group("training")
    group.add_argument(
        "--output_dir",
        type=str,
        default=default_output_dir,
        help="Where the trained model, its model card, the sample grids, the logs and the checkpoints are written.",
    )
    group.add_argument(
        "--seed",
        type=int,
        default=None,
        help="Seed of every random choice (initial weights, data order, noise). Default: a random seed, logged.",
    )
    group.add_argument(
        "--num_epochs", type=_positive_int, default=default_num_epochs, help="Passes over the training data."
    )
    group.add_argument(
        "--max_train_steps",
        type=_positive_int,
        default=None,
        help="Total number of optimizer steps; overrides --num_epochs when given.",
    )
    group.add_argument(
        "--max_train_time",
        type=_positive_float,
        default=None,
        help="Stop after the first optimizer step that ends this many seconds after training started (in this "
        "process; a resumed run gets the budget anew), with the usual final checkpoint, samples and model. For "
        "comparisons at an equal wall-clock budget.",
    )
    group.add_argument(
        "--gradient_accumulation_steps",
        type=_positive_int,
        default=1,
        help="Batches accumulated before each optimizer step (the effective batch is this times the batch size "
        "times the number of processes).",
    )
    group.add_argument(
        "--mixed_precision",
        type=str,
        default="auto",
        choices=["auto", "no", "fp16", "bf16"],
        help="Autocast precision. 'auto' (default): the value of `accelerate config` or `accelerate launch "
        "--mixed_precision` when that is fp16 or bf16, else bf16 where the hardware has bf16 instructions (a CUDA GPU "
        "with bf16; AMX or AVX-512 BF16 on a CPU: figures in the README's Training section), else 'no'. fp16 (CUDA) "
        "uses a gradient scaler.",
    )
    group.add_argument(
        "--channels_last",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Store the convolution weights and inputs in channels-last memory format (faster on some hardware).",
    )
    group.add_argument(
        "--gradient_checkpointing",
        action="store_true",
        help="Recompute activations in the backward pass instead of storing them: less memory for about one more "
        "forward pass of time, for large images or batches (figures: benchmarks/gradient_checkpointing.py). Applies "
        "to every trained model that supports it; models with batch norm or spectral norm train without it.",
    )
    group.add_argument("--adam_beta1", type=float, default=0.0, help="beta1 of the Adam optimizers.")
    group.add_argument("--adam_beta2", type=float, default=0.99, help="beta2 of the Adam optimizers.")
    group.add_argument(
        "--adam_weight_decay", type=_non_negative_float, default=0.0, help="Weight decay of the Adam optimizers."
    )
    group.add_argument("--adam_epsilon", type=float, default=1e-8, help="epsilon of the Adam optimizers.")
    group.add_argument(
        "--max_grad_norm",
        type=_non_negative_float,
        default=None,
        help="Clip gradients to this global norm. Default: no clipping (gradient norms are logged either way).",
    )
    group.add_argument(
        "--lr_scheduler",
        type=str,
        default="constant",
        choices=[scheduler.value for scheduler in SchedulerType],
        help="Learning-rate schedule (diffusers.optimization.get_scheduler).",
    )
    group.add_argument(
        "--lr_warmup_steps", type=int, default=0, help="Steps of linear learning-rate warm-up at the start."
    )
    group.add_argument(
        "--ema_decay",
        type=float,
        default=default_ema_decay,
        help="Decay of the exponential moving average of the weights used for sample grids and the saved model "
        "(with diffusers' EMAModel warm-up, min(decay, (1 + step) / (10 + step))). 0 disables the EMA.",
    )
    group.add_argument(
        "--report_to",
        type=str,
        default=None,
        help="Where to log losses, gradient norms, learning rates and sample grids: 'tensorboard' (the default; "
        "`pip install 'hf-vaegan[train]'`), 'wandb', 'comet_ml', 'all', or 'none'. Several may be given, separated "
        "by commas. A tracker that is not installed is an error when named, a warning by default.",
    )
    group.add_argument(
        "--logging_dir",
        type=str,
        default="logs",
        help="Tracker logs folder, relative to --output_dir (TensorBoard: `tensorboard --logdir OUTPUT_DIR/logs`).",
    )
    group.add_argument(
        "--tracker_project_name", type=str, default=None, help="Project name of the trackers (default: the script)."
    )
    group.add_argument(
        "--sample_steps",
        type=_positive_int,
        default=default_sample_steps,
        help="Every this many steps, draw a sample grid with the EMA weights and fixed noise, log it and save it "
        "as OUTPUT_DIR/samples/step-<step>.png.",
    )
    group.add_argument(
        "--num_sample_images", type=_positive_int, default=64, help="Number of images in each sample grid."
    )
    group.add_argument(
        "--checkpointing_steps",
        type=_positive_int,
        default=default_checkpointing_steps,
        help="Save the full training state (accelerator.save_state) every this many steps and at the end, as "
        "OUTPUT_DIR/checkpoint-<step>, for --resume_from_checkpoint.",
    )
    group.add_argument(
        "--checkpoints_total_limit",
        type=_positive_int,
        default=None,
        help="Keep at most this many checkpoints; the oldest are deleted. Default: keep all.",
    )
    group.add_argument(
        "--resume_from_checkpoint",
        type=str,
        default=None,
        help="Continue from a checkpoint folder written by this script, or 'latest' for the newest checkpoint in "
        "--output_dir (a fresh start if there is none). The run continues exactly as if never interrupted.",
    )
    group.add_argument(
        "--push_to_hub", action="store_true", help="Push the trained model and its model card to the Hub."
    )
    group.add_argument(
        "--hub_model_id",
        type=str,
        default=None,
        help="The repository to push to (`user/name`). Default: the name of --output_dir under your account.",
    )
    group.add_argument(
        "--hub_token",
        type=str,
        default=None,
        help="Token to push with. Default: the one saved by `hf auth login` (prefer that: a flag leaks into logs).",
    )
    group.add_argument("--hub_private_repo", action="store_true", help="Create the Hub repository as private.")
    return group


def parse_and_validate(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, *checks: Callable[[argparse.Namespace], None]
) -> argparse.Namespace:
    """Parse ``argv``, then run :func:`validate_training_args` and each of ``checks``; their ``ValueError`` becomes
    ``parser.error`` (the usage and the message, exit status 2), before any work starts."""
    args = parser.parse_args(argv)
    try:
        for check in (validate_training_args, *checks):
            check(args)
    except ValueError as error:
        parser.error(str(error))
    return args


# Checks for the scripts' validators: each raises ``ValueError`` naming the first of the flags ``names`` that fails.


def check_positive_ints(args: argparse.Namespace, *names: str) -> None:
    """Refuse counts below 1."""
    for name in names:
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(args, name)}")


def check_non_negative(args: argparse.Namespace, *names: str) -> None:
    """Refuse values below 0 (weights, counts where 0 disables something)."""
    for name in names:
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(args, name)}")


def check_positive(args: argparse.Namespace, *names: str) -> None:
    """Refuse values that are not > 0 (NaN included), e.g. learning rates."""
    for name in names:
        if not getattr(args, name) > 0:
            raise ValueError(f"--{name} must be positive, got {getattr(args, name)}")


def validate_training_args(args: argparse.Namespace) -> None:
    """Check the combinations argparse cannot; raises ``ValueError`` naming the flag, before any work starts."""
    validate_pretrained_args(args)
    if not 0.0 <= args.ema_decay < 1.0:
        raise ValueError(f"--ema_decay must lie in [0, 1), got {args.ema_decay}")
    for name in ("adam_beta1", "adam_beta2"):
        if not 0.0 <= getattr(args, name) < 1.0:
            raise ValueError(f"--{name} must lie in [0, 1), got {getattr(args, name)}")
    check_non_negative(args, "lr_warmup_steps")
    _check_output_dir(args.output_dir)
    if args.resume_from_checkpoint not in (None, "latest"):
        path = Path(args.resume_from_checkpoint)
        if not path.is_dir():
            raise ValueError(f"--resume_from_checkpoint {args.resume_from_checkpoint!r}: no such folder")
        if checkpoint_step(path) is None:
            raise ValueError(
                f"--resume_from_checkpoint {args.resume_from_checkpoint!r} is not a checkpoint folder; expected a "
                f"folder named '{CHECKPOINT_PREFIX}<step>' written by this script, or 'latest'"
            )
    check_report_to(args)


def _check_output_dir(output_dir: str) -> None:
    """Refuse an ``--output_dir`` that is a file, or lies under one, before anything is written."""
    path = Path(output_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--output_dir {output_dir!r} is a file, not a folder; pass a folder (new or existing)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--output_dir {output_dir!r} lies under {str(parent)!r}, which is a file")
            break
