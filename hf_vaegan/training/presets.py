"""``--preset``: named sets of defaults of a training script, which flags given explicitly still override.

A preset changes the parser's defaults before parsing, so ``--preset cpu-budget --base_channels 32`` trains with the
preset's values except the width. The default preset, ``quality``, changes nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

# train_gan.py's presets. cpu-budget: a GAN that learns most per second of one CPU thread (benchmarks/
# gan_equal_budget.py, the README's equal-budget table): networks half as wide as the bundled model's, ten times its
# learning rates, channels-last tensors; the rest of the quality recipe (mode seeking, lazy R1, EMA) stays.
GAN_PRESETS: dict[str, dict[str, Any]] = {
    "quality": {},
    "cpu-budget": {
        "base_channels": 16,
        "generator_learning_rate": 2e-3,
        "discriminator_learning_rate": 2e-3,
        "channels_last": True,
    },
}


def describe_presets(presets: Mapping[str, Mapping[str, Any]]) -> str:
    """The ``--preset`` help: each preset and the defaults it sets."""
    parts = []
    for name, values in presets.items():
        settings = ", ".join(f"--{flag} {value}" for flag, value in values.items()) or "the flags' own defaults"
        parts.append(f"'{name}': {settings}")
    return "; ".join(parts)


def add_preset_arg(
    parser: argparse.ArgumentParser, presets: Mapping[str, Mapping[str, Any]], default: str, purpose: str
) -> None:
    """Add ``--preset`` (choices: the names of ``presets``), documented by ``purpose`` and each preset's values."""
    parser.add_argument(
        "--preset",
        choices=tuple(presets),
        default=default,
        help=f"{purpose} Sets defaults only: flags given explicitly override them. {describe_presets(presets)}.",
    )


def apply_preset(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, presets: Mapping[str, Mapping[str, Any]]
) -> str:
    """Make the ``--preset`` named in ``argv`` (or the parser's default one) set the parser's defaults; returns its
    name. Call before ``parser.parse_args(argv)``."""
    finder = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    finder.add_argument("--preset", choices=tuple(presets), default=parser.get_default("preset"))
    known, _ = finder.parse_known_args(argv)
    unknown = set(presets[known.preset]) - {action.dest for action in parser._actions}
    if unknown:
        raise ValueError(f"preset {known.preset!r} sets unknown flags: {sorted(unknown)}")
    parser.set_defaults(**presets[known.preset])
    return known.preset
