"""Our class-conditional GAN recipe against a plain DCGAN, trained for the same wall-clock budget on the same data.

Issue 4's performance goal. Both runs are `examples/train_gan.py` started at the same time, one process each with one
thread (`OMP_NUM_THREADS=1`), so they share the machine's conditions alike, and both stop after the first step past
`--budget` seconds (`--max_train_time`). Same data, batch size, widths, seed and mixed precision; the recipes differ:

- ours, the recipe of the bundled `fashion-cgan`: the script's defaults, i.e. class-conditional (projection
  discriminator), GroupNorm generator, spectrally normalised discriminator with minibatch standard deviation,
  non-saturating loss with lazy R1 (gamma 0.1 every 16 steps) and the mode-seeking term (without it the generator
  collapses to nearly one image per class), Adam (0.0, 0.99), EMA generator 0.999;
- DCGAN (Radford et al., 2016): unconditional, BatchNorm generator, non-saturating loss, Adam 2e-4 with betas
  (0.5, 0.999), no EMA, no R1, no spectral norm, no minibatch std, no mode seeking, no augmentation. Departures
  from the paper: the discriminator has no BatchNorm, because `GANTrainer` scores real and fake images in one batch
  and then the fakes alone for the generator step, so a BatchNorm discriminator tells them apart by their batch
  statistics and the generator step sees different statistics (the DCGAN then degenerates: both losses near 0);
  and the shared architecture upsamples with
  nearest-neighbour + 3x3 convolutions instead of transposed convolutions, with SiLU instead of ReLU.

Then `hf-vaegan evaluate` scores both with the same extractor (the packaged Fashion-MNIST classifier) and sample count
against the reference split, and the script prints a table and the FID ratio (DCGAN / ours; > 1 means ours is better).

    python benchmarks/gan_vs_dcgan.py --train_data fashion_mnist/train.npz --test_data fashion_mnist/test.npz \\
        --budget 600 --output_dir gan-vs-dcgan
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from hf_vaegan.hardware import cpu_info
from hf_vaegan.training.checkpoints import checkpoint_step, list_checkpoints

REPO = Path(__file__).resolve().parents[1]
TRAIN_GAN = REPO / "examples" / "train_gan.py"
UNLIMITED_STEPS = str(10**9)

RECIPES = {
    "ours (train_gan.py defaults: class-conditional, spectral norm, mode seeking, EMA, R1)": [],
    "DCGAN (BatchNorm G, unconditional, no EMA/R1)": [
        "--num_classes", "0", "--generator_norm_type", "batch", "--discriminator_norm_type", "none",
        "--no-spectral_norm", "--minibatch_std_group_size", "0", "--mode_seeking_weight", "0",
        "--loss", "non-saturating", "--r1_gamma", "0", "--ema_decay", "0", "--diffaugment", "none",
        "--adam_beta1", "0.5", "--adam_beta2", "0.999",
        "--generator_learning_rate", "2e-4", "--discriminator_learning_rate", "2e-4",
    ],
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_data", required=True, help="Training images (any --dataset_name form).")
    parser.add_argument("--test_data", required=True, help="Reference images of the evaluation (e.g. test.npz).")
    parser.add_argument("--output_dir", type=Path, default=Path("gan-vs-dcgan"), help="Runs and logs go here.")
    parser.add_argument("--budget", type=float, default=600, help="Training seconds per run (default 600).")
    parser.add_argument("--num_samples", type=int, default=10_000, help="Generated images per evaluation.")
    parser.add_argument(
        "--base_channels", type=int, default=32, help="Width of both networks in both runs (the bundled model's: 32)."
    )
    parser.add_argument("--train_batch_size", type=int, default=64)
    parser.add_argument("--mixed_precision", choices=("no", "bf16"), default="bf16")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.output_dir.exists() and any(args.output_dir.iterdir()):
        parser.error(f"--output_dir {args.output_dir} is not empty; the runs must start from scratch")
    return args


def run_name(recipe: str) -> str:
    return recipe.split()[0].lower()


def start_training(args: argparse.Namespace, recipe: str, flags: list[str]) -> subprocess.Popen:
    output_dir = args.output_dir / run_name(recipe)
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--dynamo_backend", "no", "--mixed_precision", args.mixed_precision, str(TRAIN_GAN),
        "--dataset_name", args.train_data, "--output_dir", str(output_dir), "--seed", str(args.seed),
        "--base_channels", str(args.base_channels), "--discriminator_base_channels", str(args.base_channels),
        "--train_batch_size", str(args.train_batch_size), "--mixed_precision", args.mixed_precision,
        "--max_train_time", str(args.budget), "--max_train_steps", UNLIMITED_STEPS,
        "--checkpointing_steps", UNLIMITED_STEPS, "--sample_steps", UNLIMITED_STEPS, *flags,
    ]  # fmt: skip
    output_dir.mkdir(parents=True)
    log = open(args.output_dir / f"{run_name(recipe)}.log", "w")  # noqa: SIM115 - closed with the process
    print(f"$ {' '.join(command)}", file=log, flush=True)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})


def evaluate(args: argparse.Namespace, model_dir: Path) -> dict[str, float]:
    command = [
        sys.executable, "-m", "hf_vaegan.cli", "evaluate", str(model_dir), "--data", args.test_data,
        "--num-samples", str(args.num_samples), "--seed", str(args.seed), "--device", "cpu",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    print(f"CPU: {cpu_info().describe()}", flush=True)
    args = parse_args(argv)
    started = time.perf_counter()
    processes = {recipe: start_training(args, recipe, flags) for recipe, flags in RECIPES.items()}
    for recipe, process in processes.items():
        if process.wait() != 0:
            sys.exit(f"error: the {recipe} run failed; see {args.output_dir / run_name(recipe)}.log")
    print(f"trained both in {time.perf_counter() - started:.0f} s (budget {args.budget:.0f} s each, concurrently)")

    rows = {}
    for recipe in RECIPES:
        model_dir = args.output_dir / run_name(recipe)
        steps = checkpoint_step(list_checkpoints(model_dir)[-1])
        rows[recipe] = {"steps": steps, **evaluate(args, model_dir)}

    print(
        f"\n{args.num_samples:,} samples of each against {args.test_data}, packaged Fashion-MNIST classifier "
        f"features; {args.budget:.0f} s of training each, {args.train_batch_size} images per step, base_channels "
        f"{args.base_channels}, {args.mixed_precision}, 1 thread each\n"
    )
    print("| recipe | steps | FID | KID | precision | recall | class accuracy |")
    print("|---|---|---|---|---|---|---|")
    for recipe, row in rows.items():
        accuracy = f"{100 * row['class_accuracy']:.1f}%" if "class_accuracy" in row else "-"
        print(
            f"| {recipe} | {row['steps']:,} | {row['fid']:.3f} | {row['kid_mean']:.4f} +- {row['kid_std']:.4f} | "
            f"{row['precision']:.3f} | {row['recall']:.3f} | {accuracy} |"
        )
    ours, dcgan = (row["fid"] for row in rows.values())
    print(f"\nFID ratio DCGAN / ours: {dcgan / ours:.2f}x")
    (args.output_dir / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
