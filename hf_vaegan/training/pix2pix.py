"""The pix2pix recipe of ``examples/train_pix2pix.py`` (Isola et al., 2017), the U-Net / PatchGAN calls that the
CycleGAN and try-on recipes share, and the conditional PatchGAN's phases that the try-on recipe shares
(:class:`ConditionalPatchGANTrainer`).

Per batch, under ``accelerator.accumulate``:

- **Dmain**: a conditional PatchGAN judges (source, target) vs (source, output) pairs, both through DiffAugment
  (pairs augmented alike), in one forward pass;
- **Gmain**: the adversarial loss against the updated, frozen PatchGAN + ``l1_weight`` x the L1 distance to the
  target [+ ``feature_matching_weight`` x the feature-matching loss of pix2pixHD on un-augmented pairs];
- the generator's EMA.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn

from .losses import discriminator_loss, feature_matching_loss, generator_loss
from .model_args import IMAGE_TO_IMAGE_GAN_LOSSES
from .update import AdversarialTrainer, Network, frozen


def translate(generator: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """A U-Net generator's output images for ``images``."""
    # Tuples, not output dataclasses: accelerate's fp32 conversion of mixed-precision outputs rebuilds dataclasses
    # from a dict, which fails for outputs with several required fields.
    return generator(images, return_dict=False)[0]


def judge(discriminator: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Float32 patch logits and hidden features of a PatchGAN for ``images``."""
    logits, features = discriminator(images, return_dict=False)
    return logits.float(), features


@torch.no_grad()
def translate_samples(generator: nn.Module, sources: torch.Tensor) -> torch.Tensor:
    """A generator's outputs ``(N, C, H, W)`` (float32) for the fixed sources of the sample grids."""
    return translate(generator, sources.to(generator.device, generator.dtype)).float()


class ConditionalPatchGANTrainer(AdversarialTrainer):
    """An :class:`~hf_vaegan.training.update.AdversarialTrainer` against a conditional PatchGAN, which judges
    (input, image) pairs stacked on the channels: the phases of pix2pix that the try-on recipe shares.

    - :meth:`discriminator_update` (Dmain): real vs generated pairs, through DiffAugment (pairs augmented alike), in
      one forward pass;
    - :meth:`adversarial_loss` and :meth:`feature_matching` (Gmain, against the updated, frozen PatchGAN): the
      generator's adversarial loss on the augmented generated pairs, and pix2pixHD's feature matching on un-augmented
      pairs.
    """

    LOSSES = IMAGE_TO_IMAGE_GAN_LOSSES

    def discriminator_update(
        self, discriminator: Network, real_pairs: torch.Tensor, fake_pairs: torch.Tensor, step: int
    ) -> dict[str, float]:
        """One update of ``discriminator`` on real vs (detached) generated pairs; returns its logs."""
        judged = self.augment(torch.cat([real_pairs, fake_pairs.detach()]), self.rng)
        real_logits, fake_logits = judge(discriminator.model, judged)[0].chunk(2)
        d_loss = discriminator_loss(real_logits, fake_logits, self.loss)
        return self.update(discriminator, d_loss, step, "discriminator_grad_norm",
            discriminator_loss=d_loss, real_logits=real_logits.mean(), fake_logits=fake_logits.mean(),
        )  # fmt: skip

    def adversarial_loss(
        self, discriminator: Network, fake_pairs: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The generator's adversarial loss on the augmented generated pairs, and the PatchGAN's hidden features of
        them (for :meth:`feature_matching`). Call it with ``discriminator`` frozen."""
        fake_logits, fake_features = judge(discriminator.bare, self.augment(fake_pairs, self.rng))
        return generator_loss(fake_logits, self.loss), fake_features

    def feature_matching(
        self,
        discriminator: Network,
        real_pairs: torch.Tensor,
        fake_pairs: torch.Tensor,
        fake_features: tuple[torch.Tensor, ...],
    ) -> torch.Tensor:
        """pix2pixHD's feature-matching loss between the PatchGAN's features of real and generated pairs, both
        un-augmented (without augmentation, the ``fake_features`` of :meth:`adversarial_loss` are those)."""
        with torch.no_grad():
            real_features = judge(discriminator.bare, real_pairs)[1]
        if self.augment:
            fake_features = judge(discriminator.bare, fake_pairs)[1]
        return feature_matching_loss(real_features, fake_features)


class Pix2PixTrainer(ConditionalPatchGANTrainer):
    """One pix2pix update per batch (see the module docstring).

    Args:
        accelerator: The run's Accelerator.
        generator: The ``UNetGenerator`` network (source channels in, target channels out).
        discriminator: The ``PatchDiscriminator`` network, ``in_channels`` = source + target channels.
        l1_weight: Weight of the L1 reconstruction loss (100 in pix2pix).
        feature_matching_weight: Weight of the feature-matching loss on un-augmented pairs; 0 disables it.
        options: ``loss``, ``augment`` of :class:`~hf_vaegan.training.update.AdversarialTrainer`; ``ema``,
            ``max_grad_norm``, ``rng``, ``channels_last`` of :class:`~hf_vaegan.training.update.Trainer`.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        generator: Network,
        discriminator: Network,
        *,
        l1_weight: float = 100.0,
        feature_matching_weight: float = 0.0,
        **options,
    ):
        if l1_weight < 0 or feature_matching_weight < 0:
            raise ValueError(f"loss weights must be >= 0, got {l1_weight} and {feature_matching_weight}")
        super().__init__(accelerator, **options)
        self.generator, self.discriminator = generator, discriminator
        self.l1_weight, self.feature_matching_weight = l1_weight, feature_matching_weight

    def train_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        """Train on ``{"source_pixel_values", "target_pixel_values"}`` (``(B, C, H, W)`` in [-1, 1]).

        Args:
            batch: The batch.
            step: Number of the optimizer step this batch contributes to (1-based), for divergence errors.

        Returns:
            Losses, mean logits, the L1 distance, gradient norms and learning rates (at optimizer steps), averaged
            over the processes.
        """
        accelerator, generator, discriminator = self.accelerator, self.generator, self.discriminator
        source = self.images(batch["source_pixel_values"])
        target = self.images(batch["target_pixel_values"])
        logs: dict[str, float] = {}
        with accelerator.accumulate(generator.model, discriminator.model):
            output = translate(generator.model, source)
            real_pairs = torch.cat([source, target], dim=1)
            fake_pairs = torch.cat([source, output.to(source.dtype)], dim=1)

            # Dmain: real vs generated pairs, one forward pass over both.
            logs |= self.discriminator_update(discriminator, real_pairs, fake_pairs, step)

            # Gmain: fool the updated discriminator and stay close to the target.
            with frozen(discriminator.bare):
                adversarial, fake_features = self.adversarial_loss(discriminator, fake_pairs)
                l1 = F.l1_loss(output.float(), target.float())
                g_loss = adversarial + self.l1_weight * l1
                terms = {"adversarial_loss": adversarial, "l1": l1}
                if self.feature_matching_weight:
                    terms["feature_matching_loss"] = self.feature_matching(
                        discriminator, real_pairs, fake_pairs, fake_features
                    )
                    g_loss = g_loss + self.feature_matching_weight * terms["feature_matching_loss"]
                logs |= self.update(generator, g_loss, step, "generator_grad_norm",
                    generator_loss=g_loss, **terms,
                )  # fmt: skip

        return logs | self.end_step(generator.bare, discriminator=discriminator, generator=generator)
