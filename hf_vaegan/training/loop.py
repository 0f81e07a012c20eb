"""The training loop: epochs, resuming, step counting, the progress bar, tracker logging and periodic checkpoints.

The loop owns the plumbing; the recipe is the trainer's ``train_step``. A script reads::

    loop.resume()  # --resume_from_checkpoint: load it and skip the batches already seen
    for batch in loop:
        logs = trainer.train_step(batch, loop.next_step)
        if not loop.step_done(logs):  # True once per optimizer step: logs, checkpoints
            continue
        if loop.is_due(args.sample_steps) and accelerator.is_main_process:
            ...  # sample grids, evaluation
    seconds = loop.end()

The data order is a function of (seed, epoch) (accelerate's seedable sampler) and the batches already seen in the
current epoch are skipped on resume, so a resumed run continues exactly as if never interrupted.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import broadcast_object_list
from torch import nn
from tqdm.auto import tqdm

from .checkpoints import (
    checkpoint_step,
    load_checkpoint,
    remove_partial_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
)

logger = get_logger(__name__)


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
        models: Models checked for NaN/inf before each checkpoint, by name (the mapping is read at each checkpoint,
            so models added to it later are checked too).
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
        self.models = models if models is not None else {}
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
        # The logs of the batch that completed the last optimizer step (its final losses go into model cards).
        self.step_logs: dict[str, float] = {}

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
        self.step_logs = dict(logs or {})
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
