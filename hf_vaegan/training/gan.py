"""The GAN recipe of ``examples/train_gan.py``: StyleGAN2-ADA's loop minus the style network.

Per batch, under ``accelerator.accumulate``:

- **Dmain**: generate from fresh noise (and the batch's labels when conditional); the discriminator's adversarial
  loss on real vs generated images, both through DiffAugment, in one forward pass;
- **Dreg**: lazy R1 every ``r1_interval`` steps (scaled by the interval), or WGAN-GP's penalty on interpolates;
- **Gmain**: the generator's adversarial loss against the updated, frozen discriminator, plus the mode-seeking term
  on twins generated in the same pass;
- the generator's EMA.

Every term is in :mod:`~hf_vaegan.training.losses`; each update is :func:`~hf_vaegan.training.update.optimizer_update`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from accelerate import Accelerator
from torch import nn

from .losses import (
    GRADIENT_PENALTY_WEIGHT,
    discriminator_loss,
    generator_loss,
    input_gradient_penalty,
    lazy_r1,
    mode_seeking_loss,
)
from .state import CheckpointedTensors, create_fixed_sample_inputs
from .update import AdversarialTrainer, Network, frozen


class GANTrainer(AdversarialTrainer):
    """One G+D update per batch (see the module docstring).

    Args:
        accelerator: The run's Accelerator.
        generator: The ``Generator`` network.
        discriminator: The ``Discriminator`` network.
        r1_gamma: Weight of R1 (``gamma / 2 * ||grad D(real)||^2``); 0 disables it.
        r1_interval: Apply R1 every this many steps, scaled by the interval (lazy regularisation).
        mode_seeking_weight: Weight of the mode-seeking term over half a batch of twins (same labels, new noise);
            0 disables it.
        fast_generator: Train the generator through its phase-decomposed upsampling convolutions
            (``Generator.phase_upsampling_in_training``): the same function up to float rounding, 1.3-1.9x faster
            generator passes on CPU.
        options: ``loss``, ``augment`` of :class:`~hf_vaegan.training.update.AdversarialTrainer`; ``ema``,
            ``max_grad_norm``, ``rng``, ``channels_last`` of :class:`~hf_vaegan.training.update.Trainer`.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        generator: Network,
        discriminator: Network,
        *,
        r1_gamma: float = 0.0,
        r1_interval: int = 16,
        mode_seeking_weight: float = 0.0,
        fast_generator: bool = True,
        **options,
    ):
        if r1_gamma < 0 or r1_interval < 1:
            raise ValueError(f"r1_gamma must be >= 0 and r1_interval >= 1, got {r1_gamma} and {r1_interval}")
        if mode_seeking_weight < 0:
            raise ValueError(f"mode_seeking_weight must be >= 0, got {mode_seeking_weight}")
        super().__init__(accelerator, **options)
        self.generator, self.discriminator = generator, discriminator
        self.r1_gamma, self.r1_interval = r1_gamma, r1_interval
        self.mode_seeking_weight = mode_seeking_weight
        self.conditional = generator.bare.config.num_classes > 0
        if hasattr(generator.bare, "phase_upsampling_in_training"):
            generator.bare.phase_upsampling_in_training = fast_generator

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
        accelerator, generator, discriminator = self.accelerator, self.generator, self.discriminator
        real = self.images(batch["pixel_values"])
        labels = batch.get("labels") if self.conditional else None
        if self.conditional and labels is None:
            raise ValueError("a class-conditional GAN needs batches with 'labels'")
        apply_r1 = self.r1_gamma > 0 and step % self.r1_interval == 0
        logs: dict[str, float] = {}
        with accelerator.accumulate(generator.model, discriminator.model):
            # With mode seeking, the first half of the batch gets twins (same labels, new noise), generated in the
            # same pass: one forward of the (DDP-wrapped) generator per backward.
            batch_size = real.shape[0]
            num_twins = max(1, batch_size // 2) if self.mode_seeking_weight > 0 else 0
            noise = torch.randn(
                batch_size + num_twins, generator.bare.config.latent_dim, generator=self.rng, device=real.device
            )
            generator_labels = None if labels is None else torch.cat([labels, labels[:num_twins]])
            generated = generator.model(noise, generator_labels).sample
            fake, twins = generated[:batch_size], generated[batch_size:]

            # Dmain + Dreg: real vs generated, one forward pass over both (and the interpolates of WGAN-GP).
            real_input = self.augment(real, self.rng).detach().requires_grad_(apply_r1)
            fake_input = self.augment(fake.detach(), self.rng)
            inputs = [real_input, fake_input]
            if self.loss == "wgan-gp":
                mix = torch.rand(real.shape[0], 1, 1, 1, generator=self.rng, device=real.device, dtype=real.dtype)
                inputs.append(torch.lerp(real_input.detach(), fake_input, mix).requires_grad_(True))
            both_labels = None if labels is None else labels.repeat(len(inputs))
            logits = discriminator.model(torch.cat(inputs), both_labels).logits.float()
            real_logits, fake_logits, *mixed_logits = logits.chunk(len(inputs))
            d_loss = discriminator_loss(real_logits, fake_logits, self.loss)
            penalties: dict[str, torch.Tensor] = {}
            if mixed_logits:
                penalties["gradient_penalty"] = input_gradient_penalty(mixed_logits[0], inputs[2], target_norm=1.0)
                d_loss = d_loss + GRADIENT_PENALTY_WEIGHT * penalties["gradient_penalty"]
            if apply_r1:
                weighted, penalties["r1"] = lazy_r1(real_logits, real_input, self.r1_gamma, self.r1_interval)
                d_loss = d_loss + weighted
            logs |= self.update_discriminator(discriminator, d_loss, step, real_logits, fake_logits, **penalties)

            # Gmain: fool the updated discriminator, without varying the noise in vain.
            with frozen(discriminator.bare):
                g_logits = discriminator.bare(self.augment(fake, self.rng), labels).logits.float()
                g_loss = generator_loss(g_logits, self.loss)
                g_values = {"g_loss": g_loss}
                if num_twins:
                    g_values["mode_seeking"] = mode_seeking_loss(
                        noise[:num_twins], fake[:num_twins], noise[batch_size:], twins
                    )
                    g_loss = g_loss + self.mode_seeking_weight * g_values["mode_seeking"]
                logs |= self.update(generator, g_loss, step, "g_grad_norm", **g_values)

        return logs | self.end_step(generator.bare, generator=generator, discriminator=discriminator)


def create_sample_inputs(
    accelerator: Accelerator, latent_dim: int, num_images: int, num_classes: int, seed: int
) -> CheckpointedTensors:
    """Fixed noise (and labels) of the sample grids, checkpointed as ``sample_inputs``.

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
