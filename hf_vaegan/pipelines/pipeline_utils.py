"""What the hf-vaegan pipelines share: one model per pipeline, loaded and saved as that model's own folder; the input
contract for images; bounded work whatever the batch size."""

import math
import numbers
import os
from collections.abc import Callable

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.image_processor import PipelineImageInput, VaeImageProcessor

from ..data.images import Background, images_to_tensor
from ..models.blocks import check_values, check_vectors
from ..models.modeling_utils import VaeGanModelMixin

OUTPUT_TYPES = ("pil", "np", "pt")
# A call may return at most this many pixel values (1 GiB as float32); larger batches are refused before anything is
# allocated. Draw more in several calls, as `hf-vaegan sample` does.
MAX_OUTPUT_VALUES = 2**28
# A model runs on at most this many output values at a time (4 MiB as float32), which bounds its activations
# (a few hundred MB) whatever the batch size.
CHUNK_VALUES = 2**20


def max_batch_size(values_per_image: int) -> int:
    """The most images one call may return when each holds `values_per_image` values (see `MAX_OUTPUT_VALUES`)."""
    return max(1, MAX_OUTPUT_VALUES // values_per_image)


def check_count(name: str, value, values_per_image: int, minimum: int = 1) -> None:
    """Raises `ValueError` unless `value` is an integer in [minimum, max_batch_size(values_per_image)]."""
    shown = f"`{name}`" if name.isidentifier() else name.capitalize()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{shown} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{shown} must be >= {minimum}, got {value}.")
    limit = max_batch_size(values_per_image)
    if value > limit:
        raise ValueError(
            f"{shown} must be at most {limit} for this model ({values_per_image} values per image, at most "
            f"{MAX_OUTPUT_VALUES * 4 / 2**30:g} GiB of float32 pixels per call), got {value}: use several calls."
        )


def check_number(name: str, value, minimum: float, *, inclusive: bool = True) -> float:
    """`value` as a float; raises `ValueError` unless it is a finite real number >= `minimum` (> if not inclusive)."""
    is_number = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if not (is_number and (value >= minimum if inclusive else value > minimum)):
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise ValueError(f"`{name}` must be a finite number {bound}, got {value!r}.")
    return float(value)


def check_latents(latents, latent_dim: int, values_per_image: int, name: str = "latents") -> torch.Tensor:
    """User latents or noise `(B, latent_dim)`: finite floats, at most `max_batch_size(values_per_image)` rows."""
    latents = check_vectors(latents, latent_dim, name)
    check_count(f"the number of {name}", latents.shape[0], values_per_image)
    check_values(latents, name)
    return latents


def check_output_type(output_type: str) -> None:
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")


def check_num_steps(num_steps, values_per_image: int) -> None:
    check_count("num_steps", num_steps, values_per_image, minimum=2)


def in_chunks(function: Callable, chunk_size: int, **batches: torch.Tensor | None):
    """`function(**batches)`, run on at most `chunk_size` rows of the batches at a time (`None` stays `None`).

    Returns what `function` returns, a tensor or a tuple of tensors (and `None`s), concatenated over the chunks.
    """
    size = next(len(batch) for batch in batches.values() if batch is not None)
    if size <= chunk_size:
        return function(**batches)
    outputs = []
    for start in range(0, size, chunk_size):
        rows = slice(start, start + chunk_size)
        outputs.append(function(**{key: None if batch is None else batch[rows] for key, batch in batches.items()}))
    if isinstance(outputs[0], torch.Tensor):
        return torch.cat(outputs)
    return tuple(None if parts[0] is None else torch.cat(parts) for parts in zip(*outputs, strict=True))


class SingleModelPipeline(DiffusionPipeline):
    """A `DiffusionPipeline` around one hf-vaegan model (`self.model_name` names the component).

    `from_pretrained` takes a model folder or Hub id (what `save_pretrained`/`push_to_hub` of the model wrote), and
    `save_pretrained` writes exactly such a folder, so a pipeline and its model share one repository layout.

    Images in follow one contract, `hf_vaegan.data.images.images_to_tensor`: PIL images of any mode, numpy arrays
    (uint8 in [0, 255], floats in [0, 1]) and tensors (floats in [-1, 1]), alone or in lists.
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
    def image_channels(self) -> int:
        return self.model.config.get("in_channels", self.model.config.get("out_channels"))

    @property
    def values_per_image(self) -> int:
        """Values of one output image: the unit of the batch-size limit and of the forward chunks."""
        resolution = self.model.config.resolution
        return self.image_channels * resolution * resolution

    @property
    def chunk_size(self) -> int:
        """Images per forward pass (see `CHUNK_VALUES`)."""
        return max(1, CHUNK_VALUES // self.values_per_image)

    @property
    def image_processor(self) -> VaeImageProcessor:
        return VaeImageProcessor(vae_scale_factor=1, do_normalize=True)

    def preprocess(self, images: PipelineImageInput, background: Background = 255) -> torch.Tensor:
        """Images (see the class docstring) -> the model's input batch `(N, C, resolution, resolution)` in [-1, 1].

        Images are resized to the model's resolution; transparent pixels are composited on `background` (a grey level
        or an RGB colour; `0` for models trained on light garments on black, such as Fashion-MNIST's).
        """
        return self._preprocess(images, background=background)

    def _preprocess(self, images: PipelineImageInput, name: str = "images", background: Background = 255):
        resolution = self.model.config.resolution
        size = (resolution, resolution)
        batch = images_to_tensor(images, self.image_channels, size, background=background, name=name)
        return batch.to(device=self.device, dtype=self.model.dtype)

    def postprocess(self, images: torch.Tensor, output_type: str) -> list[PIL.Image.Image] | np.ndarray | torch.Tensor:
        """Model outputs in [-1, 1] -> PIL images, numpy `(B, H, W, C)` in [0, 1], or the tensor itself."""
        check_output_type(output_type)
        if output_type == "pt":
            return images
        return self.image_processor.postprocess(images.float(), output_type=output_type)


def slerp(start: torch.Tensor, end: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latent vectors `(D,)` at `weights` `(N,)` in [0, 1] -> `(N, D)`.

    Gaussian latents concentrate near a sphere, so the straight line between two of them passes through unlikely
    low-norm codes; the great circle does not (White, 2016). Where the great circle is not defined (a zero vector, or
    nearly equal or opposite directions), the straight line is used.
    """
    norms = start.norm() * end.norm()
    if norms == 0:
        return torch.lerp(start, end, weights[:, None])
    angle = torch.acos((torch.dot(start, end) / norms).clamp(-1.0, 1.0))
    if torch.sin(angle) < 1e-4:
        return torch.lerp(start, end, weights[:, None])
    weights = weights[:, None]
    return (torch.sin((1 - weights) * angle) * start + torch.sin(weights * angle) * end) / torch.sin(angle)
