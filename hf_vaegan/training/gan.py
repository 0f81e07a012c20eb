"""GAN training craft: adversarial losses, R1 and WGAN-GP penalties, DiffAugment, and the G+D update step.

The losses follow the StyleGAN2-ADA recipe (Karras et al., 2020): the non-saturating logistic loss with lazy R1
regularisation, hinge (Miyato et al., 2018) and WGAN-GP (Gulrajani et al., 2017). Differentiable augmentation
(Zhao et al., 2020) applies the same random translation / cutout / colour changes to real and generated images before
the discriminator, which keeps it from memorising small datasets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from torch import nn

from .common import CheckpointedTensors, create_fixed_sample_inputs
from .update import check_finite

GAN_LOSSES = ("non-saturating", "hinge", "wgan-gp")
DIFFAUGMENT_OPERATIONS = ("translation", "cutout", "color")
# WGAN-GP: weight of the gradient penalty, and of the drift term keeping critic outputs near 0 (Karras et al., 2018).
GRADIENT_PENALTY_WEIGHT = 10.0
WGAN_DRIFT_WEIGHT = 1e-3


# Losses


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    """The discriminator's adversarial loss (without penalties), averaged over the batch.

    Args:
        real_logits: ``(B,)`` logits of real images; positive means "real".
        fake_logits: ``(B,)`` logits of generated images.
        loss: One of :data:`GAN_LOSSES`.
    """
    if loss == "non-saturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if loss == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    if loss == "wgan-gp":
        return fake_logits.mean() - real_logits.mean() + WGAN_DRIFT_WEIGHT * real_logits.pow(2).mean()
    raise ValueError(f"loss must be one of {GAN_LOSSES}, got {loss!r}")


def generator_loss(fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    """The generator's adversarial loss for the discriminator's ``(B,)`` logits of generated images."""
    if loss == "non-saturating":
        return F.softplus(-fake_logits).mean()
    if loss in ("hinge", "wgan-gp"):
        return -fake_logits.mean()
    raise ValueError(f"loss must be one of {GAN_LOSSES}, got {loss!r}")


def input_gradient_penalty(outputs: torch.Tensor, inputs: torch.Tensor, target_norm: float = 0.0) -> torch.Tensor:
    """Mean over the batch of ``(||d outputs.sum() / d inputs|| - target_norm)^2``, differentiable (create_graph).

    ``target_norm=0`` gives the R1 penalty (squared gradient norm on real images, Mescheder et al., 2018);
    ``target_norm=1`` on real/fake interpolates gives the WGAN-GP penalty.
    """
    (gradients,) = torch.autograd.grad(outputs.float().sum(), inputs, create_graph=True)
    squared_norms = gradients.float().pow(2).flatten(1).sum(dim=1)
    if target_norm == 0.0:
        return squared_norms.mean()
    return (squared_norms.add(1e-12).sqrt() - target_norm).pow(2).mean()


# Differentiable augmentation


def parse_diffaugment_policy(policy: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"translation,cutout,color"`` -> ``("translation", "cutout", "color")``; ``""``/``"none"``/``None`` -> ``()``.

    Raises ``ValueError`` naming unknown operations.
    """
    if policy is None:
        return ()
    names = [name.strip() for name in policy.split(",")] if isinstance(policy, str) else list(policy)
    names = [name for name in names if name and name != "none"]
    unknown = [name for name in names if name not in DIFFAUGMENT_OPERATIONS]
    if unknown:
        raise ValueError(f"unknown DiffAugment operation(s) {unknown}; choose from {DIFFAUGMENT_OPERATIONS}")
    return tuple(dict.fromkeys(names))


class DiffAugment:
    """Differentiable augmentation of image batches ``(B, C, H, W)`` in [-1, 1], each image drawn independently.

    Operations (Zhao et al., 2020): ``translation`` shifts by up to 1/8 of the size, filling with zeros;
    ``cutout`` zeroes a square of half the size; ``color`` shifts brightness by U(-0.5, 0.5), scales saturation by
    U(0, 2) and contrast by U(0.5, 1.5). Gradients flow through all of them to the generator.

    Args:
        policy: Operations to apply, as for :func:`parse_diffaugment_policy`.
    """

    def __init__(self, policy: str | Iterable[str] | None):
        self.operations = parse_diffaugment_policy(policy)

    def __bool__(self) -> bool:
        return bool(self.operations)

    def __repr__(self) -> str:
        return f"DiffAugment({','.join(self.operations) or 'none'})"

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for operation in self.operations:
            images = getattr(self, f"_{operation}")(images, generator)
        return images

    @staticmethod
    def _uniform(images: torch.Tensor, generator: torch.Generator | None, low: float, high: float) -> torch.Tensor:
        draws = torch.rand(images.shape[0], 1, 1, 1, generator=generator, device=images.device, dtype=images.dtype)
        return low + (high - low) * draws

    def _color(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        images = images + self._uniform(images, generator, -0.5, 0.5)
        channel_mean = images.mean(dim=1, keepdim=True)
        images = (images - channel_mean) * self._uniform(images, generator, 0.0, 2.0) + channel_mean
        image_mean = images.mean(dim=(1, 2, 3), keepdim=True)
        return (images - image_mean) * self._uniform(images, generator, 0.5, 1.5) + image_mean

    @staticmethod
    def _offsets(images: torch.Tensor, generator: torch.Generator | None, low: int, high: int) -> torch.Tensor:
        """Integer draws in [low, high] per image, for rows and columns: ``(2, B)``."""
        return torch.randint(low, high + 1, (2, images.shape[0]), generator=generator, device=images.device)

    def _translation(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        batch, _, height, width = images.shape
        max_shift = round(min(height, width) / 8)
        shift_y, shift_x = self._offsets(images, generator, -max_shift, max_shift)
        rows = torch.arange(height, device=images.device)[None, :, None] - shift_y[:, None, None]
        cols = torch.arange(width, device=images.device)[None, None, :] - shift_x[:, None, None]
        # Source pixels outside the image read the zero border of the padded copy.
        rows = rows.clamp(-1, height) + 1
        cols = cols.clamp(-1, width) + 1
        padded = F.pad(images, (1, 1, 1, 1)).permute(0, 2, 3, 1)
        batch_index = torch.arange(batch, device=images.device)[:, None, None]
        return padded[batch_index, rows, cols].permute(0, 3, 1, 2).contiguous(memory_format=_memory_format(images))

    def _cutout(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        _, _, height, width = images.shape
        size_y, size_x = height // 2, width // 2
        center_y, center_x = self._offsets(images, generator, 0, max(height, width) - 1)
        center_y, center_x = center_y % height, center_x % width
        rows = torch.arange(height, device=images.device)[None, :, None]
        cols = torch.arange(width, device=images.device)[None, None, :]
        inside = ((rows - center_y[:, None, None]).abs() * 2 < size_y) & (
            (cols - center_x[:, None, None]).abs() * 2 < size_x
        )
        return images * (~inside)[:, None].to(images.dtype)


def _memory_format(images: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if images.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


# Fixed inputs of the sample grids


def create_sample_inputs(
    accelerator: Accelerator, latent_dim: int, num_images: int, num_classes: int, seed: int
) -> CheckpointedTensors:
    """Fixed noise (and labels) of the sample grids, registered for checkpointing.

    Conditional models get one row per class (``num_images // num_classes`` images per row, at least one), so the
    grid shows what each class looks like.
    """
    if num_classes:
        per_class = max(1, num_images // num_classes)
        num_images = per_class * num_classes
        labels = torch.arange(num_classes).repeat_interleave(per_class)
    else:
        labels = torch.zeros(0, dtype=torch.long)
    noise = torch.randn(num_images, latent_dim, generator=torch.Generator().manual_seed(seed))
    return create_fixed_sample_inputs(accelerator, noise=noise, labels=labels)


@torch.no_grad()
def generate_sample_images(generator: nn.Module, inputs: CheckpointedTensors) -> torch.Tensor:
    """Images ``(N, C, H, W)`` in [-1, 1] from the fixed sample inputs (run in eval mode, in float32)."""
    labels = inputs.labels if len(inputs.labels) else None
    return generator(inputs.noise.to(generator.device, generator.dtype), labels).sample.float()


# The training step


class GANTrainer:
    """One G+D update per batch, under ``accelerator.accumulate``: the StyleGAN2-ADA loop minus the style network.

    For each batch: generate images from fresh noise (and the batch's labels when conditional); update the
    discriminator on real vs generated (with DiffAugment on both, lazy R1 every ``r1_interval`` steps, or the
    WGAN gradient penalty); then update the generator against the updated discriminator; then the generator EMA.
    NaN/inf losses or gradient norms stop the run before the optimizer step (:func:`check_finite`).

    Args:
        accelerator: The run's Accelerator.
        generator: Prepared ``Generator``.
        discriminator: Prepared ``Discriminator``.
        generator_optimizer: Prepared optimizer of the generator.
        discriminator_optimizer: Prepared optimizer of the discriminator.
        generator_lr_scheduler: Prepared scheduler of the generator, or ``None``.
        discriminator_lr_scheduler: Prepared scheduler of the discriminator, or ``None``.
        loss: One of :data:`GAN_LOSSES`.
        r1_gamma: Weight of R1 (``gamma / 2 * ||grad D(real)||^2``); 0 disables it.
        r1_interval: Apply R1 every this many steps, scaled by the interval (lazy regularisation).
        augment: Differentiable augmentation of the discriminator inputs.
        max_grad_norm: Clip both gradient norms to this; ``None`` only measures them.
        mode_seeking_weight: Weight of the mode-seeking term of the generator loss (Mao et al., 2019): the inverse
            of how far apart two images of the same class are, relative to their noise vectors, over half a batch of
            extra images, so that the generator cannot ignore its noise (conditional GANs tend to produce one image
            per class otherwise); 0 disables it.
        ema: EMA of the generator's parameters, stepped after each generator update.
        rng: Generator of the noise and augmentations (see ``create_training_rng``).
        channels_last: Feed the models channels-last images.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        generator: nn.Module,
        discriminator: nn.Module,
        generator_optimizer: torch.optim.Optimizer,
        discriminator_optimizer: torch.optim.Optimizer,
        generator_lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        discriminator_lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        *,
        loss: str = "non-saturating",
        r1_gamma: float = 0.0,
        r1_interval: int = 16,
        augment: DiffAugment | None = None,
        max_grad_norm: float | None = None,
        mode_seeking_weight: float = 0.0,
        ema: EMAModel | None = None,
        rng: torch.Generator | None = None,
        channels_last: bool = False,
    ):
        if loss not in GAN_LOSSES:
            raise ValueError(f"loss must be one of {GAN_LOSSES}, got {loss!r}")
        if r1_gamma < 0 or r1_interval < 1:
            raise ValueError(f"r1_gamma must be >= 0 and r1_interval >= 1, got {r1_gamma} and {r1_interval}")
        self.accelerator = accelerator
        self.generator = generator
        self.discriminator = discriminator
        # The generator's update calls the bare discriminator with frozen weights: no wasted weight gradients, and
        # no DDP reducer waiting for gradients that never come.
        self.bare_discriminator = accelerator.unwrap_model(discriminator)
        self.bare_generator = accelerator.unwrap_model(generator)
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        self.generator_lr_scheduler = generator_lr_scheduler
        self.discriminator_lr_scheduler = discriminator_lr_scheduler
        self.loss = loss
        self.r1_gamma = r1_gamma
        self.r1_interval = r1_interval
        self.augment = augment or DiffAugment(None)
        if mode_seeking_weight < 0:
            raise ValueError(f"mode_seeking_weight must be >= 0, got {mode_seeking_weight}")
        self.max_grad_norm = max_grad_norm
        self.mode_seeking_weight = mode_seeking_weight
        self.ema = ema
        self.rng = rng
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.conditional = self.bare_generator.config.num_classes > 0

    def _clip(self, model: nn.Module) -> torch.Tensor:
        """Unscaled global gradient norm before clipping (clipping only when ``max_grad_norm`` is set)."""
        return self.accelerator.clip_grad_norm_(model.parameters(), self.max_grad_norm or math.inf)

    def _check(self, step: int, **values: torch.Tensor) -> dict[str, float]:
        # An fp16 gradient scaler makes inf gradient norms routine (it then skips the step); losses must stay finite.
        if self.accelerator.scaler is not None:
            values = {name: value for name, value in values.items() if "grad_norm" not in name}
        return check_finite(self.accelerator, step, **values)

    @staticmethod
    def _mode_seeking_loss(noise: torch.Tensor, images: torch.Tensor, twin_noise: torch.Tensor, twins: torch.Tensor):
        """Mao et al. (2019): 1 / mean(|G(z1) - G(z2)|_1 / |z1 - z2|_1) over pairs of images of the same class."""
        image_distance = (images - twins).abs().float().flatten(1).mean(dim=1)
        noise_distance = (noise - twin_noise).abs().mean(dim=1)
        return 1.0 / ((image_distance / noise_distance).mean() + 1e-5)

    def train_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        """Train on one batch ``{"pixel_values": (B, C, H, W) in [-1, 1], "labels": (B,)}``.

        Args:
            batch: The batch; ``labels`` is required by conditional models and ignored otherwise.
            step: Number of the optimizer step this batch contributes to (1-based): decides the lazy R1 steps and
                names the step in divergence errors.

        Returns:
            Losses, penalties, mean logits, gradient norms (at optimizer steps) and learning rates, averaged over
            the processes.
        """
        accelerator = self.accelerator
        real = batch["pixel_values"].contiguous(memory_format=self.memory_format)
        labels = batch.get("labels") if self.conditional else None
        if self.conditional and labels is None:
            raise ValueError("a class-conditional GAN needs batches with 'labels'")
        apply_r1 = self.r1_gamma > 0 and step % self.r1_interval == 0
        logs: dict[str, float] = {}
        with accelerator.accumulate(self.generator, self.discriminator):
            # With mode seeking, the first half of the batch gets twins (same labels, new noise), generated in the
            # same pass: one forward of the (DDP-wrapped) generator per backward.
            batch_size = real.shape[0]
            num_twins = max(1, batch_size // 2) if self.mode_seeking_weight > 0 else 0
            noise = torch.randn(
                batch_size + num_twins, self.bare_generator.config.latent_dim, generator=self.rng, device=real.device
            )
            generator_labels = None if labels is None else torch.cat([labels, labels[:num_twins]])
            generated = self.generator(noise, generator_labels).sample
            fake, twins = generated[:batch_size], generated[batch_size:]

            # Discriminator: real vs generated, one forward pass over both.
            real_input = self.augment(real, self.rng).detach().requires_grad_(apply_r1)
            fake_input = self.augment(fake.detach(), self.rng)
            inputs = [real_input, fake_input]
            if self.loss == "wgan-gp":
                mix = torch.rand(real.shape[0], 1, 1, 1, generator=self.rng, device=real.device, dtype=real.dtype)
                inputs.append(torch.lerp(real_input.detach(), fake_input, mix).requires_grad_(True))
            both_labels = None if labels is None else labels.repeat(len(inputs))
            logits = self.discriminator(torch.cat(inputs), both_labels).logits.float()
            real_logits, fake_logits, *mixed_logits = logits.chunk(len(inputs))
            d_loss = discriminator_loss(real_logits, fake_logits, self.loss)
            penalties: dict[str, torch.Tensor] = {}
            if mixed_logits:
                penalties["gradient_penalty"] = input_gradient_penalty(mixed_logits[0], inputs[2], target_norm=1.0)
                d_loss = d_loss + GRADIENT_PENALTY_WEIGHT * penalties["gradient_penalty"]
            if apply_r1:
                penalties["r1"] = input_gradient_penalty(real_logits, real_input)
                d_loss = d_loss + 0.5 * self.r1_gamma * self.r1_interval * penalties["r1"]
            accelerator.backward(d_loss)
            d_values = {"d_loss": d_loss, "real_logits": real_logits.mean(), "fake_logits": fake_logits.mean()}
            if accelerator.sync_gradients:
                d_values["d_grad_norm"] = self._clip(self.discriminator)
            logs |= self._check(step, **d_values, **penalties)
            self.discriminator_optimizer.step()
            if self.discriminator_lr_scheduler is not None:
                self.discriminator_lr_scheduler.step()
            self.discriminator_optimizer.zero_grad(set_to_none=True)

            # Generator: fool the updated discriminator.
            self.bare_discriminator.requires_grad_(False)
            try:
                g_logits = self.bare_discriminator(self.augment(fake, self.rng), labels).logits.float()
                g_loss = generator_loss(g_logits, self.loss)
                g_values = {"g_loss": g_loss}
                if num_twins:
                    g_values["mode_seeking"] = self._mode_seeking_loss(
                        noise[:num_twins], fake[:num_twins], noise[batch_size:], twins
                    )
                    g_loss = g_loss + self.mode_seeking_weight * g_values["mode_seeking"]
                accelerator.backward(g_loss)
            finally:
                self.bare_discriminator.requires_grad_(True)
            if accelerator.sync_gradients:
                g_values["g_grad_norm"] = self._clip(self.generator)
            logs |= self._check(step, **g_values)
            self.generator_optimizer.step()
            if self.generator_lr_scheduler is not None:
                self.generator_lr_scheduler.step()
            self.generator_optimizer.zero_grad(set_to_none=True)

        if accelerator.sync_gradients:
            if self.ema is not None:
                self.ema.step(self.bare_generator.parameters())
            logs["lr_generator"] = self.generator_optimizer.param_groups[0]["lr"]
            logs["lr_discriminator"] = self.discriminator_optimizer.param_groups[0]["lr"]
        return logs
