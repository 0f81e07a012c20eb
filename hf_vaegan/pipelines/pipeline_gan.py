"""Sampling and latent interpolation with a (class-conditional) GAN generator."""

import math
import numbers

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from ..hardware import fast_precision
from ..models import Generator
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

ClassLabels = int | list[int] | np.ndarray | torch.Tensor
# 8 MiB of float32 activations, about what a CPU core's share of the caches holds: the bundled generator drew 64 to
# 128 images per pass at up to 2x the rate per image of 500 (benchmarks/gan_sampling.py --batch_size)
CPU_CHUNK_VALUES = 2**21


def truncated_normal(
    shape: tuple[int, ...],
    truncation: float,
    generator: torch.Generator | list[torch.Generator] | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """N(0, 1) draws conditioned on |z| <= `truncation`, sampled exactly by the inverse CDF: one uniform draw u per
    value, z = sqrt(2) erfinv(u erf(truncation / sqrt(2))) with u ~ U(-1, 1), computed in float64.

    Any truncation > 0 costs the same (rejection sampling needs ~1 / P(|z| <= t) rounds: a million at t = 1e-6). The
    uniforms come from `generator` (one per row when a list, like diffusers' `randn_tensor`) on its device.
    """
    if isinstance(generator, list):
        if len(generator) != shape[0]:
            raise ValueError(f"Pass one generator per image ({shape[0]}), got {len(generator)}.")
        rows = [torch.rand((1, *shape[1:]), generator=g, device=g.device, dtype=torch.float32) for g in generator]
        uniform = torch.cat([row.cpu() for row in rows])
    else:
        draw_device = generator.device if generator is not None else device
        uniform = torch.rand(shape, generator=generator, device=draw_device, dtype=torch.float32).cpu()
    scale = math.erf(truncation / math.sqrt(2))
    values = math.sqrt(2) * torch.erfinv((uniform.double() * 2 - 1) * scale)
    # erfinv(+-1) is infinite and rounding may step just outside: keep every value within the bounds
    return values.clamp(-truncation, truncation).to(device=device, dtype=dtype)


class GANPipeline(SingleModelPipeline):
    r"""Draws images from a `Generator`.

    ```python
    from hf_vaegan import GANPipeline

    pipe = GANPipeline.from_pretrained("path/or/hub-id")
    images = pipe(batch_size=8, class_labels=3, generator=torch.Generator().manual_seed(0)).images
    ```

    One call returns at most `max_batch_size(values_per_image)` images (`hf_vaegan.pipelines.pipeline_utils`: 1 GiB
    of float32 pixels, 342,392 images of 28x28); the generator runs on chunks of them, so memory stays bounded.

    A float32 generator runs under bf16 autocast where the device has bf16 instructions (a CUDA GPU with bf16, a CPU
    with AMX or AVX-512 BF16: `hf_vaegan.hardware.fast_precision`, the rule of training's `--mixed_precision auto`)
    and in float32 elsewhere; the images come back in the model's dtype either way.
    """

    model_name = "gan"
    model_class = Generator
    model_cpu_offload_seq = "gan"

    def __init__(self, gan: Generator):
        super().__init__()
        self.register_modules(gan=gan)

    @property
    def chunk_size(self) -> int:
        """Images per forward pass: on CPU, as many as keep the generator's largest activation (its last layer's,
        `base_channels` maps at full resolution) within `CPU_CHUNK_VALUES`; elsewhere the default (`CHUNK_VALUES`)."""
        if self.device.type != "cpu":
            return super().chunk_size
        config = self.gan.config
        return max(1, min(super().chunk_size, CPU_CHUNK_VALUES // (config.base_channels * config.resolution**2)))

    def usage_example(self) -> str:
        config = self.gan.config
        labels = f", class_labels=[i % {config.num_classes} for i in range(8)]" if config.num_classes else ""
        return (
            f"images = pipe(batch_size=8{labels}, generator=torch.Generator().manual_seed(0)).images\n"
            f'images[0].save("sample.png")  # {config.resolution}x{config.resolution} PIL images'
        )

    def _class_labels(self, class_labels: ClassLabels | None, batch_size: int) -> torch.Tensor | None:
        num_classes = self.gan.config.num_classes
        if class_labels is None:
            if num_classes:
                raise ValueError(f"This generator is class-conditional ({num_classes} classes); pass `class_labels`.")
            return None
        if not num_classes:
            raise ValueError("This generator is unconditional; do not pass `class_labels`.")
        labels = class_labels
        if isinstance(labels, (list, tuple)) and all(isinstance(label, numbers.Integral) for label in labels):
            labels = torch.tensor(labels, dtype=torch.long) if labels else torch.zeros(0, dtype=torch.long)
        elif isinstance(labels, np.ndarray) and labels.dtype.kind in "iu":
            labels = torch.from_numpy(labels.astype(np.int64))
        elif isinstance(labels, numbers.Integral) and not isinstance(labels, bool):
            labels = torch.tensor([int(labels)])
        is_integer_tensor = isinstance(labels, torch.Tensor) and not (
            labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool
        )
        if not is_integer_tensor:
            described = f"dtype {labels.dtype}" if isinstance(labels, (np.ndarray, torch.Tensor)) else repr(labels)
            raise TypeError(
                f"`class_labels` must be integers in [0, {num_classes - 1}] (an int, a list, a numpy or torch "
                f"integer array), got {described}."
            )
        labels = labels.flatten().to(self.device, torch.long)
        if labels.numel() == 1:
            labels = labels.expand(batch_size)
        if labels.numel() != batch_size:
            raise ValueError(f"`class_labels` must be one label or {batch_size} labels, got {labels.numel()}.")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"`class_labels` must lie in [0, {num_classes - 1}], got {labels.tolist()}.")
        return labels

    def noise(
        self,
        batch_size: int,
        generator: torch.Generator | list[torch.Generator] | None = None,
        truncation: float | None = None,
    ) -> torch.Tensor:
        """N(0, I) noise `(batch_size, latent_dim)`; with `truncation`, every component is drawn from N(0, 1)
        conditioned on |z| <= truncation (the truncation trick, Brock et al. 2019: less variety, higher fidelity),
        exactly and at the same cost for any truncation > 0 (see `truncated_normal`)."""
        check_count("batch_size", batch_size, self.values_per_image)
        shape = (batch_size, self.gan.config.latent_dim)
        if truncation is None:
            return randn_tensor(shape, generator=generator, device=self.device, dtype=self.gan.dtype)
        truncation = check_number("truncation", truncation, 0.0, inclusive=False)
        return truncated_normal(shape, truncation, generator, self.device, self.gan.dtype)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        class_labels: ClassLabels | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        truncation: float | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        """Generates `batch_size` images.

        Args:
            batch_size: how many images, at most `max_batch_size(self.values_per_image)`.
            class_labels: for a conditional generator, one label for the whole batch or one per image (ints, a list,
                or a numpy or torch integer array).
            generator: a `torch.Generator` (or one per image) making the draw reproducible.
            truncation: the truncation threshold (> 0, e.g. 0.7); `None` samples the full prior.
            latents: noise `(batch_size, latent_dim)` to use instead of drawing it (then `batch_size` is its length).
            output_type: `"pil"`, `"np"` (`(B, H, W, C)` in [0, 1]), `"pt"` (`(B, C, H, W)` in [-1, 1]) or
                `"latent"` (the noise `(B, latent_dim)` the images would come from, truncated if asked; nothing is
                generated).
        """
        check_output_type(output_type, LATENT_OUTPUT_TYPES)
        if latents is None:
            latents = self.noise(batch_size, generator, truncation)
        else:
            if truncation is not None:
                raise ValueError("`truncation` applies to drawn noise: truncate your `latents` yourself.")
            latents = check_latents(latents, self.gan.config.latent_dim, self.values_per_image)
        labels = self._class_labels(class_labels, latents.shape[0])
        if output_type == "latent":
            latents = latents.to(self.device, self.gan.dtype)
            return ImagePipelineOutput(images=latents) if return_dict else (latents,)

        def generate(noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
            with fast_precision(self.device, self.gan.dtype):
                return self.gan(noise, labels).sample.to(self.gan.dtype)

        latents = latents.to(self.device, self.gan.dtype)
        images = self.postprocess(in_chunks(generate, self.chunk_size, noise=latents, labels=labels), output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    def _latent_vector(self, point, name: str) -> torch.Tensor:
        latent_dim = self.gan.config.latent_dim
        if not isinstance(point, torch.Tensor) or point.shape not in ((latent_dim,), (1, latent_dim)):
            shape = tuple(point.shape) if isinstance(point, torch.Tensor) else type(point).__name__
            raise ValueError(f"`{name}` must be a latent vector, a tensor of shape ({latent_dim},), got {shape}.")
        return check_latents(point.reshape(1, latent_dim), latent_dim, 1, name)[0]

    @torch.no_grad()
    def interpolate(
        self,
        num_steps: int = 8,
        class_labels: ClassLabels | None = None,
        generator: torch.Generator | None = None,
        start: torch.Tensor | None = None,
        end: torch.Tensor | None = None,
        output_type: str = "pil",
    ) -> ImagePipelineOutput:
        """Walks the latent space along a great circle from `start` to `end` (latent vectors `(latent_dim,)`, drawn
        when not given) in `num_steps` images, ends included."""
        check_num_steps(num_steps, self.values_per_image)
        if start is None or end is None:
            drawn = self.noise(2, generator)
            start = drawn[0] if start is None else start
            end = drawn[1] if end is None else end
        start, end = (self._latent_vector(point, name) for name, point in (("start", start), ("end", end)))
        weights = torch.linspace(0, 1, num_steps, device=self.device)
        path = slerp(start.to(self.device).float(), end.to(self.device).float(), weights)
        return self(class_labels=class_labels, latents=path, output_type=output_type)
