"""Our GAN recipe against two plain baselines at an equal wall-clock budget on one CPU thread (issue 16).

Runs one after the other, each alone on one thread (``torch.set_num_threads(1)``, and ``OMP_NUM_THREADS=1`` for the
training script), each for ``--seconds`` of training:

- ``ours``: ``examples/train_gan.py --preset cpu-budget`` (``--max_train_time``; its data loading counts in the
  budget);
- ``dcgan`` and ``mlp-cgan``: :mod:`baselines` (a DCGAN and an MLP conditional GAN as in the public examples), trained
  here on the training images preloaded as one tensor (loading not counted), batch ``--batch_size``;
- optionally ``ours-quality``: ``train_gan.py`` with the quality defaults at the bundled model's widths (32/32).

Then each is scored alike by :func:`hf_vaegan.metrics.evaluate_model`: ``--num_samples`` samples (conditional models
cycle through the 10 classes, so the samples are class-balanced) against ``--test_data``, FID, KID, precision/recall
in the packaged Fashion-MNIST classifier's feature space, and its class accuracy for the conditional models. Prints
the CPU, a table, the FID ratios against the best baseline, and one final JSON line.

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OMP_NUM_THREADS=1 taskset -c 1 \\
        python benchmarks/gan_equal_budget.py --train_data fashion_mnist/train.npz \\
        --test_data fashion_mnist/test.npz --seconds 600 --output_dir gan-equal-budget
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import BASELINES  # noqa: E402

from hf_vaegan import Generator  # noqa: E402
from hf_vaegan.data.loading import load_image_dataset  # noqa: E402
from hf_vaegan.hardware import cpu_info  # noqa: E402
from hf_vaegan.metrics import evaluate_model  # noqa: E402
from hf_vaegan.metrics.features import FashionClassifierFeatures  # noqa: E402
from hf_vaegan.training.checkpoints import checkpoint_step, list_checkpoints  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRAIN_GAN = REPO / "examples" / "train_gan.py"
NEVER = str(10**9)
OURS = {"ours": ["--preset", "cpu-budget"], "ours-quality": ["--base_channels", "32"]}
RUNS = ("ours", "dcgan", "mlp-cgan")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_data", required=True, help="Training images with labels (e.g. train.npz).")
    parser.add_argument("--test_data", required=True, help="Reference images of the scores (e.g. test.npz).")
    parser.add_argument("--output_dir", type=Path, default=Path("gan-equal-budget"), help="Runs go here.")
    parser.add_argument("--seconds", type=float, default=600, help="Training seconds of each run (default 600).")
    parser.add_argument("--num_samples", type=int, default=10_000, help="Generated images scored per run.")
    parser.add_argument("--batch_size", type=int, default=64, help="Batch size of the baselines (default 64).")
    parser.add_argument(
        "--runs",
        nargs="+",
        choices=(*OURS, *BASELINES),
        default=list(RUNS),
        help=f"Which runs (default: {' '.join(RUNS)}).",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.output_dir.exists() and any(args.output_dir.iterdir()):
        parser.error(f"--output_dir {args.output_dir} is not empty; the runs must start from scratch")
    return args


def load_train_gan():
    """``examples/train_gan.py`` as a module (to resolve the flags of a run as the script does)."""
    spec = importlib.util.spec_from_file_location("train_gan", TRAIN_GAN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_ours(args: argparse.Namespace, name: str) -> tuple[torch.nn.Module, int, int]:
    """``train_gan.py`` for ``--seconds``; returns the saved (EMA) generator, its steps and images seen."""
    output_dir = args.output_dir / name
    command = [
        sys.executable, str(TRAIN_GAN), *OURS[name], "--dataset_name", args.train_data,
        "--output_dir", str(output_dir), "--seed", str(args.seed), "--max_train_time", str(args.seconds),
        "--max_train_steps", NEVER, "--num_epochs", NEVER, "--checkpointing_steps", NEVER, "--sample_steps", NEVER,
    ]  # fmt: skip
    batch_size = load_train_gan().parse_args(command[2:]).train_batch_size  # as the preset resolves it
    output_dir.mkdir(parents=True)
    with open(args.output_dir / f"{name}.log", "w") as log:
        print(f"$ {' '.join(command)}", file=log, flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode:
            sys.exit(f"error: the {name} run failed; see {args.output_dir / name}.log")
    steps = checkpoint_step(list_checkpoints(output_dir)[-1])
    return Generator.from_pretrained(output_dir), steps, steps * batch_size


def train_baseline(args: argparse.Namespace, name: str, images: torch.Tensor, labels: torch.Tensor):
    """A baseline trained on ``images`` (resized to its resolution) for ``--seconds``; returns it, steps, images."""
    torch.manual_seed(args.seed)
    model = BASELINES[name]()
    if images.shape[-1] != model.resolution:
        images = F.interpolate(images, size=model.resolution, mode="bilinear", antialias=True).clamp(-1, 1)
    rng = torch.Generator().manual_seed(args.seed)
    steps = 0
    started = time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        order = torch.randperm(len(images), generator=rng)
        for batch in order[: len(order) - len(order) % args.batch_size].split(args.batch_size):
            model.train_step(images[batch], labels[batch], rng)
            steps += 1
            if time.perf_counter() - started >= args.seconds:
                break
    return model.eval(), steps, steps * args.batch_size


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    cpu = cpu_info().describe()
    print(f"CPU: {cpu}; {torch.get_num_threads()} thread", flush=True)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = load_image_dataset(args.train_data).to_tensors(28)
    test_images, _ = load_image_dataset(args.test_data).to_tensors(28)
    extractor = FashionClassifierFeatures(device="cpu")

    rows = {}
    for name in args.runs:
        print(f"training {name} for {args.seconds:.0f} s", flush=True)
        if name in OURS:
            model, steps, seen = train_ours(args, name)
        else:
            model, steps, seen = train_baseline(args, name, train_images, train_labels)
        metrics = evaluate_model(
            model, test_images, args.num_samples, extractor, dataset=args.test_data, seed=args.seed
        )
        rows[name] = {"steps": steps, "images_seen": seen, **metrics}
        print(f"{name}: {json.dumps(rows[name])}", flush=True)

    print(
        f"\n{args.num_samples:,} samples each (class-balanced for the conditional models) against {args.test_data}, "
        f"packaged Fashion-MNIST classifier features; {args.seconds:.0f} s of training each, one after the other, "
        "1 thread each\n"
    )
    print("| run | steps | images seen | FID | KID | precision | recall | class accuracy |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        accuracy = f"{row['class_accuracy']:.3f}" if "class_accuracy" in row else "-"
        print(
            f"| {name} | {row['steps']:,} | {row['images_seen']:,} | {row['fid']:.2f} | "
            f"{row['kid_mean']:.4f} +- {row['kid_std']:.4f} | {row['precision']:.3f} | {row['recall']:.3f} | "
            f"{accuracy} |"
        )
    summary = {"cpu": cpu, "seconds": args.seconds, "num_samples": args.num_samples, "runs": rows}
    baselines = {name: row["fid"] for name, row in rows.items() if name in BASELINES}
    if "ours" in rows and baselines:
        best = min(baselines, key=baselines.get)
        ratio = rows["ours"]["fid"] / baselines[best]
        summary |= {"best_baseline": best, "fid_ratio_ours_to_best_baseline": ratio}
        print(f"\nFID ours / best baseline ({best}): {ratio:.2f} (target <= 0.5)")
        for name, fid in baselines.items():
            print(f"FID {name} / ours: {fid / rows['ours']['fid']:.2f}x")
    (args.output_dir / "results.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
