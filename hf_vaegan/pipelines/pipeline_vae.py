"""Sampling, reconstruction, interpolation and anomaly scores with a VAE."""

import numpy as np
import torch
from diffusers.image_processor import PipelineImageInput
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from ..metrics import anomaly_scores
from ..models import VAE
from .pipeline_utils import SingleModelPipeline, slerp


class VAEPipeline(SingleModelPipeline):
    r"""Everything a trained `VAE` offers, on PIL images, numpy arrays or tensors.

    ```python
    from hf_vaegan import VAEPipeline

    pipe = VAEPipeline.from_pretrained("path/or/hub-id")
    samples = pipe(batch_size=8).images                        # draws from the prior
    strip = pipe.interpolate(image_a, image_b, num_steps=8).images
    scores = pipe.anomaly_scores([image_a, image_b])           # negative ELBO in nats: higher = more unusual
    ```
    """

    model_name = "vae"
    model_class = VAE
    model_cpu_offload_seq = "vae"

    def __init__(self, vae: VAE):
        super().__init__()
        self.register_modules(vae=vae)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        """Decodes `batch_size` draws from the prior N(0, temperature^2 I) (or the given `latents`)."""
        if latents is None:
            shape = (batch_size, self.vae.config.latent_dim)
            latents = temperature * randn_tensor(shape, generator=generator, device=self.device, dtype=self.vae.dtype)
        images = self.postprocess(self.vae.decode(latents.to(self.device, self.vae.dtype)).sample, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    @torch.no_grad()
    def encode(self, images: PipelineImageInput) -> torch.Tensor:
        """The posterior means `(B, latent_dim)` of the images."""
        return self.vae.encode(self.preprocess(images)).latent_dist.mode()

    @torch.no_grad()
    def reconstruct(self, images: PipelineImageInput, output_type: str = "pil") -> ImagePipelineOutput:
        """Encodes and decodes the images through the posterior mean."""
        return self(latents=self.encode(images), output_type=output_type)

    @torch.no_grad()
    def interpolate(
        self, start: PipelineImageInput, end: PipelineImageInput, num_steps: int = 8, output_type: str = "pil"
    ) -> ImagePipelineOutput:
        """Decodes `num_steps` points on the great circle between the codes of two images (ends included)."""
        if num_steps < 2:
            raise ValueError(f"`num_steps` must be >= 2, got {num_steps}.")
        codes = self.encode([start, end] if not isinstance(start, list) else start + end)
        if codes.shape[0] != 2:
            raise ValueError("`start` and `end` must be one image each.")
        path = slerp(codes[0].float(), codes[1].float(), torch.linspace(0, 1, num_steps, device=self.device))
        return self(latents=path, output_type=output_type)

    def anomaly_scores(
        self,
        images: PipelineImageInput,
        method: str = "elbo",
        num_samples: int = 1,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """One score per image, higher meaning more unusual for the training distribution.

        `"elbo"`: the negative ELBO in nats, averaged over `num_samples` posterior samples; `"reconstruction"`: the
        mean squared error of the reconstruction through the posterior mean, in [-1, 1] pixel units.
        """
        scores = anomaly_scores(self.vae, self.preprocess(images), method, num_samples, generator)
        return scores.float().numpy()
