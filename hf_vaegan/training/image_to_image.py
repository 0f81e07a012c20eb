"""Image-to-image GAN training: the pix2pix and CycleGAN update steps and what they need.

- pix2pix (Isola et al., 2017): a generator translates a source image (a sketch) into a target (the garment); a
  conditional PatchGAN judges (source, target) pairs; the generator also minimises the L1 distance to the target.
  An optional feature-matching loss (pix2pixHD, Wang et al., 2018) matches the discriminator's features of real and
  generated pairs.
- CycleGAN (Zhu et al., 2017): two generators translate between two domains without pairs; two discriminators judge
  each domain; cycle-consistency (A -> B -> A gives A back) and identity losses keep the content, and an image
  replay buffer (Shrivastava et al., 2017) shows the discriminators a history of generated images.

The trainers follow :class:`hf_vaegan.training.gan.GANTrainer`: one call per batch under ``accelerator.accumulate``,
losses and gradient norms checked for NaN/inf before every optimizer step, EMA steps at each optimizer step.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence

import datasets
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import gather
from diffusers.training_utils import EMAModel
from PIL import Image
from torch import nn

from ..data.sketch import make_sketch_pairs
from ..models.patch_discriminator import patch_logits_size
from .common import make_sample_grid, register_training_state
from .data import ImageDatasetInfo, PairedDatasetInfo, collate_examples
from .gan import DiffAugment, discriminator_loss, generator_loss, parse_diffaugment_policy
from .update import check_finite

# The adversarial losses that make sense on patch logit maps (WGAN-GP's critic is not a patch classifier).
IMAGE_TO_IMAGE_GAN_LOSSES = ("non-saturating", "hinge")
# `auto` depths: the U-Net stops halving at 4 pixels (or fewer when the size allows no more halvings) and the
# PatchGAN keeps at least a 4x4 logit map, with at most the 3 layers (70x70 patches) of pix2pix.
MIN_BOTTLENECK_SIZE = 4
MAX_PATCH_LAYERS = 3
MIN_LOGITS_SIZE = 4


# Command-line flags


def add_image_to_image_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the model and GAN flags shared by ``train_pix2pix.py`` and ``train_cyclegan.py``.

    Returns the GAN group, for the script's own loss weights. Call :func:`validate_image_to_image_args` after
    parsing: it resolves the ``auto`` depths.
    """
    model = parser.add_argument_group("model")
    model.add_argument(
        "--base_channels",
        type=int,
        default=64,
        help="Width of the full-resolution layers of the generator(s) and discriminator(s); widths double at each "
        "halving of the size (up to 8x).",
    )
    model.add_argument(
        "--num_downsamplings",
        type=int,
        default=None,
        help="Depth of the U-Net generator: the resolution must be a multiple of 2**depth. Default: halve down to "
        f"about {MIN_BOTTLENECK_SIZE} pixels (2 at 28x28, 3 at 32x32, 6 at 256x256).",
    )
    model.add_argument(
        "--layers_per_block", type=int, default=1, help="3x3 conv layers at each size of the U-Net (each side)."
    )
    model.add_argument(
        "--num_residual_blocks", type=int, default=2, help="Residual blocks at the U-Net's smallest size."
    )
    model.add_argument(
        "--norm_type", type=str, choices=("group", "batch", "none"), default="group", help="Normalisation layers."
    )
    model.add_argument(
        "--discriminator_base_channels",
        type=int,
        default=None,
        help="Width of the discriminator's first layer, when it should differ from --base_channels.",
    )
    model.add_argument(
        "--discriminator_num_layers",
        type=int,
        default=None,
        help=f"Stride-2 layers of the PatchGAN (3 judges 70x70 patches). Default: {MAX_PATCH_LAYERS}, or fewer to "
        f"keep a logit map of at least {MIN_LOGITS_SIZE}x{MIN_LOGITS_SIZE} (2 at 28x28).",
    )
    model.add_argument(
        "--spectral_norm",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Spectral normalisation of every discriminator layer (Miyato et al., 2018).",
    )

    gan = parser.add_argument_group("GAN training")
    gan.add_argument(
        "--loss",
        type=str,
        choices=IMAGE_TO_IMAGE_GAN_LOSSES,
        default="non-saturating",
        help="Adversarial loss on the patch logits: the non-saturating logistic loss (default) or hinge.",
    )
    gan.add_argument(
        "--diffaugment",
        type=str,
        default="none",
        help="Differentiable augmentation of what the discriminators see (pairs are augmented alike): "
        "comma-separated operations among translation, cutout, color, or 'none'. Helps below a few thousand images.",
    )
    gan.add_argument("--generator_learning_rate", type=float, default=2e-4, help="Learning rate of the generator(s).")
    gan.add_argument(
        "--discriminator_learning_rate", type=float, default=2e-4, help="Learning rate of the discriminator(s)."
    )
    return gan


def validate_image_to_image_args(args: argparse.Namespace) -> None:
    """Check the flags of :func:`add_image_to_image_args` and resolve the ``auto`` depths in place; raises
    ``ValueError`` naming the flag."""
    height, width = (args.resolution,) * 2 if isinstance(args.resolution, int) else args.resolution
    if args.num_downsamplings is None:
        depth = 0
        while (
            height % 2 ** (depth + 1) == 0
            and width % 2 ** (depth + 1) == 0
            and (min(height, width) // 2 ** (depth + 1) >= MIN_BOTTLENECK_SIZE)
        ):
            depth += 1
        args.num_downsamplings = depth
    factor = 2**args.num_downsamplings
    if args.num_downsamplings < 0 or height % factor or width % factor:
        raise ValueError(
            f"--resolution {height}x{width} must be a multiple of 2**--num_downsamplings = {factor}; pass a smaller "
            "--num_downsamplings or another --resolution"
        )
    if args.discriminator_num_layers is None:
        args.discriminator_num_layers = next(
            (
                layers
                for layers in range(MAX_PATCH_LAYERS, 0, -1)
                if patch_logits_size(min(height, width), layers) >= MIN_LOGITS_SIZE
            ),
            1,
        )
    if args.discriminator_num_layers < 1 or patch_logits_size(min(height, width), args.discriminator_num_layers) < 1:
        raise ValueError(
            f"--discriminator_num_layers {args.discriminator_num_layers} does not fit {height}x{width} images"
        )
    for name in ("base_channels", "layers_per_block"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.num_residual_blocks < 0:
        raise ValueError(f"--num_residual_blocks must be >= 0, got {args.num_residual_blocks}")
    if args.discriminator_base_channels is not None and args.discriminator_base_channels < 1:
        raise ValueError(f"--discriminator_base_channels must be positive, got {args.discriminator_base_channels}")
    for name in ("generator_learning_rate", "discriminator_learning_rate"):
        if not getattr(args, name) > 0:
            raise ValueError(f"--{name} must be positive, got {getattr(args, name)}")
    try:
        args.diffaugment = ",".join(parse_diffaugment_policy(args.diffaugment)) or "none"
    except ValueError as error:
        raise ValueError(f"--diffaugment: {error}") from None


# Data


def sketch_pairs_from_images(info: ImageDatasetInfo, seed: int = 0, jitter: float = 0.6) -> PairedDatasetInfo:
    """Pair every image of an image dataset with its sketch (:func:`hf_vaegan.data.sketch.make_sketch_pairs`).

    The result has a ``sketch`` (source) and an ``image`` (target) column; the sketches are a function of the images
    and ``seed`` only, so anyone can regenerate the same pairs.
    """
    labels = info.dataset[info.label_column] if info.label_column is not None else None
    class_names = info.class_names if labels is not None else None
    pairs = make_sketch_pairs(info.dataset[info.image_column], labels, seed, jitter=jitter, class_names=class_names)
    return PairedDatasetInfo(pairs, "sketch", "image", 1, info.num_channels)


def select_classes(info: ImageDatasetInfo, classes: Sequence[str]) -> ImageDatasetInfo:
    """Keep the examples of ``classes`` (class names or integer ids, as strings), e.g. one domain of a CycleGAN.

    Raises ``ValueError`` naming the unknown classes, or when the dataset has no label column.
    """
    if info.label_column is None:
        raise ValueError(f"selecting classes {list(classes)} needs a dataset with a label column")
    ids = set()
    for name in classes:
        if name in info.class_names:
            ids.add(info.class_names.index(name))
        elif name.isdigit() and int(name) < len(info.class_names):
            ids.add(int(name))
        else:
            raise ValueError(f"unknown class {name!r}; the classes are {info.class_names} (or their ids)")
    selected = info.dataset.filter(lambda label: label in ids, input_columns=info.label_column)
    if len(selected) == 0:
        raise ValueError(f"the dataset has no example of the classes {list(classes)}")
    return ImageDatasetInfo(
        selected, info.image_column, info.label_column, info.num_classes, info.num_channels, info.class_names
    )


class UnpairedImageDataset(torch.utils.data.Dataset):
    """Two image datasets read side by side, without pairing: ``{"pixel_values_a", "pixel_values_b"}``.

    Its length is that of the larger domain; example ``i`` holds image ``i`` of each domain, wrapping around the
    smaller one. Only the batch composition couples the domains (every CycleGAN loss is a sum of per-domain terms), and
    the shuffled sampler draws new compositions every epoch.

    Args:
        domain_a: Dataset yielding ``{"pixel_values": (C, H, W)}`` (e.g. ``ImageDatasetInfo.with_image_transform``).
        domain_b: The same for domain B.
    """

    def __init__(self, domain_a: datasets.Dataset, domain_b: datasets.Dataset):
        if len(domain_a) == 0 or len(domain_b) == 0:
            raise ValueError(f"both domains need images, got {len(domain_a)} and {len(domain_b)}")
        self.domain_a = domain_a
        self.domain_b = domain_b

    def __len__(self) -> int:
        return max(len(self.domain_a), len(self.domain_b))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "pixel_values_a": self.domain_a[index % len(self.domain_a)]["pixel_values"],
            "pixel_values_b": self.domain_b[index % len(self.domain_b)]["pixel_values"],
        }


def first_examples(dataset: torch.utils.data.Dataset, count: int) -> dict[str, torch.Tensor]:
    """The first ``count`` examples of a transformed dataset, stacked: the fixed inputs of the sample grids."""
    return collate_examples([dataset[index] for index in range(min(count, len(dataset)))])


# Sample grids


@torch.no_grad()
def translate_samples(generator: nn.Module, sources: torch.Tensor) -> torch.Tensor:
    """A generator's outputs ``(N, C, H, W)`` (float32) for the fixed sources of the sample grids."""
    return _translate(generator, sources.to(generator.device, generator.dtype)).float()


def comparison_grid(*batches: torch.Tensor, max_columns: int = 8) -> Image.Image:
    """A grid comparing batches of corresponding images, e.g. ``(sources, outputs, targets)``.

    Each batch is ``(N, C, H, W)`` in [-1, 1] with the same ``N``, ``H`` and ``W``; greyscale batches are shown in RGB
    when another batch is in colour. Examples are laid out in blocks of up to ``max_columns`` columns, one row per
    batch, so each column reads top to bottom as source, output, target.
    """
    count = len(batches[0])
    if any(len(batch) != count or batch.shape[2:] != batches[0].shape[2:] for batch in batches):
        raise ValueError(f"batches must have the same number and size of images, got {[b.shape for b in batches]}")
    channels = max(batch.shape[1] for batch in batches)
    batches = [batch.detach().float().cpu().expand(-1, channels, -1, -1) for batch in batches]
    columns = max(d for d in range(1, min(count, max_columns) + 1) if count % d == 0)
    rows = [batch[start : start + columns] for start in range(0, count, columns) for batch in batches]
    return make_sample_grid(torch.cat(rows), rows=len(rows))


# Losses and the replay buffer


def feature_matching_loss(
    real_features: Sequence[torch.Tensor], fake_features: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Mean over layers of the L1 distance between discriminator features of real and generated images (pix2pixHD).

    The real features are treated as constants; gradients flow to the generator through ``fake_features``.
    """
    if len(real_features) != len(fake_features) or not real_features:
        raise ValueError(f"need the same non-zero number of layers, got {len(real_features)} and {len(fake_features)}")
    pairs = zip(real_features, fake_features, strict=True)
    losses = [F.l1_loss(fake.float(), real.detach().float()) for real, fake in pairs]
    return torch.stack(losses).mean()


class ImageReplayBuffer:
    """A pool of past generated images shown to a discriminator in place of some of the newest ones (CycleGAN).

    Until the pool is full, every generated image is stored and returned as is. Then each image is, with probability
    1/2, returned as is, or swapped with a random stored image, which is returned instead. This keeps the
    discriminator from forgetting earlier generator outputs and damps oscillations.

    The pool is checkpointed (registered with :func:`~hf_vaegan.training.register_training_state`, see
    :func:`create_replay_buffer`); in multi-process runs each process keeps its own pool, all of them saved.

    Args:
        accelerator: The run's Accelerator.
        capacity: Images kept (CycleGAN uses 50); 0 disables the buffer.
        image_shape: ``(C, H, W)`` of the images.
        generator: Source of the random choices (the checkpointed training RNG).
    """

    def __init__(
        self,
        accelerator: Accelerator,
        capacity: int,
        image_shape: Sequence[int],
        generator: torch.Generator | None = None,
    ):
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.accelerator = accelerator
        self.capacity = capacity
        self.generator = generator
        self.images = torch.zeros(capacity, *image_shape, device=accelerator.device)
        self.size = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Store ``images`` ``(B, C, H, W)`` (detached) and return the batch the discriminator should see."""
        images = images.detach()
        if self.capacity == 0:
            return images
        output = images.clone()
        for index, image in enumerate(images):
            if self.size < self.capacity:
                self.images[self.size] = image
                self.size += 1
            elif torch.rand((), generator=self.generator, device=self.images.device) < 0.5:
                slot = int(torch.randint(self.capacity, (), generator=self.generator, device=self.images.device))
                output[index] = self.images[slot]
                self.images[slot] = image
        return output

    def state_dict(self) -> dict[str, torch.Tensor]:
        # Checkpoints are written by the main process only: gather every process's pool.
        state = torch.tensor([self.size], device=self.images.device)
        # A snapshot (gather returns the live tensor itself in single-process runs).
        return {"images": gather(self.images[None]).cpu().clone(), "sizes": gather(state).cpu()}

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        images, sizes = state_dict["images"], state_dict["sizes"]
        if len(images) != self.accelerator.num_processes or images.shape[1:] != self.images.shape:
            raise ValueError(
                f"the checkpoint holds {len(images)} replay buffers of shape {tuple(images.shape[1:])}; this run has "
                f"{self.accelerator.num_processes} of shape {tuple(self.images.shape)}"
            )
        self.images = images[self.accelerator.process_index].to(self.images.device)
        self.size = int(sizes[self.accelerator.process_index])


def create_replay_buffer(
    accelerator: Accelerator, capacity: int, image_shape: Sequence[int], generator: torch.Generator | None = None
) -> ImageReplayBuffer:
    """An :class:`ImageReplayBuffer`, registered for checkpointing."""
    buffer = ImageReplayBuffer(accelerator, capacity, image_shape, generator)
    register_training_state(accelerator, buffer)
    return buffer


def _translate(generator: nn.Module, images: torch.Tensor) -> torch.Tensor:
    # Tuples, not output dataclasses: accelerate's fp32 conversion of mixed-precision outputs rebuilds dataclasses
    # from a dict, which fails for outputs with several required fields.
    return generator(images, return_dict=False)[0]


def _judge(discriminator: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Float32 patch logits and hidden features of ``discriminator`` for ``images``."""
    logits, features = discriminator(images, return_dict=False)
    return logits.float(), features


@contextlib.contextmanager
def frozen(*models: nn.Module) -> Iterator[None]:
    """Turn off the weight gradients of ``models`` (e.g. the discriminators during a generator update)."""
    for model in models:
        model.requires_grad_(False)
    try:
        yield
    finally:
        for model in models:
            model.requires_grad_(True)


# The training steps


class _AdversarialTrainer:
    """What both trainers share: the optimizer update with its gradient clipping and divergence check."""

    def __init__(self, accelerator: Accelerator, loss: str, max_grad_norm: float | None, rng: torch.Generator | None):
        if loss not in IMAGE_TO_IMAGE_GAN_LOSSES:
            raise ValueError(f"loss must be one of {IMAGE_TO_IMAGE_GAN_LOSSES}, got {loss!r}")
        self.accelerator = accelerator
        self.loss = loss
        self.max_grad_norm = max_grad_norm
        self.rng = rng

    def _update(
        self,
        name: str,
        loss: torch.Tensor,
        models: Sequence[nn.Module],
        optimizer: torch.optim.Optimizer,
        lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        step: int,
        **values: torch.Tensor,
    ) -> dict[str, float]:
        """Backward ``loss``, clip and measure the gradients of ``models`` at sync steps, check every value for
        NaN/inf, then step; returns ``{name}_loss``, ``{name}_grad_norm`` and ``values`` as floats."""
        accelerator = self.accelerator
        accelerator.backward(loss)
        values = {f"{name}_loss": loss, **values}
        # An fp16 gradient scaler makes inf gradient norms routine (it then skips the step): only check the losses.
        if accelerator.sync_gradients:
            parameters = itertools.chain.from_iterable(model.parameters() for model in models)
            grad_norm = accelerator.clip_grad_norm_(parameters, self.max_grad_norm or math.inf)
            if accelerator.scaler is None:
                values[f"{name}_grad_norm"] = grad_norm
        logs = check_finite(accelerator, step, **values)
        optimizer.step()
        if lr_scheduler is not None:
            lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if accelerator.sync_gradients:
            logs[f"lr_{name}"] = optimizer.param_groups[0]["lr"]
        return logs


class Pix2PixTrainer(_AdversarialTrainer):
    """One pix2pix update per batch: the discriminator on (source, target) vs (source, output) pairs, then the
    generator (adversarial + ``l1_weight`` x L1 to the target [+ feature matching]), then its EMA.

    Args:
        accelerator: The run's Accelerator.
        generator: Prepared ``UNetGenerator`` (source channels in, target channels out).
        discriminator: Prepared ``PatchDiscriminator`` with ``in_channels`` = source + target channels.
        generator_optimizer, discriminator_optimizer: Prepared optimizers.
        generator_lr_scheduler, discriminator_lr_scheduler: Prepared schedulers, or ``None``.
        loss: One of :data:`IMAGE_TO_IMAGE_GAN_LOSSES`.
        l1_weight: Weight of the L1 reconstruction loss (100 in pix2pix).
        feature_matching_weight: Weight of :func:`feature_matching_loss` on un-augmented pairs; 0 disables it.
        augment: Differentiable augmentation of the pairs the discriminator sees (source and image alike).
        max_grad_norm: Clip both gradient norms to this; ``None`` only measures them.
        ema: EMA of the generator's parameters.
        rng: Generator of the augmentations (see ``create_training_rng``).
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
        l1_weight: float = 100.0,
        feature_matching_weight: float = 0.0,
        augment: DiffAugment | None = None,
        max_grad_norm: float | None = None,
        ema: EMAModel | None = None,
        rng: torch.Generator | None = None,
        channels_last: bool = False,
    ):
        super().__init__(accelerator, loss, max_grad_norm, rng)
        if l1_weight < 0 or feature_matching_weight < 0:
            raise ValueError(f"loss weights must be >= 0, got {l1_weight} and {feature_matching_weight}")
        self.generator = generator
        self.discriminator = discriminator
        # The generator's update calls the bare discriminator with frozen weights: no wasted weight gradients, and
        # no DDP reducer waiting for gradients that never come.
        self.bare_generator = accelerator.unwrap_model(generator)
        self.bare_discriminator = accelerator.unwrap_model(discriminator)
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        self.generator_lr_scheduler = generator_lr_scheduler
        self.discriminator_lr_scheduler = discriminator_lr_scheduler
        self.l1_weight = l1_weight
        self.feature_matching_weight = feature_matching_weight
        self.augment = augment or DiffAugment(None)
        self.ema = ema
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def train_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        """Train on ``{"source_pixel_values", "target_pixel_values"}`` (``(B, C, H, W)`` in [-1, 1]).

        Args:
            batch: The batch.
            step: Number of the optimizer step this batch contributes to (1-based), for divergence errors.

        Returns:
            Losses, mean logits, the L1 distance, gradient norms and learning rates (at optimizer steps), averaged
            over the processes.
        """
        accelerator = self.accelerator
        source = batch["source_pixel_values"].contiguous(memory_format=self.memory_format)
        target = batch["target_pixel_values"].contiguous(memory_format=self.memory_format)
        logs: dict[str, float] = {}
        with accelerator.accumulate(self.generator, self.discriminator):
            output = _translate(self.generator, source)
            real_pairs = torch.cat([source, target], dim=1)
            fake_pairs = torch.cat([source, output.to(source.dtype)], dim=1)

            # Discriminator: real vs generated pairs, one forward pass over both.
            judged = self.augment(torch.cat([real_pairs, fake_pairs.detach()]), self.rng)
            real_logits, fake_logits = _judge(self.discriminator, judged)[0].chunk(2)
            d_loss = discriminator_loss(real_logits, fake_logits, self.loss)
            logs |= self._update(
                "discriminator",
                d_loss,
                [self.discriminator],
                self.discriminator_optimizer,
                self.discriminator_lr_scheduler,
                step,
                real_logits=real_logits.mean(),
                fake_logits=fake_logits.mean(),
            )

            # Generator: fool the updated discriminator and stay close to the target.
            with frozen(self.bare_discriminator):
                fake_logits, fake_features = _judge(self.bare_discriminator, self.augment(fake_pairs, self.rng))
                adversarial = generator_loss(fake_logits, self.loss)
                l1 = F.l1_loss(output.float(), target.float())
                g_loss = adversarial + self.l1_weight * l1
                terms = {"adversarial_loss": adversarial, "l1": l1}
                if self.feature_matching_weight:
                    with torch.no_grad():
                        real_features = _judge(self.bare_discriminator, real_pairs)[1]
                    if self.augment:
                        fake_features = _judge(self.bare_discriminator, fake_pairs)[1]
                    terms["feature_matching_loss"] = feature_matching_loss(real_features, fake_features)
                    g_loss = g_loss + self.feature_matching_weight * terms["feature_matching_loss"]
                logs |= self._update(
                    "generator",
                    g_loss,
                    [self.generator],
                    self.generator_optimizer,
                    self.generator_lr_scheduler,
                    step,
                    **terms,
                )

        if accelerator.sync_gradients and self.ema is not None:
            self.ema.step(self.bare_generator.parameters())
        return logs


class CycleGANTrainer(_AdversarialTrainer):
    """One CycleGAN update per batch of unpaired images: both generators (adversarial + cycle + identity), then both
    discriminators on real images vs replayed generated ones, then the generators' EMAs.

    Args:
        accelerator: The run's Accelerator.
        generator_a_to_b, generator_b_to_a: Prepared ``UNetGenerator`` s.
        discriminator_a, discriminator_b: Prepared ``PatchDiscriminator`` s judging domain A and domain B images.
        generator_optimizer: Prepared optimizer of both generators.
        discriminator_optimizer: Prepared optimizer of both discriminators.
        generator_lr_scheduler, discriminator_lr_scheduler: Prepared schedulers, or ``None``.
        loss: One of :data:`IMAGE_TO_IMAGE_GAN_LOSSES`.
        cycle_weight: Weight of the cycle-consistency L1 losses (10 in CycleGAN).
        identity_weight: Weight of the identity L1 losses (G_AB(b) = b), relative to ``cycle_weight`` (0.5 in
            CycleGAN); needs domains with the same number of channels; 0 disables them.
        replay_buffers: :class:`ImageReplayBuffer` of generated A and of generated B images, or ``None``.
        augment: Differentiable augmentation of the discriminators' inputs.
        max_grad_norm: Clip the gradient norms to this; ``None`` only measures them.
        emas: EMAs of the two generators (or ``None`` s).
        rng: Generator of the augmentations (see ``create_training_rng``).
        channels_last: Feed the models channels-last images.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        generator_a_to_b: nn.Module,
        generator_b_to_a: nn.Module,
        discriminator_a: nn.Module,
        discriminator_b: nn.Module,
        generator_optimizer: torch.optim.Optimizer,
        discriminator_optimizer: torch.optim.Optimizer,
        generator_lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        discriminator_lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        *,
        loss: str = "non-saturating",
        cycle_weight: float = 10.0,
        identity_weight: float = 0.5,
        replay_buffers: tuple[ImageReplayBuffer, ImageReplayBuffer] | None = None,
        augment: DiffAugment | None = None,
        max_grad_norm: float | None = None,
        emas: tuple[EMAModel | None, EMAModel | None] = (None, None),
        rng: torch.Generator | None = None,
        channels_last: bool = False,
    ):
        super().__init__(accelerator, loss, max_grad_norm, rng)
        if cycle_weight < 0 or identity_weight < 0:
            raise ValueError(f"loss weights must be >= 0, got {cycle_weight} and {identity_weight}")
        bare_a_to_b = accelerator.unwrap_model(generator_a_to_b)
        channels = (bare_a_to_b.config.in_channels, bare_a_to_b.config.out_channels)
        if identity_weight and channels[0] != channels[1]:
            raise ValueError(
                f"the identity loss needs domains with the same number of channels, got {channels}; "
                "set identity_weight=0"
            )
        self.generators = (generator_a_to_b, generator_b_to_a)
        self.bare_generators = (bare_a_to_b, accelerator.unwrap_model(generator_b_to_a))
        self.discriminators = (discriminator_a, discriminator_b)
        self.bare_discriminators = tuple(accelerator.unwrap_model(model) for model in self.discriminators)
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        self.generator_lr_scheduler = generator_lr_scheduler
        self.discriminator_lr_scheduler = discriminator_lr_scheduler
        self.cycle_weight = cycle_weight
        self.identity_weight = identity_weight
        self.replay_buffers = replay_buffers
        self.augment = augment or DiffAugment(None)
        self.emas = emas
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def train_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        """Train on ``{"pixel_values_a", "pixel_values_b"}`` (``(B, C, H, W)`` in [-1, 1], unpaired).

        Returns:
            Losses (adversarial, cycle, identity), mean logits, gradient norms and learning rates, averaged over the
            processes.
        """
        accelerator = self.accelerator
        real_a = batch["pixel_values_a"].contiguous(memory_format=self.memory_format)
        real_b = batch["pixel_values_b"].contiguous(memory_format=self.memory_format)
        a_to_b, b_to_a = self.generators
        bare_a_to_b, bare_b_to_a = self.bare_generators
        bare_discriminator_a, bare_discriminator_b = self.bare_discriminators
        batch_size = real_a.shape[0]
        logs: dict[str, float] = {}
        with accelerator.accumulate(*self.generators, *self.discriminators):
            # Generators: one pass of each prepared model (identity images batched in); the cycle's second pass goes
            # through the bare model, so a DDP model runs forward once per backward.
            if self.identity_weight:
                fake_b, same_b = _translate(a_to_b, torch.cat([real_a, real_b])).split(batch_size)
                fake_a, same_a = _translate(b_to_a, torch.cat([real_b, real_a])).split(batch_size)
            else:
                fake_b, fake_a = _translate(a_to_b, real_a), _translate(b_to_a, real_b)
            with frozen(*self.bare_discriminators):
                adversarial = sum(
                    generator_loss(_judge(discriminator, self.augment(fake, self.rng))[0], self.loss)
                    for discriminator, fake in ((bare_discriminator_b, fake_b), (bare_discriminator_a, fake_a))
                )
            cycle = F.l1_loss(_translate(bare_b_to_a, fake_b).float(), real_a.float()) + F.l1_loss(
                _translate(bare_a_to_b, fake_a).float(), real_b.float()
            )
            g_loss = adversarial + self.cycle_weight * cycle
            terms = {"adversarial_loss": adversarial, "cycle_loss": cycle}
            if self.identity_weight:
                terms["identity_loss"] = F.l1_loss(same_b.float(), real_b.float()) + F.l1_loss(
                    same_a.float(), real_a.float()
                )
                g_loss = g_loss + self.cycle_weight * self.identity_weight * terms["identity_loss"]
            logs |= self._update(
                "generator",
                g_loss,
                self.generators,
                self.generator_optimizer,
                self.generator_lr_scheduler,
                step,
                **terms,
            )

            # Discriminators: real images vs generated ones, partly replayed from earlier steps.
            fake_a, fake_b = fake_a.detach().to(real_a.dtype), fake_b.detach().to(real_b.dtype)
            if self.replay_buffers is not None:
                fake_a, fake_b = self.replay_buffers[0](fake_a), self.replay_buffers[1](fake_b)
            d_terms = {}
            d_loss = 0.0
            for domain, discriminator, real, fake in (
                ("a", self.discriminators[0], real_a, fake_a),
                ("b", self.discriminators[1], real_b, fake_b),
            ):
                judged = self.augment(torch.cat([real, fake]), self.rng)
                real_logits, fake_logits = _judge(discriminator, judged)[0].chunk(2)
                d_loss = d_loss + discriminator_loss(real_logits, fake_logits, self.loss)
                d_terms[f"real_logits_{domain}"] = real_logits.mean()
                d_terms[f"fake_logits_{domain}"] = fake_logits.mean()
            logs |= self._update(
                "discriminator",
                d_loss,
                self.discriminators,
                self.discriminator_optimizer,
                self.discriminator_lr_scheduler,
                step,
                **d_terms,
            )

        if accelerator.sync_gradients:
            for ema, generator in zip(self.emas, self.bare_generators, strict=True):
                if ema is not None:
                    ema.step(generator.parameters())
        return logs
