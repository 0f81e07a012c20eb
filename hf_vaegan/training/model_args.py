"""The flags of model families shared by several scripts, and their validation.

- :func:`add_discriminator_args` and :func:`add_lazy_r1_args`: the discriminator and R1 flags of every adversarial
  script (``--diffaugment`` is parsed by :func:`diffaugment_policy`);
- :func:`add_vae_args`: the VAE, KL and held-out evaluation flags of ``train_vae.py`` and ``train_vaegan.py``;
- :func:`add_image_to_image_args`: the U-Net generator, PatchGAN and adversarial flags of ``train_pix2pix.py``,
  ``train_cyclegan.py`` and ``train_tryon.py``; :func:`unet_config_from_args` and
  :func:`patch_discriminator_config_from_args` turn them into the models' keywords.

Each script adds its own loss weights to the group these return.
"""

from __future__ import annotations

import argparse
import math

from ..data.images import height_and_width
from ..models.blocks import SUPPORTED_RESOLUTIONS
from ..models.patch_discriminator import patch_logits_size
from ..models.vae import LIKELIHOODS
from .args import check_non_negative, check_positive, check_positive_ints
from .augment import parse_diffaugment_policy

# The adversarial losses that make sense on patch logit maps (WGAN-GP's critic is not a patch classifier).
IMAGE_TO_IMAGE_GAN_LOSSES = ("non-saturating", "hinge")
# `auto` depths: the U-Net stops halving at 4 pixels (or fewer when the size allows no more halvings) and the
# PatchGAN keeps at least a 4x4 logit map, with at most the 3 layers (70x70 patches) of pix2pix.
MIN_BOTTLENECK_SIZE = 4
MAX_PATCH_LAYERS = 3
MIN_LOGITS_SIZE = 4


# Adversarial flags


def diffaugment_policy(value: str) -> str:
    """The ``type`` of ``--diffaugment``: the policy's operations, comma-separated and checked, or ``"none"``."""
    try:
        return ",".join(parse_diffaugment_policy(value)) or "none"
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_discriminator_args(
    parser: argparse.ArgumentParser, *, default_spectral_norm: bool = False, default_learning_rate: float = 2e-4
) -> argparse._ArgumentGroup:
    """Add the discriminator flags of every adversarial script (``--discriminator_base_channels``,
    ``--spectral_norm``, ``--discriminator_learning_rate``) in a group of their own; returns it, for the script's
    other discriminator flags. Call :func:`validate_discriminator_args` after parsing."""
    spectral_norm_help = "Spectral normalisation of every discriminator layer (Miyato et al., 2018)."
    if default_spectral_norm:
        spectral_norm_help += " On by default (the README has the ablation); --no-spectral_norm disables it."
    group = parser.add_argument_group("discriminator")
    group.add_argument(
        "--discriminator_base_channels",
        type=int,
        default=None,
        help="Width of the discriminator's first layer, when it should differ from --base_channels.",
    )
    group.add_argument(
        "--spectral_norm",
        action=argparse.BooleanOptionalAction,
        default=default_spectral_norm,
        help=spectral_norm_help,
    )
    group.add_argument(
        "--discriminator_learning_rate",
        type=float,
        default=default_learning_rate,
        help="Learning rate of the discriminator(s).",
    )
    return group


def validate_discriminator_args(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` naming the flag for bad values of the :func:`add_discriminator_args` flags."""
    if args.discriminator_base_channels is not None and args.discriminator_base_channels < 1:
        raise ValueError(f"--discriminator_base_channels must be positive, got {args.discriminator_base_channels}")
    check_positive(args, "discriminator_learning_rate")


def add_lazy_r1_args(group: argparse._ArgumentGroup) -> None:
    """Add ``--r1_gamma`` and ``--r1_interval`` (lazy R1 on the discriminator) to ``group``. Call
    :func:`validate_lazy_r1_args` after parsing."""
    group.add_argument(
        "--r1_gamma",
        type=float,
        default=0.1,
        help="Weight of the R1 penalty gamma/2 * ||grad D(real)||^2 on the discriminator; 0 disables it.",
    )
    group.add_argument(
        "--r1_interval",
        type=int,
        default=16,
        help="Lazy regularisation: apply R1 every this many steps, scaled by the interval (StyleGAN2).",
    )


def validate_lazy_r1_args(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` naming the flag for bad values of ``--r1_gamma`` and ``--r1_interval``."""
    check_non_negative(args, "r1_gamma")
    check_positive_ints(args, "r1_interval")


# VAE flags


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
    check_positive_ints(args, "latent_dim", "base_channels", "num_validation_images", "num_importance_samples")
    if not (args.beta >= 0 and math.isfinite(args.beta)):
        raise ValueError(f"--beta must be a finite number >= 0, got {args.beta}")
    check_non_negative(args, "kl_warmup_steps")
    check_positive(args, "learning_rate")
    if args.num_sample_images < 2:
        raise ValueError(
            f"--num_sample_images must be >= 2 (images and reconstructions), got {args.num_sample_images}"
        )


# Image-to-image flags


def add_image_to_image_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the model, discriminator and GAN flags shared by ``train_pix2pix.py``, ``train_cyclegan.py`` and
    ``train_tryon.py``.

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
    discriminator = add_discriminator_args(parser)
    discriminator.add_argument(
        "--discriminator_num_layers",
        type=int,
        default=None,
        help=f"Stride-2 layers of the PatchGAN (3 judges 70x70 patches). Default: {MAX_PATCH_LAYERS}, or fewer to "
        f"keep a logit map of at least {MIN_LOGITS_SIZE}x{MIN_LOGITS_SIZE} (2 at 28x28).",
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
        type=diffaugment_policy,
        default="none",
        help="Differentiable augmentation of what the discriminators see (pairs are augmented alike): "
        "comma-separated operations among translation, cutout, color, or 'none'. Helps below a few thousand images.",
    )
    gan.add_argument("--generator_learning_rate", type=float, default=2e-4, help="Learning rate of the generator(s).")
    return gan


def validate_image_to_image_args(args: argparse.Namespace) -> None:
    """Check the flags of :func:`add_image_to_image_args` and resolve the ``auto`` depths in place; raises
    ``ValueError`` naming the flag."""
    height, width = height_and_width(args.resolution)
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
    check_positive_ints(args, "base_channels", "layers_per_block")
    check_non_negative(args, "num_residual_blocks")
    validate_discriminator_args(args)
    check_positive(args, "generator_learning_rate")


def unet_config_from_args(args: argparse.Namespace) -> dict[str, object]:
    """The U-Net keywords set by the :func:`add_image_to_image_args` model flags and ``--resolution``, for a
    ``UNetGenerator`` or a ``TryOnModel`` (the channel counts come from the data)."""
    return {
        "base_channels": args.base_channels,
        "num_downsamplings": args.num_downsamplings,
        "layers_per_block": args.layers_per_block,
        "num_residual_blocks": args.num_residual_blocks,
        "norm_type": args.norm_type,
        "sample_size": args.resolution,
    }


def patch_discriminator_config_from_args(args: argparse.Namespace) -> dict[str, object]:
    """The ``PatchDiscriminator`` keywords set by the :func:`add_image_to_image_args` discriminator flags (its
    ``in_channels`` come from the data)."""
    return {
        "base_channels": args.discriminator_base_channels or args.base_channels,
        "num_layers": args.discriminator_num_layers,
        "spectral_norm": args.spectral_norm,
    }
