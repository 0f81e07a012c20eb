"""Sample-quality evaluation during training: `--eval_steps` in every training script.

The protocol is `hf_vaegan.metrics.evaluate_model`, the one `hf-vaegan evaluate` uses: FID, KID and precision/recall
in the feature space of the packaged Fashion-MNIST classifier (plus the class accuracy of 10-class conditional
generators, and likelihoods for VAEs), with a fixed number of generated images (`--eval_num_samples`, stated in the
logs and the model card, since FID depends on it). The main process evaluates; the figures go to the trackers as
`eval/<metric>` (e.g. `eval/fid`) and the last ones into the model card.

```python
add_evaluation_args(parser)  # --eval_steps --eval_num_samples --eval_dataset_name --eval_split
...
reference = load_evaluation_reference(args, info) if args.eval_steps and accelerator.is_main_process else None
for batch in loop:
    ...
    if args.eval_steps and loop.is_due(args.eval_steps) and accelerator.is_main_process:
        metrics = log_evaluation(accelerator, averaged_copy(accelerator, generator.model, ema), reference,
                                 loop.global_step, args.eval_num_samples, seed=args.seed)
...
session.write_card(..., **evaluation_card_sections(metrics, reference))
```

Scripts that already hold held-out images (the VAE scripts) build the reference from them
(`hf_vaegan.training.vae.held_out_reference`, with `EvaluationReference.from_images`) and call
`add_evaluation_args(parser, reference_flags=False)`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os

import torch
from accelerate import Accelerator

from ..data.loading import ImageDatasetInfo
from ..metrics import FashionClassifierFeatures, evaluate_model
from .dataset_args import load_image_dataset_from_args

logger = logging.getLogger(__name__)

DEFAULT_EVAL_NUM_SAMPLES = 2_000
# A larger reference set costs feature extraction time and memory (precision/recall compare every pair) for little
# gain: the Fashion-MNIST test split has exactly this many images.
MAX_REFERENCE_IMAGES = 10_000
HELD_OUT_SPLITS = ("test", "validation")
LOG_PREFIX = "eval/"

_CARD_NAMES = {
    "fid": "FID (packaged Fashion-MNIST classifier features)",
    "kid_mean": "KID",
    "precision": "precision / recall (k=3)",
    "class_accuracy": "class accuracy (packaged classifier agrees with the requested label)",
}


def add_evaluation_args(
    parser: argparse.ArgumentParser,
    *,
    default_num_samples: int = DEFAULT_EVAL_NUM_SAMPLES,
    reference_flags: bool = True,
) -> argparse._ArgumentGroup:
    """Add `--eval_steps` and `--eval_num_samples`, and (with `reference_flags`) `--eval_dataset_name` and
    `--eval_split`, which choose the reference images (see :func:`load_evaluation_reference`)."""
    group = parser.add_argument_group("evaluation")
    group.add_argument(
        "--eval_steps",
        type=int,
        default=0,
        help="Every this many steps and at the end, the main process computes FID, KID, precision/recall (and the "
        "class accuracy of conditional models) of the EMA model against the reference images, logs them as "
        "eval/<metric> and writes the final ones into the model card. 0 (default) disables it.",
    )
    group.add_argument(
        "--eval_num_samples",
        type=int,
        default=default_num_samples,
        help=f"Generated images per evaluation (default {default_num_samples:,}). FID shrinks as this grows: compare "
        "runs at equal counts (`hf-vaegan evaluate` uses 10,000).",
    )
    if reference_flags:
        group.add_argument(
            "--eval_dataset_name",
            type=str,
            default=None,
            help="Reference images of the evaluation, in any form --dataset_name takes (e.g. fashion_mnist/test.npz). "
            "Default: the --eval_split split of the training data when it has one (Hub ids, folders, save_to_disk "
            "folders; a .npz file holds a single split), else the training images.",
        )
        group.add_argument(
            "--eval_split",
            type=str,
            default=None,
            help="Split of the reference images. Default: 'test', else 'validation', whichever the source has.",
        )
    return group


def validate_evaluation_args(args: argparse.Namespace) -> None:
    """Raise `ValueError` naming the flag for bad values of the :func:`add_evaluation_args` flags."""
    if args.eval_steps < 0:
        raise ValueError(f"--eval_steps must be >= 0 (0 disables evaluation), got {args.eval_steps}")
    if args.eval_num_samples < 2:
        raise ValueError(f"--eval_num_samples must be >= 2, got {args.eval_num_samples}")


@dataclasses.dataclass
class EvaluationReference:
    """The real images generated ones are compared with.

    Attributes:
        images: `(N, C, H, W)` in [-1, 1], at most `MAX_REFERENCE_IMAGES`.
        dataset: the source, for the feature cache key and the model card.
        split: the split (`"train"` when the training images stand in for missing held-out data).
        held_out: whether the images were kept out of training.
    """

    images: torch.Tensor
    dataset: str
    split: str
    held_out: bool

    @classmethod
    def from_images(cls, images: torch.Tensor, dataset: str, split: str, held_out: bool = True) -> EvaluationReference:
        return cls(images[:MAX_REFERENCE_IMAGES], dataset, split, held_out)

    def describe(self) -> str:
        kind = "held-out" if self.held_out else "training"
        return f"the {len(self.images):,} {kind} images of the `{self.split}` split of `{self.dataset}`"


def _load_split(args: argparse.Namespace, dataset_name: str, split: str, num_channels: int) -> ImageDatasetInfo:
    """The split as an `ImageDatasetInfo`, a random subset of `MAX_REFERENCE_IMAGES` when larger."""
    return load_image_dataset_from_args(
        args,
        dataset_name,
        split=split,
        label_column=None,  # labels are not used: any ClassLabel column is found as usual
        max_train_samples=MAX_REFERENCE_IMAGES,
        num_channels=num_channels,
    )


def _load_split_if_present(args: argparse.Namespace, dataset_name: str, split: str, num_channels: int):
    """Like `_load_split`, or None when the source has no such split."""
    try:
        return _load_split(args, dataset_name, split, num_channels)
    except ValueError as error:
        if f"split {split!r} does not exist" in str(error):
            return None
        raise


def load_evaluation_reference(args: argparse.Namespace, info: ImageDatasetInfo) -> EvaluationReference:
    """The reference images of `--eval_steps`, at `--resolution` with the training data's channels.

    In order: `--eval_dataset_name` (its `--eval_split`, default `test`); else the training source's `--eval_split`
    split, or by default its `test` or `validation` split; else the training images themselves (FID then measures
    fit to the training set, which rewards memorisation: pass held-out data when you have it). Sets larger than
    `MAX_REFERENCE_IMAGES` are subsampled with `--seed`. Raises `ValueError` for a missing `--eval_split`.
    """
    if args.eval_dataset_name:
        split = args.eval_split or "test"
        found = _load_split(args, args.eval_dataset_name, split, info.num_channels)
        source, held_out = args.eval_dataset_name, True
    else:
        found, source = None, args.dataset_name
        if args.eval_split == args.dataset_split:
            raise ValueError(f"--eval_split {args.eval_split!r} is the training split; pick a held-out one")
        if os.path.isfile(os.path.expanduser(args.dataset_name)):
            # A .npz holds one split: every split name would load the training images again.
            if args.eval_split:
                raise ValueError(
                    f"--eval_split {args.eval_split!r}: {args.dataset_name!r} is a .npz file holding one split; "
                    "pass the held-out images as --eval_dataset_name"
                )
        else:
            for split in (args.eval_split,) if args.eval_split else HELD_OUT_SPLITS:
                if split != args.dataset_split:
                    found = _load_split_if_present(args, args.dataset_name, split, info.num_channels)
                if found is not None:
                    break
            if found is None and args.eval_split:
                raise ValueError(f"--eval_split {args.eval_split!r} does not exist in {args.dataset_name!r}")
        held_out = found is not None
        if found is None:
            split = args.dataset_split
            dataset = info.dataset
            if len(dataset) > MAX_REFERENCE_IMAGES:
                dataset = dataset.shuffle(seed=args.seed).select(range(MAX_REFERENCE_IMAGES))
            found = dataclasses.replace(info, dataset=dataset)
            logger.warning(
                "--eval_steps: %s has no held-out split; evaluating against the training images "
                "(pass --eval_dataset_name for held-out ones)",
                args.dataset_name,
            )
    images, _ = found.to_tensors(args.resolution)
    reference = EvaluationReference(images, str(source), split, held_out)
    logger.info("--eval_steps: %s generated images against %s", f"{args.eval_num_samples:,}", reference.describe())
    return reference


def log_evaluation(
    accelerator: Accelerator,
    model: torch.nn.Module,
    reference: EvaluationReference,
    step: int,
    num_samples: int,
    seed: int = 0,
    **evaluate_kwargs,
) -> dict[str, float]:
    """Evaluate `model` (a `Generator`, `VAE` or `VAEGAN`, e.g. the EMA copy) with `hf_vaegan.metrics.evaluate_model`
    against `reference`, log the figures to the trackers as `eval/<metric>` at `step`, and return them. Call it on
    the main process only; the reference features are cached on disk (see `hf_vaegan.metrics.cached_features`).
    `evaluate_kwargs` go to `evaluate_model` (e.g. `likelihood_images`, `num_importance_samples` for VAEs)."""
    metrics = evaluate_model(
        model,
        reference.images.to(accelerator.device),
        num_samples,
        FashionClassifierFeatures(device=accelerator.device),
        dataset=reference.dataset,
        split=reference.split,
        seed=seed,
        **evaluate_kwargs,
    )
    accelerator.log({LOG_PREFIX + name: value for name, value in metrics.items()}, step=step)
    logger.info("Evaluation at step %d: %s", step, ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))
    return metrics


def evaluation_card_sections(metrics: dict[str, float] | None, reference: EvaluationReference | None) -> dict:
    """`metrics` and `metrics_protocol` for `write_model_card` from the last :func:`log_evaluation` (empty when
    there was none)."""
    if not metrics or reference is None:
        return {}
    rows = {
        _CARD_NAMES["fid"]: f"{metrics['fid']:.3g}",
        _CARD_NAMES["kid_mean"]: f"{metrics['kid_mean']:.3g} +- {metrics['kid_std']:.2g}",
        _CARD_NAMES["precision"]: f"{metrics['precision']:.3f} / {metrics['recall']:.3f}",
    }
    if "class_accuracy" in metrics:
        rows[_CARD_NAMES["class_accuracy"]] = f"{100 * metrics['class_accuracy']:.1f}%"
    rows |= {
        name: f"{value:.4g}"
        for name, value in metrics.items()
        if name not in ("fid", "kid_mean", "kid_std", "precision", "recall", "class_accuracy", "num_samples")
    }
    protocol = (
        f"{int(metrics['num_samples']):,} generated images against {reference.describe()}, at the end of training "
        "(`--eval_steps`; `hf-vaegan evaluate` computes the same figures, by default with 10,000 images)."
    )
    return {"metrics": rows, "metrics_protocol": protocol}
