"""The VAE-GAN recipe of ``examples/train_vaegan.py`` (Larsen et al., 2016, Algorithm 1).

Per batch, under ``accelerator.accumulate``: encode the real images, draw posterior latents, decode them
(reconstructions) together with prior latents (samples), then

- **Dmain + Dreg**: the discriminator learns real vs both kinds of decoded images (lazy R1);
- **Encoder**: ``beta * KL + L`` and **decoder**: ``gamma * L + adversarial``, against the updated, frozen
  discriminator, in one backward pass; ``L`` is the reconstruction term (half the squared distance between the
  discriminator's features of the images and of their reconstructions, or a pixel ``-log p(x|z)``) and
  ``adversarial`` the generator loss on reconstructions plus that on prior samples;
- the EMA of the encoder and decoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from torch import nn

from ..models.vae import VAE
from ..models.vaegan import VAEGAN, feature_reconstruction_nll
from .losses import GAN_LOSSES, discriminator_loss, generator_loss, lazy_r1
from .update import Network, Trainer, frozen
from .vae import kl_weight

# The VAE-GAN's discriminator update has no interpolates, so WGAN-GP's penalty has nothing to act on.
VAEGAN_LOSSES = tuple(loss for loss in GAN_LOSSES if loss != "wgan-gp")


class VAEGANForward(NamedTuple):
    kl: torch.Tensor
    latents: torch.Tensor
    decoder_latents: torch.Tensor
    reconstruction: torch.Tensor
    prior_images: torch.Tensor
    pixel_nll: torch.Tensor | None


class VAEGANObjective(nn.Module):
    """The VAE half of a VAE-GAN step as a forward pass, for ``accelerator.prepare`` (DDP synchronises the gradients
    of ``forward`` calls only).

    ``forward(images, prior_latents, generator)`` encodes ``images``, draws latents from the posterior and decodes
    them together with ``prior_latents``. The decoder reads the posterior latents through a detached leaf
    (``decoder_latents``), so that the encoder's and the decoder's gradients of the reconstruction term can be
    weighted differently (1 and gamma) in a single backward pass: see :class:`VAEGANTrainer`.

    Returns a :class:`VAEGANForward`: per-example ``kl`` ``(B,)``, ``latents`` (with the encoder's graph),
    ``decoder_latents``, ``reconstruction`` and ``prior_images`` in [-1, 1], and the per-example pixel
    ``-log p(x|z)`` when ``pixel_likelihood`` (else ``None``).
    """

    def __init__(self, vae: VAE, pixel_likelihood: bool):
        super().__init__()
        self.model = vae
        self.pixel_likelihood = pixel_likelihood

    def forward(
        self, images: torch.Tensor, prior_latents: torch.Tensor, generator: torch.Generator | None = None
    ) -> VAEGANForward:
        posterior = self.model.encode(images).latent_dist
        latents = posterior.sample(generator=generator)
        # float32, so that Accelerate's conversion of the outputs to float32 returns this very tensor
        decoder_latents = latents.detach().float().requires_grad_(True)
        decoded = self.model.decode(torch.cat([decoder_latents, prior_latents.to(decoder_latents)])).sample
        reconstruction, prior_images = decoded.split(len(images))
        pixel_nll = self.model.reconstruction_nll(images, decoder_latents) if self.pixel_likelihood else None
        return VAEGANForward(posterior.kl(), latents, decoder_latents, reconstruction, prior_images, pixel_nll)


class VAEGANTrainer(Trainer):
    """One VAE-GAN update per batch (see the module docstring).

    Args:
        accelerator: The run's Accelerator.
        vae: The network of the prepared :class:`VAEGANObjective` (encoder and decoder).
        discriminator: The ``Discriminator`` network.
        loss: One of :data:`VAEGAN_LOSSES`.
        feature_loss_weight: gamma, the decoder's weight of the reconstruction term against the adversarial loss.
        beta: Weight of the KL term after the warm-up.
        kl_warmup_steps: Optimizer steps over which the KL weight rises linearly from 0 to ``beta``.
        r1_gamma: Weight of R1 (``gamma / 2 * ||grad D(real)||^2``); 0 disables it.
        r1_interval: Apply R1 every this many steps, scaled by the interval (lazy regularisation).
        options: ``ema`` (of the encoder and decoder), ``max_grad_norm``, ``rng``, ``channels_last`` of
            :class:`~hf_vaegan.training.update.Trainer`.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        vae: Network,
        discriminator: Network,
        *,
        loss: str = "non-saturating",
        feature_loss_weight: float = 1.0,
        beta: float = 1.0,
        kl_warmup_steps: int = 0,
        r1_gamma: float = 0.0,
        r1_interval: int = 16,
        **options,
    ):
        if loss not in VAEGAN_LOSSES:
            raise ValueError(f"loss must be one of {VAEGAN_LOSSES}, got {loss!r}")
        if r1_gamma < 0 or r1_interval < 1:
            raise ValueError(f"r1_gamma must be >= 0 and r1_interval >= 1, got {r1_gamma} and {r1_interval}")
        super().__init__(accelerator, **options)
        self.vae, self.discriminator = vae, discriminator
        self.loss, self.feature_loss_weight = loss, feature_loss_weight
        self.beta, self.kl_warmup_steps = beta, kl_warmup_steps
        self.r1_gamma, self.r1_interval = r1_gamma, r1_interval

    def train_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        """Train on ``batch["pixel_values"]`` ``(B, C, H, W)`` in [-1, 1]; ``step`` is the 1-based optimizer step.

        Returns the losses (``encoder_loss``, ``decoder_loss``, ``d_loss``), the ELBO terms (``reconstruction_nll``,
        ``kl``, ``negative_elbo``), the adversarial loss ``g_loss``, R1, mean logits, gradient norms, learning rates
        and the KL weight, averaged over the processes.
        """
        accelerator, vae, discriminator = self.accelerator, self.vae, self.discriminator
        real = self.images(batch["pixel_values"])
        batch_size = real.shape[0]
        apply_r1 = self.r1_gamma > 0 and step % self.r1_interval == 0
        weight = kl_weight(step, self.beta, self.kl_warmup_steps)
        logs: dict[str, float] = {}
        with accelerator.accumulate(vae.model, discriminator.model):
            prior_latents = torch.randn(
                batch_size, vae.bare.model.config.latent_dim, generator=self.rng, device=real.device
            )
            out = vae.model(real, prior_latents, self.rng)
            fakes = self.images(torch.cat([out.reconstruction, out.prior_images]))

            # Dmain + Dreg: real images vs reconstructions and prior samples, one forward pass over all of them.
            real_input = real.detach().requires_grad_(apply_r1)
            logits, _ = discriminator.model(torch.cat([real_input, fakes.detach()]), return_dict=False)
            real_logits, fake_logits = logits.float().split([batch_size, 2 * batch_size])
            d_loss = discriminator_loss(real_logits, fake_logits, self.loss)
            penalties: dict[str, torch.Tensor] = {}
            if apply_r1:
                weighted, penalties["r1"] = lazy_r1(real_logits, real_input, self.r1_gamma, self.r1_interval)
                d_loss = d_loss + weighted
            logs |= self.update_discriminator(discriminator, d_loss, step, real_logits, fake_logits, **penalties)

            # Encoder and decoder, against the updated discriminator.
            with frozen(discriminator.bare):
                logits, features = discriminator.bare(torch.cat([real, fakes]), return_dict=False)
                _, reconstruction_logits, prior_logits = logits.float().chunk(3)
                if out.pixel_nll is None:
                    real_features, reconstruction_features, _ = features.float().chunk(3)
                    reconstruction_nll = feature_reconstruction_nll(real_features, reconstruction_features).mean()
                else:
                    reconstruction_nll = out.pixel_nll.float().mean()
                adversarial = generator_loss(reconstruction_logits, self.loss)
                adversarial = adversarial + generator_loss(prior_logits, self.loss)
                kl = out.kl.float().mean()
                # The decoder read the latents through a leaf, so the backward pass of `gamma * L` reaches the
                # decoder only; the encoder gets L's gradient with weight 1 through the chain rule at the leaf.
                (latent_gradient,) = torch.autograd.grad(reconstruction_nll, out.decoder_latents, retain_graph=True)
                encoder_surrogate = (out.latents.float() * latent_gradient).sum()
                decoder_loss = self.feature_loss_weight * reconstruction_nll + adversarial
                vae_loss = weight * kl + encoder_surrogate + decoder_loss
                logs |= self.update(
                    vae,
                    vae_loss,
                    step,
                    "vae_grad_norm",
                    encoder_loss=weight * kl + reconstruction_nll,
                    decoder_loss=decoder_loss,
                    g_loss=adversarial,
                    reconstruction_nll=reconstruction_nll,
                    kl=kl,
                    negative_elbo=reconstruction_nll + kl,
                )

        logs |= self.end_step(vae.bare, vae=vae, discriminator=discriminator)
        if accelerator.sync_gradients:
            logs["kl_weight"] = weight
        return logs


def averaged_vaegan(vaegan: VAEGAN, ema: EMAModel | None) -> VAEGAN:
    """A copy of ``vaegan`` in eval mode whose encoder and decoder hold the EMA weights.

    Built anew rather than deep-copied: the prepared submodules carry Accelerate's mixed-precision forward.
    """
    config = {name: value for name, value in vaegan.config.items() if name != "_use_default_values"}
    averaged = VAEGAN.from_config(config).to(vaegan.device)
    averaged.load_state_dict(vaegan.state_dict())
    if ema is not None:
        ema.copy_to(averaged.vae.parameters())
    return averaged.eval()
