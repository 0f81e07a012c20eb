"""Model-card metadata: the Hub's evaluation results (`model-index`) from a card's metric tables, and keeping a card
when its model is pushed to another repository.

Only huggingface_hub and the standard library: the model classes use this module, and their standalone sources
(``hf_vaegan.pipelines.remote_code``) inline it, and `save_pretrained` copies it beside a model's own.
"""

import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, file_exists, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import HFValidationError

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
