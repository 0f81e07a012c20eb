"""Bodies from a body-shape VAE: body parameters (sliders) -> avatars, new bodies, interpolation, read-out."""

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers.utils import BaseOutput

from ..models import VAE
from ..models.body_shape import BodyShapeHead
from .pipeline_utils import SingleModelPipeline, check_count, check_num_steps, check_output_type, in_subfolder, slerp
from .pipeline_vae import decode_latents, posterior_means

# where a VAE's folder holds the head that `examples/fit_body_shape_head.py` fits
HEAD_SUBFOLDER = "body_shape_head"


@dataclass
class BodyShapePipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`): the avatars, as `output_type` asks.
        body_shapes (`list[dict[str, float]]`): the body parameters the head reads from each avatar's latent, clamped
            to their ranges (pass one to `hf_vaegan.data.BodyShape(**...)` to render it exactly).
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    body_shapes: list[dict[str, float]] | None = None


class BodyShapePipeline(SingleModelPipeline):
    r"""A VAE trained on avatars plus a `BodyShapeHead` linking its latents to the interpretable body parameters.

    Saved in diffusers' layout, with the VAE in `vae/` and the head in `shape_head/`; also loads a VAE's folder to
    which `examples/fit_body_shape_head.py` added the head in `body_shape_head/`.

    ```python
    from hf_vaegan import BodyShapePipeline

    pipe = BodyShapePipeline.from_pretrained("path/or/hub-id")
    avatar = pipe(body_shapes={"height": 0.9, "hip_width": 0.24}).images[0]   # sliders -> an avatar
    bodies = pipe(batch_size=8, generator=torch.Generator().manual_seed(0))    # new bodies and their parameters
    strip = pipe.interpolate({"waist_width": 0.12}, {"waist_width": 0.21}, num_steps=6).images
    ```
    """

    model_name = "vae"
    model_class = VAE
    model_cpu_offload_seq = "vae"

    def __init__(self, vae: VAE, shape_head: BodyShapeHead):
        super().__init__()
        if shape_head.config.latent_dim != vae.config.latent_dim:
            raise ValueError(
                f"the head reads {shape_head.config.latent_dim}-d latents but the VAE's are {vae.config.latent_dim}-d."
            )
        self.register_modules(vae=vae, shape_head=shape_head)

    def usage_example(self) -> str:
        name = self.parameter_names[0]
        low, high = self.shape_head.config.parameter_ranges[0]
        return f"""# sliders: some body parameters (the others take the middle of their range) -> avatars
avatars = pipe(body_shapes=[{{"{name}": {low}}}, {{"{name}": {high}}}]).images
print(pipe.parameter_names)
new_bodies = pipe(batch_size=4, generator=torch.Generator().manual_seed(0))  # parameters drawn at random
new_bodies.images, new_bodies.body_shapes"""

    @classmethod
    def _from_model_folder(cls, pretrained_model_name_or_path, components: dict, **kwargs):
        """A folder written before pipelines used diffusers' layout: the VAE at the root, the head in
        `body_shape_head/` (as `examples/fit_body_shape_head.py` still adds it to a VAE's folder)."""
        if "shape_head" not in components:
            head_kwargs = {**kwargs, "subfolder": in_subfolder(kwargs.get("subfolder"), HEAD_SUBFOLDER)}
            components["shape_head"] = BodyShapeHead.from_pretrained(pretrained_model_name_or_path, **head_kwargs)
        return super()._from_model_folder(pretrained_model_name_or_path, components, **kwargs)

    @property
    def parameter_names(self) -> list[str]:
        return list(self.shape_head.config.parameter_names)

    def _ranges(self) -> torch.Tensor:
        return torch.tensor([list(pair) for pair in self.shape_head.config.parameter_ranges], dtype=torch.float32)

    def parameters_tensor(self, body_shapes: Any) -> torch.Tensor:
        """Body shapes -> `(B, num_parameters)` in natural units.

        Takes a `BodyShape`-like object (any object with the parameters as attributes), a mapping of some
        parameters (the others take the middle of their range), a list of those, or a tensor `(B, num_parameters)`.
        Values that are not finite numbers within their parameter's range raise `ValueError`.
        """
        ranges = self._ranges()
        if isinstance(body_shapes, torch.Tensor):
            if body_shapes.is_complex() or body_shapes.dtype == torch.bool:
                raise TypeError(f"`body_shapes` must be real numbers, got dtype {body_shapes.dtype}.")
            values = body_shapes.float().cpu()
            if values.ndim != 2 or values.shape[1] != len(ranges):
                raise ValueError(f"`body_shapes` must be (batch, {len(ranges)}), got {tuple(values.shape)}.")
        else:
            shapes = (
                body_shapes
                if isinstance(body_shapes, Sequence) and not isinstance(body_shapes, str)
                else [body_shapes]
            )
            if not shapes:
                raise ValueError("`body_shapes` is empty.")
            values = torch.tensor([self._parameter_row(shape, ranges) for shape in shapes], dtype=torch.float32)
        check_count("the number of body shapes", len(values), self.values_per_image)
        if not torch.isfinite(values).all():
            raise ValueError("`body_shapes` contains NaN or infinite values.")
        outside = (values < ranges[:, 0] - 1e-6) | (values > ranges[:, 1] + 1e-6)
        if outside.any():
            column = int(outside.any(dim=0).nonzero()[0])
            low, high = self.shape_head.config.parameter_ranges[column]
            raise ValueError(f"body parameter {self.parameter_names[column]!r} must be in [{low}, {high}].")
        return values

    def _parameter_row(self, shape: Any, ranges: torch.Tensor) -> list[float]:
        """One body shape (a mapping or a `BodyShape`-like object) -> its parameters in `parameter_names` order."""
        if isinstance(shape, Mapping):
            given = dict(shape)
        elif all(hasattr(shape, name) for name in self.parameter_names):
            given = {name: getattr(shape, name) for name in self.parameter_names}
        else:
            raise TypeError(
                "a body shape must be a mapping of body parameters, an object with them as attributes (BodyShape) "
                f"or a tensor, got {type(shape).__name__}; the parameters are {self.parameter_names}."
            )
        unknown = sorted(set(given) - set(self.parameter_names))
        if unknown:
            raise ValueError(f"unknown body parameters {unknown}; the parameters are {self.parameter_names}.")
        for name, value in given.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"body parameter {name!r} must be a finite number, got {value!r}.")
        return [float(given.get(name, ranges[i].mean())) for i, name in enumerate(self.parameter_names)]

    def _read(self, latents: torch.Tensor) -> list[dict[str, float]]:
        ranges = self._ranges()
        values = self.shape_head(latents).parameters.float().cpu().clamp(ranges[:, 0], ranges[:, 1])
        return [dict(zip(self.parameter_names, row.tolist(), strict=True)) for row in values]

    def _decode(self, latents: torch.Tensor, output_type: str) -> BodyShapePipelineOutput:
        check_output_type(output_type)
        latents = latents.to(self.device, self.vae.dtype)
        images = decode_latents(self.vae, latents, self.chunk_size)
        return BodyShapePipelineOutput(images=self.postprocess(images, output_type), body_shapes=self._read(latents))

    def latents(self, bodies: Any) -> torch.Tensor:
        """Latents `(B, latent_dim)` of body shapes (see `parameters_tensor`) or of avatar images (PIL, numpy,
        tensors: their posterior means; see `hf_vaegan.data.images.images_to_tensor`)."""
        first = bodies[0] if isinstance(bodies, list) and bodies else bodies
        if isinstance(first, (PIL.Image.Image, np.ndarray)) or (isinstance(first, torch.Tensor) and first.ndim >= 3):
            return posterior_means(self.vae, self.preprocess(bodies), self.chunk_size)
        parameters = self.parameters_tensor(bodies).to(self.device, self.shape_head.dtype)
        return self.shape_head.latents_for(parameters)

    @torch.no_grad()
    def __call__(
        self,
        body_shapes: Any = None,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> BodyShapePipelineOutput | tuple:
        """Avatars of `body_shapes` (the sliders: see `parameters_tensor`), or, without them, `batch_size` new bodies;
        each with the body parameters read from its latent.

        New bodies draw every parameter uniformly from its range (as the training avatars were drawn) and decode the
        head's latents for them: a pixel-likelihood VAE this sharp leaves its N(0, I) prior far from where the
        avatars' latents lie, so raw prior samples (`VAEPipeline` on the same folder) are mostly not bodies.
        """
        if body_shapes is None:
            check_count("batch_size", batch_size, self.values_per_image)
            ranges = self._ranges()
            unit = torch.rand(batch_size, len(ranges), generator=generator)
            body_shapes = ranges[:, 0] + unit * (ranges[:, 1] - ranges[:, 0])
        output = self._decode(self.latents(body_shapes), output_type)
        return output if return_dict else (output.images, output.body_shapes)

    @torch.no_grad()
    def interpolate(
        self, start: Any, end: Any, num_steps: int = 8, output_type: str = "pil"
    ) -> BodyShapePipelineOutput:
        """`num_steps` avatars on the great circle between the latents of two bodies (body shapes or avatar images),
        ends included."""
        check_num_steps(num_steps, self.values_per_image)
        codes = [self.latents(body) for body in (start, end)]
        if any(len(code) != 1 for code in codes):
            raise ValueError("`start` and `end` must be one body each.")
        weights = torch.linspace(0, 1, num_steps, device=self.device)
        return self._decode(slerp(codes[0][0].float(), codes[1][0].float(), weights), output_type)

    @torch.no_grad()
    def read_body_shapes(self, images: Any) -> list[dict[str, float]]:
        """The body parameters the head reads from avatar images (PIL, numpy or tensors)."""
        return self._read(self.latents(images))
