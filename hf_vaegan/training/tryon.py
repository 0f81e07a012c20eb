"""Virtual try-on training: try-on datasets as tensors, the update step, sample grids and held-out evaluation.

Used by ``examples/train_tryon.py`` and ``benchmarks/eval_tryon.py``. The model (:class:`hf_vaegan.models.TryOnModel`)
warps the garment with an appearance flow and renders the person with a composition mask; it is trained against a
conditional PatchGAN (which judges (agnostic person, result) pairs) with:

- a multi-scale L1 loss to the ground truth (the L1 at 1/2 and 1/4 scale gives the warp and the rendering
  gradients over a wider area than the pixel-exact loss alone);
- a perceptual-style loss without any pretrained network: feature matching on every hidden layer of the PatchGAN
  (pix2pixHD), whose features are learnt on this very data, so nothing is downloaded and no ImageNet bias enters;
- the adversarial loss;
- for the warp: a multi-scale L1 loss between the warped garment (and its mask) and the garment as worn, and a
  total-variation penalty on the flow. The garment as worn is the wardrobe's ``warped_cloth`` column where the
  dataset has it, else (VITON-HD) the clothes of ``image_parse`` cut out of the person image, as in CP-VTON.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from PIL import Image
from torch import nn

from ..data.viton import load_viton_hd
from ..data.wardrobe import PARSE_LABELS, TRYON_COLUMNS, build_wardrobe_dataset
from ..metrics.features import FashionClassifierFeatures, FeatureExtractor
from ..metrics.generative import feature_statistics, frechet_distance
from ..metrics.image_quality import ssim
from .data import load_image_dataset, make_dataloader
from .gan import DiffAugment, discriminator_loss, generator_loss
from .image_to_image import (
    _AdversarialTrainer,
    _judge,
    add_image_to_image_args,
    comparison_grid,
    feature_matching_loss,
    frozen,
    validate_image_to_image_args,
)

DEFAULT_TRYON_RESOLUTION = (128, 96)
# The model's inputs, by the name of the batch entries that hold them.
MODEL_INPUTS = ("agnostic", "agnostic_mask", "body_mask", "pose_keypoints", "cloth", "cloth_mask")
# Parse labels of the garments VITON-HD tries on: where the person's own garment is, the target of the warp.
GARMENT_PARSE_LABELS = tuple(PARSE_LABELS.index(name) for name in ("upper_clothes", "dress", "coat"))
_MASK_COLUMNS = ("cloth_mask", "agnostic_mask", "body_mask", "warped_cloth_mask", "unpaired_cloth_mask")
_UNPAIRED_COLUMNS = ("unpaired_cloth", "unpaired_cloth_mask", "unpaired_image")


# Command-line flags


def add_tryon_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the model, GAN, loss and data flags of ``train_tryon.py`` (the U-Net and PatchGAN flags are those of
    ``train_pix2pix.py``); returns the loss group. Call :func:`validate_tryon_args` after parsing."""
    gan = add_image_to_image_args(parser)
    parser.set_defaults(base_channels=8, discriminator_base_channels=16, num_downsamplings=3)
    model = parser.add_argument_group("try-on model")
    model.add_argument(
        "--use_warping",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Warp the garment with the appearance-flow U-Net (default); --no-use_warping trains the ablation that "
        "feeds the try-on U-Net the unwarped garment.",
    )
    model.add_argument(
        "--max_channel_multiplier",
        type=int,
        default=8,
        help="Cap on the U-Nets' widths, as a multiple of --base_channels.",
    )
    model.add_argument(
        "--warp_downsampling", type=int, default=2, help="The warping U-Net works at 1/N of the image size."
    )
    model.add_argument(
        "--keypoint_sigma",
        type=float,
        default=0.02,
        help="Width of the pose keypoint heatmaps, as a fraction of the image height.",
    )

    gan.add_argument("--l1_weight", type=float, default=10.0, help="Weight of the multi-scale L1 loss to the target.")
    gan.add_argument(
        "--feature_matching_weight",
        type=float,
        default=5.0,
        help="Weight of the PatchGAN feature-matching loss (pix2pixHD), the perceptual-style loss; 0 disables it.",
    )
    gan.add_argument(
        "--warp_weight",
        type=float,
        default=10.0,
        help="Weight of the multi-scale L1 loss between the warped garment (and its mask) and the garment as worn.",
    )
    gan.add_argument(
        "--flow_smoothness_weight",
        type=float,
        default=1.0,
        help="Weight of the total variation of the appearance flow.",
    )

    data = parser.add_argument_group("try-on data")
    data.add_argument(
        "--num_wardrobe_samples",
        type=int,
        default=8000,
        help="When --dataset_name is a Fashion-MNIST .npz: rows of the synthetic wardrobe rendered for training.",
    )
    data.add_argument(
        "--wardrobe_seed",
        type=int,
        default=0,
        help="When --dataset_name is a Fashion-MNIST .npz: seed of the rendered wardrobe (avatars, garment split).",
    )
    data.add_argument(
        "--validation_split",
        type=str,
        default="test",
        help="Held-out split for the sample grids and the final evaluation (rendered for a .npz).",
    )
    data.add_argument(
        "--num_validation_examples",
        type=int,
        default=500,
        help="Held-out pairs evaluated at the end (SSIM, L1, FID); 0 skips the evaluation and takes the grids' "
        "examples from the training data.",
    )
    return gan


def validate_tryon_args(args: argparse.Namespace) -> None:
    """Check the flags of :func:`add_tryon_args` (and the shared data flags try-on cannot honour); raises
    ``ValueError`` naming the flag."""
    if isinstance(args.resolution, int):
        args.resolution = (args.resolution, args.resolution)
    validate_image_to_image_args(args)
    for name in ("image_column", "label_column", "num_channels"):
        if getattr(args, name) is not None:
            raise ValueError(f"--{name} does not apply: try-on datasets have the fixed columns {TRYON_COLUMNS}")
    if args.random_flip or not args.center_crop:
        raise ValueError(
            "--random_flip and --no-center_crop do not apply: try-on images are resized whole, so that masks and "
            "keypoints stay aligned"
        )
    height, width = args.resolution
    factor = args.warp_downsampling * 2**args.num_downsamplings
    if args.warp_downsampling < 1 or height % factor or width % factor:
        raise ValueError(
            f"--resolution {height}x{width} must be a multiple of --warp_downsampling x 2**--num_downsamplings = "
            f"{factor}"
        )
    if args.max_channel_multiplier < 1:
        raise ValueError(f"--max_channel_multiplier must be a positive integer, got {args.max_channel_multiplier}")
    if not args.keypoint_sigma > 0:
        raise ValueError(f"--keypoint_sigma must be positive, got {args.keypoint_sigma}")
    for name in ("l1_weight", "feature_matching_weight", "warp_weight", "flow_smoothness_weight"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.num_wardrobe_samples < 1:
        raise ValueError(f"--num_wardrobe_samples must be positive, got {args.num_wardrobe_samples}")
    if args.num_validation_examples < 0:
        raise ValueError(f"--num_validation_examples must be >= 0, got {args.num_validation_examples}")


# Data


@dataclass
class TryOnDatasetInfo:
    """A loaded try-on split.

    Attributes:
        dataset: The rows, with at least :data:`~hf_vaegan.data.TRYON_COLUMNS` (images still PIL).
        source: What ``dataset_name`` was: ``"wardrobe"`` (a saved or Hub dataset), ``"viton-hd"`` (a VITON-HD
            folder) or ``"rendered"`` (a wardrobe rendered from a Fashion-MNIST ``.npz``).
    """

    dataset: datasets.Dataset
    source: str

    def with_transform(self, resolution: tuple[int, int]) -> datasets.Dataset:
        """The dataset yielding the tensors of :class:`TryOnTransform`."""
        return self.dataset.with_transform(TryOnTransform(resolution))


def _is_viton_root(path: Path) -> bool:
    return any((path / f"{split}_pairs.txt").is_file() for split in ("train", "test"))


def load_tryon_dataset(
    dataset_name: str,
    split: str = "train",
    resolution: tuple[int, int] = DEFAULT_TRYON_RESOLUTION,
    *,
    dataset_config_name: str | None = None,
    cache_dir: str | None = None,
    max_samples: int | None = None,
    seed: int | None = None,
    num_wardrobe_samples: int = 8000,
    wardrobe_seed: int = 0,
) -> TryOnDatasetInfo:
    """One split of a try-on dataset, from any of three sources:

    - a Fashion-MNIST ``.npz`` (``images``, ``labels``): the synthetic wardrobe is rendered from it
      (``num_wardrobe_samples`` rows, with ``wardrobe_seed``; the test split has the unpaired columns);
    - a VITON-HD folder (with ``train_pairs.txt`` or ``test_pairs.txt``): read with
      :func:`hf_vaegan.data.load_viton_hd`;
    - a wardrobe dataset written by ``save_to_disk`` or pushed to the Hub (anything ``--dataset_name`` of the other
      scripts takes), which must hold :data:`~hf_vaegan.data.TRYON_COLUMNS`.

    ``max_samples`` keeps a random subset (drawn with ``seed``).

    Raises:
        ValueError: An unknown source or split, or a dataset without the try-on columns.
        FileNotFoundError: Missing VITON-HD files.
    """
    path = Path(dataset_name).expanduser()
    if path.is_file() and path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            if not {"images", "labels"} <= set(arrays.files):
                raise ValueError(f"{dataset_name!r} must hold Fashion-MNIST 'images' and 'labels', got {arrays.files}")
            images, labels = arrays["images"], arrays["labels"]
        if split not in ("train", "test"):
            raise ValueError(
                f"a wardrobe rendered from {dataset_name!r} has the splits 'train' and 'test', not {split!r}"
            )
        count = num_wardrobe_samples if max_samples is None else min(max_samples, num_wardrobe_samples)
        dataset = build_wardrobe_dataset(
            images, labels, count, resolution=resolution, seed=wardrobe_seed, split=split, unpaired=split == "test"
        )
        return TryOnDatasetInfo(dataset, "rendered")
    if path.is_dir() and _is_viton_root(path):
        dataset = load_viton_hd(path, split, resolution=resolution, cache_dir=cache_dir)
        source = "viton-hd"
    else:
        dataset = load_image_dataset(
            dataset_name, dataset_config_name, split=split, image_column="image", cache_dir=cache_dir
        ).dataset
        source = "wardrobe"
    missing = [column for column in TRYON_COLUMNS if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{dataset_name!r} (split {split!r}) is not a try-on dataset: it lacks the columns {missing}; pass a "
            "wardrobe dataset (examples/make_wardrobe_dataset.py), a VITON-HD folder or a Fashion-MNIST .npz"
        )
    if max_samples is not None and max_samples < len(dataset):
        dataset = dataset.shuffle(seed=seed).select(range(max_samples))
    return TryOnDatasetInfo(dataset, source)


def load_tryon_dataset_from_args(args: argparse.Namespace, split: str, max_samples: int | None) -> TryOnDatasetInfo:
    """:func:`load_tryon_dataset` with the script's flags."""
    return load_tryon_dataset(
        args.dataset_name,
        split,
        args.resolution,
        dataset_config_name=args.dataset_config_name,
        cache_dir=args.cache_dir,
        max_samples=max_samples,
        seed=args.seed,
        num_wardrobe_samples=args.num_wardrobe_samples if split == "train" else args.num_validation_examples,
        wardrobe_seed=args.wardrobe_seed,
    )


def rgb_tensor(image: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """A PIL image -> ``(3, H, W)`` float in [-1, 1] at ``size`` (height, width)."""
    image = image.convert("RGB")
    if image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0)


def mask_tensor(mask: Image.Image | np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """A mask (PIL image or array; nonzero = inside) -> ``(1, H, W)`` float in {0, 1} at ``size``."""
    array = np.asarray(mask)
    if array.ndim == 3:
        array = array.max(axis=-1)
    binary = array > (127 if array.dtype == np.uint8 else 0)
    if binary.shape != size:
        resized = Image.fromarray(binary).resize((size[1], size[0]), Image.Resampling.NEAREST)
        binary = np.asarray(resized)
    return torch.from_numpy(binary.astype(np.float32))[None]


def keypoints_tensor(keypoints, from_size: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """``(18, 3)`` [x, y, confidence] in pixels of ``from_size`` -> float tensor in pixels of ``size``."""
    points = torch.tensor(keypoints, dtype=torch.float32)
    points[:, 0] *= size[1] / from_size[1]
    points[:, 1] *= size[0] / from_size[0]
    return points


class TryOnTransform:
    """``datasets`` batch transform: try-on rows -> tensors at ``resolution`` (height, width).

    Yields ``image``, ``agnostic``, ``cloth`` ``(3, H, W)`` in [-1, 1]; ``agnostic_mask``, ``body_mask``,
    ``cloth_mask`` ``(1, H, W)`` in {0, 1}; ``pose_keypoints`` ``(18, 3)``; the warp's target ``warped_cloth``
    (garment as worn, white elsewhere) and ``warped_cloth_mask``; and, where the rows have them, ``unpaired_cloth``,
    ``unpaired_cloth_mask`` and ``unpaired_image``.
    """

    def __init__(self, resolution: tuple[int, int]):
        self.resolution = tuple(resolution)

    def _example(self, row: Mapping) -> dict[str, torch.Tensor]:
        size = self.resolution
        person = row["image"].convert("RGB")
        example = {
            name: mask_tensor(row[name], size) if name in _MASK_COLUMNS else rgb_tensor(row[name], size)
            for name in ("image", "agnostic", "agnostic_mask", "body_mask", "cloth", "cloth_mask")
        }
        example["pose_keypoints"] = keypoints_tensor(row["pose_keypoints"], person.size[::-1], size)
        if row.get("warped_cloth") is not None:
            example["warped_cloth"] = rgb_tensor(row["warped_cloth"], size)
            example["warped_cloth_mask"] = mask_tensor(row["warped_cloth_mask"], size)
        else:
            worn = np.isin(np.asarray(row["image_parse"]), GARMENT_PARSE_LABELS)
            example["warped_cloth_mask"] = mask_tensor(worn, size)
            example["warped_cloth"] = torch.where(example["warped_cloth_mask"] > 0, example["image"], 1.0)
        for name in _UNPAIRED_COLUMNS:
            if row.get(name) is not None:
                example[name] = mask_tensor(row[name], size) if name in _MASK_COLUMNS else rgb_tensor(row[name], size)
        return example

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        examples = [self._example(row) for row in rows]
        return {name: [example[name] for example in examples] for name in examples[0]}


def model_inputs(batch: Mapping[str, torch.Tensor], garment_prefix: str = "") -> dict[str, torch.Tensor]:
    """The keyword arguments of ``TryOnModel`` from a batch; ``garment_prefix="unpaired_"`` tries on the unpaired
    garment."""
    return {
        "agnostic": batch["agnostic"],
        "agnostic_mask": batch["agnostic_mask"],
        "body_mask": batch["body_mask"],
        "keypoints": batch["pose_keypoints"],
        "cloth": batch[f"{garment_prefix}cloth"],
        "cloth_mask": batch[f"{garment_prefix}cloth_mask"],
    }


# Losses


def multiscale_l1(images: torch.Tensor, targets: torch.Tensor, num_scales: int = 3) -> torch.Tensor:
    """Mean over scales (1, 1/2, 1/4, ...) of the L1 distance between average-pooled ``images`` and ``targets``."""
    images, targets = images.float(), targets.float()
    losses = []
    for scale in range(num_scales):
        if scale:
            images, targets = F.avg_pool2d(images, 2), F.avg_pool2d(targets, 2)
        losses.append(F.l1_loss(images, targets))
    return torch.stack(losses).mean()


def total_variation(flow: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring flow vectors, in pixels (so it does not depend on the size)."""
    height, width = flow.shape[-2:]
    # grid_sample units span the image with 2: convert to pixels.
    scale = torch.tensor([width / 2, height / 2], device=flow.device, dtype=torch.float32).view(1, 2, 1, 1)
    pixels = flow.float() * scale
    return (pixels.diff(dim=-1).abs().mean() + pixels.diff(dim=-2).abs().mean()) / 2


# The training step


class TryOnTrainer(_AdversarialTrainer):
    """One try-on update per batch: the PatchGAN on (agnostic, person) vs (agnostic, try-on) pairs, then the model
    (adversarial + L1 + feature matching + warp losses), then its EMA.

    Args:
        accelerator: The run's Accelerator.
        model: Prepared ``TryOnModel``.
        discriminator: Prepared ``PatchDiscriminator`` with ``in_channels=6``.
        model_optimizer, discriminator_optimizer: Prepared optimizers.
        model_lr_scheduler, discriminator_lr_scheduler: Prepared schedulers, or ``None``.
        loss: ``"non-saturating"`` or ``"hinge"``.
        l1_weight, feature_matching_weight, warp_weight, flow_smoothness_weight: Loss weights (see the module
            docstring); the adversarial loss has weight 1.
        augment: Differentiable augmentation of the pairs the discriminator sees.
        max_grad_norm: Clip both gradient norms to this; ``None`` only measures them.
        ema: EMA of the model's parameters.
        rng: Generator of the augmentations (see ``create_training_rng``).
        channels_last: Feed the models channels-last images.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        model: nn.Module,
        discriminator: nn.Module,
        model_optimizer: torch.optim.Optimizer,
        discriminator_optimizer: torch.optim.Optimizer,
        model_lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        discriminator_lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        *,
        loss: str = "non-saturating",
        l1_weight: float = 10.0,
        feature_matching_weight: float = 5.0,
        warp_weight: float = 10.0,
        flow_smoothness_weight: float = 1.0,
        augment: DiffAugment | None = None,
        max_grad_norm: float | None = None,
        ema: EMAModel | None = None,
        rng: torch.Generator | None = None,
        channels_last: bool = False,
    ):
        super().__init__(accelerator, loss, max_grad_norm, rng)
        weights = (l1_weight, feature_matching_weight, warp_weight, flow_smoothness_weight)
        if min(weights) < 0:
            raise ValueError(f"loss weights must be >= 0, got {weights}")
        self.model = model
        self.discriminator = discriminator
        self.bare_model = accelerator.unwrap_model(model)
        self.bare_discriminator = accelerator.unwrap_model(discriminator)
        self.model_optimizer = model_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        self.model_lr_scheduler = model_lr_scheduler
        self.discriminator_lr_scheduler = discriminator_lr_scheduler
        self.l1_weight, self.feature_matching_weight = l1_weight, feature_matching_weight
        self.warp_weight, self.flow_smoothness_weight = warp_weight, flow_smoothness_weight
        self.augment = augment or DiffAugment(None)
        self.ema = ema
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def train_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        """Train on a batch of :class:`TryOnTransform` tensors; ``step`` is the 1-based optimizer step.

        Returns the losses, mean logits, gradient norms and learning rates, averaged over the processes.
        """
        accelerator = self.accelerator
        inputs = {
            name: tensor.contiguous(memory_format=self.memory_format) if tensor.ndim == 4 else tensor
            for name, tensor in model_inputs(batch).items()
        }
        target = batch["image"].contiguous(memory_format=self.memory_format)
        logs: dict[str, float] = {}
        with accelerator.accumulate(self.model, self.discriminator):
            sample, warped, warped_mask, _, _, flow = self.model(**inputs, return_dict=False)
            real_pairs = torch.cat([inputs["agnostic"], target], dim=1)
            fake_pairs = torch.cat([inputs["agnostic"], sample.to(target.dtype)], dim=1)

            judged = self.augment(torch.cat([real_pairs, fake_pairs.detach()]), self.rng)
            real_logits, fake_logits = _judge(self.discriminator, judged)[0].chunk(2)
            logs |= self._update(
                "discriminator",
                discriminator_loss(real_logits, fake_logits, self.loss),
                [self.discriminator],
                self.discriminator_optimizer,
                self.discriminator_lr_scheduler,
                step,
                real_logits=real_logits.mean(),
                fake_logits=fake_logits.mean(),
            )

            with frozen(self.bare_discriminator):
                fake_logits, fake_features = _judge(self.bare_discriminator, self.augment(fake_pairs, self.rng))
                terms = {
                    "adversarial_loss": generator_loss(fake_logits, self.loss),
                    "l1": multiscale_l1(sample, target),
                }
                weights = {"adversarial_loss": 1.0, "l1": self.l1_weight}
                if self.feature_matching_weight:
                    with torch.no_grad():
                        real_features = _judge(self.bare_discriminator, real_pairs)[1]
                    if self.augment:
                        fake_features = _judge(self.bare_discriminator, fake_pairs)[1]
                    terms["feature_matching_loss"] = feature_matching_loss(real_features, fake_features)
                    weights["feature_matching_loss"] = self.feature_matching_weight
                if flow is not None:
                    worn_mask = batch["warped_cloth_mask"]
                    terms["warp_loss"] = multiscale_l1(warped * worn_mask, batch["warped_cloth"] * worn_mask)
                    terms["warp_loss"] = terms["warp_loss"] + multiscale_l1(warped_mask, worn_mask)
                    terms["flow_smoothness"] = total_variation(flow)
                    weights |= {"warp_loss": self.warp_weight, "flow_smoothness": self.flow_smoothness_weight}
                model_loss = sum(weights[name] * value for name, value in terms.items())
                logs |= self._update(
                    "model",
                    model_loss,
                    [self.model],
                    self.model_optimizer,
                    self.model_lr_scheduler,
                    step,
                    **terms,
                )

        if accelerator.sync_gradients and self.ema is not None:
            self.ema.step(self.bare_model.parameters())
        return logs


# Sample grids


@torch.no_grad()
def tryon_samples(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The try-on results and warped garments ``(N, 3, H, W)`` (float32) of ``model`` for the grids' fixed inputs."""
    inputs = {name: tensor.to(model.device, model.dtype) for name, tensor in model_inputs(batch).items()}
    output = model(**inputs)
    return output.sample.float(), output.warped_cloth.float()


def tryon_grid(model: nn.Module, batch: Mapping[str, torch.Tensor], max_columns: int = 8) -> Image.Image:
    """Rows of garments, agnostic persons, warped garments, try-on results and ground truths."""
    samples, warped = tryon_samples(model, batch)
    return comparison_grid(batch["cloth"], batch["agnostic"], warped, samples, batch["image"], max_columns=max_columns)


# Evaluation


def tryon_region_crops(images: torch.Tensor, masks: torch.Tensor, size: int = 28) -> torch.Tensor:
    """Square crops ``(B, C, size, size)`` around the bounding box of each mask (the try-on region), for FID."""
    height, width = images.shape[-2:]
    crops = []
    for image, mask in zip(images, masks, strict=True):
        rows, cols = torch.nonzero(mask[0] > 0, as_tuple=True)
        if len(rows) == 0:
            top, bottom, left, right = 0, height, 0, width
        else:
            top, bottom, left, right = (
                rows.min().item(),
                rows.max().item() + 1,
                cols.min().item(),
                cols.max().item() + 1,
            )
        side = min(max(bottom - top, right - left), height, width)
        center_y, center_x = (top + bottom) // 2, (left + right) // 2
        top = min(max(center_y - side // 2, 0), height - side)
        left = min(max(center_x - side // 2, 0), width - side)
        crop = image[None, :, top : top + side, left : left + side].float()
        crops.append(F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False))
    return torch.cat(crops).clamp(-1, 1)


TryOnPredictor = Callable[[dict[str, torch.Tensor]], torch.Tensor]


@torch.no_grad()
def evaluate_tryon(
    predictors: Mapping[str, TryOnPredictor],
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    unpaired: bool = False,
    extractor: FeatureExtractor | None = None,
) -> dict[str, dict[str, float]]:
    """SSIM, L1 and FID of try-on methods against the ground truth, on held-out pairs.

    Args:
        predictors: name -> function of the model's keyword arguments (:func:`model_inputs`) returning the try-on
            images ``(B, 3, H, W)`` in [-1, 1].
        batches: :class:`TryOnTransform` batches.
        unpaired: Try on the ``unpaired_*`` garments and compare with ``unpaired_image`` (the synthetic wardrobe's
            test split has this ground truth).
        extractor: Feature space of the FID; default: the packaged Fashion-MNIST classifier, applied to square crops
            around the try-on region (:func:`tryon_region_crops`), where the garment is.

    Returns:
        name -> ``{"ssim", "l1", "l1_region", "fid"}``: mean SSIM and mean absolute error ([0, 1] scale) over the
        images, the mean absolute error inside the try-on region (where the methods differ: the rest of the person
        is given), and the FID of the region crops against those of the ground truth.
    """
    extractor = extractor or FashionClassifierFeatures()
    prefix = "unpaired_" if unpaired else ""
    sums = {name: {"ssim": 0.0, "l1": 0.0, "l1_region": 0.0} for name in predictors}
    features = {name: [] for name in [*predictors, "ground truth"]}
    count = 0
    for batch in batches:
        inputs, target, region = model_inputs(batch, prefix), batch[f"{prefix}image"], batch["agnostic_mask"]
        features["ground truth"].append(extractor(tryon_region_crops(target, region)))
        for name, predict in predictors.items():
            images = predict(inputs).float().cpu().clamp(-1, 1)
            sums[name]["ssim"] += ssim(images, target).sum().item()
            # Halved: the mean absolute error on the [0, 1] scale.
            errors = (images - target).abs().mean(dim=1, keepdim=True) / 2
            sums[name]["l1"] += errors.mean(dim=(1, 2, 3)).sum().item()
            region_errors = (errors * region).sum(dim=(1, 2, 3)) / region.sum(dim=(1, 2, 3)).clamp(min=1)
            sums[name]["l1_region"] += region_errors.sum().item()
            features[name].append(extractor(tryon_region_crops(images, region)))
        count += len(target)
    real_statistics = feature_statistics(torch.cat(features["ground truth"]))
    return {
        name: {
            **{metric: total / count for metric, total in sums[name].items()},
            "fid": frechet_distance(*real_statistics, *feature_statistics(torch.cat(features[name]))),
        }
        for name in predictors
    }


def evaluation_batches(
    info: TryOnDatasetInfo, resolution: tuple[int, int], batch_size: int = 50
) -> torch.utils.data.DataLoader:
    """The held-out split's :class:`TryOnTransform` batches, in order; iterable again (decoding the images again
    rather than holding thousands of examples in memory)."""
    return make_dataloader(info.with_transform(resolution), batch_size, shuffle=False)


def model_predictor(model: nn.Module) -> TryOnPredictor:
    """A ``TryOnModel`` as a predictor of :func:`evaluate_tryon` (on its device and dtype)."""

    def predict(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**{name: tensor.to(model.device, model.dtype) for name, tensor in inputs.items()}).sample

    return predict


METRIC_NAMES = {
    "ssim": "SSIM (higher is better)",
    "l1": "L1, [0, 1] scale",
    "l1_region": "L1 inside the try-on region",
    "fid": "FID of the try-on region",
}
FID_PROTOCOL = (
    "FID is computed on square crops around the try-on region (the agnostic mask's bounding box), resized to "
    "28x28, in the feature space of the packaged Fashion-MNIST classifier (no feature network can be downloaded "
    "here); it compares the garments' look, not whole photographs, and is biased upward for small samples."
)


def format_metrics(metrics: Mapping[str, float]) -> dict[str, str]:
    """Metric values keyed by their card names."""
    return {METRIC_NAMES[name]: f"{value:.4f}" if name != "fid" else f"{value:.2f}" for name, value in metrics.items()}
