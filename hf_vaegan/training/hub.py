"""Model cards and the Hub: the card's training rows, the command that reproduces the run, the push.

Every card has a ``training`` table: the run (steps, batch size, epochs), the recipe (each script's own rows), then the
shared settings (optimizer, EMA, precision, processes, seed, time) and the final losses (:func:`training_rows`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import create_repo, upload_folder
from torch import nn

from .checkpoints import CHECKPOINT_PREFIX, PARTIAL_CHECKPOINT_PREFIX

if TYPE_CHECKING:
    from .loop import TrainingLoop

# Folders of --output_dir that are not part of the model pushed to the Hub.
HUB_IGNORE_PATTERNS = [f"{CHECKPOINT_PREFIX}*", f"{PARTIAL_CHECKPOINT_PREFIX}*", "logs/*", "samples/*"]
_SECRET_FLAGS = ("--hub_token",)


def training_rows(
    args: argparse.Namespace,
    loop: TrainingLoop,
    seconds: float,
    recipe: Mapping[str, Any],
    logs: Mapping[str, float] | None = None,
    final: Iterable[str] = (),
    final_label: str = "final",
) -> dict[str, Any]:
    """The ``training`` table of a model card: steps, batch size and epochs, the script's ``recipe`` rows, the shared
    settings, and ``<final_label> <name>`` for each of the ``final`` losses present in the last step's ``logs``."""
    rows = {
        "initial weights": initial_weights(args),
        "steps": loop.global_step,
        "batch size (all processes)": loop.batch_size,
        "epochs": f"{loop.global_step / loop.steps_per_epoch:.2f}",
        **recipe,
        "Adam betas": f"({args.adam_beta1}, {args.adam_beta2})",
        "EMA decay": args.ema_decay,
        "mixed precision": loop.accelerator.mixed_precision,
        "processes": loop.accelerator.num_processes,
        "seed": args.seed,
        "training time": f"{seconds / 60:.1f} min",
    }
    logs = logs or {}
    return rows | {f"{final_label} {name}": f"{logs[name]:.4g}" for name in final if name in logs}


def initial_weights(args: argparse.Namespace) -> str:
    """Where the run started: ``random``, a Hub id (with its revision), or the name of a local folder (a card
    shows no paths of the machine it was trained on)."""
    source = getattr(args, "pretrained_model_name_or_path", None)
    if source is None:
        return "random"
    if os.path.isdir(source):
        return f"fine-tuned from the local folder `{Path(source).resolve().name}`"
    return f"fine-tuned from `{source}`" + (f" (revision `{args.revision}`)" if args.revision else "")


def hub_repo_id(args: argparse.Namespace) -> str:
    """The repository the card names: with ``--push_to_hub``, the full id ``create_repo`` gives for
    ``--hub_model_id`` or the name of ``--output_dir`` (the Hub puts a bare name under the token's account), so that
    the card's title and snippets load what is pushed; without it, that name (the card of a local folder)."""
    name = args.hub_model_id or Path(args.output_dir).resolve().name
    if not args.push_to_hub:
        return name
    return create_repo(name, exist_ok=True, private=args.hub_private_repo or None, token=args.hub_token).repo_id


def eval_dataset(args: argparse.Namespace) -> dict[str, str]:
    """The data a run's card figures were measured on, for its ``model-index``: ``--eval_dataset_name`` or
    ``--validation_dataset_name`` (with its split), else the held-out split of ``--dataset_name``."""
    name = getattr(args, "eval_dataset_name", None) or getattr(args, "validation_dataset_name", None)
    split = getattr(args, "eval_split", None) or getattr(args, "validation_split", None)
    if not name:
        name, split = args.dataset_name, split or "held-out"
    dataset = {"type": name, "name": name}
    return dataset | ({"split": split} if split and not name.endswith(".npz") else {})


def training_command(script: str, argv: Sequence[str] | None = None) -> str:
    """The ``accelerate launch`` command of this run, for the model card, with secrets redacted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    redacted: list[str] = []
    hide_next = False
    for argument in argv:
        if hide_next:
            redacted.append("***")
            hide_next = False
        elif argument in _SECRET_FLAGS:
            redacted.append(argument)
            hide_next = True
        elif argument.startswith(tuple(f"{flag}=" for flag in _SECRET_FLAGS)):
            redacted.append(argument.split("=", 1)[0] + "=***")
        else:
            redacted.append(argument)
    return shlex.join(["accelerate", "launch", script, *redacted])


def dataset_hub_ids(dataset_name: str) -> list[str] | None:
    """``[dataset_name]`` for a Hub dataset id (for the card's ``datasets`` metadata), ``None`` for local data."""
    if os.path.exists(os.path.expanduser(dataset_name)):
        return None
    return [dataset_name]


def write_model_card(
    model: nn.Module,
    output_dir: str | os.PathLike,
    repo_id: str,
    *,
    datasets: list[str] | None = None,
    **template_kwargs: Any,
) -> Path:
    """Render ``model.create_model_card`` (the package template: ``sample_image``, ``metrics``, ``training``,
    ``training_command``, ``dataset_description``, ``limitations``) to ``output_dir/README.md``."""
    path = Path(output_dir) / "README.md"
    model.create_model_card(repo_id, datasets=datasets, **template_kwargs).save(path)
    return path


def push_output_dir(args: argparse.Namespace, repo_id: str, commit_message: str = "End of training") -> str:
    """Upload ``--output_dir`` (model, subfolders, README.md, sample grid) to ``repo_id`` (:func:`hub_repo_id`),
    leaving out checkpoints, logs and intermediate samples. Returns the commit URL."""
    commit = upload_folder(
        repo_id=repo_id,
        folder_path=args.output_dir,
        commit_message=commit_message,
        ignore_patterns=HUB_IGNORE_PATTERNS,
        token=args.hub_token,
    )
    return commit.commit_url
