"""Start a run from a pretrained model (``--pretrained_model_name_or_path``, ``--revision``, ``--variant``).

The source is a Hub id, a bundled model (``hf_vaegan/pretrained/<name>``), a pipeline folder in diffusers' layout, or
the ``--output_dir`` of an earlier run. Its architecture comes from its config; the data must fit it (channels,
resolution, classes), which :func:`load_pretrained_model` checks before training starts, naming the flag to change.

A network of the script that the source does not hold (the discriminator of a bundled generator, say) starts from
fresh weights built from the script's flags, with a warning.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from accelerate.logging import get_logger
from huggingface_hub import file_exists
from huggingface_hub.errors import HFValidationError
from torch import nn

from ..auto import main_component
from ..pipelines.pipeline_utils import model_index

logger = get_logger(__name__)

ModelT = TypeVar("ModelT", bound=nn.Module)


def add_pretrained_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--pretrained_model_name_or_path``, ``--revision`` and ``--variant``, named as in diffusers' examples."""
    group = parser.add_argument_group("pretrained model")
    group.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="Fine-tune instead of starting from random weights: a Hub id, a local folder (a bundled model in "
        "hf_vaegan/pretrained/, a pipeline saved by save_pretrained, or an earlier run's --output_dir). The "
        "architecture comes from its config, so the architecture flags are ignored; the data must fit it "
        "(channels, resolution, classes). Networks it does not hold (e.g. a discriminator) start fresh.",
    )
    group.add_argument(
        "--revision",
        type=str,
        default=None,
        help="Revision (branch, tag or commit) of --pretrained_model_name_or_path on the Hub.",
    )
    group.add_argument(
        "--variant",
        type=str,
        default=None,
        help="Weights variant of --pretrained_model_name_or_path, e.g. 'fp16' for diffusion_pytorch_model.fp16"
        ".safetensors.",
    )


def validate_pretrained_args(args: argparse.Namespace) -> None:
    """``--revision`` and ``--variant`` only mean something with ``--pretrained_model_name_or_path``."""
    if args.pretrained_model_name_or_path is None:
        for flag in ("revision", "variant"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag} needs --pretrained_model_name_or_path (the model it selects)")
    elif os.path.isfile(args.pretrained_model_name_or_path):
        raise ValueError(
            f"--pretrained_model_name_or_path {args.pretrained_model_name_or_path!r} is a file: pass the folder that "
            "holds config.json (or model_index.json), or a Hub id"
        )


def _component_subfolder(args: argparse.Namespace, component: str | None) -> str | None:
    """Where ``component`` lies in the source: the pipeline's main model for ``None`` (or the model at the root of
    a run's folder), else the subfolder of that name."""
    source = args.pretrained_model_name_or_path
    index = model_index(source, revision=args.revision)
    if component is None:
        return main_component(index, source) if index is not None else None
    return component


def _holds_model(args: argparse.Namespace, subfolder: str | None) -> bool:
    source = args.pretrained_model_name_or_path
    config = f"{subfolder}/config.json" if subfolder else "config.json"
    if os.path.isdir(source):
        return Path(source, config).is_file()
    return file_exists(source, config, revision=args.revision)


def _same_setting(saved: Any, needed: Any) -> bool:
    """Config values compared as the models read them: JSON lists as tuples, a size ``n`` as ``(n, n)``."""

    def canonical(value: Any, other: Any) -> Any:
        if isinstance(value, list):
            value = tuple(value)
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(other, (list, tuple)):
            value = (value, value)
        return value

    return canonical(saved, needed) == canonical(needed, saved)


def load_pretrained_model(
    args: argparse.Namespace,
    model_class: type[ModelT],
    component: str | None = None,
    *,
    must_match: Mapping[str, tuple[Any, str]] | None = None,
    required: bool = True,
) -> ModelT | None:
    """The ``model_class`` of ``--pretrained_model_name_or_path``, or ``None`` without that flag.

    Args:
        component: The subfolder of the source that holds the model (an earlier run's ``"discriminator"``, say);
            ``None``: the main model (the folder's own, or the main component of a pipeline).
        must_match: ``{config key: (value the data needs, what sets it)}``, e.g. ``{"resolution": (28,
            "--resolution")}``; a mismatch is a ``ValueError`` naming both.
        required: When the source has no such component, raise (``True``) or warn and return ``None`` (the script
            then builds a fresh model from its flags).

    Raises ``ValueError`` for a source that cannot be loaded or does not fit, naming the flag.
    """
    source = args.pretrained_model_name_or_path
    if source is None:
        return None
    flag = f"--pretrained_model_name_or_path {source!r}"
    what = f"{component} ({model_class.__name__})" if component else model_class.__name__
    try:
        subfolder = _component_subfolder(args, component)
        if not _holds_model(args, subfolder):
            if required:
                raise ValueError(f"{flag} holds no {what}" + (f" in {subfolder!r}" if subfolder else ""))
            logger.warning(f"{flag} holds no {what}: it starts from fresh weights built from the flags")
            return None
        model = model_class.from_pretrained(source, subfolder=subfolder, revision=args.revision, variant=args.variant)
    except (OSError, HFValidationError) as error:
        raise ValueError(f"{flag}: cannot load the {what}: {error}") from None
    except ValueError as error:
        if str(error).startswith(flag):
            raise
        raise ValueError(f"{flag}: {error}") from None
    for key, (needed, setter) in (must_match or {}).items():
        if not _same_setting(model.config[key], needed):
            raise ValueError(
                f"{flag} is a {what} with {key}={model.config[key]!r}, but {setter} needs {needed!r}: the model does "
                "not fit the data; change the flag or the data, or train from scratch"
            )
    logger.info(f"Starting the {what} from {source}" + (f" (revision {args.revision})" if args.revision else ""))
    return model
