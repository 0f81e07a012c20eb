"""The divergence guard: losses and weights checked for NaN/inf before they reach an optimizer step or a file."""

from __future__ import annotations

import math

import torch
from accelerate import Accelerator
from torch import nn

from .errors import TrainingDivergedError


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
