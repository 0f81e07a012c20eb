"""Try-on quality on held-out pairs: SSIM, L1 (whole image and try-on region) and the FID of the try-on region.

Used by ``examples/train_tryon.py`` (the model card's figures) and ``benchmarks/eval_tryon.py`` (methods compared).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..data.tryon import model_inputs
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
