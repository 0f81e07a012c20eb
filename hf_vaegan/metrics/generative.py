"""Sample-quality metrics of generative models in a feature space: FID, KID and precision/recall.

- Fréchet distance (Heusel et al., 2017): distance between Gaussians fitted to real and generated features. Called
  FID with InceptionV3 features, FD_DINOv2 with DINOv2 features (Stein et al., 2023).
- Kernel distance (KID, Bińkowski et al., 2018): unbiased estimate of the squared MMD with the cubic polynomial
  kernel, averaged over random subsets; unbiased, so it can be slightly negative for equal distributions.
- Precision and recall (Kynkäänniemi et al., 2019): the fraction of generated samples inside the k-nearest-neighbour
  manifold of the real features (fidelity), and of real samples inside that of the generated ones (coverage).
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..models.blocks import check_positive_int
from .cache import cached_features
from .features import FashionClassifierFeatures, FeatureExtractor, check_metric_images

Sampler = Callable[[int], torch.Tensor]


def _as_float64_features(features: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    array = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if array.ndim != 2 or len(array) < 2:
        raise ValueError(f"`{name}` must have shape (N >= 2, D), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"`{name}` contains NaN or infinite values")
    return array.astype(np.float64)


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean `(D,)` and unbiased covariance `(D, D)` of features `(N, D)`, in float64."""
    array = _as_float64_features(features, "features")
    return array.mean(axis=0), np.cov(array, rowvar=False)


def frechet_distance(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray) -> float:
    """Fréchet distance between N(mean1, cov1) and N(mean2, cov2), computed in float64.

    ||mean1 - mean2||^2 + tr(cov1) + tr(cov2) - 2 tr((cov1 cov2)^(1/2)). The trace term is computed as
    tr((cov1^(1/2) cov2 cov1^(1/2))^(1/2)), the same value, from the eigenvalues of a symmetric positive semi-definite
    matrix: they are real, and rounding errors that make tiny ones negative are clipped to zero. This avoids the
    complex results and failures of `sqrtm` on the non-symmetric product when a covariance is singular (fewer samples
    than dimensions). The result is clipped at zero for the same reason.
    """
    mean1, mean2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    dim = mean1.shape[0]
    for name, value, shape in (("mean2", mean2, (dim,)), ("cov1", cov1, (dim, dim)), ("cov2", cov2, (dim, dim))):
        if value.shape != shape:
            raise ValueError(f"`{name}` must have shape {shape} to match `mean1`, got {value.shape}")
        if not np.isfinite(value).all():
            raise ValueError(f"`{name}` contains NaN or infinite values")
    eigenvalues, eigenvectors = np.linalg.eigh(cov1)
    sqrt_cov1 = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T
    inner = sqrt_cov1 @ cov2 @ sqrt_cov1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    diff = mean1 - mean2
    distance = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt
    return max(float(distance), 0.0)


def kernel_distance(
    real_features: torch.Tensor | np.ndarray,
    fake_features: torch.Tensor | np.ndarray,
    subset_size: int = 1000,
    num_subsets: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: mean and standard deviation over `num_subsets` random subsets of the unbiased squared MMD.

    The kernel is k(x, y) = (x.y / D + 1)^3; subsets (without replacement) have `min(subset_size, N_real, N_fake)`
    samples; `seed` makes the subsets reproducible.
    """
    real = _as_float64_features(real_features, "real_features")
    fake = _as_float64_features(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: real {real.shape[1]}, fake {fake.shape[1]}")
    if num_subsets < 1:
        raise ValueError(f"`num_subsets` must be >= 1, got {num_subsets}")
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError(f"KID needs subsets of at least 2 samples, got subset_size={subset_size}")
    dim = real.shape[1]
    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets)
    for i in range(num_subsets):
        x = real[rng.choice(len(real), size, replace=False)]
        y = fake[rng.choice(len(fake), size, replace=False)]
        k_xx, k_yy, k_xy = ((a @ b.T / dim + 1.0) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
        estimates[i] = within - 2.0 * k_xy.mean()
    return float(estimates.mean()), float(estimates.std())


def _kth_neighbour_distances(features: torch.Tensor, k: int, chunk_size: int) -> torch.Tensor:
    """Distance of each point to its k-th nearest other point: the radius of its ball in the manifold estimate."""
    radii = [
        torch.cdist(chunk, features).kthvalue(k + 1, dim=1).values  # +1: the point itself, at distance 0
        for chunk in features.split(chunk_size)
    ]
    return torch.cat(radii)


def _fraction_inside_manifold(
    queries: torch.Tensor, points: torch.Tensor, radii: torch.Tensor, chunk_size: int
) -> float:
    """Fraction of `queries` inside at least one ball (points[j], radii[j])."""
    inside = [(torch.cdist(chunk, points) <= radii).any(dim=1) for chunk in queries.split(chunk_size)]
    return torch.cat(inside).double().mean().item()


def precision_recall(
    real_features: torch.Tensor | np.ndarray,
    fake_features: torch.Tensor | np.ndarray,
    k: int = 3,
    chunk_size: int = 1024,
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) with `k`-nearest-neighbour manifolds.

    Precision: fraction of fake samples within the k-NN radius of some real sample. Recall: fraction of real samples
    within the k-NN radius of some fake sample. Both in [0, 1]; distances in float64, `chunk_size` rows at a time.
    """
    real = torch.from_numpy(_as_float64_features(real_features, "real_features"))
    fake = torch.from_numpy(_as_float64_features(fake_features, "fake_features"))
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: real {real.shape[1]}, fake {fake.shape[1]}")
    if not 1 <= k < min(len(real), len(fake)):
        raise ValueError(f"`k` must be in [1, {min(len(real), len(fake)) - 1}] for these sample sizes, got {k}")
    precision = _fraction_inside_manifold(fake, real, _kth_neighbour_distances(real, k, chunk_size), chunk_size)
    recall = _fraction_inside_manifold(real, fake, _kth_neighbour_distances(fake, k, chunk_size), chunk_size)
    return precision, recall


def _fake_batches(fake: torch.Tensor | Sampler, num_samples: int, batch_size: int) -> Iterator[torch.Tensor]:
    if isinstance(fake, torch.Tensor):
        if len(fake) < num_samples:
            raise ValueError(f"`fake` has {len(fake)} images, fewer than num_samples={num_samples}")
        yield from fake[:num_samples].split(batch_size)
        return
    if not callable(fake):
        raise TypeError(f"`fake` must be a tensor of images or a callable sampler, got {type(fake).__name__}")
    for start in range(0, num_samples, batch_size):
        count = min(batch_size, num_samples - start)
        batch = fake(count)
        check_metric_images(batch, "sampler output")
        if len(batch) != count:
            raise ValueError(f"the sampler was asked for {count} images and returned {len(batch)}")
        yield batch


def evaluate_generative(
    fake: torch.Tensor | Sampler,
    real_images: torch.Tensor,
    extractor: FeatureExtractor | None = None,
    num_samples: int | None = None,
    *,
    dataset: str | None = None,
    split: str | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 500,
    nearest_k: int = 3,
    kid_subset_size: int = 1000,
    kid_num_subsets: int = 100,
    seed: int = 0,
) -> dict[str, float]:
    """FID, KID and precision/recall of generated images against real ones, in the feature space of `extractor`.

    Args:
        fake: generated images `(N, C, H, W)` in [-1, 1], or a sampler `fake(n) -> (n, C, H, W)` called in batches
            (e.g. `lambda n: vae.sample(n, generator=g)`), so that only one batch of images is in memory at a time.
        real_images: real images `(M, C, H, W)` in [-1, 1].
        extractor: the feature space; the packaged Fashion-MNIST classifier by default.
        num_samples: number of generated images to evaluate; defaults to all of `fake` if it is a tensor, else to
            `len(real_images)`. FID is biased upward for small samples: compare models at equal `num_samples`.
        dataset, split: name the real images to cache their features (see [`cached_features`]); no caching unless
            `dataset` is given.
        cache_dir: folder of the feature cache.
        batch_size: generated images per sampler call.
        nearest_k: k of the precision/recall manifolds.
        kid_subset_size, kid_num_subsets: KID subsets.
        seed: seed of the KID subsets.

    Returns:
        `{"fid", "kid_mean", "kid_std", "precision", "recall"}` as floats.
    """
    check_metric_images(real_images, "real_images")
    extractor = extractor or FashionClassifierFeatures()
    if num_samples is None:
        num_samples = len(fake) if isinstance(fake, torch.Tensor) else len(real_images)
    check_positive_int("num_samples", num_samples, minimum=2)
    if dataset is not None:
        real_features = cached_features(real_images, extractor, dataset, split or "unspecified", cache_dir)
    else:
        real_features = extractor(real_images)
    fake_features = torch.cat([extractor(batch) for batch in _fake_batches(fake, num_samples, batch_size)])

    fid = frechet_distance(*feature_statistics(real_features), *feature_statistics(fake_features))
    kid_mean, kid_std = kernel_distance(real_features, fake_features, kid_subset_size, kid_num_subsets, seed)
    precision, recall = precision_recall(real_features, fake_features, nearest_k)
    return {"fid": fid, "kid_mean": kid_mean, "kid_std": kid_std, "precision": precision, "recall": recall}


@torch.inference_mode()
def classification_accuracy(
    images: torch.Tensor, labels: torch.Tensor, classifier: FashionClassifierFeatures | None = None
) -> float:
    """Fraction of `images` `(N, C, H, W)` in [-1, 1] that the classifier assigns to `labels` `(N,)`.

    With the images of a class-conditional generator and the labels it was asked for, this measures how well the
    generator follows its conditioning. `classifier` is a [`FashionClassifierFeatures`] (the packaged classifier by
    default), whose input preparation and batching are reused.
    """
    check_metric_images(images)
    labels = torch.as_tensor(labels)
    if labels.shape != (len(images),):
        raise ValueError(f"`labels` must have shape ({len(images)},), got {tuple(labels.shape)}")
    classifier = classifier or FashionClassifierFeatures()
    predictions = [
        classifier.model(classifier.prepare(batch.to(classifier.device))).logits.argmax(-1).cpu()
        for batch in images.split(classifier.batch_size)
    ]
    return (torch.cat(predictions) == labels.cpu()).double().mean().item()
