"""The one optimizer update every trainer uses, the networks it updates, ``frozen()``, and the divergence guard.

An update is: backward, gradient clipping (and measuring) at optimizer steps, a NaN/inf check of every logged value
across processes, the optimizer and scheduler steps, zeroing the gradients. Under ``accelerator.accumulate`` the
optimizer steps only every ``--gradient_accumulation_steps`` batches (accelerate skips the others); with fp16, the
gradient scaler lives inside the prepared optimizer.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from torch import nn

from .augment import DiffAugment
from .errors import TrainingDivergedError
from .losses import GAN_LOSSES


@dataclass
class Network:
    """Prepared models trained by one optimizer (e.g. a generator, or CycleGAN's two generators), with its schedule.

    Attributes:
        models: The prepared models by name (each possibly DDP-wrapped; call these in training steps).
        optimizer: The prepared optimizer of all their parameters.
        lr_scheduler: The prepared learning-rate scheduler, or ``None``.
        bare_models: The same models unwrapped (for frozen passes, EMAs and saving).
    """

    models: dict[str, nn.Module]
    optimizer: torch.optim.Optimizer
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None
    bare_models: dict[str, nn.Module]

    @classmethod
    def prepare(
        cls,
        accelerator: Accelerator,
        models: Mapping[str, nn.Module] | nn.Module,
        optimizer: torch.optim.Optimizer,
        lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ) -> Network:
        """``accelerator.prepare`` the models, the optimizer and the scheduler (in that order: accelerate saves
        models, optimizers and schedulers in the order they were prepared)."""
        models = dict(models) if isinstance(models, Mapping) else {"model": models}
        schedulers = [lr_scheduler] if lr_scheduler is not None else []
        prepared = accelerator.prepare(*models.values(), optimizer, *schedulers)
        count = len(models)
        models = dict(zip(models, prepared[:count], strict=True))
        optimizer = prepared[count]
        lr_scheduler = prepared[count + 1] if schedulers else None
        bare = {name: accelerator.unwrap_model(model) for name, model in models.items()}
        return cls(models, optimizer, lr_scheduler, bare)

    @property
    def model(self) -> nn.Module:
        """The prepared model of a single-model network."""
        (model,) = self.models.values()
        return model

    @property
    def bare(self) -> nn.Module:
        """The unwrapped model of a single-model network."""
        (model,) = self.bare_models.values()
        return model

    @property
    def learning_rate(self) -> float:
        return self.optimizer.param_groups[0]["lr"]


def optimizer_update(
    accelerator: Accelerator,
    network: Network,
    loss: torch.Tensor,
    step: int,
    max_grad_norm: float | None,
    grad_norm_name: str,
    /,
    **values: torch.Tensor,
) -> dict[str, float]:
    """Backward ``loss``, clip the gradients of ``network`` to ``max_grad_norm`` at optimizer steps (logging their
    global norm before clipping as ``grad_norm_name``; ``None`` only measures it), stop on NaN/inf ``values``
    (:func:`check_finite`), then step the optimizer and the scheduler and zero the gradients.

    Returns the ``values`` (and the gradient norm) averaged over the processes, as floats.
    """
    accelerator.backward(loss)
    if accelerator.sync_gradients:
        parameters = itertools.chain.from_iterable(model.parameters() for model in network.models.values())
        grad_norm = accelerator.clip_grad_norm_(parameters, max_grad_norm or math.inf)
        # An fp16 gradient scaler makes inf gradient norms routine (it then skips the step); losses must stay finite.
        if accelerator.scaler is None:
            values[grad_norm_name] = grad_norm
    logs = check_finite(accelerator, step, **values)
    network.optimizer.step()
    if network.lr_scheduler is not None:
        network.lr_scheduler.step()
    network.optimizer.zero_grad(set_to_none=True)
    return logs


@contextlib.contextmanager
def frozen(*models: nn.Module) -> Iterator[None]:
    """Turn off the weight gradients of ``models`` for the block, e.g. the discriminator during the generator's
    update: no wasted weight gradients, and (with bare, unwrapped models) no DDP reducer waiting for gradients that
    never come."""
    for model in models:
        model.requires_grad_(False)
    try:
        yield
    finally:
        for model in models:
            model.requires_grad_(True)


def check_finite(accelerator: Accelerator, step: int, **values: torch.Tensor) -> dict[str, float]:
    """Average scalar ``values`` over the processes and raise :class:`TrainingDivergedError` if one is NaN or inf.

    Every process gets the same answer, so all of them stop together. Call it between the backward pass and the
    optimizer step, so a diverged loss never reaches the weights.

    Returns:
        The averaged values as floats, for logging.
    """
    stacked = torch.stack([value.detach().float().reshape(()) for value in values.values()])
    averaged = accelerator.reduce(stacked, reduction="mean").tolist()
    bad = {name: value for name, value in zip(values, averaged, strict=True) if not math.isfinite(value)}
    if bad:
        described = ", ".join(f"{name} = {value}" for name, value in bad.items())
        raise TrainingDivergedError(
            f"training diverged at step {step}: {described}. Nothing was saved from this step; lower the learning "
            "rates, enable --max_grad_norm or R1, or resume from an earlier checkpoint."
        )
    return dict(zip(values, averaged, strict=True))


def assert_finite_parameters(**models: nn.Module) -> None:
    """Raise :class:`TrainingDivergedError` if a parameter or buffer of one of ``models`` is NaN or inf."""
    for model_name, model in models.items():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise TrainingDivergedError(f"{model_name}.{name} holds NaN or inf values; refusing to save it")


class Trainer:
    """What every recipe's trainer shares: the run's Accelerator, the EMA of its trained model, gradient clipping, the
    training RNG and the memory format of its inputs; subclasses define ``train_step(batch, step) -> logs``.

    Args:
        accelerator: The run's Accelerator.
        ema: EMA of the trained model's parameters (the generator's...), stepped after each optimizer step, or
            ``None``.
        max_grad_norm: Clip every gradient norm to this; ``None`` only measures them.
        rng: Generator of the noise, latents and augmentations (the checkpointed training RNG).
        channels_last: Feed the models channels-last images.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        *,
        ema: EMAModel | None = None,
        max_grad_norm: float | None = None,
        rng: torch.Generator | None = None,
        channels_last: bool = False,
    ):
        self.accelerator = accelerator
        self.ema = ema
        self.max_grad_norm = max_grad_norm
        self.rng = rng
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def update(
        self, network: Network, loss: torch.Tensor, step: int, grad_norm_name: str, /, **values: torch.Tensor
    ) -> dict[str, float]:
        """:func:`optimizer_update` of ``network`` with this trainer's clipping."""
        return optimizer_update(self.accelerator, network, loss, step, self.max_grad_norm, grad_norm_name, **values)

    def update_discriminator(
        self,
        discriminator: Network,
        d_loss: torch.Tensor,
        step: int,
        real_logits: torch.Tensor,
        fake_logits: torch.Tensor,
        /,
        **penalties: torch.Tensor,
    ) -> dict[str, float]:
        """:meth:`update` of one discriminator, logging ``d_loss``, its mean logits on real and on generated images,
        the unweighted ``penalties`` already in ``d_loss`` and ``d_grad_norm``."""
        logits = {"real_logits": real_logits.mean(), "fake_logits": fake_logits.mean()}
        return self.update(discriminator, d_loss, step, "d_grad_norm", d_loss=d_loss, **logits, **penalties)

    def images(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` in the trainer's memory format."""
        return images.contiguous(memory_format=self.memory_format)

    def end_step(self, trained: nn.Module, /, **learning_rates: Network) -> dict[str, float]:
        """At an optimizer step: step the EMA towards ``trained`` (unwrapped) and return ``lr_<name>`` of each
        network of ``learning_rates``; between accumulated batches, nothing."""
        if not self.accelerator.sync_gradients:
            return {}
        if self.ema is not None:
            self.ema.step(trained.parameters())
        return {f"lr_{name}": network.learning_rate for name, network in learning_rates.items()}


class AdversarialTrainer(Trainer):
    """A :class:`Trainer` against discriminators: the adversarial loss (one of ``LOSSES``) and the
    :class:`~hf_vaegan.training.augment.DiffAugment` of everything the discriminators see.

    Args:
        accelerator: The run's Accelerator.
        loss: The adversarial loss (:mod:`~hf_vaegan.training.losses`).
        augment: Differentiable augmentation of the discriminators' inputs; ``None`` for none.
        options: ``ema``, ``max_grad_norm``, ``rng``, ``channels_last`` of :class:`Trainer`.
    """

    LOSSES: tuple[str, ...] = GAN_LOSSES

    def __init__(
        self, accelerator: Accelerator, *, loss: str = "non-saturating", augment: DiffAugment | None = None, **options
    ):
        if loss not in self.LOSSES:
            raise ValueError(f"loss must be one of {self.LOSSES}, got {loss!r}")
        super().__init__(accelerator, **options)
        self.loss = loss
        self.augment = augment or DiffAugment(None)
