"""Building blocks shared by the hf-vaegan models: config and input checks, conv encoder/decoder stacks, a diagonal
Gaussian.

This file imports only torch and diffusers so that it can be pushed beside the weights and loaded as remote code.
"""

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

SUPPORTED_RESOLUTIONS = (28, 32, 64, 128, 256)
SUPPORTED_CHANNELS = (1, 3)
NORM_TYPES = ("group", "batch", "none")
# Widths stop doubling at this multiple of `base_channels`, so 256x256 models stay small.
MAX_CHANNEL_MULTIPLIER = 8


def check_choice(name: str, value, allowed: Iterable) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")


def check_positive_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")


def check_non_negative_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")


def check_image_config(
    resolution: int,
    channels: int,
    base_channels: int,
    latent_dim: int | None = None,
    num_classes: int = 0,
    channels_name: str = "channels",
) -> None:
    """Raises `ValueError` naming the first config field whose value is not allowed."""
    check_choice("resolution", resolution, SUPPORTED_RESOLUTIONS)
    check_choice(channels_name, channels, SUPPORTED_CHANNELS)
    if latent_dim is not None:
        check_positive_int("latent_dim", latent_dim)
    check_positive_int("base_channels", base_channels)
    check_positive_int("num_classes", num_classes, minimum=0)
    if num_classes == 1:
        raise ValueError("`num_classes` must be 0 (unconditional) or >= 2, got 1.")


# Values this far outside their range still pass (rounding of resized or low-precision images); they are not clamped.
RANGE_TOLERANCE = 1e-3
IMAGE_RANGE = (-1.0, 1.0)
MASK_RANGE = (0.0, 1.0)


def checks_values() -> bool:
    """Whether to run the checks that read tensor values back to Python (ranges, NaN, labels).

    Not while `torch.compile` traces: each would break the graph. Type, shape and dtype checks always run (they compile
    to guards).
    """
    return not torch.compiler.is_compiling()


def check_tensor(value, name: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(value).__name__}.")


def check_floating(tensor: torch.Tensor, name: str, meaning: str = "") -> None:
    if not tensor.is_floating_point():
        raise TypeError(f"`{name}` must be a floating point tensor{meaning}, got dtype {tensor.dtype}.")


def check_values(tensor: torch.Tensor, name: str, value_range: tuple[float, float] | None = None) -> None:
    """Raises `ValueError` if `tensor` holds NaN or infinite values, or values outside `value_range` (by more than
    `RANGE_TOLERANCE`). One pass over the tensor; skipped while compiling (see `checks_values`)."""
    if not checks_values() or tensor.numel() == 0:
        return
    low, high = torch.stack(torch.aminmax(tensor.detach())).float().tolist()  # NaN propagates to both
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    if value_range is not None and (low < value_range[0] - RANGE_TOLERANCE or high > value_range[1] + RANGE_TOLERANCE):
        hint = "; map 8-bit pixels p to p / 127.5 - 1" if value_range == IMAGE_RANGE and high > 1.5 else ""
        raise ValueError(
            f"`{name}` must lie in [{value_range[0]:g}, {value_range[1]:g}], got values in [{low:.4g}, {high:.4g}]"
            f"{hint}."
        )


def check_image_batch(
    images: torch.Tensor,
    channels: int | tuple[int, ...],
    resolution: int | None = None,
    name: str = "sample",
    value_range: tuple[float, float] | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Checks an image batch and returns it, cast to `dtype` when given (inputs of any float dtype are accepted).

    Raises `TypeError` unless `images` is a floating point tensor, and `ValueError` unless it has shape
    `(B, C, H, W)` with `C` = `channels` (or one of them), `H` = `W` = `resolution` when given, else `H, W >= 1`; with
    `value_range`, also for NaN, infinite or out-of-range values.
    """
    check_tensor(images, name)
    allowed = (channels,) if isinstance(channels, int) else tuple(channels)
    channels_text = " or ".join(map(str, allowed))
    size_text = f"{resolution}, {resolution}" if resolution is not None else "height, width"
    fits = images.ndim == 4 and images.shape[1] in allowed
    if resolution is not None:
        fits = fits and tuple(images.shape[2:]) == (resolution, resolution)
    if not fits:
        raise ValueError(f"`{name}` must have shape (batch, {channels_text}, {size_text}), got {tuple(images.shape)}.")
    if min(images.shape[2:]) < 1:
        raise ValueError(f"`{name}` holds empty {images.shape[2]}x{images.shape[3]} images.")
    range_text = f" in [{value_range[0]:g}, {value_range[1]:g}]" if value_range is not None else ""
    check_floating(images, name, range_text)
    if value_range is not None:
        check_values(images, name, value_range)
    return images if dtype is None else images.to(dtype)


def check_vectors(vectors: torch.Tensor, size: int, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Checks a float batch of vectors `(B, size)` (latents, noise) and returns it, cast to `dtype` when given."""
    check_tensor(vectors, name)
    if vectors.ndim != 2 or vectors.shape[1] != size:
        raise ValueError(f"`{name}` must have shape (batch, {size}), got {tuple(vectors.shape)}.")
    check_floating(vectors, name)
    return vectors if dtype is None else vectors.to(dtype)


def check_class_labels(class_labels: torch.Tensor | None, num_classes: int, batch_size: int) -> None:
    if num_classes == 0:
        if class_labels is not None:
            raise ValueError("This model is unconditional (`num_classes=0`); do not pass `class_labels`.")
        return
    if class_labels is None:
        raise ValueError(f"This model is class-conditional (`num_classes={num_classes}`); pass `class_labels`.")
    if not isinstance(class_labels, torch.Tensor):
        raise TypeError(
            f"`class_labels` must be an integer torch.Tensor of shape ({batch_size},), got "
            f"{type(class_labels).__name__}; convert it with torch.as_tensor."
        )
    if class_labels.shape != (batch_size,) or class_labels.is_floating_point() or class_labels.is_complex():
        raise ValueError(
            f"`class_labels` must be an integer tensor of shape ({batch_size},), got {tuple(class_labels.shape)} "
            f"{class_labels.dtype}."
        )
    if class_labels.dtype == torch.bool:
        raise TypeError("`class_labels` must be integers, got a bool tensor.")
    if checks_values() and class_labels.numel() and (class_labels.min() < 0 or class_labels.max() >= num_classes):
        raise ValueError(f"`class_labels` must lie in [0, {num_classes - 1}], got {class_labels.tolist()}.")


def initial_size(resolution: int) -> int:
    """Side of the smallest feature map: 7 for 28x28 images, 4 for the powers of two."""
    return 7 if resolution == 28 else 4


def channel_schedule(resolution: int, base_channels: int) -> list[int]:
    """Channels of each feature map from full resolution down to `initial_size(resolution)`."""
    num_levels = int(math.log2(resolution // initial_size(resolution)))
    return [base_channels * min(2**level, MAX_CHANNEL_MULTIPLIER) for level in range(num_levels + 1)]


def make_norm(norm_type: str, channels: int) -> nn.Module:
    if norm_type == "group":
        return nn.GroupNorm(math.gcd(channels, 32), channels)
    if norm_type == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def checkpointed(owner: nn.Module, function: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
    """`function(*inputs)`, recomputed in the backward pass instead of keeping its activations when `owner` has
    gradient checkpointing on (diffusers' `ModelMixin.enable_gradient_checkpointing` sets both attributes)."""
    if owner.gradient_checkpointing and torch.is_grad_enabled():
        return owner._gradient_checkpointing_func(function, *inputs)
    return function(*inputs)


def run_stages(owner: nn.Module, layers: nn.Sequential, stage_ends: Sequence[int], hidden: torch.Tensor):
    """Runs `layers`; with gradient checkpointing, one recomputed segment per stage (`layers[previous end:end]`)."""
    if not (owner.gradient_checkpointing and torch.is_grad_enabled()):
        return layers(hidden)
    for start, end in pairwise((0, *stage_ends)):
        hidden = checkpointed(owner, layers[start:end], hidden)
    return hidden


class ConvEncoder(nn.Module):
    """Strided-conv stack: image (B, C, R, R) -> features (B, channels[-1], s, s) with s = `initial_size(R)`.

    Used as the encoder of the autoencoders and as the trunk of the discriminator.
    """

    def __init__(
        self,
        in_channels: int,
        resolution: int,
        base_channels: int,
        norm_type: str = "group",
        spectral_norm: bool = False,
    ):
        super().__init__()
        channels = channel_schedule(resolution, base_channels)
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda module: module)
        layers: list[nn.Module] = [wrap(nn.Conv2d(in_channels, channels[0], 3, padding=1)), nn.LeakyReLU(0.2)]
        self.stage_ends = [len(layers)]  # one stage per resolution
        for in_ch, out_ch in pairwise(channels):
            layers += [wrap(nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1)), make_norm(norm_type, out_ch)]
            layers.append(nn.LeakyReLU(0.2))
            self.stage_ends.append(len(layers))
        self.layers = nn.Sequential(*layers)
        self.out_channels = channels[-1]
        self.out_size = initial_size(resolution)
        self.gradient_checkpointing = False

    @property
    def num_features(self) -> int:
        return self.out_channels * self.out_size**2

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return run_stages(self, self.layers, self.stage_ends, images)


class ConvDecoder(nn.Module):
    """Vector (B, in_features) -> image-sized output (B, out_channels, R, R), no output activation.

    Upsampling is nearest-neighbour followed by a 3x3 conv, which avoids the checkerboard artefacts of transposed
    convolutions.
    """

    def __init__(self, in_features: int, out_channels: int, resolution: int, base_channels: int, norm_type="group"):
        super().__init__()
        channels = channel_schedule(resolution, base_channels)[::-1]
        self.start_channels = channels[0]
        self.start_size = initial_size(resolution)
        self.project = nn.Linear(in_features, channels[0] * self.start_size**2)
        layers: list[nn.Module] = [make_norm(norm_type, channels[0]), nn.SiLU()]
        self.stage_ends = [len(layers)]  # one stage per resolution
        for in_ch, out_ch in pairwise(channels):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_ch, out_ch, 3, padding=1)]
            layers += [make_norm(norm_type, out_ch), nn.SiLU()]
            self.stage_ends.append(len(layers))
        layers.append(nn.Conv2d(channels[-1], out_channels, 3, padding=1))
        self.stage_ends[-1] = len(layers)
        self.layers = nn.Sequential(*layers)
        self.gradient_checkpointing = False

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        hidden = self.project(vectors).view(-1, self.start_channels, self.start_size, self.start_size)
        return run_stages(self, self.layers, self.stage_ends, hidden)


@dataclass
class DecoderOutput(BaseOutput):
    """What `decode` returns, as diffusers' autoencoders do.

    Args:
        sample (`torch.Tensor` of shape `(batch_size, channels, height, width)`): the decoded images, in [-1, 1].
    """

    sample: torch.Tensor


class DiagonalGaussian:
    """A diagonal Gaussian over vector latents (B, D), with the interface of diffusers' `DiagonalGaussianDistribution`
    (`mean`, `logvar`, `std`, `var`, `sample(generator)`, `mode()`, `kl()`, `nll()`), defined here because importing
    that class imports all of diffusers' autoencoders.

    `parameters` is (B, 2 * D): the mean then the log-variance, clamped to [-30, 20] as diffusers does. `kl()` and
    `log_prob()` return one value per batch element, summed over the latent dimensions, in nats.
    """

    def __init__(self, parameters: torch.Tensor):
        self.parameters = parameters
        self.mean, logvar = torch.chunk(parameters, 2, dim=1)
        self.logvar = torch.clamp(logvar, -30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A reparameterised draw `mean + std * eps`, `(B, D)`; differentiable in `mean` and `logvar`."""
        noise = randn_tensor(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def _sum_over_latents(self, values: torch.Tensor) -> torch.Tensor:
        return values.flatten(1).sum(dim=1)

    def kl(self, other: "DiagonalGaussian | None" = None) -> torch.Tensor:
        if other is None:
            return 0.5 * self._sum_over_latents(self.mean.pow(2) + self.var - 1.0 - self.logvar)
        return 0.5 * self._sum_over_latents(
            (self.mean - other.mean).pow(2) / other.var + self.var / other.var - 1.0 - self.logvar + other.logvar
        )

    def log_prob(self, latents: torch.Tensor) -> torch.Tensor:
        return -self.nll(latents)

    def nll(self, latents: torch.Tensor, dims: Sequence[int] | None = None) -> torch.Tensor:
        per_dim = 0.5 * (math.log(2.0 * math.pi) + self.logvar + (latents - self.mean).pow(2) / self.var)
        return per_dim.sum(dim=tuple(dims)) if dims is not None else self._sum_over_latents(per_dim)


def standard_normal_log_prob(latents: torch.Tensor) -> torch.Tensor:
    """log N(latents; 0, I), summed over all but the batch dimension (nats)."""
    return -0.5 * (latents.pow(2) + math.log(2.0 * math.pi)).flatten(1).sum(dim=1)
