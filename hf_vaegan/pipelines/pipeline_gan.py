"""Sampling and latent interpolation with a (class-conditional) GAN generator."""

import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from ..models import Generator
from .pipeline_utils import SingleModelPipeline, slerp


class GANPipeline(SingleModelPipeline):
    r"""Draws images from a `Generator`.

    ```python
    from hf_vaegan import GANPipeline

    pipe = GANPipeline.from_pretrained("path/or/hub-id")
    images = pipe(batch_size=8, class_labels=3, generator=torch.Generator().manual_seed(0)).images
    ```
    """

    model_name = "gan"
    model_class = Generator
    model_cpu_offload_seq = "gan"

    def __init__(self, gan: Generator):
        super().__init__()
        self.register_modules(gan=gan)

    def _class_labels(self, class_labels: int | list[int] | torch.Tensor | None, batch_size: int):
        num_classes = self.gan.config.num_classes
        if class_labels is None:
            if num_classes:
                raise ValueError(f"This generator is class-conditional ({num_classes} classes); pass `class_labels`.")
            return None
        if not num_classes:
            raise ValueError("This generator is unconditional; do not pass `class_labels`.")
        labels = torch.as_tensor(class_labels, dtype=torch.long).flatten().to(self.device)
        if labels.numel() == 1:
            labels = labels.expand(batch_size)
        if labels.numel() != batch_size:
            raise ValueError(f"`class_labels` must be one label or {batch_size} labels, got {labels.numel()}.")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"`class_labels` must lie in [0, {num_classes - 1}], got {labels.tolist()}.")
        return labels

    def noise(
        self, batch_size: int, generator: torch.Generator | None = None, truncation: float | None = None
    ) -> torch.Tensor:
        """N(0, I) noise `(batch_size, latent_dim)`; with `truncation`, components beyond +-truncation are redrawn
        (the truncation trick, Brock et al. 2019: less variety, higher fidelity)."""
        shape = (batch_size, self.gan.config.latent_dim)
        noise = randn_tensor(shape, generator=generator, device=self.device, dtype=self.gan.dtype)
        if truncation is None:
            return noise
        if truncation <= 0:
            raise ValueError(f"`truncation` must be > 0, got {truncation}.")
        outside = noise.abs() > truncation
        while outside.any():
            redrawn = randn_tensor(shape, generator=generator, device=self.device, dtype=self.gan.dtype)
            noise = torch.where(outside, redrawn, noise)
            outside = noise.abs() > truncation
        return noise

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        class_labels: int | list[int] | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        truncation: float | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        """Generates `batch_size` images.

        Args:
            class_labels: for a conditional generator, one label for the whole batch or one per image.
            generator: a `torch.Generator` making the draw reproducible.
            truncation: the truncation threshold (e.g. 0.7); `None` samples the full prior.
            latents: noise `(batch_size, latent_dim)` to use instead of drawing it.
            output_type: `"pil"`, `"np"` (`(B, H, W, C)` in [0, 1]) or `"pt"` (`(B, C, H, W)` in [-1, 1]).
        """
        if latents is None:
            latents = self.noise(batch_size, generator, truncation)
        batch_size = latents.shape[0]
        images = self.gan(latents.to(self.device, self.gan.dtype), self._class_labels(class_labels, batch_size)).sample
        images = self.postprocess(images, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    @torch.no_grad()
    def interpolate(
        self,
        num_steps: int = 8,
        class_labels: int | list[int] | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        start: torch.Tensor | None = None,
        end: torch.Tensor | None = None,
        output_type: str = "pil",
    ) -> ImagePipelineOutput:
        """Walks the latent space along a great circle from `start` to `end` (drawn when not given) in `num_steps`."""
        if num_steps < 2:
            raise ValueError(f"`num_steps` must be >= 2, got {num_steps}.")
        if start is None or end is None:
            drawn = self.noise(2, generator)
            start = drawn[0] if start is None else start
            end = drawn[1] if end is None else end
        weights = torch.linspace(0, 1, num_steps, device=self.device)
        path = slerp(start.to(self.device).float(), end.to(self.device).float(), weights)
        return self(class_labels=class_labels, latents=path, output_type=output_type)
