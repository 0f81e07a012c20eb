"""VAE training craft: KL warm-up, held-out data, the VAE and VAE-GAN update steps, reconstruction grids, evaluation.

Used by ``examples/train_vae.py`` (a ``VAE`` or an ``AutoEncoder``) and ``examples/train_vaegan.py`` (a ``VAEGAN``).
The VAE-GAN follows Larsen et al. (2016), Algorithm 1: the encoder minimises beta * KL + the reconstruction term, the
decoder gamma * the reconstruction term + the adversarial loss on reconstructions and prior samples, and the
discriminator the adversarial loss; the reconstruction term is measured in the discriminator's feature space (or,
optionally, with a pixel likelihood).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from PIL import Image
from torch import nn

from ..metrics.likelihood import evaluate_vae, evaluation_mode, negative_elbo, reconstruction_error
from ..models import VAE, AutoEncoder
from ..models.blocks import SUPPORTED_RESOLUTIONS
from ..models.vae import LIKELIHOODS
from ..models.vaegan import feature_reconstruction_nll
from .common import (
    CheckpointedTensors,
    TrainingLoop,
    create_fixed_sample_inputs,
    dataset_hub_ids,
    hub_repo_id,
    log_sample_grid,
    make_sample_grid,
    training_command,
    write_model_card,
)
from .data import ImageDatasetInfo, load_image_dataset, make_image_transform
from .gan import GAN_LOSSES, discriminator_loss, generator_loss, input_gradient_penalty
from .update import check_finite

# The VAE-GAN's discriminator update has no interpolates, so WGAN-GP's penalty has nothing to act on.
VAEGAN_LOSSES = tuple(loss for loss in GAN_LOSSES if loss != "wgan-gp")


# Command-line flags


def add_vae_args(
    parser: argparse.ArgumentParser,
    *,
    likelihoods: tuple[str, ...] = LIKELIHOODS,
    default_likelihood: str = "bernoulli",
    default_latent_dim: int = 16,
    default_learning_rate: float = 1e-3,
) -> argparse._ArgumentGroup:
    """Add the model, KL and held-out evaluation flags shared by ``train_vae.py`` and ``train_vaegan.py``."""
    group = parser.add_argument_group("VAE")
    group.add_argument("--latent_dim", type=int, default=default_latent_dim, help="Size of the latent vector.")
    group.add_argument(
        "--base_channels",
        type=int,
        default=32,
        help="Width of the full-resolution layers of the encoder and decoder; widths double at each halving.",
    )
    group.add_argument(
        "--norm_type",
        type=str,
        choices=("group", "batch", "none"),
        default="group",
        help="Normalisation of the encoder and decoder layers.",
    )
    group.add_argument(
        "--likelihood",
        type=str,
        choices=likelihoods,
        default=default_likelihood,
        help="The reconstruction term -log p(x|z): 'bernoulli' on intensities in [0, 1], or 'gaussian' / 'laplace' "
        "with a learned per-channel scale"
        + (
            ", or 'features': a unit Gaussian on the discriminator's last hidden layer (Larsen et al. 2016)."
            if "features" in likelihoods
            else "."
        ),
    )
    group.add_argument(
        "--beta", type=float, default=1.0, help="Weight of the KL term (beta-VAE, Higgins et al. 2017); 1 is the ELBO."
    )
    group.add_argument(
        "--kl_warmup_steps",
        type=int,
        default=0,
        help="Raise the KL weight linearly from 0 to --beta over this many steps (against posterior collapse).",
    )
    group.add_argument(
        "--learning_rate", type=float, default=default_learning_rate, help="Learning rate of the encoder and decoder."
    )
    group.add_argument(
        "--validation_dataset_name",
        type=str,
        default=None,
        help="Held-out images for the reconstruction grids and the final evaluation, in any form --dataset_name "
        "takes (e.g. the test split). Default: --num_validation_images images held out of the training data.",
    )
    group.add_argument(
        "--validation_split",
        type=str,
        default="test",
        help="The split of --validation_dataset_name to use (ignored by .npz files, which hold one split).",
    )
    group.add_argument(
        "--num_validation_images",
        type=int,
        default=1000,
        help="Number of held-out images: evaluated at every sample grid and at the end (a random subset of "
        "--validation_dataset_name when it is larger).",
    )
    group.add_argument(
        "--num_importance_samples",
        type=int,
        default=100,
        help="Posterior samples of the final importance-weighted NLL bound (IWAE, Burda et al. 2016).",
    )
    return group


def validate_vae_args(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` naming the flag for the values of :func:`add_vae_args` flags argparse cannot check."""
    if not isinstance(args.resolution, int) or args.resolution not in SUPPORTED_RESOLUTIONS:
        raise ValueError(f"--resolution must be one of {SUPPORTED_RESOLUTIONS} (square), got {args.resolution}")
    for name in ("latent_dim", "base_channels", "num_validation_images", "num_importance_samples"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if not (args.beta >= 0 and math.isfinite(args.beta)):
        raise ValueError(f"--beta must be a finite number >= 0, got {args.beta}")
    if args.kl_warmup_steps < 0:
        raise ValueError(f"--kl_warmup_steps must be >= 0, got {args.kl_warmup_steps}")
    if not args.learning_rate > 0:
        raise ValueError(f"--learning_rate must be positive, got {args.learning_rate}")
    if args.num_sample_images < 2:
        raise ValueError(
            f"--num_sample_images must be >= 2 (images and reconstructions), got {args.num_sample_images}"
        )


def kl_weight(step: int, beta: float, warmup_steps: int) -> float:
    """The KL weight at optimizer step ``step`` (1-based): ``beta``, reached linearly over ``warmup_steps``."""
    if warmup_steps == 0:
        return beta
    return beta * min(1.0, step / warmup_steps)


# Held-out data


def split_held_out(args: argparse.Namespace, info: ImageDatasetInfo) -> tuple[ImageDatasetInfo, torch.Tensor]:
    """The training data and the held-out images ``(N, C, resolution, resolution)`` in [-1, 1].

    The held-out images come from ``--validation_dataset_name``, or else are ``--num_validation_images`` images
    removed from the training data (drawn with ``--seed``).
    """
    if args.validation_dataset_name:
        held_out = load_image_dataset(
            args.validation_dataset_name,
            args.dataset_config_name,
            split=args.validation_split,
            image_column=args.image_column,
            cache_dir=args.cache_dir,
            max_train_samples=args.num_validation_images,
            seed=args.seed,
            num_channels=info.num_channels,
        )
        images, image_column = held_out.dataset, held_out.image_column
    else:
        if len(info.dataset) <= args.num_validation_images:
            raise ValueError(
                f"--num_validation_images {args.num_validation_images} would leave no training images out of "
                f"{len(info.dataset)}; lower it or pass --validation_dataset_name"
            )
        parts = info.dataset.train_test_split(test_size=args.num_validation_images, seed=args.seed)
        info = dataclasses.replace(info, dataset=parts["train"])
        images, image_column = parts["test"], info.image_column
    transform = make_image_transform(args.resolution, info.num_channels)
    return info, torch.stack([transform(image) for image in images[image_column]])


# Forward passes (DDP synchronises the gradients of `forward` calls only, so the training losses are forward passes)


class VAEObjective(nn.Module):
    """The training loss of a ``VAE`` or an ``AutoEncoder`` as the forward pass of a module, for
    ``accelerator.prepare``.

    ``forward(images, kl_weight, generator)`` returns, for a VAE, the tuple ``(loss, reconstruction_nll, kl)`` of
    batch means in nats (``loss = reconstruction_nll + kl_weight * kl``, one posterior sample); for an autoencoder,
    the mean squared error. Tuples rather than output dataclasses, which Accelerate's mixed-precision output
    conversion cannot rebuild.
    """

    def __init__(self, model: VAE | AutoEncoder):
        super().__init__()
        self.model = model
        self.variational = not isinstance(model, AutoEncoder)

    def forward(
        self, images: torch.Tensor, kl_weight: float = 1.0, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, ...] | torch.Tensor:
        if not self.variational:
            return self.model.loss(images)
        return self.model.loss(images, beta=kl_weight, generator=generator).to_tuple()


class VAEGANForward(NamedTuple):
    kl: torch.Tensor
    latents: torch.Tensor
    decoder_latents: torch.Tensor
    reconstruction: torch.Tensor
    prior_images: torch.Tensor
    pixel_nll: torch.Tensor | None


class VAEGANObjective(nn.Module):
    """The VAE half of a VAE-GAN step as a forward pass, for ``accelerator.prepare``.

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


# Update steps


def apply_gradients(
    accelerator: Accelerator,
    step: int,
    loss: torch.Tensor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    max_grad_norm: float | None,
    grad_norm_name: str,
    /,
    **values: torch.Tensor,
) -> dict[str, float]:
    """Backward ``loss``, clip ``model``'s gradients at optimizer steps (logging their norm as ``grad_norm_name``),
    stop on NaN/inf ``values`` (:func:`check_finite`), then step the optimizer and scheduler.

    Returns the ``values`` (and the gradient norm) averaged over the processes.
    """
    accelerator.backward(loss)
    if accelerator.sync_gradients:
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm or math.inf)
        # An fp16 gradient scaler makes inf gradient norms routine (it then skips the step); losses must stay finite.
        if accelerator.scaler is None:
            values[grad_norm_name] = grad_norm
    logs = check_finite(accelerator, step, **values)
    optimizer.step()
    if lr_scheduler is not None:
        lr_scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return logs


class VAETrainer:
    """One update per batch of a ``VAE`` (negative ELBO with KL warm-up) or an ``AutoEncoder`` (MSE).

    Args:
        accelerator: The run's Accelerator.
        objective: The prepared :class:`VAEObjective`.
        optimizer: Its prepared optimizer.
        lr_scheduler: Its prepared scheduler, or ``None``.
        beta: Weight of the KL term after the warm-up.
        kl_warmup_steps: Optimizer steps over which the KL weight rises linearly from 0 to ``beta``.
        max_grad_norm: Clip the gradient norm to this; ``None`` only measures it.
        ema: EMA of the model's parameters, stepped after each optimizer step.
        rng: Generator of the posterior samples (see ``create_training_rng``).
        channels_last: Feed the model channels-last images.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        objective: nn.Module,
        optimizer: torch.optim.Optimizer,
        lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        *,
        beta: float = 1.0,
        kl_warmup_steps: int = 0,
        max_grad_norm: float | None = None,
        ema: EMAModel | None = None,
        rng: torch.Generator | None = None,
        channels_last: bool = False,
    ):
        self.accelerator = accelerator
        self.objective = objective
        self.bare_objective = accelerator.unwrap_model(objective)
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.beta = beta
        self.kl_warmup_steps = kl_warmup_steps
        self.max_grad_norm = max_grad_norm
        self.ema = ema
        self.rng = rng
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def train_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        """Train on ``batch["pixel_values"]`` ``(B, C, H, W)`` in [-1, 1]; ``step`` is the 1-based optimizer step.

        Returns the loss (and for a VAE the negative ELBO, its two terms and the KL weight), the gradient norm and
        the learning rate, averaged over the processes.
        """
        images = batch["pixel_values"].contiguous(memory_format=self.memory_format)
        weight = kl_weight(step, self.beta, self.kl_warmup_steps)
        with self.accelerator.accumulate(self.objective):
            if self.bare_objective.variational:
                loss, reconstruction_nll, kl = self.objective(images, weight, self.rng)
                values = {"reconstruction_nll": reconstruction_nll, "kl": kl, "negative_elbo": reconstruction_nll + kl}
            else:
                loss = self.objective(images)
                values = {}
            logs = apply_gradients(
                self.accelerator,
                step,
                loss,
                self.objective,
                self.optimizer,
                self.lr_scheduler,
                self.max_grad_norm,
                "grad_norm",
                loss=loss,
                **values,
            )
        if self.accelerator.sync_gradients:
            if self.ema is not None:
                self.ema.step(self.bare_objective.parameters())
            logs["lr"] = self.optimizer.param_groups[0]["lr"]
            if self.bare_objective.variational:
                logs["kl_weight"] = weight
        return logs


class VAEGANTrainer:
    """One VAE-GAN update per batch (Larsen et al., 2016, Algorithm 1), under ``accelerator.accumulate``.

    For each batch: encode the real images, draw posterior latents, decode them (reconstructions) together with
    prior latents (samples). The discriminator learns real vs both kinds of decoded images (with lazy R1). Then,
    against the updated discriminator with frozen weights, the encoder minimises ``beta * KL + L`` and the decoder
    ``gamma * L + adversarial`` where ``L`` is the reconstruction term (half the squared distance between the
    discriminator features of the images and of their reconstructions, or a pixel ``-log p(x|z)``) and
    ``adversarial`` the generator loss on reconstructions plus that on prior samples.

    Args:
        accelerator: The run's Accelerator.
        objective: The prepared :class:`VAEGANObjective` (the VAE half).
        discriminator: The prepared ``Discriminator``.
        vae_optimizer: Prepared optimizer of the encoder and decoder.
        discriminator_optimizer: Prepared optimizer of the discriminator.
        vae_lr_scheduler: Prepared scheduler of the VAE, or ``None``.
        discriminator_lr_scheduler: Prepared scheduler of the discriminator, or ``None``.
        loss: One of :data:`VAEGAN_LOSSES`.
        feature_loss_weight: gamma, the decoder's weight of the reconstruction term against the adversarial loss.
        beta: Weight of the KL term after the warm-up.
        kl_warmup_steps: Optimizer steps over which the KL weight rises linearly from 0 to ``beta``.
        r1_gamma: Weight of R1 (``gamma / 2 * ||grad D(real)||^2``); 0 disables it.
        r1_interval: Apply R1 every this many steps, scaled by the interval (lazy regularisation).
        max_grad_norm: Clip both gradient norms to this; ``None`` only measures them.
        ema: EMA of the VAE's parameters, stepped after each VAE update.
        rng: Generator of the latents (see ``create_training_rng``).
        channels_last: Feed the models channels-last images.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        objective: nn.Module,
        discriminator: nn.Module,
        vae_optimizer: torch.optim.Optimizer,
        discriminator_optimizer: torch.optim.Optimizer,
        vae_lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        discriminator_lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        *,
        loss: str = "non-saturating",
        feature_loss_weight: float = 1.0,
        beta: float = 1.0,
        kl_warmup_steps: int = 0,
        r1_gamma: float = 0.0,
        r1_interval: int = 16,
        max_grad_norm: float | None = None,
        ema: EMAModel | None = None,
        rng: torch.Generator | None = None,
        channels_last: bool = False,
    ):
        if loss not in VAEGAN_LOSSES:
            raise ValueError(f"loss must be one of {VAEGAN_LOSSES}, got {loss!r}")
        if r1_gamma < 0 or r1_interval < 1:
            raise ValueError(f"r1_gamma must be >= 0 and r1_interval >= 1, got {r1_gamma} and {r1_interval}")
        self.accelerator = accelerator
        self.objective = objective
        self.discriminator = discriminator
        self.bare_objective = accelerator.unwrap_model(objective)
        # The encoder and decoder update calls the bare discriminator with frozen weights, as GANTrainer does.
        self.bare_discriminator = accelerator.unwrap_model(discriminator)
        self.vae_optimizer = vae_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        self.vae_lr_scheduler = vae_lr_scheduler
        self.discriminator_lr_scheduler = discriminator_lr_scheduler
        self.loss = loss
        self.feature_loss_weight = feature_loss_weight
        self.beta = beta
        self.kl_warmup_steps = kl_warmup_steps
        self.r1_gamma = r1_gamma
        self.r1_interval = r1_interval
        self.max_grad_norm = max_grad_norm
        self.ema = ema
        self.rng = rng
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def train_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        """Train on ``batch["pixel_values"]`` ``(B, C, H, W)`` in [-1, 1]; ``step`` is the 1-based optimizer step.

        Returns the losses (``encoder_loss``, ``decoder_loss``, ``d_loss``), the ELBO terms (``reconstruction_nll``,
        ``kl``, ``negative_elbo``), the adversarial loss ``g_loss``, R1, mean logits, gradient norms, learning rates
        and the KL weight, averaged over the processes.
        """
        accelerator = self.accelerator
        real = batch["pixel_values"].contiguous(memory_format=self.memory_format)
        batch_size = real.shape[0]
        apply_r1 = self.r1_gamma > 0 and step % self.r1_interval == 0
        weight = kl_weight(step, self.beta, self.kl_warmup_steps)
        latent_dim = self.bare_objective.model.config.latent_dim
        logs: dict[str, float] = {}
        with accelerator.accumulate(self.objective, self.discriminator):
            prior_latents = torch.randn(batch_size, latent_dim, generator=self.rng, device=real.device)
            out = self.objective(real, prior_latents, self.rng)
            fakes = torch.cat([out.reconstruction, out.prior_images]).contiguous(memory_format=self.memory_format)

            # Discriminator: real images vs reconstructions and prior samples, one forward pass over all of them.
            real_input = real.detach().requires_grad_(apply_r1)
            logits, _ = self.discriminator(torch.cat([real_input, fakes.detach()]), return_dict=False)
            real_logits, fake_logits = logits.float().split([batch_size, 2 * batch_size])
            d_loss = discriminator_loss(real_logits, fake_logits, self.loss)
            penalties: dict[str, torch.Tensor] = {}
            if apply_r1:
                penalties["r1"] = input_gradient_penalty(real_logits, real_input)
                d_loss = d_loss + 0.5 * self.r1_gamma * self.r1_interval * penalties["r1"]
            logs |= apply_gradients(
                accelerator,
                step,
                d_loss,
                self.discriminator,
                self.discriminator_optimizer,
                self.discriminator_lr_scheduler,
                self.max_grad_norm,
                "d_grad_norm",
                d_loss=d_loss,
                real_logits=real_logits.mean(),
                fake_logits=fake_logits.mean(),
                **penalties,
            )

            # Encoder and decoder, against the updated discriminator.
            self.bare_discriminator.requires_grad_(False)
            try:
                logits, features = self.bare_discriminator(torch.cat([real, fakes]), return_dict=False)
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
                logs |= apply_gradients(
                    accelerator,
                    step,
                    vae_loss,
                    self.objective,
                    self.vae_optimizer,
                    self.vae_lr_scheduler,
                    self.max_grad_norm,
                    "vae_grad_norm",
                    encoder_loss=weight * kl + reconstruction_nll,
                    decoder_loss=decoder_loss,
                    g_loss=adversarial,
                    reconstruction_nll=reconstruction_nll,
                    kl=kl,
                    negative_elbo=reconstruction_nll + kl,
                )
            finally:
                self.bare_discriminator.requires_grad_(True)

        if accelerator.sync_gradients:
            if self.ema is not None:
                self.ema.step(self.bare_objective.parameters())
            logs["lr_vae"] = self.vae_optimizer.param_groups[0]["lr"]
            logs["lr_discriminator"] = self.discriminator_optimizer.param_groups[0]["lr"]
            logs["kl_weight"] = weight
        return logs


# Sample grids


def create_vae_sample_inputs(
    accelerator: Accelerator, held_out: torch.Tensor, num_images: int, latent_dim: int, seed: int
) -> CheckpointedTensors:
    """Fixed inputs of the grids, registered for checkpointing: ``images``, the first ``num_images // 2`` held-out
    images (shown next to their reconstructions), and ``noise``, prior latents for as many tiles (``latent_dim=0``
    for an autoencoder, which has no prior)."""
    images = held_out[: num_images // 2]
    noise = torch.randn(2 * len(images), latent_dim, generator=torch.Generator().manual_seed(seed))
    return create_fixed_sample_inputs(accelerator, images=images, noise=noise)


def _grid_rows(num_pairs: int) -> int:
    """Rows of a grid of ``num_pairs`` side-by-side pairs: as square as possible, pairs never split."""
    return max(rows for rows in range(1, num_pairs + 1) if num_pairs % rows == 0 and rows**2 <= 2 * num_pairs)


@torch.no_grad()
def reconstruction_grid(model: VAE | AutoEncoder, inputs: CheckpointedTensors) -> Image.Image:
    """Held-out images next to their reconstructions (from the posterior mean) and, for VAEs, prior samples on the
    right: one PIL image, models in eval mode and float32."""
    images = inputs.images.to(model.device, model.dtype)
    reconstructions = model(images).sample.float()
    pairs = torch.stack([images.float(), reconstructions], dim=1).flatten(0, 1)
    rows = _grid_rows(len(images))
    grid = make_sample_grid(pairs, rows=rows)
    if not inputs.noise.shape[1]:
        return grid
    samples = make_sample_grid(model.decode(inputs.noise.to(model.device, model.dtype)).sample.float(), rows=rows)
    gap = grid.width // (2 * len(images) // rows)  # one image wide
    canvas = Image.new(grid.mode, (grid.width + gap + samples.width, grid.height), color="white")
    canvas.paste(grid, (0, 0))
    canvas.paste(samples, (grid.width + gap, 0))
    return canvas


# Evaluation


def evaluate_held_out(
    model: nn.Module, images: torch.Tensor, seed: int, num_importance_samples: int | None = None
) -> dict[str, float]:
    """Dataset averages on held-out ``images`` in [-1, 1], the model in eval mode.

    For a VAE or VAE-GAN: the negative ELBO (nats per image, in the model's likelihood, one posterior sample) and the
    reconstruction MSE; with ``num_importance_samples``, everything ``hf_vaegan.metrics.evaluate_vae`` reports (IWAE
    bound, bits per dimension). For an autoencoder: the reconstruction MSE. MSEs are on the [-1, 1] scale.
    """
    generator = torch.Generator(model.device).manual_seed(seed)
    if isinstance(model, AutoEncoder):
        with evaluation_mode(model):
            errors = [model.loss(batch.to(model.device)) * len(batch) for batch in images.split(256)]
        return {"reconstruction_mse": (sum(errors) / len(images)).item()}
    if num_importance_samples:
        return evaluate_vae(model, images, num_importance_samples=num_importance_samples, generator=generator)
    return {
        "negative_elbo": negative_elbo(model, images, generator=generator).double().mean().item(),
        "reconstruction_mse": reconstruction_error(model, images).double().mean().item(),
    }


# Logging and the model card


def log_reconstructions(
    accelerator: Accelerator,
    model: nn.Module,
    inputs: CheckpointedTensors,
    held_out: torch.Tensor,
    step: int,
    args: argparse.Namespace,
) -> None:
    """Save and log the reconstruction/sample grid of ``model`` and log its held-out figures as ``validation_*``
    (main process only)."""
    log_sample_grid(accelerator, reconstruction_grid(model, inputs), step, args.output_dir)
    metrics = evaluate_held_out(model, held_out, args.seed)
    accelerator.log({f"validation_{name}": value for name, value in metrics.items()}, step=step)


_METRIC_NAMES = {
    "negative_elbo": "negative ELBO (nats per image)",
    "elbo_bits_per_dim": "negative ELBO (bits per dimension)",
    "nll": "NLL, IWAE bound (nats per image)",
    "nll_bits_per_dim": "NLL, IWAE bound (bits per dimension)",
    "reconstruction_mse": "reconstruction MSE (pixels in [-1, 1])",
}
_FINAL_LOSSES = (
    "loss",
    "negative_elbo",
    "reconstruction_nll",
    "kl",
    "encoder_loss",
    "decoder_loss",
    "g_loss",
    "d_loss",
)


def write_vae_card(
    args: argparse.Namespace,
    model: nn.Module,
    inputs: CheckpointedTensors,
    info: ImageDatasetInfo,
    num_held_out: int,
    metrics: Mapping[str, float],
    loop: TrainingLoop,
    seconds: float,
    logs: Mapping[str, float],
    *,
    script: str,
    training: Mapping[str, Any],
    evaluation: Mapping[str, Any] | None = None,
) -> None:
    """Save the final grid as ``samples.png`` and write the model card (held-out figures, hyperparameters and
    ``training``'s extra rows, the command) to ``--output_dir``. ``evaluation`` (the sections of
    ``hf_vaegan.training.evaluation.evaluation_card_sections``) adds the sample-quality rows and their protocol."""
    reconstruction_grid(model, inputs).save(Path(args.output_dir) / "samples.png")
    variational = not isinstance(model, AutoEncoder)
    likelihood = model.config.likelihood if variational else None
    held_out_source = (
        f"`{args.validation_dataset_name}`" if args.validation_dataset_name else "held out of the training data"
    )
    protocol = f"On {num_held_out:,} held-out images ({held_out_source}), with the EMA weights where used."
    if variational:
        protocol += (
            f" In nats per image under the model's `{likelihood}` likelihood (one posterior sample for the ELBO, "
            f"{args.num_importance_samples} importance samples for the IWAE bound), with beta = 1."
        )
        if likelihood == "features":
            protocol += (
                " The `features` likelihood is a unit Gaussian on the discriminator's features, without its "
                "constant: these figures measure reconstructions in that space and do not compare with pixel "
                "likelihoods."
            )
    metric_rows = {_METRIC_NAMES.get(name, name): f"{value:.4g}" for name, value in metrics.items()}
    if evaluation:
        metric_rows |= evaluation["metrics"]
        protocol += " Sample quality: " + evaluation["metrics_protocol"]
    rows = {
        "steps": loop.global_step,
        "batch size (all processes)": loop.batch_size,
        "epochs": f"{loop.global_step / loop.steps_per_epoch:.1f}",
        "latent dimensions": args.latent_dim,
        "likelihood": likelihood or "- (MSE)",
        "beta": args.beta if variational else "-",
        **training,
        "learning rate": args.learning_rate,
        "Adam betas": f"({args.adam_beta1}, {args.adam_beta2})",
        "EMA decay": args.ema_decay,
        "mixed precision": args.mixed_precision or "accelerate config",
        "processes": loop.accelerator.num_processes,
        "seed": args.seed,
        "training time": f"{seconds / 60:.1f} min",
    }
    rows |= {f"final training {name}": f"{logs[name]:.4g}" for name in _FINAL_LOSSES if name in logs}
    caption = "Held-out images (odd columns) next to their reconstructions from the posterior mean (even columns)"
    write_model_card(
        model,
        args.output_dir,
        hub_repo_id(args),
        datasets=dataset_hub_ids(args.dataset_name),
        sample_image="samples.png",
        sample_caption=caption + ("; right: samples from the prior." if variational else "."),
        metrics=metric_rows,
        metrics_protocol=protocol,
        training=rows,
        training_command=training_command(script),
        dataset_description=f"`{args.dataset_name}`: {len(info.dataset):,} training images, at "
        f"{args.resolution}x{args.resolution}, {info.num_channels} channel(s).",
        limitations=(
            f"A small convolutional {type(model).__name__} for {args.resolution}x{args.resolution} images like its "
            "training data. Its reconstructions are blurrier than the inputs and its likelihoods are only "
            "meaningful for images of the same kind (they are not calibrated out-of-distribution detectors "
            "without checking)."
        ),
    )
