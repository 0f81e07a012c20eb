"""The training flags every script shares, named as in diffusers' examples, and their validation.

A script adds the shared groups (:func:`~hf_vaegan.training.dataset_args.add_dataset_args`: ``--dataset_name``,
``--resolution``... and :func:`add_training_args`: ``--output_dir``, ``--seed``, ``--mixed_precision``...), then its
own model and loss flags, and calls :func:`parse_and_validate`, which refuses bad values naming the flag before any
work starts.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from diffusers.optimization import SchedulerType

from .checkpoints import CHECKPOINT_PREFIX, checkpoint_step
from .pretrained import add_pretrained_args, validate_pretrained_args
from .trackers import check_report_to

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
