"""What the hf-vaegan pipelines share: diffusers' pipeline layout (model_index.json, a subfolder per component, sources
that load with diffusers alone); the input contract for images; bounded work whatever the batch size."""

import inspect
import json
import math
import numbers
import os
from collections.abc import Callable
from pathlib import Path

import diffusers
import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.image_processor import PipelineImageInput, VaeImageProcessor
from huggingface_hub import ModelCard

from ..auto import model_classes
from ..data.images import Background, images_to_tensor
from ..models.blocks import check_values, check_vectors
from ..models.modeling_utils import PushToHubWithCardMixin, VaeGanModelMixin
from .remote_code import module_stem, standalone_source

OUTPUT_TYPES = ("pil", "np", "pt")
# Pipelines with a latent space also return the latent vectors instead of images, as diffusers' do.
LATENT_OUTPUT_TYPES = (*OUTPUT_TYPES, "latent")
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


def check_output_type(output_type: str, allowed: tuple[str, ...] = OUTPUT_TYPES) -> None:
    if output_type not in allowed:
        raise ValueError(f"`output_type` must be one of {allowed}, got {output_type!r}.")


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


# `from_pretrained` arguments that say where files come from, for reading model_index.json
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "revision", "token")


def model_index(pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> dict | None:
    """The model_index.json of a pipeline folder or Hub repo (`from_pretrained` arguments), or None when it has none
    (a bare model folder: what hf-vaegan saved before pipelines used diffusers' layout)."""
    if os.path.isfile(pretrained_model_name_or_path):
        return None  # the model's own loader explains that a folder is needed
    if os.path.isdir(pretrained_model_name_or_path):
        folder = Path(pretrained_model_name_or_path, kwargs.get("subfolder") or "")
        if not (folder / DiffusionPipeline.config_name).is_file():
            return None
    hub_kwargs = {key: kwargs[key] for key in (*HUB_KWARGS, "subfolder") if key in kwargs}
    try:
        index = DiffusionPipeline.load_config(pretrained_model_name_or_path, **hub_kwargs)
    except OSError:
        if os.path.isdir(pretrained_model_name_or_path):
            raise
        return None  # no model_index.json in the repo, or no such repo: the model's loader says which
    if not isinstance(index, dict):
        raise ValueError(f"The model_index.json of {pretrained_model_name_or_path} must hold a JSON object.")
    return index


class SingleModelPipeline(PushToHubWithCardMixin, DiffusionPipeline):
    """A `DiffusionPipeline` around hf-vaegan models (`self.model_name` names the main one).

    `save_pretrained` and `push_to_hub` write diffusers' pipeline layout: model_index.json, one subfolder per
    component (its config.json, safetensors weights and source), and the pipeline's source at the root. Each source
    is one file that imports only third-party packages (`remote_code.standalone_source`), so the folder or repo loads
    four ways: `XPipeline.from_pretrained(...)`, and `DiffusionPipeline.from_pretrained(..., trust_remote_code=True)`,
    with or without hf-vaegan installed, from the Hub or from a `snapshot_download`. `from_pretrained` never runs the
    repository's code: it builds the components from hf-vaegan's own classes, named in model_index.json (also as
    written by diffusers' own `DiffusionPipeline.save_pretrained`), and still loads a bare model folder (config.json
    and weights at the root, as hf-vaegan saved pipelines before).

    Images in follow one contract, `hf_vaegan.data.images.images_to_tensor`: PIL images of any mode, numpy arrays
    (uint8 in [0, 255], floats in [0, 1]) and tensors (floats in [-1, 1]), alone or in lists.
    """

    model_name: str
    model_class: type[VaeGanModelMixin]
    _pushes_pipeline_layout = True

    @property
    def model(self) -> VaeGanModelMixin:
        return getattr(self, self.model_name)

    @classmethod
    def component_names(cls) -> list[str]:
        """The components, in the order `__init__` takes them."""
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """Loads the pipeline from a folder or Hub id in diffusers' layout, or from a bare model folder.

        Takes the models' `from_pretrained` arguments (`cache_dir`, `revision`, `token`, `torch_dtype`, `subfolder`
        ...), passed to every component; a component passed by name (`gan=my_generator`) is used as is.
        """
        components = {name: kwargs.pop(name) for name in cls.component_names() if name in kwargs}
        index = model_index(pretrained_model_name_or_path, **kwargs)
        if index is None:
            return cls._from_model_folder(pretrained_model_name_or_path, components, **kwargs)
        subfolder = kwargs.pop("subfolder", None)
        classes = model_classes()
        for name in cls.component_names():
            if name in components:
                continue
            entry = index.get(name)
            if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and entry[1] in classes):
                raise ValueError(
                    f"The model_index.json of {pretrained_model_name_or_path} must name the `{name}` component of "
                    f"{cls.__name__} as [module, class] with one of hf-vaegan's model classes, got {entry!r}."
                )
            model_class, where = classes[entry[1]], in_subfolder(subfolder, name)
            components[name] = model_class.from_pretrained(pretrained_model_name_or_path, subfolder=where, **kwargs)
        pipe = cls(**components)
        # as diffusers' own loader does; push_to_hub keeps the card of where the pipeline came from
        pipe.register_to_config(_name_or_path=os.fspath(pretrained_model_name_or_path))
        return pipe

    @classmethod
    def _from_model_folder(cls, pretrained_model_name_or_path, components: dict, **kwargs):
        """A bare model folder: the main model's config.json and weights at its root."""
        if cls.model_name not in components:
            components[cls.model_name] = cls.model_class.from_pretrained(pretrained_model_name_or_path, **kwargs)
        return cls(**components)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str | None = None,
        push_to_hub: bool = False,
        is_main_process: bool = True,
        **kwargs,
    ):
        """Writes the pipeline in diffusers' layout (see the class docstring) to `save_directory`.

        `push_to_hub=True` then pushes it as `push_to_hub(repo_id=...)` does (`repo_id` defaults to the folder name).
        """
        if os.path.isfile(save_directory):
            raise ValueError(f"Cannot save the pipeline to {save_directory}: it is a file, not a folder.")
        if is_main_process:
            folder = Path(save_directory)
            index = {"_class_name": [module_stem(type(self)), type(self).__name__]}
            index["_diffusers_version"] = diffusers.__version__
            saving = {"safe_serialization": safe_serialization, "variant": variant}
            if max_shard_size is not None:  # the models' own default otherwise
                saving["max_shard_size"] = max_shard_size
            for name in self.component_names():
                component = getattr(self, name)
                component.save_pretrained(folder / name, **saving)
                index[name] = [module_stem(type(component)), type(component).__name__]
                write_standalone_source(type(component), folder / name)
            write_standalone_source(type(self), folder)
            (folder / self.config_name).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        if push_to_hub:
            repo_id = kwargs.pop("repo_id", Path(save_directory).name)
            self.push_to_hub(repo_id, **kwargs)

    def _upload_folder(self, *args, **kwargs):
        # Through the main model, whose class name makes the default commit message ("Upload VAE").
        return self.model._upload_folder(*args, **kwargs)

    def create_model_card(self, repo_id: str, **model_card_kwargs) -> ModelCard:
        """The main model's card (`VaeGanModelMixin.create_model_card`, same arguments) with this pipeline's
        snippets: diffusers alone, hf-vaegan's pipeline class, and the main component through `AutoModel`."""
        model_card_kwargs.setdefault("loader_class", type(self).__name__)
        model_card_kwargs.setdefault("usage_snippet", self.usage_snippet(repo_id))
        model_card_kwargs.setdefault("hf_vaegan_snippet", self.hf_vaegan_snippet(repo_id))
        model_card_kwargs.setdefault(
            "component_intro", f"The `{self.model_name}` component alone, a diffusers `ModelMixin`:"
        )
        model_card_kwargs.setdefault("component_snippet", self.component_snippet(repo_id))
        return self.model.create_model_card(repo_id, **model_card_kwargs)

    def usage_example(self) -> str:
        """Python lines that run `pipe` (this pipeline) on inputs they make; the body of the card's snippets."""
        return "print(pipe.components)"

    def usage_snippet(self, repo_id: str) -> str:
        """Python code that loads the pipeline pushed to `repo_id` with diffusers alone and runs it; shown in its
        model card."""
        return self._snippet(
            "from diffusers import DiffusionPipeline",
            "# runs the pipeline's source saved in the repository (hf-vaegan need not be installed)\n"
            f'pipe = DiffusionPipeline.from_pretrained("{repo_id}", trust_remote_code=True)',
        )

    def hf_vaegan_snippet(self, repo_id: str) -> str:
        """The same with hf-vaegan's own pipeline class, which runs no code from the repository."""
        name = type(self).__name__
        return self._snippet(f"from hf_vaegan import {name}", f'pipe = {name}.from_pretrained("{repo_id}")')

    def _snippet(self, import_line: str, load_lines: str) -> str:
        """`usage_example` after the lines that load `pipe`; its leading imports join the snippet's."""
        example = self.usage_example().split("\n")
        count = next((i for i, line in enumerate(example) if not line.startswith(("import ", "from "))), len(example))
        imports = sorted({"import torch", import_line, *example[:count]}, key=lambda line: (line[0] == "f", line))
        body = "\n".join(example[count:]).strip("\n")
        return "\n".join(imports) + f"\n\n{load_lines}\n{body}"

    def component_snippet(self, repo_id: str) -> str:
        """The main model's own snippet (`usage_snippet`), on the component of the pipeline pushed to `repo_id`.

        diffusers' `AutoModel.from_pretrained(repo_id, subfolder=..., trust_remote_code=True)` reads the auto_map of
        model_index.json rather than of the subfolder's config.json (diffusers 0.42), so the component comes from
        the loaded pipeline."""
        snippet = self.model.usage_snippet(repo_id).split("\n\n# ")[0]  # without its hints about pipelines
        snippet = snippet.replace("from diffusers import AutoModel", "from diffusers import DiffusionPipeline")
        loading = f'AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)'
        return snippet.replace(
            loading, f'DiffusionPipeline.from_pretrained("{repo_id}", trust_remote_code=True).{self.model_name}'
        )

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


def in_subfolder(subfolder: str | None, name: str) -> str:
    """`name` inside the (optional) `subfolder` of a repository, as a Hub path."""
    return f"{subfolder}/{name}" if subfolder else name


def write_standalone_source(cls: type, folder: Path) -> None:
    """Writes `cls`'s standalone module to `folder/<its module>.py`, in place of the sources `save_pretrained` of a
    model copies there (its module and the sibling files it imports): diffusers' pipeline loader would fetch the
    module alone."""
    for source in getattr(cls, "source_files", list)():
        (folder / source.name).unlink(missing_ok=True)
    header = (
        f"{cls.__name__} as hf-vaegan saved it: {cls.__module__} and what it takes from the modules it imports, in\n"
        "one file, so that diffusers' remote-code loader (trust_remote_code=True) loads this folder without hf-vaegan."
    )
    (folder / f"{module_stem(cls)}.py").write_text(standalone_source(cls, header), encoding="utf-8")


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
