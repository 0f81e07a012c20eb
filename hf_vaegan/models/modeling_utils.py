"""The base class of every hf-vaegan model: diffusers `ModelMixin` + `ConfigMixin`, safetensors only, self-contained on
the Hub.

Saving copies the model's source files beside the weights and writes `auto_map` into config.json, so that anyone with
only diffusers installed can load a pushed model with
`diffusers.AutoModel.from_pretrained(repo_id, trust_remote_code=True)`.
"""

import inspect
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.utils.dynamic_modules_utils import get_relative_import_files
from huggingface_hub import EvalResult, ModelCard, ModelCardData, create_repo, file_exists, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import HFValidationError, validate_repo_id

SAFETENSORS_ONLY = "hf-vaegan models are saved and loaded as safetensors only (no pickle)."


def _is_repo_id(name: str | os.PathLike) -> bool:
    try:
        validate_repo_id(os.fspath(name))
    except HFValidationError:
        return False
    return True


def layers_updated_by_forward(model: torch.nn.Module) -> list[str]:
    """The names of the layers of `model` whose forward pass in training mode updates a buffer: batch norms (running
    statistics) and spectrally normalised layers (the power iteration's vectors)."""
    names = []
    for name, module in model.named_modules():
        spectral = hasattr(module, "parametrizations") and any(
            type(parametrization).__name__ == "_SpectralNorm"
            for parametrizations in module.parametrizations.values()
            for parametrization in parametrizations
        )
        if spectral or isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            names.append(name)
    return names


class PushToHubWithCardMixin:
    """`push_to_hub` for the models and the pipelines: what `save_pretrained` writes, and a model card."""

    # Whether `save_pretrained` writes a pipeline's layout (model_index.json at the root): a card is kept only from a
    # source of the same layout.
    _pushes_pipeline_layout = False

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        create_pr: bool = False,
        model_card: ModelCard | None = None,
        keep_model_card: bool = True,
        **model_card_kwargs: Any,
    ) -> str:
        """Uploads what `save_pretrained` writes (weights, configs and self-contained sources) and a model card to the
        Hub; returns the commit URL.

        The card is `model_card` if given. Otherwise a model or pipeline loaded from a folder or repo of its own layout
        keeps that card (evaluation, training, limitations and the images it shows), renamed for `repo_id`, as
        diffusers keeps a repository's card; `keep_model_card=False` renders a new one, as one built in Python gets:
        `create_model_card(repo_id, **model_card_kwargs)`.
        """
        repo_id = create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder)
            write_pushed_card(
                folder,
                repo_id,
                self.config.get("_name_or_path"),
                lambda: self.create_model_card(repo_id, **model_card_kwargs),
                pipeline=self._pushes_pipeline_layout,
                model_card=model_card,
                keep_model_card=keep_model_card,
                model_card_kwargs=model_card_kwargs,
            )
            return self._upload_folder(
                folder, repo_id, token=token, commit_message=commit_message, create_pr=create_pr
            )


class VaeGanModelMixin(PushToHubWithCardMixin, ModelMixin, ConfigMixin):
    """Adds self-contained saving, safetensors-only loading and a rendered model card to diffusers' `ModelMixin`."""

    _auto_class = "AutoModel"
    # Set by `hf_vaegan.models` to the packaged Jinja template; huggingface_hub's default template otherwise.
    model_card_template: str | None = None
    model_card_tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        safe_serialization: bool = True,
        push_to_hub: bool = False,
        **kwargs,
    ):
        """Saves config.json, the safetensors weights and the model's source files to `save_directory`.

        The folder loads with `from_pretrained` of this class, or with `diffusers.AutoModel` and
        `trust_remote_code=True`. `push_to_hub=True` pushes the folder as `push_to_hub()` does.
        """
        if not safe_serialization:
            raise ValueError(SAFETENSORS_ONLY)
        if os.path.isfile(save_directory):
            # diffusers only logs this and returns
            raise ValueError(f"Cannot save the model to {save_directory}: it is a file, not a folder.")
        super().save_pretrained(save_directory, is_main_process=is_main_process, safe_serialization=True, **kwargs)
        if not is_main_process:
            return
        for source in self.source_files():
            shutil.copyfile(source, Path(save_directory) / source.name)
        if push_to_hub:
            repo_id = kwargs.get("repo_id", Path(save_directory).name)
            self.push_to_hub(repo_id, token=kwargs.get("token"), private=kwargs.get("private"))

    def enable_gradient_checkpointing(self, gradient_checkpointing_func: Callable | None = None) -> None:
        """Recompute activations in the backward pass instead of keeping them (diffusers' method; less memory, about
        one more forward pass of time).

        Refused, with the layers named, for a model whose forward pass updates state that the recomputation would
        update a second time: batch norm's running statistics, spectral norm's power iteration.
        """
        if self._supports_gradient_checkpointing:
            stateful = layers_updated_by_forward(self)
            if stateful:
                raise ValueError(
                    f"{type(self).__name__} cannot use gradient checkpointing: recomputing the forward pass would "
                    f"update the running state of {', '.join(stateful)} twice (batch norm statistics or spectral "
                    "norm power iterations); use norm_type 'group' or 'none' and no spectral norm"
                )
        super().enable_gradient_checkpointing(gradient_checkpointing_func)

    @classmethod
    def source_files(cls) -> list[Path]:
        """The file defining this class and every sibling file it imports relatively, recursively."""
        module_file = inspect.getfile(cls)
        return [Path(module_file), *(Path(f) for f in get_relative_import_files(module_file))]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """Loads a model saved by `save_pretrained` or pushed to the Hub; the weights must be safetensors.

        Takes diffusers' `ModelMixin.from_pretrained` arguments (`cache_dir`, `revision`, `token`, `torch_dtype`...).
        """
        if kwargs.get("subfolder") and os.path.isdir(pretrained_model_name_or_path):
            # diffusers looks for a local folder's weights at its root before the subfolder
            pretrained_model_name_or_path = os.path.join(pretrained_model_name_or_path, kwargs.pop("subfolder"))
        if kwargs.get("use_safetensors") is False:
            raise ValueError(SAFETENSORS_ONLY)
        kwargs["use_safetensors"] = True
        saved_class = cls.saved_class_name(pretrained_model_name_or_path, **kwargs)
        folder = Path(pretrained_model_name_or_path, kwargs.get("subfolder") or "")
        if folder.is_dir() and not any(folder.glob("*.safetensors*")):
            found = sorted(path.name for path in folder.iterdir() if path.suffix in (".bin", ".pt", ".pth", ".ckpt"))
            unpickled = f" ({', '.join(found)} would need unpickling, which hf-vaegan never does)" if found else ""
            raise OSError(f"{folder} holds no safetensors weights file{unpickled}. {SAFETENSORS_ONLY}")
        if saved_class != cls.__name__:
            raise ValueError(
                f"{pretrained_model_name_or_path} holds a {saved_class!r} model, which {cls.__name__} cannot load. "
                f"Load it with {saved_class}.from_pretrained, or diffusers.AutoModel.from_pretrained(..., "
                "trust_remote_code=True)."
            )
        try:
            model = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except ValueError as error:
            if "expected shape" not in str(error):
                raise
            overrides = {k: v for k, v in kwargs.items() if k in cls._get_init_keys(cls)}
            raise ValueError(
                f"The weights in {pretrained_model_name_or_path} do not fit a {cls.__name__} built with the config "
                f"overrides {overrides}: {str(error).split('. If you want')[0]}."
            ) from None
        except OSError as error:
            damaged = re.match(r"Unable to load weights from checkpoint file for '(.+?)'", str(error))
            if damaged is None:
                raise
            cause = error
            while cause.__cause__ or cause.__context__:
                cause = cause.__cause__ or cause.__context__
            raise OSError(
                f"The weights file {damaged.group(1)} is damaged ({cause}): it is truncated, zeroed or not a "
                "safetensors file. Download the model again (force_download=True) or save it again."
            ) from None
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise ValueError(
                    f"The weights in {pretrained_model_name_or_path} hold NaN or infinite values (first in `{name}`): "
                    "the model was saved after its training diverged."
                )
        return model

    @classmethod
    def saved_class_name(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> str:
        """The class name recorded in the config.json of a saved or pushed model (`from_pretrained` arguments).

        Raises `ValueError` for a file path (rather than its folder), or a config.json that is not a JSON object or
        does not name its class.
        """
        if not os.path.exists(pretrained_model_name_or_path) and not _is_repo_id(pretrained_model_name_or_path):
            raise OSError(f"{pretrained_model_name_or_path} is neither a folder nor a Hub id (such as user/model).")
        if os.path.isfile(pretrained_model_name_or_path):
            folder = os.path.dirname(os.path.abspath(pretrained_model_name_or_path))
            raise ValueError(
                f"{pretrained_model_name_or_path} is a file: pass the folder that holds config.json and the weights "
                f"({folder}), or a Hub id."
            )
        hub_kwargs = ("cache_dir", "revision", "token", "local_files_only", "subfolder")
        config = cls.load_config(pretrained_model_name_or_path, **{k: kwargs[k] for k in hub_kwargs if k in kwargs})
        where = f"The config.json of {pretrained_model_name_or_path}"
        if not isinstance(config, dict):
            raise ValueError(f"{where} must hold a JSON object (the model's settings), got {type(config).__name__}.")
        class_name = config.get("_class_name")
        if not isinstance(class_name, str) or not class_name:
            raise ValueError(
                f"{where} does not name its model class (`_class_name` is {class_name!r}): it was not written by "
                'save_pretrained. Add e.g. "_class_name": "VAE" for a VAE.'
            )
        return class_name

    @classmethod
    def extract_init_dict(cls, config_dict, **kwargs):
        # diffusers writes `auto_map` for remote code but warns when it reads it back as an unknown argument
        config_dict = {key: value for key, value in config_dict.items() if key != "auto_map"}
        return super().extract_init_dict(config_dict, **kwargs)

    def create_model_card(
        self,
        repo_id: str,
        license: str = "apache-2.0",
        datasets: list[str] | None = None,
        tags: list[str] | None = None,
        eval_dataset: Mapping[str, str] | None = None,
        eval_results: list[EvalResult] | None = None,
        metric_names: Mapping[str, str] | None = None,
        **template_kwargs: Any,
    ) -> ModelCard:
        """Renders the model card: YAML metadata, a description, a usage snippet that runs, and whatever the template
        takes (`metrics`, `sample_image`, `training` ...).

        The `metrics` table (name -> value as shown) is also the card's `model-index` (the Hub's evaluation
        results), measured on `eval_dataset` (`type`: a Hub dataset id or the local data's name, `name`, `split`);
        `metric_names` renames rows there, e.g. to say which feature space a FID was computed in. `eval_results`
        replaces what the table gives.
        """
        metrics = template_kwargs.get("metrics")
        if eval_results is None and metrics:
            if not eval_dataset:
                raise ValueError(
                    "A card with `metrics` needs `eval_dataset` (type, name and split of the data they were measured "
                    "on) for its model-index, or `eval_results`."
                )
            eval_results = eval_results_from_rows(
                metrics,
                task_type=self.pipeline_tag or "other",
                dataset_type=eval_dataset["type"],
                dataset_name=eval_dataset.get("name", eval_dataset["type"]),
                dataset_split=eval_dataset.get("split"),
                names=metric_names,
            )
        card_data = ModelCardData(
            model_name=repo_id,
            library_name="diffusers",
            license=license,
            datasets=datasets,
            tags=["hf-vaegan", *self.model_card_tags, *(tags or [])],
            pipeline_tag=self.pipeline_tag,
            eval_results=eval_results or None,
        )
        name = type(self).__name__
        template_kwargs.setdefault("model_id", repo_id)
        template_kwargs.setdefault("model_class", name)
        template_kwargs.setdefault("model_summary", (type(self).__doc__ or "").strip().split("\n\n")[0])
        template_kwargs.setdefault("usage_snippet", self.usage_snippet(repo_id))
        template_kwargs.setdefault(
            "hf_vaegan_snippet", f'from hf_vaegan import {name}\n\nmodel = {name}.from_pretrained("{repo_id}")'
        )
        template_kwargs.setdefault("config", {k: v for k, v in self.config.items() if not k.startswith("_")})
        template_kwargs.setdefault("num_parameters", sum(p.numel() for p in self.parameters()))
        return ModelCard.from_template(card_data, template_path=self.model_card_template, **template_kwargs)

    def usage_snippet(self, repo_id: str) -> str:
        """Python code that loads this model from `repo_id` and runs it; shown in the model card."""
        raise NotImplementedError


# Model-card metadata: the Hub's evaluation results (`model-index`) from a card's metric tables, and keeping a card
# when its model is pushed to another repository. It lives here rather than in a module of its own because diffusers'
# remote-code loader copies a local folder's direct relative imports only, not theirs.

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_PARENTHESES = re.compile(r"\s*[\(\[][^\)\]]*[\)\]]")
_IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def metric_values(cell: str) -> list[float]:
    """The numbers of one table cell, as the card shows them: ``"**0.0670**"`` -> [0.067], ``"0.0100 +- 0.0027"``
    -> [0.01] (the mean, not the spread), ``"0.781 / 0.434"`` -> [0.781, 0.434], ``"90.4%"`` -> [0.904]; [] for a
    cell without a number (``"-"``)."""
    values = []
    for part in str(cell).replace("*", "").split(" / "):
        match = _NUMBER.search(part.split("+-")[0])
        if match:
            value = float(match.group())
            values.append(value / 100 if part.strip().endswith("%") else value)
    return values


def metric_type(name: str) -> str:
    """A short id for a metric's display name: ``"FID (packaged ... features)"`` -> ``"fid"``."""
    return re.sub(r"[^a-z0-9]+", "_", _PARENTHESES.sub("", name).lower()).strip("_") or "metric"


def eval_results_from_rows(
    rows: Mapping[str, str],
    *,
    task_type: str,
    dataset_type: str,
    dataset_name: str,
    dataset_split: str | None = None,
    names: Mapping[str, str] | None = None,
) -> list[EvalResult]:
    """One `EvalResult` per number of a card's metric table (``rows``: display name -> cell), for the card's
    ``model-index``. A row ``"precision / recall (k=3)"`` holding ``"a / b"`` gives ``"precision (k=3)"`` and
    ``"recall (k=3)"``. ``names`` renames rows in the metadata (e.g. to say which feature space a FID used)."""
    results = []
    for row, cell in rows.items():
        values = metric_values(cell)
        name = (names or {}).get(row, row)
        parts = _split_names(name, len(values))
        for part, value in zip(parts, values, strict=True):
            results.append(
                EvalResult(
                    task_type=task_type,
                    dataset_type=dataset_type,
                    dataset_name=dataset_name,
                    dataset_split=dataset_split,
                    metric_type=metric_type(part),
                    metric_name=part,
                    metric_value=value,
                )
            )
    return results


def _split_names(name: str, count: int) -> list[str]:
    """``"precision / recall (k=3)"`` and 2 values -> ``["precision (k=3)", "recall (k=3)"]``."""
    if count < 2:
        return [name] * count
    head, _, qualifier = name.partition(" (")
    parts = head.split(" / ")
    if len(parts) != count:
        raise ValueError(f"The metric row {name!r} holds {count} values but names {len(parts)} metrics.")
    return [f"{part} ({qualifier}" if qualifier else part for part in parts]


def card_repo_id(card: ModelCard) -> str | None:
    """The repository a card names: its ``model_name`` (the ``model-index`` name), or else its ``# title``."""
    if card.data.model_name:
        return card.data.model_name
    title = re.search(r"^# (\S+)\s*$", card.text, re.MULTILINE)
    return title.group(1) if title else None


def retarget_card(card: ModelCard, repo_id: str) -> ModelCard:
    """A copy of ``card`` (training, evaluation, limitations...) naming ``repo_id`` instead of the repository it
    was written for: the title, every quoted mention in its snippets and the ``model-index`` name."""
    copy = ModelCard(str(card))
    old_id = card_repo_id(card)
    if old_id and old_id != repo_id:
        text = re.sub(rf"^# {re.escape(old_id)}\s*$", f"# {repo_id}", copy.text, count=1, flags=re.MULTILINE)
        copy.text = re.sub(rf"""(["']){re.escape(old_id)}\1""", rf"\g<1>{repo_id}\g<1>", text)
    if copy.data.eval_results or copy.data.model_name:
        copy.data.model_name = repo_id
    return copy


def card_images(card: ModelCard) -> list[str]:
    """The relative paths of the images a card shows (``![...](samples.png)``), which travel with it."""
    paths = dict.fromkeys(_IMAGE_LINK.findall(card.text))
    # only files beside the card: a link out of the folder must not copy a file from elsewhere into the push
    return [path for path in paths if "://" not in path and not path.startswith("/") and ".." not in path.split("/")]


PIPELINE_INDEX = "model_index.json"


def source_card(name_or_path: str | os.PathLike | None, *, pipeline: bool) -> tuple[ModelCard, dict[str, Path]] | None:
    """The card of the folder or Hub repository something was loaded from (its ``_name_or_path``) and the local
    files of the images it shows, if that source has the layout being pushed: a pipeline's (model_index.json at the
    root) when ``pipeline``, a bare model's otherwise. None when there is no such card (a model built in Python, a
    pipeline's component, an unreachable Hub)."""
    if not name_or_path:
        return None
    folder = Path(name_or_path)
    if folder.is_dir():
        if (folder / PIPELINE_INDEX).is_file() != pipeline or not (folder / "README.md").is_file():
            return None
        card = ModelCard.load(folder / "README.md")
        return card, {image: folder / image for image in card_images(card) if (folder / image).is_file()}
    if os.path.exists(name_or_path):
        return None
    repo_id = os.fspath(name_or_path)
    try:
        if file_exists(repo_id, PIPELINE_INDEX) != pipeline:
            return None
        card = ModelCard.load(hf_hub_download(repo_id, "README.md"))
        images = {}
        for image in card_images(card):
            try:
                images[image] = Path(hf_hub_download(repo_id, image))
            except EntryNotFoundError:
                continue
    except (OSError, EntryNotFoundError, HFValidationError, OfflineModeIsEnabled):
        return None
    return card, images


def write_pushed_card(
    folder: str | os.PathLike,
    repo_id: str,
    loaded_from: str | os.PathLike | None,
    render: Callable[[], ModelCard],
    *,
    pipeline: bool,
    model_card: ModelCard | None = None,
    keep_model_card: bool = True,
    model_card_kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Write the card of a push to ``folder/README.md``, as diffusers' ``push_to_hub`` keeps a repository's card:
    ``model_card`` if given; else, with ``keep_model_card``, the card of the folder or repo the pushed object was
    loaded from (``loaded_from``), renamed for ``repo_id``, with the images it shows; else ``render()``."""
    folder = Path(folder)
    if model_card is None and keep_model_card:
        found = source_card(loaded_from, pipeline=pipeline)
        if found is not None:
            if model_card_kwargs:
                raise ValueError(
                    f"push_to_hub keeps the model card of {loaded_from}, so it cannot render one with "
                    f"{', '.join(sorted(model_card_kwargs))}: pass keep_model_card=False for a new card, or "
                    "model_card= for your own."
                )
            card, images = found
            model_card = retarget_card(card, repo_id)
            for name, path in images.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, folder / name)
    (model_card or render()).save(folder / "README.md")
