"""Checkpoints: ``accelerator.save_state`` folders named ``checkpoint-<step>``, written atomically and checked on load.

A checkpoint is written into a hidden ``.partial-checkpoint-<step>`` folder, closed with a manifest
(``checkpoint.json``: the size and SHA-256 of every file) and renamed when complete, so a crash or a full disk
mid-save leaves the previous checkpoints intact and nothing that ``--resume_from_checkpoint latest`` would pick.
Before loading, every file is checked against the manifest (checkpoints written before manifests existed: the
safetensors headers and the zip archives of ``torch.save``), so a missing, truncated or overwritten file is reported
by name instead of surfacing as a loader error; ``latest`` skips damaged checkpoints with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

from accelerate import Accelerator
from accelerate.logging import get_logger
from torch import nn

from .errors import CheckpointError
from .update import assert_finite_parameters

logger = get_logger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
PARTIAL_CHECKPOINT_PREFIX = ".partial-checkpoint-"
MANIFEST_NAME = "checkpoint.json"
_CHECKPOINT_PATTERN = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")
# accelerate asks for `pytorch_model[_i].bin` when `model[_i].safetensors` (what it writes) is missing.
_TORCH_MODEL_PATTERN = re.compile(r"^pytorch_model(_\d+)?\.bin$")


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The step of a ``checkpoint-<step>`` folder, or ``None`` if ``path`` is not named like one."""
    match = _CHECKPOINT_PATTERN.match(Path(path).name)
    return int(match.group(1)) if match else None


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The complete checkpoints in ``output_dir``, oldest first."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [path for path in folder.iterdir() if path.is_dir() and checkpoint_step(path) is not None]
    return sorted(found, key=checkpoint_step)


# Integrity


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: str | os.PathLike) -> Path:
    """Record the size and SHA-256 of every file of ``folder`` in ``folder/checkpoint.json``."""
    folder = Path(folder)
    files = {
        path.name: {"size": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != MANIFEST_NAME
    }
    manifest = folder / MANIFEST_NAME
    manifest.write_text(json.dumps({"files": files}, indent=1) + "\n")
    return manifest


def _format_problem(path: Path) -> str | None:
    """What is wrong with the structure of a safetensors file or a ``torch.save`` zip archive, or ``None``."""
    size = path.stat().st_size
    if path.suffix == ".safetensors":
        with path.open("rb") as file:
            prefix = file.read(8)
            if len(prefix) < 8:
                return f"truncated to {size} bytes"
            (header_size,) = struct.unpack("<Q", prefix)
            if header_size == 0 or 8 + header_size > size:
                return f"not a safetensors file (header of {header_size} bytes in a file of {size})"
            try:
                header = json.loads(file.read(header_size))
            except ValueError:
                return "not a safetensors file (unreadable header)"
        ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
        if 8 + header_size + max(ends, default=0) > size:
            return f"truncated to {size} bytes"
        return None
    if path.suffix in (".bin", ".pkl", ".pt"):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError) as error:
            return f"not a readable torch.save archive ({error})"
        return f"damaged (bad CRC in {bad})" if bad else None
    return None


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` naming the checkpoint and the file when a file is missing or damaged.

    With a manifest, every listed file must be present with its recorded size and SHA-256. Checkpoints without one
    (written before manifests existed) get the structural checks: safetensors headers and sizes, zip CRCs.
    """
    path = Path(path)
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        for file in sorted(path.iterdir()):
            if file.is_file() and (problem := _format_problem(file)):
                raise CheckpointError(f"checkpoint {path} is damaged: {file.name} is {problem}")
        return
    try:
        files = json.loads(manifest_path.read_text())["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"checkpoint {path} is damaged: {MANIFEST_NAME} is unreadable ({error})") from None
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {name} is missing")
        size = file.stat().st_size
        if size != expected["size"]:
            raise CheckpointError(
                f"checkpoint {path} is damaged: {name} has {size} bytes, {expected['size']} were written"
            )
        if _sha256(file) != expected["sha256"]:
            problem = _format_problem(file) or "overwritten (its SHA-256 differs from the one recorded at save time)"
            raise CheckpointError(f"checkpoint {path} is damaged: {name} is {problem}")


# Saving


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: str | os.PathLike,
    step: int,
    total_limit: int | None = None,
    models: Mapping[str, nn.Module] | None = None,
) -> Path:
    """``accelerator.save_state`` into ``output_dir/checkpoint-<step>``, atomically, then prune old checkpoints.

    ``models`` are checked for NaN/inf first. A failed save (e.g. a full disk) removes its partial folder and raises
    :class:`CheckpointError`; the previous checkpoints stay as they were. Call on every process.
    """
    if models:
        assert_finite_parameters(**{name: accelerator.unwrap_model(model) for name, model in models.items()})
    output_dir = Path(output_dir)
    final = output_dir / f"{CHECKPOINT_PREFIX}{step}"
    partial = output_dir / f"{PARTIAL_CHECKPOINT_PREFIX}{step}"
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(partial))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            write_manifest(partial)
    except Exception as error:  # safetensors and torch.save report a full disk with their own error types
        if accelerator.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
        previous = list_checkpoints(output_dir)
        kept = f"; {previous[-1].name} is intact" if previous else ""
        raise CheckpointError(f"could not write checkpoint {final}: {error}{kept}") from error
    if accelerator.is_main_process:
        if final.exists():  # a run restarted from an earlier checkpoint overwrites the later ones
            shutil.rmtree(final)
        os.replace(partial, final)
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old)
        logger.info(f"Saved checkpoint {final}")
    accelerator.wait_for_everyone()
    return final


def remove_partial_checkpoints(output_dir: str | os.PathLike) -> None:
    """Delete checkpoints left half-written by a crash (main process only)."""
    folder = Path(output_dir)
    if folder.is_dir():
        for path in folder.glob(f"{PARTIAL_CHECKPOINT_PREFIX}*"):
            shutil.rmtree(path)


# Loading


def resolve_checkpoint(output_dir: str | os.PathLike, resume_from_checkpoint: str | None) -> Path | None:
    """The folder ``--resume_from_checkpoint`` designates: ``None``, a path, or ``"latest"``.

    ``"latest"`` is the newest checkpoint of ``output_dir`` that passes :func:`verify_checkpoint` (``None`` when there
    is none yet); each newer damaged one is skipped with a warning naming it and the bad file. Raises
    :class:`CheckpointError` when every checkpoint is damaged, and ``ValueError`` for a path that is no checkpoint.
    """
    if resume_from_checkpoint is None:
        return None
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(output_dir)
        problems = []
        for path in reversed(checkpoints):
            try:
                verify_checkpoint(path)
            except CheckpointError as error:
                problems.append(str(error))
                logger.warning(f"Skipping {path.name}: {error}")
                continue
            return path
        if problems:
            raise CheckpointError(f"no intact checkpoint in {output_dir}: " + "; ".join(problems))
        return None
    path = Path(resume_from_checkpoint)
    if not path.is_dir() or checkpoint_step(path) is None:
        raise ValueError(f"{resume_from_checkpoint!r} is not a '{CHECKPOINT_PREFIX}<step>' folder")
    return path


def load_checkpoint(accelerator: Accelerator, path: str | os.PathLike) -> None:
    """``accelerator.load_state(path)`` after :func:`verify_checkpoint`, with errors that name the checkpoint and the
    file (:class:`CheckpointError`): a file that is missing, damaged, or holds state this run does not have."""
    path = Path(path)
    verify_checkpoint(path)
    try:
        accelerator.load_state(str(path))
    except CheckpointError:
        raise
    except FileNotFoundError as error:
        name = Path(error.filename or "").name
        if match := _TORCH_MODEL_PATTERN.match(name):
            name = f"model{match.group(1) or ''}.safetensors"
        raise CheckpointError(
            f"cannot resume from {path}: {name or error} is missing; this run has more models, optimizers or "
            "schedulers than the checkpoint (resume with the script and flags that wrote it)"
        ) from None
    except (RuntimeError, ValueError, KeyError) as error:
        raise CheckpointError(
            f"cannot resume from {path}: it does not match this run ({type(error).__name__}: {error}); resume with "
            "the script and flags that wrote it"
        ) from None
