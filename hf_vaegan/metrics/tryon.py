"""Try-on quality on held-out pairs: SSIM, L1 (whole image and try-on region) and the FID of the try-on region.

Used by ``examples/train_tryon.py`` (the model card's figures) and ``benchmarks/eval_tryon.py`` (methods compared).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.tryon import model_inputs
from ..data.wardrobe import (
    DEFAULT_RESOLUTION,
    PARSE_LABELS,
    Avatar,
    Garment,
    agnostic,
    dress,
    make_garment,
    random_avatar,
)
from ..models.tryon import flow_in_pixels
from .features import FashionClassifierFeatures, FeatureExtractor
from .generative import feature_statistics, frechet_distance
from .image_quality import ssim


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


def cast_inputs(inputs: Mapping[str, torch.Tensor | None], model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's keyword arguments on its device, the floating ones in its dtype (the garment classes stay
    integers); ``None`` entries left out."""
    return {
        name: tensor.to(model.device, model.dtype if tensor.is_floating_point() else None)
        for name, tensor in inputs.items()
        if tensor is not None
    }


def model_predictor(model: nn.Module) -> TryOnPredictor:
    """A ``TryOnModel`` as a predictor of :func:`evaluate_tryon` (on its device and dtype)."""

    def predict(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**cast_inputs(inputs, model)).sample

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


@torch.no_grad()
def flow_distances(model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor]]) -> torch.Tensor | None:
    """The distance in pixels between a warping ``TryOnModel``'s flow and the renderer's (the wardrobe's
    ``warped_cloth_flow``), one value per pixel where the renderer's garment is, over ``batches`` of
    :class:`~hf_vaegan.data.tryon.TryOnTransform` tensors; ``None`` for a model without warping or data without the
    renderer's flow (VITON-HD)."""
    if not model.config.use_warping:
        return None
    distances = []
    for batch in batches:
        if "warped_cloth_flow" not in batch:
            return None
        flow = model(**cast_inputs(model_inputs(batch), model)).flow.cpu()
        target = batch["warped_cloth_flow"]
        known = torch.isfinite(target).all(dim=1)
        distances.append((flow_in_pixels(flow) - flow_in_pixels(target)).norm(dim=1)[known])
    return torch.cat(distances)


def format_metrics(metrics: Mapping[str, float]) -> dict[str, str]:
    """Metric values keyed by their card names."""
    return {METRIC_NAMES[name]: f"{value:.4f}" if name != "fid" else f"{value:.2f}" for name, value in metrics.items()}


# A pixel is an artefact when its colour is off by more than this on the [0, 1] scale (mean over the channels).
ARTEFACT_THRESHOLD = 0.15


def artefact_map(
    images: torch.Tensor, targets: torch.Tensor, threshold: float = ARTEFACT_THRESHOLD, tolerance: int = 0
) -> torch.Tensor:
    """``(B, 1, H, W)`` bool: the pixels of ``images`` whose colour is off from ``targets`` (both ``(B, C, H, W)`` in
    [-1, 1]) by more than ``threshold`` on the [0, 1] scale, averaged over the channels.

    With a ``tolerance`` of k pixels, a pixel is an artefact only if it is that far off from every target pixel
    within k pixels of it (a (2k + 1)-pixel square): a colour the target has nowhere near, not an edge or a stripe
    drawn a fraction of a pixel away from where the target has it."""
    if images.shape != targets.shape:
        raise ValueError(f"images {tuple(images.shape)} and targets {tuple(targets.shape)} must have one shape")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"`tolerance` must be an integer >= 0 (pixels), got {tolerance!r}")
    images, targets = images.float(), targets.float()
    if tolerance == 0:
        return (images - targets).abs().mean(dim=1, keepdim=True) / 2 > threshold
    size = 2 * tolerance + 1
    padded = F.pad(targets, (tolerance,) * 4, mode="replicate")
    neighbours = F.unfold(padded, size).view(*targets.shape[:2], size * size, *targets.shape[2:])
    nearest = (images.unsqueeze(2) - neighbours).abs().mean(dim=1).min(dim=1, keepdim=True).values
    return nearest / 2 > threshold


def artefact_rate(
    images: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    threshold: float = ARTEFACT_THRESHOLD,
) -> torch.Tensor:
    """``(B,)``: the share of each image's pixels (of those inside ``mask``, ``(B, 1, H, W)`` in {0, 1}, when given)
    that are artefacts (:func:`artefact_map`); NaN for an empty mask."""
    artefacts = artefact_map(images, targets, threshold).float()
    if mask is None:
        mask = torch.ones_like(artefacts)
    mask = (mask > 0.5).float()
    return (artefacts * mask).sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3))


def ssim_per_image(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(B,)`` SSIM of each image (in [-1, 1]) against its target."""
    return ssim(images.float().clamp(-1, 1), targets.float())


@torch.no_grad()
def score_tryon_cases(
    predictors: Mapping[str, TryOnPredictor], cases: Iterable[Mapping[str, torch.Tensor]]
) -> dict[str, dict[str, torch.Tensor]]:
    """Per-case figures of try-on methods on batches of :func:`hf_vaegan.data.tryon.model_inputs` plus ``target``
    (the renderer's ground truth, in [-1, 1]) and ``arm_mask`` (the avatar's arms and hands, ``(B, 1, H, W)``).

    Returns, per method: ``ssim``, ``l1`` (mean absolute error, [0, 1] scale), ``artefacts`` and ``arm_artefacts``
    (artefact pixel counts, whole image and arms), ``tolerant_artefacts`` (those with a one-pixel tolerance, see
    :func:`artefact_map`), ``pixels`` and ``arm_pixels``, one value per case, and the ``images`` predicted.
    """
    names = ("ssim", "l1", "artefacts", "arm_artefacts", "tolerant_artefacts", "pixels", "arm_pixels", "images")
    columns = {method: {name: [] for name in names} for method in predictors}
    for batch in cases:
        inputs = {name: tensor for name, tensor in batch.items() if name not in ("target", "arm_mask")}
        target, arms = batch["target"].float(), (batch["arm_mask"] > 0.5).float()
        for method, predict in predictors.items():
            images = predict(inputs).float().cpu().clamp(-1, 1)
            artefacts = artefact_map(images, target).float()
            column = columns[method]
            column["ssim"].append(ssim_per_image(images, target))
            column["l1"].append((images - target).abs().mean(dim=(1, 2, 3)) / 2)
            column["artefacts"].append(artefacts.sum(dim=(1, 2, 3)))
            column["arm_artefacts"].append((artefacts * arms).sum(dim=(1, 2, 3)))
            column["tolerant_artefacts"].append(artefact_map(images, target, tolerance=1).float().sum(dim=(1, 2, 3)))
            column["pixels"].append(torch.full((len(images),), float(artefacts[0].numel())))
            column["arm_pixels"].append(arms.sum(dim=(1, 2, 3)))
            column["images"].append(images)
    return {method: {name: torch.cat(values) for name, values in column.items()} for method, column in columns.items()}


def summarize_tryon_cases(scores: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The benchmark's figures from :func:`score_tryon_cases`: mean and 10th-percentile SSIM, mean L1, and the
    artefact rates (artefact pixels over all pixels, whole images and arms; whole images with a one-pixel
    tolerance)."""
    ssims = scores["ssim"].double()
    return {
        "ssim_mean": ssims.mean().item(),
        "ssim_p10": torch.quantile(ssims, 0.1).item(),
        "l1": scores["l1"].double().mean().item(),
        "artefact_rate": (scores["artefacts"].sum() / scores["pixels"].sum()).item(),
        "arm_artefact_rate": (scores["arm_artefacts"].sum() / scores["arm_pixels"].sum().clamp(min=1)).item(),
        "tolerant_artefact_rate": (scores["tolerant_artefacts"].sum() / scores["pixels"].sum()).item(),
    }


ARM_PARSE_LABELS = tuple(PARSE_LABELS.index(name) for name in ("left_arm", "right_arm"))


@dataclass(frozen=True)
class SpaceCase:
    """One try-on of the Space's input distribution: an avatar seed, a garment (a 28 x 28 item, its class and where
    it came from) and a colour seed; or, with ``cloth``, a colour garment as the Space's try-on takes it (a square
    uint8 RGB image cropped to the garment, on white: ``Garment.from_image(framed=False)``), worn as it comes, in which
    case ``item`` and ``colour_seed`` are not used."""

    avatar_seed: int
    item: np.ndarray = None
    label: int = 0
    source: str = ""
    colour_seed: int = 0
    cloth: np.ndarray | None = None

    def garment(self, resolution: Sequence[int] = DEFAULT_RESOLUTION) -> Garment:
        """The case's garment, as the renderer and the model get it."""
        if self.cloth is None:
            return make_garment(self.item, int(self.label), self.colour_seed, resolution)
        return Garment.from_image(self.cloth, int(self.label), resolution, framed=False)


def space_case_tensors(cases: Sequence[SpaceCase], resolution: Sequence[int] = DEFAULT_RESOLUTION) -> dict:
    """The cases as one batch: the ``TryOnModel`` keyword arguments (as ``TryOnPipeline`` prepares them from an
    ``Avatar`` and a ``Garment``), the renderer's ground truth ``target`` (``dress``) and the avatar's ``arm_mask``
    (its arms and hands, from the renderer's label map); images in [-1, 1], masks in {0, 1}."""
    columns: dict[str, list[np.ndarray]] = {
        name: [] for name in ("agnostic", "agnostic_mask", "body_mask", "keypoints", "cloth", "cloth_mask")
    }
    columns |= {"person_image": [], "target": [], "arm_mask": [], "garment_class": []}
    avatars: dict[int, Avatar] = {}
    for case in cases:
        if case.avatar_seed not in avatars:
            avatars[case.avatar_seed] = random_avatar(case.avatar_seed, resolution)
        avatar = avatars[case.avatar_seed]
        garment = case.garment(resolution)
        dressed = dress(avatar, garment)
        columns["agnostic"].append(agnostic(avatar.image, dressed.agnostic_mask))
        columns["agnostic_mask"].append(dressed.agnostic_mask)
        columns["body_mask"].append(avatar.body_mask)
        columns["keypoints"].append(avatar.keypoints)
        columns["cloth"].append(garment.image)
        columns["cloth_mask"].append(garment.mask)
        columns["person_image"].append(avatar.image)
        columns["target"].append(dressed.image)
        columns["arm_mask"].append(np.isin(avatar.parse, ARM_PARSE_LABELS))
        columns["garment_class"].append(np.int64(garment.label))
    batch = {}
    for name, arrays in columns.items():
        array = torch.from_numpy(np.stack(arrays))
        if array.ndim == 4:  # images (N, H, W, 3) uint8
            batch[name] = array.permute(0, 3, 1, 2).float() / 127.5 - 1
        elif name == "keypoints":
            batch[name] = array.float()
        elif name == "garment_class":
            batch[name] = array.long()
        else:
            batch[name] = array[:, None].float()
    return batch


def space_case_batches(
    cases: Sequence[SpaceCase], batch_size: int = 32, resolution: Sequence[int] = DEFAULT_RESOLUTION
) -> Iterator[dict]:
    """:func:`space_case_tensors` of ``batch_size`` cases at a time, in order."""
    for start in range(0, len(cases), batch_size):
        yield space_case_tensors(cases[start : start + batch_size], resolution)
