"""What every training script shares: flags, the Accelerator, EMA, sample grids, checkpoints, the loop, model cards.

A training script reads like this (see ``examples/train_gan.py`` for a complete one)::

    parser = argparse.ArgumentParser()
    add_dataset_args(parser)  # hf_vaegan.training.data
    add_training_args(parser, default_output_dir="my-model")
    args = parser.parse_args()
    validate_training_args(args)

    accelerator = create_accelerator(args)
    ...  # models, optimizers, dataloader
    model, optimizer, dataloader = accelerator.prepare(model, optimizer, dataloader)
    ema = create_ema(accelerator, model, args.ema_decay)  # registered for checkpointing
    rng = create_training_rng(accelerator, args.seed)  # per-process generator, registered for checkpointing
    loop = TrainingLoop(accelerator, dataloader, args, models=[model])
    start_trackers(accelerator, "my-model", args)
    loop.resume()  # --resume_from_checkpoint
    for batch in loop:
        with accelerator.accumulate(model):
            loss = ...
            accelerator.backward(loss)
            check_finite(accelerator, loop.next_step, loss=loss)  # stops the run on NaN/inf
            ...
        if loop.step_done({"loss": loss}):  # True once per optimizer step; logs, checkpoints
            if ema is not None: ema.step(model.parameters())
            if loop.is_due(args.sample_steps): ...
    loop.end()

Checkpoints are ``accelerator.save_state`` folders named ``checkpoint-<step>`` in ``--output_dir``. They hold the
models, optimizers, schedulers, RNG states and every object registered with :func:`register_training_state` (EMA,
per-process training RNG, fixed sample noise; written as safetensors + JSON in ``training_state.safetensors``, since
accelerate's own ``register_for_checkpointing`` pickles them), so ``--resume_from_checkpoint latest`` continues a run
exactly:
the data order is a function of (seed, epoch) and the batches already seen in the current epoch are skipped.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import random
import shlex
import signal
import sys
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import datasets
import diffusers
import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, broadcast_object_list, gather, set_seed
from diffusers.image_processor import VaeImageProcessor
from diffusers.optimization import SchedulerType, get_scheduler
from diffusers.training_utils import EMAModel
from diffusers.utils import make_image_grid
from huggingface_hub import create_repo, upload_folder
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from .checkpoints import (
    CHECKPOINT_PREFIX,
    PARTIAL_CHECKPOINT_PREFIX,
    checkpoint_step,
    load_checkpoint,
    remove_partial_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
)
from .errors import CheckpointError

logger = get_logger(__name__)

# Folders of --output_dir that are not part of the model pushed to the Hub.
HUB_IGNORE_PATTERNS = [f"{CHECKPOINT_PREFIX}*", f"{PARTIAL_CHECKPOINT_PREFIX}*", "logs/*", "samples/*"]
_SECRET_FLAGS = ("--hub_token",)
KILL_AFTER_STEP_ENV = "HF_VAEGAN_TEST_KILL_AFTER_STEP"


# Command-line flags


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
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
    """Add the flags every training script shares, named as in diffusers' examples.

    Model-specific flags (architecture, learning rates, losses) stay in the scripts.

    Args:
        parser: The script's parser.
        default_output_dir: Default of ``--output_dir``.
        default_num_epochs: Default of ``--num_epochs``.
        default_sample_steps: Default of ``--sample_steps``.
        default_checkpointing_steps: Default of ``--checkpointing_steps``.
        default_ema_decay: Default of ``--ema_decay``.

    Returns:
        The argument group holding the flags.
    """
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
        "--mixed_precision` when that is fp16 or bf16, else bf16 where the hardware runs it fast (CUDA GPUs with "
        "bf16 support, CPUs with AMX: about 2x the fp32 training throughput of the default 28x28 GAN on a 2-core "
        "AMX CPU, see benchmarks/train_throughput.py), else 'no'. fp16 (CUDA) uses a gradient scaler.",
    )
    group.add_argument(
        "--channels_last",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Store the convolution weights and inputs in channels-last memory format (faster on some hardware).",
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
        default="tensorboard",
        help="Where to log losses, gradient norms, learning rates and sample grids: 'tensorboard' (default), "
        "'wandb', 'comet_ml', 'all', or 'none'. Several may be given, separated by commas.",
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


def validate_training_args(args: argparse.Namespace) -> None:
    """Check the combinations argparse cannot; raises ``ValueError`` naming the flag, before any work starts."""
    if not 0.0 <= args.ema_decay < 1.0:
        raise ValueError(f"--ema_decay must lie in [0, 1), got {args.ema_decay}")
    for name in ("adam_beta1", "adam_beta2"):
        if not 0.0 <= getattr(args, name) < 1.0:
            raise ValueError(f"--{name} must lie in [0, 1), got {getattr(args, name)}")
    if args.lr_warmup_steps < 0:
        raise ValueError(f"--lr_warmup_steps must be >= 0, got {args.lr_warmup_steps}")
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
    if args.push_to_hub and args.hub_token is not None and "wandb" in args.report_to:
        raise ValueError(
            "--hub_token together with --report_to wandb would upload the token to wandb; log in with "
            "`hf auth login` instead"
        )
    if args.report_to != "none" and args.report_to != "all":
        from accelerate.utils import LoggerType

        known = {tracker.value for tracker in LoggerType}
        unknown = [name for name in args.report_to.split(",") if name not in known]
        if unknown:
            raise ValueError(f"--report_to: unknown tracker(s) {unknown}; choose from {sorted(known)}, or 'none'")


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


# The Accelerator


def create_accelerator(args: argparse.Namespace) -> Accelerator:
    """Build the Accelerator from the shared flags, set up logging, and seed every process.

    The data order depends only on (seed, epoch) (accelerate's seedable sampler), so a resumed run sees the same
    batches. When ``--seed`` is not given, a random one is drawn on the main process, shared with the others and
    written back to ``args.seed`` (so it is logged and lands in the model card).
    """
    report_to = None if args.report_to == "none" else args.report_to.split(",")
    if report_to == ["all"]:
        report_to = "all"
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(args.mixed_precision),
        log_with=report_to,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, args.logging_dir)
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S", level=logging.INFO
    )
    logger.info(accelerator.state, main_process_only=False)
    if accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_warning()
        diffusers.utils.logging.set_verbosity_info()
    else:
        datasets.utils.logging.set_verbosity_error()
        diffusers.utils.logging.set_verbosity_error()
    if args.seed is None:
        seed = [random.SystemRandom().randrange(2**31) if accelerator.is_main_process else None]
        args.seed = broadcast_object_list(seed)[0]
        logger.info(f"No --seed given; using seed {args.seed}")
    set_seed(args.seed)
    args.mixed_precision = accelerator.mixed_precision  # the resolved value, for the logs and the model card
    return accelerator


def fast_bf16_available() -> bool:
    """Whether the device accelerate will train on runs bf16 autocast faster than fp32: a CUDA GPU with bf16
    support, or (without a GPU, or with ``accelerate launch --cpu``) a CPU with AMX tiles."""
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "false").lower() in ("1", "true", "yes")
    if torch.cuda.is_available() and not use_cpu:
        return torch.cuda.is_bf16_supported()
    if torch.backends.mps.is_available() and not use_cpu:
        return False
    # torch exposes the AMX check only privately; without it, assume no AMX.
    return getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()


def resolve_mixed_precision(value: str) -> str:
    """The precision ``--mixed_precision value`` selects ('auto' resolved as its help says)."""
    if value != "auto":
        return value
    configured = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if configured != "no":
        return configured
    return "bf16" if fast_bf16_available() else "no"


def start_trackers(accelerator: Accelerator, project_name: str, args: argparse.Namespace) -> None:
    """``accelerator.init_trackers`` with the run's flags as its config (TensorBoard needs scalars: others become
    strings; the Hub token is left out). Creates ``--output_dir``: nothing is written before this call."""
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
    config = {
        name: value if isinstance(value, (int, float, str, bool)) else str(value)
        for name, value in vars(args).items()
        if name != "hub_token"
    }
    accelerator.init_trackers(args.tracker_project_name or project_name, config=config)


def create_optimizer(
    parameters: Sequence[nn.Parameter] | Iterator[nn.Parameter], learning_rate: float, args: argparse.Namespace
) -> torch.optim.Adam:
    """Adam (AdamW when ``--adam_weight_decay`` > 0) with the shared ``--adam_*`` flags."""
    if not learning_rate > 0:
        raise ValueError(f"learning rates must be positive, got {learning_rate}")
    optimizer_class = torch.optim.AdamW if args.adam_weight_decay > 0 else torch.optim.Adam
    return optimizer_class(
        parameters,
        lr=learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        weight_decay=args.adam_weight_decay,
    )


def create_lr_scheduler(
    optimizer: torch.optim.Optimizer, args: argparse.Namespace, max_train_steps: int, num_processes: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """``--lr_scheduler`` over ``max_train_steps`` optimizer steps.

    The counts are multiplied by ``num_processes`` because a prepared scheduler steps once per process.
    """
    return get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps * num_processes,
        num_training_steps=max_train_steps * num_processes,
    )


def apply_channels_last(*modules: nn.Module) -> None:
    """Switch the 4-d weights of ``modules`` to channels-last memory format in place."""
    for module in modules:
        module.to(memory_format=torch.channels_last)


# State checkpointed beside accelerate's, without pickle


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


TRAINING_STATE_NAME = "training_state.safetensors"
_TENSOR_KEY = "__tensor__"


class TrainingState:
    """The objects of a run saved in each checkpoint as ``training_state.safetensors``.

    Accelerate's ``register_for_checkpointing`` writes objects with ``torch.save`` and reads them back with
    ``weights_only=False``, i.e. unpickles them. Here each object's ``state_dict()`` (tensors, possibly nested in
    dicts and lists, and JSON scalars) is split into safetensors tensors and a JSON skeleton in the file's metadata,
    through accelerate's save/load hooks, so ``save_state``/``load_state`` handle it like the rest of the state.
    Objects are matched by registration order, as accelerate does; ``state_dict()`` runs on every process (it may
    gather), the main process writes the file.
    """

    def __init__(self, accelerator: Accelerator):
        self.accelerator = accelerator
        self.objects: list[Stateful] = []
        accelerator.register_save_state_pre_hook(lambda models, weights, output_dir: self.save(output_dir))
        accelerator.register_load_state_pre_hook(lambda models, input_dir: self.load(input_dir))

    def save(self, output_dir: str | os.PathLike) -> None:
        tensors: dict[str, torch.Tensor] = {}
        skeleton = [_split_tensors(obj.state_dict(), str(index), tensors) for index, obj in enumerate(self.objects)]
        if self.accelerator.is_main_process:
            save_file(tensors, Path(output_dir) / TRAINING_STATE_NAME, metadata={"skeleton": json.dumps(skeleton)})

    def load(self, input_dir: str | os.PathLike) -> None:
        path = Path(input_dir) / TRAINING_STATE_NAME
        if not path.is_file():
            if not self.objects:
                return
            pickled = sorted(Path(input_dir).glob("custom_checkpoint_*.pkl"))
            reason = f"it holds pickled state ({pickled[0].name}), never loaded" if pickled else "it is missing"
            raise CheckpointError(f"cannot resume from {input_dir}: {TRAINING_STATE_NAME} {reason}")
        try:
            with safe_open(path, framework="pt") as file:
                skeleton = json.loads(file.metadata()["skeleton"])
                tensors = {key: file.get_tensor(key) for key in file.keys()}
        except Exception as error:
            raise CheckpointError(f"cannot resume from {input_dir}: {path.name} is corrupt ({error})") from error
        if len(skeleton) != len(self.objects):
            raise CheckpointError(
                f"cannot resume from {input_dir}: its {path.name} holds the state of {len(skeleton)} objects (EMA, "
                f"RNG, sample inputs...) but this run has {len(self.objects)}; resume with the same script and flags"
            )
        for obj, state in zip(self.objects, skeleton, strict=True):
            try:
                obj.load_state_dict(_join_tensors(state, tensors))
            except (ValueError, KeyError, RuntimeError) as error:
                raise CheckpointError(f"cannot resume from {input_dir}: {path.name}: {error}") from error


_training_states: weakref.WeakKeyDictionary[Accelerator, TrainingState] = weakref.WeakKeyDictionary()


def register_training_state(accelerator: Accelerator, obj: Stateful) -> None:
    """Save ``obj.state_dict()`` in every checkpoint of ``accelerator`` and restore it on resume, without pickle.

    Register in the same order in every run (before :meth:`TrainingLoop.resume`).
    """
    if accelerator not in _training_states:
        _training_states[accelerator] = TrainingState(accelerator)
    _training_states[accelerator].objects.append(obj)


def _split_tensors(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` with each tensor moved into ``tensors`` (CPU, contiguous) and replaced by a reference to its key."""
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().contiguous()
        return {_TENSOR_KEY: key}
    if isinstance(value, Mapping):
        return {name: _split_tensors(item, f"{key}.{name}", tensors) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_split_tensors(item, f"{key}.{index}", tensors) for index, item in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot checkpoint {key!r} of type {type(value).__name__}: use tensors, lists, dicts or scalars")


def _join_tensors(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The inverse of :func:`_split_tensors`."""
    if isinstance(value, dict):
        if set(value) == {_TENSOR_KEY}:
            return tensors[value[_TENSOR_KEY]]
        return {name: _join_tensors(item, tensors) for name, item in value.items()}
    if isinstance(value, list):
        return [_join_tensors(item, tensors) for item in value]
    return value


# Randomness, EMA and fixed sample inputs (all checkpointed)


class ProcessGenerator:
    """A ``torch.Generator`` per process, seeded with ``seed + process_index``, whose state is checkpointed.

    Draw the training noise from it rather than from the global RNG: the data pipeline also draws from the global
    RNG, one batch ahead of training, so only a separate generator resumes exactly. Checkpoints are written by the main
    process only, so :meth:`state_dict` gathers the states of all processes.
    """

    def __init__(self, accelerator: Accelerator, seed: int):
        self.accelerator = accelerator
        self.generator = torch.Generator(accelerator.device).manual_seed(seed + accelerator.process_index)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = self.generator.get_state().to(self.accelerator.device)
        return {"states": gather(state[None]).cpu()}

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        states = state_dict["states"]
        if len(states) != self.accelerator.num_processes:
            raise ValueError(
                f"the checkpoint was written by {len(states)} processes but this run has "
                f"{self.accelerator.num_processes}; resume with the same number of processes"
            )
        self.generator.set_state(states[self.accelerator.process_index].cpu())


def create_training_rng(accelerator: Accelerator, seed: int) -> torch.Generator:
    """A per-process generator for training noise, registered for checkpointing (see :class:`ProcessGenerator`)."""
    process_generator = ProcessGenerator(accelerator, seed)
    register_training_state(accelerator, process_generator)
    return process_generator.generator


class CheckpointedTensors:
    """Named tensors saved with each checkpoint, e.g. the fixed noise and labels of the sample grids.

    Attribute access returns the tensors: ``inputs.noise``.
    """

    def __init__(self, **tensors: torch.Tensor):
        self._tensors = dict(tensors)

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self.__dict__["_tensors"][name]
        except KeyError:
            raise AttributeError(name) from None

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: tensor.cpu() for name, tensor in self._tensors.items()}

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        missing = set(self._tensors) - set(state_dict)
        if missing:
            raise ValueError(f"the checkpoint lacks the tensors {sorted(missing)}")
        self._tensors = {name: state_dict[name].to(self._tensors[name].device) for name in self._tensors}


def create_fixed_sample_inputs(accelerator: Accelerator, **tensors: torch.Tensor) -> CheckpointedTensors:
    """Wrap the fixed inputs of the sample grids, move them to the device, and register them for checkpointing."""
    inputs = CheckpointedTensors(**{name: tensor.to(accelerator.device) for name, tensor in tensors.items()})
    register_training_state(accelerator, inputs)
    return inputs


class DeviceEMAModel(EMAModel):
    """diffusers' ``EMAModel`` whose state, loaded from a checkpoint (on the CPU), goes back to the model's device."""

    def load_state_dict(self, state_dict: dict) -> None:
        device = self.shadow_params[0].device
        super().load_state_dict(state_dict)
        self.to(device)


def create_ema(accelerator: Accelerator, model: nn.Module, decay: float) -> EMAModel | None:
    """An EMA of ``model``'s parameters (``None`` when ``decay`` is 0), registered for checkpointing.

    Call ``ema.step(model.parameters())`` after each optimizer step, and :func:`averaged_copy` for the averaged
    model.
    """
    if decay == 0:
        return None
    ema = DeviceEMAModel(accelerator.unwrap_model(model).parameters(), decay=decay, foreach=True)
    register_training_state(accelerator, ema)
    return ema


def averaged_copy(accelerator: Accelerator, model: nn.Module, ema: EMAModel | None) -> nn.Module:
    """A copy of the unwrapped ``model`` in eval mode holding the EMA weights (the live weights when ``ema`` is
    ``None``); the training model is left untouched."""
    averaged = copy.deepcopy(accelerator.unwrap_model(model))
    if ema is not None:
        ema.copy_to(averaged.parameters())
    return averaged.eval()


# Sample grids


def images_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """Images ``(B, C, H, W)`` in [-1, 1] -> PIL images (mode ``L`` for one channel, ``RGB`` for three)."""
    array = VaeImageProcessor.pt_to_numpy(VaeImageProcessor.denormalize(images.detach().float().cpu()))
    return VaeImageProcessor.numpy_to_pil(array)


def make_sample_grid(images: torch.Tensor, rows: int | None = None) -> Image.Image:
    """One PIL grid of ``images`` ``(B, C, H, W)`` in [-1, 1]; ``rows`` defaults to a square-ish layout (with
    class-conditional grids, pass ``rows=num_classes`` and order the images class by class)."""
    count = len(images)
    if rows is None:
        rows = max(divisor for divisor in range(1, math.isqrt(count) + 1) if count % divisor == 0)
    if count % rows:
        raise ValueError(f"{count} images do not fill a grid of {rows} rows")
    return make_image_grid(images_to_pil(images), rows=rows, cols=count // rows)


def log_sample_grid(
    accelerator: Accelerator, grid: Image.Image, step: int, output_dir: str | os.PathLike, name: str = "samples"
) -> Path:
    """Save ``grid`` as ``output_dir/samples/step-<step>.png`` and log it to every tracker that takes images.

    Call on the main process only. Returns the PNG path.
    """
    path = Path(output_dir) / "samples" / f"step-{step:07d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    array = np.asarray(grid.convert("RGB"))
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.log_images({name: array[None]}, step=step, dataformats="NHWC")
        elif hasattr(tracker, "log_images"):
            tracker.log_images({name: [array]}, step=step)
    return path


# The training loop


class TrainingLoop:
    """Epochs, resuming, step counting, the progress bar, tracker logging and periodic checkpoints.

    Iterate over it to get batches; after each batch call :meth:`step_done`, which returns ``True`` when an
    optimizer step was completed (every ``--gradient_accumulation_steps`` batches). ``global_step`` counts optimizer
    steps; iteration stops after ``max_train_steps``.

    Args:
        accelerator: The run's Accelerator.
        dataloader: The prepared training dataloader.
        args: The parsed flags (``--num_epochs``, ``--max_train_steps``, ``--checkpointing_steps``,
            ``--checkpoints_total_limit``, ``--resume_from_checkpoint``, ``--output_dir``).
        models: Models checked for NaN/inf before each checkpoint, by name.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        dataloader: torch.utils.data.DataLoader,
        args: argparse.Namespace,
        models: Mapping[str, nn.Module] | None = None,
    ):
        self.accelerator = accelerator
        self.dataloader = dataloader
        self.args = args
        self.models = dict(models or {})
        self.steps_per_epoch = math.ceil(len(dataloader) / args.gradient_accumulation_steps)
        self.max_train_steps = args.max_train_steps or args.num_epochs * self.steps_per_epoch
        self.num_epochs = math.ceil(self.max_train_steps / self.steps_per_epoch)
        self.global_step = 0
        self.epoch = 0
        self._first_epoch = 0
        self._batches_to_skip = 0
        self._sums: dict[str, tuple[float, int]] = {}
        self._progress: tqdm | None = None
        self._start_time = time.perf_counter()
        # Tests simulate a crash (SIGKILL: no clean-up, no final save) right after the bookkeeping of this step.
        self._kill_after_step = int(os.environ.get(KILL_AFTER_STEP_ENV, 0))

    @property
    def next_step(self) -> int:
        """The number of the optimizer step being computed (``global_step + 1``), for messages."""
        return self.global_step + 1

    @property
    def batch_size(self) -> int:
        """Images per optimizer step over all processes."""
        per_process = self.dataloader.total_batch_size // self.accelerator.num_processes
        return per_process * self.accelerator.num_processes * self.accelerator.gradient_accumulation_steps

    def resume(self) -> Path | None:
        """Load ``--resume_from_checkpoint`` (if given) and position the loop right after it.

        Also deletes checkpoints left half-written by a crash. Call after ``accelerator.prepare`` and after
        registering every checkpointed object. Returns the loaded checkpoint, or ``None``.
        """
        if self.accelerator.is_main_process:
            remove_partial_checkpoints(self.args.output_dir)
        self.accelerator.wait_for_everyone()
        path = resolve_checkpoint(self.args.output_dir, self.args.resume_from_checkpoint)
        if path is None:
            if self.args.resume_from_checkpoint == "latest":
                logger.info(f"No checkpoint in {self.args.output_dir}; starting a new run")
            return None
        load_checkpoint(self.accelerator, path)
        self.global_step = checkpoint_step(path)
        if self.global_step >= self.max_train_steps:
            logger.warning(f"{path} is at step {self.global_step}, already >= max_train_steps={self.max_train_steps}")
        self._first_epoch, steps_into_epoch = divmod(self.global_step, self.steps_per_epoch)
        self._batches_to_skip = steps_into_epoch * self.args.gradient_accumulation_steps
        logger.info(f"Resumed from {path} (step {self.global_step}, epoch {self._first_epoch})")
        return path

    def __iter__(self) -> Iterator[Any]:
        num_processes = self.accelerator.num_processes
        logger.info(
            f"Training: {self.max_train_steps} steps of {self.batch_size} images ({num_processes} processes x "
            f"{self.dataloader.total_batch_size // num_processes} per batch x "
            f"{self.args.gradient_accumulation_steps} accumulated), {self.num_epochs} epochs"
        )
        self._progress = tqdm(
            total=self.max_train_steps,
            initial=self.global_step,
            desc="Steps",
            disable=not self.accelerator.is_local_main_process,
        )
        for epoch in range(self._first_epoch, self.num_epochs):
            if self.global_step >= self.max_train_steps:
                break
            self.epoch = epoch
            self.dataloader.set_epoch(epoch)
            batches = self.dataloader
            if epoch == self._first_epoch and self._batches_to_skip:
                batches = self.accelerator.skip_first_batches(self.dataloader, self._batches_to_skip)
            for batch in batches:
                yield batch
                if self.global_step >= self.max_train_steps:
                    break

    def step_done(self, logs: Mapping[str, float] | None = None) -> bool:
        """Record the batch just trained on; returns ``True`` if it completed an optimizer step.

        ``logs`` (floats, already averaged over processes, e.g. from :func:`check_finite`) are averaged over the
        accumulated batches that reported them and logged to the trackers at each optimizer step. A checkpoint is
        saved every ``--checkpointing_steps`` steps and after the last step (so a finished run can be extended).
        """
        for name, value in (logs or {}).items():
            total, count = self._sums.get(name, (0.0, 0))
            self._sums[name] = (total + float(value), count + 1)
        if not self.accelerator.sync_gradients:
            return False
        self.global_step += 1
        averaged = {name: total / count for name, (total, count) in self._sums.items()}
        self._sums = {}
        averaged["epoch"] = self.epoch
        self.accelerator.log(averaged, step=self.global_step)
        if self._progress is not None:
            self._progress.update(1)
            self._progress.set_postfix({k: f"{v:.3g}" for k, v in averaged.items() if "loss" in k}, refresh=False)
        if self._out_of_time():
            logger.info(f"--max_train_time {self.args.max_train_time} s reached at step {self.global_step}")
            self.max_train_steps = self.global_step
            if self._progress is not None:
                self._progress.total = self.global_step
        if self.is_due(self.args.checkpointing_steps):
            save_checkpoint(
                self.accelerator,
                self.args.output_dir,
                self.global_step,
                self.args.checkpoints_total_limit,
                self.models,
            )
        if self.global_step == self._kill_after_step:
            os.kill(os.getpid(), signal.SIGKILL)
        return True

    def _out_of_time(self) -> bool:
        """Whether ``--max_train_time`` is spent, decided by the main process so that all processes stop together."""
        budget = getattr(self.args, "max_train_time", None)
        if budget is None:
            return False
        spent = [time.perf_counter() - self._start_time >= budget]
        return bool(broadcast_object_list(spent)[0])

    def is_due(self, every: int) -> bool:
        """Whether the step just completed is a multiple of ``every``, or the last step."""
        return self.global_step % every == 0 or self.global_step == self.max_train_steps

    def end(self) -> float:
        """Close the progress bar; returns the seconds spent since the loop was created."""
        if self._progress is not None:
            self._progress.close()
        return time.perf_counter() - self._start_time


# Model cards and the Hub


def hub_repo_id(args: argparse.Namespace) -> str:
    """``--hub_model_id``, or the name of ``--output_dir`` (the Hub puts it under the token's account)."""
    return args.hub_model_id or Path(args.output_dir).resolve().name


def training_command(script: str = "examples/train.py", argv: Sequence[str] | None = None) -> str:
    """The ``accelerate launch`` command of this run, for the model card, with secrets redacted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    redacted: list[str] = []
    hide_next = False
    for argument in argv:
        if hide_next:
            redacted.append("***")
            hide_next = False
        elif argument in _SECRET_FLAGS:
            redacted.append(argument)
            hide_next = True
        elif argument.startswith(tuple(f"{flag}=" for flag in _SECRET_FLAGS)):
            redacted.append(argument.split("=", 1)[0] + "=***")
        else:
            redacted.append(argument)
    return shlex.join(["accelerate", "launch", script, *redacted])


def dataset_hub_ids(dataset_name: str) -> list[str] | None:
    """``[dataset_name]`` for a Hub dataset id (for the card's ``datasets`` metadata), ``None`` for local data."""
    if os.path.exists(os.path.expanduser(dataset_name)):
        return None
    return [dataset_name]


def write_model_card(
    model: nn.Module,
    output_dir: str | os.PathLike,
    repo_id: str,
    *,
    datasets: list[str] | None = None,
    **template_kwargs: Any,
) -> Path:
    """Render ``model.create_model_card`` (the package template: ``sample_image``, ``metrics``, ``training``,
    ``training_command``, ``dataset_description``, ``limitations``) to ``output_dir/README.md``."""
    path = Path(output_dir) / "README.md"
    model.create_model_card(repo_id, datasets=datasets, **template_kwargs).save(path)
    return path


def push_output_dir(args: argparse.Namespace, commit_message: str = "End of training") -> str:
    """Upload ``--output_dir`` (model, subfolders, README.md, sample grid) to ``hub_repo_id(args)``, leaving out
    checkpoints, logs and intermediate samples. Returns the commit URL."""
    repo_id = create_repo(
        hub_repo_id(args), exist_ok=True, private=args.hub_private_repo or None, token=args.hub_token
    ).repo_id
    commit = upload_folder(
        repo_id=repo_id,
        folder_path=args.output_dir,
        commit_message=commit_message,
        ignore_patterns=HUB_IGNORE_PATTERNS,
        token=args.hub_token,
    )
    return commit.commit_url
