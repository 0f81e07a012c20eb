"""Sampling, reconstruction, interpolation and anomaly scores with a VAE."""

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.image_processor import PipelineImageInput
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from ..metrics import AnomalyThreshold, anomaly_scores, calibrate_threshold
from ..models import VAE, VAEGAN
from .pipeline_utils import (
    LATENT_OUTPUT_TYPES,
    SingleModelPipeline,
    check_count,
    check_latents,
    check_num_steps,
    check_number,
    check_output_type,
    in_chunks,
    slerp,
)


def posterior_means(vae: VAE, images: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """The posterior means `(N, latent_dim)` of images `(N, C, H, W)` in [-1, 1], `chunk_size` images at a time."""
    return in_chunks(lambda images: vae.encode(images).latent_dist.mode(), chunk_size, images=images)


def decode_latents(vae: VAE, latents: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Images `(N, C, H, W)` in [-1, 1] of latents `(N, latent_dim)`, `chunk_size` at a time."""
    return in_chunks(lambda latents: vae.decode(latents).sample, chunk_size, latents=latents)


@dataclass
class AnomalyDetectionOutput(BaseOutput):
    """
    Args:
        scores (`np.ndarray` of shape `(B,)`): the anomaly score of each image, higher meaning more unusual.
        is_anomaly (`np.ndarray` of shape `(B,)`, bool): whether each score is above the threshold.
        threshold (`AnomalyThreshold`): the calibrated threshold, its method and false-positive rate.
    """

    scores: np.ndarray
    is_anomaly: np.ndarray
    threshold: AnomalyThreshold


class VAEPipeline(SingleModelPipeline):
    r"""Everything a trained `VAE` offers, on PIL images, numpy arrays or tensors.

    ```python
    from hf_vaegan import VAEPipeline

    pipe = VAEPipeline.from_pretrained("path/or/hub-id")
    samples = pipe(batch_size=8).images                        # draws from the prior
    strip = pipe.interpolate(image_a, image_b, num_steps=8).images
    scores = pipe.anomaly_scores([image_a, image_b])           # higher = more unusual (see `anomaly_scores`)
    threshold = pipe.calibrate_anomaly_threshold(held_out_normal_images, false_positive_rate=0.05)
    verdict = pipe.detect_anomalies([image_a, image_b], threshold)  # .scores, .is_anomaly
    ```

    Images in follow `hf_vaegan.data.images.images_to_tensor` (PIL of any mode, numpy uint8 in [0, 255] or floats in
    [0, 1], tensors in [-1, 1]); `preprocess(images, background=...)` chooses the colour transparent pixels are
    composited on, and its output can be passed to every method. One call returns at most
    `max_batch_size(values_per_image)` images; the VAE runs on chunks of them.
    """

    model_name = "vae"
    model_class = VAE
    model_cpu_offload_seq = "vae"

    def __init__(self, vae: VAE | VAEGAN):
        super().__init__()
        self.register_modules(vae=vae)

    def usage_example(self) -> str:
        sampling = (
            "images = pipe(batch_size=8, generator=torch.Generator().manual_seed(0)).images  # PIL, from the prior"
        )
        if self.default_anomaly_method.startswith("mahalanobis"):
            scoring = "scores = pipe.anomaly_scores(images)  # per image: high for images unlike the training data"
        else:
            scoring = 'scores = pipe.anomaly_scores(images, method="elbo")'
            scoring += "  # negative ELBO per image, in nats: high for outliers"
        return f"{sampling}\nreconstructions = pipe.reconstruct(images).images\n{scoring}"

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        temperature: float = 1.0,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        """Decodes `batch_size` draws from the prior N(0, temperature^2 I) (or the given `latents` `(B, latent_dim)`).

        `temperature` is a finite number >= 0 (0 decodes the prior's mean). `output_type="latent"` returns the
        latents `(B, latent_dim)` without decoding them.
        """
        check_output_type(output_type, LATENT_OUTPUT_TYPES)
        latent_dim = self.vae.config.latent_dim
        if latents is None:
            check_count("batch_size", batch_size, self.values_per_image)
            temperature = check_number("temperature", temperature, 0.0)
            shape = (batch_size, latent_dim)
            latents = temperature * randn_tensor(shape, generator=generator, device=self.device, dtype=self.vae.dtype)
        else:
            latents = check_latents(latents, latent_dim, self.values_per_image)
        if output_type == "latent":
            latents = latents.to(self.device, self.vae.dtype)
            return ImagePipelineOutput(images=latents) if return_dict else (latents,)
        images = decode_latents(self.vae, latents.to(self.device, self.vae.dtype), self.chunk_size)
        images = self.postprocess(images, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    @torch.no_grad()
    def encode(self, images: PipelineImageInput) -> torch.Tensor:
        """The posterior means `(B, latent_dim)` of the images."""
        return posterior_means(self.vae, self._preprocess(images), self.chunk_size)

    @torch.no_grad()
    def reconstruct(self, images: PipelineImageInput, output_type: str = "pil") -> ImagePipelineOutput:
        """Encodes and decodes the images through the posterior mean (`output_type="latent"`: the means only)."""
        check_output_type(output_type, LATENT_OUTPUT_TYPES)
        return self(latents=self.encode(images), output_type=output_type)

    @torch.no_grad()
    def interpolate(
        self, start: PipelineImageInput, end: PipelineImageInput, num_steps: int = 8, output_type: str = "pil"
    ) -> ImagePipelineOutput:
        """Decodes `num_steps` points on the great circle between the codes of two images (ends included);
        `output_type="latent"` returns the points."""
        check_num_steps(num_steps, self.values_per_image)
        check_output_type(output_type, LATENT_OUTPUT_TYPES)
        codes = []
        for name, image in (("start", start), ("end", end)):
            code = posterior_means(self.vae, self._preprocess(image, name), self.chunk_size)
            if code.shape[0] != 1:
                raise ValueError(f"`{name}` must be one image, got {code.shape[0]}.")
            codes.append(code[0].float())
        path = slerp(*codes, torch.linspace(0, 1, num_steps, device=self.device))
        return self(latents=path, output_type=output_type)

    @property
    def default_anomaly_method(self) -> str:
        """The best anomaly score this model offers: `"mahalanobis_knn"` for a `TransformationVAE` that keeps
        reference images, `"mahalanobis"` for one that does not, else `"elbo"`."""
        if not hasattr(self.vae, "feature_mahalanobis"):
            return "elbo"
        return "mahalanobis_knn" if self.vae.config.num_reference_images else "mahalanobis"

    def anomaly_scores(
        self,
        images: PipelineImageInput,
        method: str | None = None,
        num_samples: int = 1,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """One score per image `(B,)`, higher meaning more unusual for the training distribution.

        `method` (default: `default_anomaly_method`), as in `hf_vaegan.metrics.anomaly_scores`:
        - `"mahalanobis_knn"` (needs a `TransformationVAE` with `num_reference_images`; the best on Fashion-MNIST,
          mean one-class AUROC in the README): `"mahalanobis"` plus the pixel distance to the nearest normal image
          the model keeps, each standardised on normal images, deterministic;
        - `"mahalanobis"` (needs a `TransformationVAE`): the squared Mahalanobis distance of the image's posterior
          mean and transformation-head answers to those of the normal training images (Lee et al. 2018; GEOM, Golan
          & El-Yaniv 2018), deterministic;
        - `"transformation"` (needs a `TransformationVAE`): how badly the head recognises the quarter turns of the
          image, in nats (GEOM's simplified score), deterministic;
        - `"elbo"`: the negative ELBO in nats, averaged over `num_samples` posterior samples;
        - `"reconstruction"`: the mean squared error of the reconstruction through the posterior mean, in [-1, 1]
          pixel units.
        """
        batch = self.preprocess(images)
        method = self.default_anomaly_method if method is None else method
        scores = anomaly_scores(self.vae, batch, method, num_samples, generator, batch_size=self.chunk_size)
        return scores.float().numpy()

    def calibrate_anomaly_threshold(
        self,
        normal_images: PipelineImageInput,
        false_positive_rate: float = 0.01,
        method: str | None = None,
        num_samples: int = 1,
        generator: torch.Generator | None = None,
    ) -> AnomalyThreshold:
        """The threshold above which an image is called an anomaly, chosen so that about `false_positive_rate` (in
        (0, 1)) of normal images are flagged: the `1 - false_positive_rate` quantile of the scores of
        `normal_images`, which must be normal images the model never trained on (at least `1 /
        false_positive_rate` of them). `method`, `num_samples`, `generator` as in `anomaly_scores`; pass a generator
        with a fixed seed here and to `detect_anomalies` for ELBO-based methods, whose scores are random."""
        method = self.default_anomaly_method if method is None else method
        scores = self.anomaly_scores(normal_images, method, num_samples, generator)
        return calibrate_threshold(scores, false_positive_rate, method)

    def detect_anomalies(
        self,
        images: PipelineImageInput,
        threshold: AnomalyThreshold,
        num_samples: int = 1,
        generator: torch.Generator | None = None,
    ) -> AnomalyDetectionOutput:
        """Scores the images with the threshold's method and flags those above it (see
        `calibrate_anomaly_threshold`)."""
        if not isinstance(threshold, AnomalyThreshold):
            raise TypeError(
                f"`threshold` must be an AnomalyThreshold from `calibrate_anomaly_threshold`, got {type(threshold)}"
            )
        scores = self.anomaly_scores(images, threshold.method, num_samples, generator)
        return AnomalyDetectionOutput(scores=scores, is_anomaly=scores > threshold.threshold, threshold=threshold)
