"""What the hf-vaegan pipelines share: one model per pipeline, loaded and saved as that model's own folder."""

import os

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.image_processor import PipelineImageInput, VaeImageProcessor

from ..models.modeling_utils import VaeGanModelMixin

OUTPUT_TYPES = ("pil", "np", "pt")


class SingleModelPipeline(DiffusionPipeline):
    """A `DiffusionPipeline` around one hf-vaegan model (`self.model_name` names the component).

    `from_pretrained` takes a model folder or Hub id (what `save_pretrained`/`push_to_hub` of the model wrote), and
    `save_pretrained` writes exactly such a folder, so a pipeline and its model share one repository layout.
    """

    model_name: str
    model_class: type[VaeGanModelMixin]

    @property
    def model(self) -> VaeGanModelMixin:
        return getattr(self, self.model_name)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """Loads the model with `model_class.from_pretrained(pretrained_model_name_or_path, **kwargs)` and wraps it."""
        return cls(cls.model_class.from_pretrained(pretrained_model_name_or_path, **kwargs))

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs):
        self.model.save_pretrained(save_directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        return self.model.push_to_hub(repo_id, **kwargs)

    @property
    def image_processor(self) -> VaeImageProcessor:
        channels = self.model.config.get("in_channels", self.model.config.get("out_channels"))
        return VaeImageProcessor(
            vae_scale_factor=1,
            do_normalize=True,
            do_convert_grayscale=channels == 1,
            do_convert_rgb=channels == 3,
            resample="lanczos",
        )

    def preprocess(self, images: PipelineImageInput) -> torch.Tensor:
        """PIL images (any mode and size), numpy arrays in [0, 1] or tensors in [-1, 1] -> the model's input batch."""
        if images is None or (isinstance(images, list) and not images):
            raise ValueError("No image was given.")
        resolution = self.model.config.resolution
        batch = self.image_processor.preprocess(images, height=resolution, width=resolution)
        return batch.to(device=self.device, dtype=self.model.dtype)

    def postprocess(self, images: torch.Tensor, output_type: str) -> list[PIL.Image.Image] | np.ndarray | torch.Tensor:
        """Model outputs in [-1, 1] -> PIL images, numpy `(B, H, W, C)` in [0, 1], or the tensor itself."""
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        if output_type == "pt":
            return images
        return self.image_processor.postprocess(images.float(), output_type=output_type)


def slerp(start: torch.Tensor, end: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latent vectors `(D,)` at `weights` `(N,)` in [0, 1] -> `(N, D)`.

    Gaussian latents concentrate near a sphere, so the straight line between two of them passes through unlikely
    low-norm codes; the great circle does not (White, 2016).
    """
    cosine = torch.dot(start / start.norm(), end / end.norm()).clamp(-1.0, 1.0)
    angle = torch.acos(cosine)
    if angle.abs() < 1e-4:
        return torch.lerp(start, end, weights[:, None])
    weights = weights[:, None]
    return (torch.sin((1 - weights) * angle) * start + torch.sin(weights * angle) * end) / torch.sin(angle)
