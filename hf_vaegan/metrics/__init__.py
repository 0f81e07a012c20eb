"""Evaluation metrics: FID, KID and precision/recall in a pluggable feature space, VAE likelihoods and anomaly AUROC.

```python
from hf_vaegan.metrics import evaluate_generative, evaluate_vae, TransformersFeatures

scores = evaluate_generative(lambda n: vae.sample(n, generator=g), real_images, dataset="fashion_mnist", split="test")
scores = evaluate_generative(fake_images, real_images, TransformersFeatures("facebook/dinov2-base"))  # FD_DINOv2
likelihood = evaluate_vae(vae, test_images, num_importance_samples=100)
```
"""

from .anomaly import (
    ANOMALY_METHODS,
    AnomalyThreshold,
    anomaly_scores,
    auroc,
    calibrate_threshold,
    leave_one_class_out_auroc,
)
from .cache import cached_features, default_cache_dir
from .features import (
    FASHION_CLASSIFIER_PATH,
    GARMENT_CLASSIFIER_PATH,
    FashionClassifierFeatures,
    FeatureExtractor,
    InceptionV3Features,
    TransformersFeatures,
    is_classifier_folder,
    load_fashion_classifier,
)
from .generative import (
    classification_accuracy,
    evaluate_generative,
    feature_statistics,
    frechet_distance,
    kernel_distance,
    precision_recall,
)
from .image_quality import ssim
from .likelihood import evaluate_vae, importance_weighted_nll, negative_elbo, reconstruction_error
from .model_evaluation import evaluate_model

__all__ = [
    "ANOMALY_METHODS",
    "FASHION_CLASSIFIER_PATH",
    "GARMENT_CLASSIFIER_PATH",
    "AnomalyThreshold",
    "FashionClassifierFeatures",
    "FeatureExtractor",
    "InceptionV3Features",
    "TransformersFeatures",
    "anomaly_scores",
    "auroc",
    "calibrate_threshold",
    "cached_features",
    "classification_accuracy",
    "default_cache_dir",
    "evaluate_generative",
    "evaluate_model",
    "evaluate_vae",
    "feature_statistics",
    "frechet_distance",
    "importance_weighted_nll",
    "is_classifier_folder",
    "kernel_distance",
    "leave_one_class_out_auroc",
    "load_fashion_classifier",
    "negative_elbo",
    "precision_recall",
    "reconstruction_error",
    "ssim",
]
