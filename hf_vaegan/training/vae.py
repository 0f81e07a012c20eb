"""The VAE recipe of ``examples/train_vae.py`` (a ``VAE`` or an ``AutoEncoder``), and what both VAE scripts share:
KL warm-up, held-out data, reconstruction grids, held-out and sample-quality evaluation and the model card.

Per batch: the negative ELBO ``-log p(x|z) + kl_weight * KL(q(z|x) || p(z))`` with one posterior sample (the KL
weight rising linearly to ``--beta`` over ``--kl_warmup_steps``), or an autoencoder's mean squared error; one
:func:`~hf_vaegan.training.update.optimizer_update`; the EMA. The VAE-GAN's recipe is in
:mod:`~hf_vaegan.training.vaegan`.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from PIL import Image
from torch import nn

from ..data.images import make_image_transform
from ..data.loading import ImageDatasetInfo
from ..metrics.likelihood import evaluate_vae, evaluation_mode, negative_elbo, reconstruction_error
from ..models import VAE, AutoEncoder
from .dataset_args import load_image_dataset_from_args
from .evaluation import EvaluationReference, evaluation_card_sections, log_evaluation
from .grids import log_sample_grid, make_sample_grid
from .hub import training_rows
from .session import TrainingSession
from .state import CheckpointedTensors, create_fixed_sample_inputs
from .update import Network, Trainer

logger = get_logger(__name__)

# The figures of `--eval_steps` that go into the card, whose likelihoods come from the final held-out evaluation.
SAMPLE_QUALITY_METRICS = ("fid", "kid_mean", "kid_std", "precision", "recall", "num_samples")


def kl_weight(step: int, beta: float, warmup_steps: int) -> float:
    """The KL weight at optimizer step ``step`` (1-based): ``beta``, reached linearly over ``warmup_steps``."""
    if warmup_steps == 0:
        return beta
    return beta * min(1.0, step / warmup_steps)


# Held-out data


def load_with_held_out(args: argparse.Namespace) -> tuple[ImageDatasetInfo, torch.Tensor]:
    """The training data of ``--dataset_name`` and the held-out images ``(N, C, resolution, resolution)`` in [-1, 1].

    The held-out images come from ``--validation_dataset_name``, or else are ``--num_validation_images`` images
    removed from the training data (drawn with ``--seed``).
    """
    info = load_image_dataset_from_args(args)
    if args.validation_dataset_name:
        held_out = load_image_dataset_from_args(
            args,
            args.validation_dataset_name,
            split=args.validation_split,
            label_column=None,  # labels are not used: any ClassLabel column is found as usual
            max_train_samples=args.num_validation_images,
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


class VAETrainer(Trainer):
    """One update per batch of a ``VAE`` (negative ELBO with KL warm-up) or an ``AutoEncoder`` (MSE).

    Args:
        accelerator: The run's Accelerator.
        network: The network of the prepared :class:`VAEObjective`.
        beta: Weight of the KL term after the warm-up.
        kl_warmup_steps: Optimizer steps over which the KL weight rises linearly from 0 to ``beta``.
        options: ``ema``, ``max_grad_norm``, ``rng``, ``channels_last`` of :class:`~hf_vaegan.training.update.Trainer`.
    """

    def __init__(
        self, accelerator: Accelerator, network: Network, *, beta: float = 1.0, kl_warmup_steps: int = 0, **options
    ):
        super().__init__(accelerator, **options)
        self.network = network
        self.beta = beta
        self.kl_warmup_steps = kl_warmup_steps

    def train_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        """Train on ``batch["pixel_values"]`` ``(B, C, H, W)`` in [-1, 1]; ``step`` is the 1-based optimizer step.

        Returns the loss (and for a VAE the negative ELBO, its two terms and the KL weight), the gradient norm and
        the learning rate, averaged over the processes.
        """
        images = self.images(batch["pixel_values"])
        weight = kl_weight(step, self.beta, self.kl_warmup_steps)
        objective, variational = self.network.model, self.network.bare.variational
        with self.accelerator.accumulate(objective):
            if variational:
                loss, reconstruction_nll, kl = objective(images, weight, self.rng)
                values = {"reconstruction_nll": reconstruction_nll, "kl": kl, "negative_elbo": reconstruction_nll + kl}
            else:
                loss = objective(images)
                values = {}
            logs = self.update(self.network, loss, step, "grad_norm", loss=loss, **values)
        if self.accelerator.sync_gradients:
            if self.ema is not None:
                self.ema.step(self.network.bare.parameters())
            logs["lr"] = self.network.learning_rate
            if variational:
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


def held_out_reference(args: argparse.Namespace, held_out: torch.Tensor) -> EvaluationReference:
    """The held-out images of :func:`load_with_held_out` as the reference of the ``--eval_steps`` figures."""
    if args.validation_dataset_name:
        return EvaluationReference.from_images(held_out, args.validation_dataset_name, args.validation_split)
    return EvaluationReference.from_images(held_out, args.dataset_name, args.dataset_split)


# Logging and the model card


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


class HeldOutEvaluation:
    """What both VAE scripts measure on their held-out images (:func:`load_with_held_out`): a reconstruction grid and
    the ``validation_*`` figures every ``--sample_steps``, the sample quality every ``--eval_steps``, and the figures,
    final grid and model card at the end. Every method runs on the main process only.

    Creating it registers the fixed inputs of the grids for checkpointing (``sample_inputs``): the first
    ``--num_sample_images // 2`` held-out images and prior latents of ``latent_dim`` (0 for an autoencoder).
    """

    def __init__(self, session: TrainingSession, info: ImageDatasetInfo, held_out: torch.Tensor, latent_dim: int):
        args = session.args
        self.session, self.info, self.held_out = session, info, held_out
        self.sample_inputs = create_vae_sample_inputs(
            session.accelerator, held_out, args.num_sample_images, latent_dim, args.seed
        )
        self.reference = held_out_reference(args, held_out) if args.eval_steps and session.is_main_process else None
        # The figures of the last `--eval_steps` evaluation, for the card.
        self.sample_metrics: dict[str, float] | None = None

    def log_reconstructions(self, model: nn.Module, step: int) -> None:
        """Save and log the reconstruction/sample grid of ``model`` and log its held-out figures as
        ``validation_*``."""
        accelerator, args = self.session.accelerator, self.session.args
        log_sample_grid(accelerator, reconstruction_grid(model, self.sample_inputs), step, args.output_dir)
        metrics = evaluate_held_out(model, self.held_out, args.seed)
        accelerator.log({f"validation_{name}": value for name, value in metrics.items()}, step=step)

    def log_sample_quality(self, model: nn.Module, step: int) -> None:
        """``--eval_steps``: log every figure of :func:`~hf_vaegan.training.evaluation.log_evaluation` (likelihoods
        on its first 1,000 reference images, with the final evaluation's ``--num_importance_samples``) and keep the
        :data:`SAMPLE_QUALITY_METRICS` for the card."""
        args = self.session.args
        figures = log_evaluation(
            self.session.accelerator,
            model,
            self.reference,
            step,
            args.eval_num_samples,
            seed=args.seed,
            num_importance_samples=args.num_importance_samples,
        )
        self.sample_metrics = {name: figures[name] for name in SAMPLE_QUALITY_METRICS}

    def write_card(self, model: nn.Module, seconds: float, *, training: Mapping[str, Any]) -> None:
        """Evaluate ``model`` on the held-out images (:func:`evaluate_held_out` with ``--num_importance_samples``,
        logged), save the final grid as ``samples.png`` and write the model card (held-out figures, the last
        sample-quality figures and their protocol, hyperparameters and ``training``'s extra rows, the command) to
        ``--output_dir``."""
        args, loop, held_out = self.session.args, self.session.loop, self.held_out
        metrics = evaluate_held_out(model, held_out, args.seed, args.num_importance_samples)
        logger.info(f"Held-out figures: {metrics}")
        reconstruction_grid(model, self.sample_inputs).save(Path(args.output_dir) / "samples.png")
        variational = not isinstance(model, AutoEncoder)
        likelihood = model.config.likelihood if variational else None
        held_out_source = (
            f"`{args.validation_dataset_name}`" if args.validation_dataset_name else "held out of the training data"
        )
        protocol = f"On {len(held_out):,} held-out images ({held_out_source}), with the EMA weights where used."
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
        evaluation = evaluation_card_sections(self.sample_metrics, self.reference)
        if evaluation:
            metric_rows |= evaluation["metrics"]
            protocol += " Sample quality: " + evaluation["metrics_protocol"]
        recipe = {
            "latent dimensions": model.config.latent_dim,
            "likelihood": likelihood or "- (MSE)",
            "beta": args.beta if variational else "-",
            **training,
            "learning rate": args.learning_rate,
        }
        rows = training_rows(args, loop, seconds, recipe, loop.step_logs, _FINAL_LOSSES, "final training")
        caption = "Held-out images (odd columns) next to their reconstructions from the posterior mean (even columns)"
        self.session.write_card(
            model,
            sample_caption=caption + ("; right: samples from the prior." if variational else "."),
            metrics=metric_rows,
            metrics_protocol=protocol,
            training=rows,
            dataset_description=f"`{args.dataset_name}`: {len(self.info.dataset):,} training images, at "
            f"{args.resolution}x{args.resolution}, {self.info.num_channels} channel(s).",
            limitations=(
                f"A small convolutional {type(model).__name__} for {args.resolution}x{args.resolution} images like "
                "its training data. Its reconstructions are blurrier than the inputs and its likelihoods are only "
                "meaningful for images of the same kind (they are not calibrated out-of-distribution detectors "
                "without checking)."
            ),
        )
