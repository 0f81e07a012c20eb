"""One evaluation protocol for every hf-vaegan image model, shared by `hf-vaegan evaluate` and the training scripts."""

from collections.abc import Callable

import torch

from ..models import Generator
from .features import FashionClassifierFeatures, FeatureExtractor
from .generative import evaluate_generative
from .likelihood import evaluate_vae

FASHION_MNIST_CLASSES = 10


def _num_classes(model) -> int:
    """Classes of a conditional sampler: a `Generator`'s, or any model with `sample(n, class_labels=, generator=)`
    and a `num_classes` config entry (e.g. the baselines of `benchmarks/`); 0 for unconditional models and VAEs."""
    if not isinstance(model, Generator) and not hasattr(model, "sample"):
        return 0
    return getattr(model, "config", {}).get("num_classes", 0)


def _label_classifier(extractor: FeatureExtractor, num_classes: int) -> FashionClassifierFeatures | None:
    """The classifier that judges a conditional model's labels: the extractor when it is a classifier of as many
    classes (labels are taken to be the same classes), else the packaged one for 10-class models, else none."""
    if not num_classes:
        return None
    if isinstance(extractor, FashionClassifierFeatures) and extractor.model.config.num_classes == num_classes:
        return extractor
    return FashionClassifierFeatures() if num_classes == FASHION_MNIST_CLASSES else None


def _sampler(model, seed: int, classifier: FashionClassifierFeatures | None, tally: dict, progress=None):
    """Draws batches from one seeded generator; a conditional generator cycles through its classes (label i % K).
    `progress(n)` is told of each batch."""
    rng = torch.Generator(device=model.device).manual_seed(seed)
    num_classes = _num_classes(model)

    def sample(n: int) -> torch.Tensor:
        if progress is not None:
            progress(n)
        if not num_classes:
            return model.sample(n, generator=rng).float()
        labels = (torch.arange(tally["drawn"], tally["drawn"] + n) % num_classes).to(model.device)
        images = model.sample(n, class_labels=labels, generator=rng).float()
        tally["drawn"] += n
        if classifier is not None:
            logits = classifier.model(classifier.prepare(images.to(classifier.device))).logits
            tally["correct"] += (logits.argmax(-1).cpu() == labels.cpu()).sum().item()
        return images

    return sample


@torch.no_grad()
def evaluate_model(
    model: torch.nn.Module,
    real_images: torch.Tensor,
    num_samples: int = 10_000,
    extractor: FeatureExtractor | None = None,
    *,
    dataset: str | None = None,
    split: str | None = None,
    seed: int = 0,
    likelihood_images: int = 1_000,
    num_importance_samples: int = 100,
    batch_size: int = 500,
    progress: Callable[[int], object] | None = None,
) -> dict[str, float]:
    """Sample-quality metrics of a generator, VAE or VAE-GAN, plus likelihoods for the VAEs.

    Args:
        model: a `Generator` (conditional ones draw classes in turn, label i % num_classes), `VAE` or `VAEGAN`.
        real_images: the reference split `(N, C, H, W)` in [-1, 1] (e.g. the 10,000 Fashion-MNIST test images).
        num_samples: generated images compared with `real_images`; report it beside the figures (FID depends on it).
        extractor: feature space of FID/KID/precision/recall; the packaged Fashion-MNIST classifier by default.
        dataset, split: name `real_images` so that their features are cached.
        seed: seed of the generated images and of the KID subsets.
        likelihood_images: VAEs only: the first this-many real images get the negative ELBO and the IWAE bound.
        num_importance_samples: VAEs only: K of the IWAE bound.
        progress: called with the size of each batch of generated images (e.g. a tqdm bar's `update`).

    Returns:
        `fid`, `kid_mean`, `kid_std`, `precision`, `recall`, `num_samples`; `class_accuracy` for conditional
        generators judged by a classifier of as many classes (the extractor's, e.g. the garment classifier for a
        6-class garment GAN, or the packaged Fashion-MNIST classifier for 10 classes): its agreement with the
        requested labels; for VAEs also what `evaluate_vae` reports.
    """
    was_training = model.training
    model.eval()
    try:
        extractor = extractor or FashionClassifierFeatures()
        classifier = _label_classifier(extractor, _num_classes(model))
        tally = {"drawn": 0, "correct": 0}
        metrics = evaluate_generative(
            _sampler(model, seed, classifier, tally, progress),
            real_images,
            extractor,
            num_samples,
            dataset=dataset,
            split=split,
            batch_size=batch_size,
            seed=seed,
        )
        metrics["num_samples"] = num_samples
        if classifier is not None:
            metrics["class_accuracy"] = tally["correct"] / tally["drawn"]
        if hasattr(model, "reconstruction_nll"):
            generator = torch.Generator(device=model.device).manual_seed(seed)
            images = real_images[:likelihood_images]
            metrics.update(evaluate_vae(model, images, num_importance_samples, generator, batch_size=batch_size))
            metrics["likelihood_images"] = len(images)
        return metrics
    finally:
        model.train(was_training)
