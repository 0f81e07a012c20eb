"""Throughput of the GAN training step (one discriminator + one generator update), in images per second.

Measures `GANTrainer.train_step` (the code `examples/train_gan.py` runs, with its default recipe) on synthetic
batches, for the default 28x28 grayscale model and a 64x64 RGB model, in fp32 and bf16 autocast, with and without
channels-last memory format. Each measurement runs in a fresh process (Accelerate's state is per process): warm-up,
then one timed repeat of `--steps` steps; the configurations take turns for `--repeats` rounds, and the median is
reported with its ratio to the fp32 baseline.

    python benchmarks/train_throughput.py
    python benchmarks/train_throughput.py --resolutions 28 --batch_sizes 128 --repeats 7
"""

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time

import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[28, 64], help="Image sizes to measure.")
    parser.add_argument(
        "--batch_sizes",
        type=int,
        nargs="+",
        default=[64, 16],
        help="Images per step, one per resolution (64 is the script's default; 64x64 steps are ~10x dearer).",
    )
    parser.add_argument("--base_channels", type=int, default=32, help="Model width (the script's default).")
    parser.add_argument(
        "--steps", type=int, default=16, help="Steps per timed repeat; 16 includes one lazy R1 step (the default)."
    )
    parser.add_argument("--warmup_steps", type=int, default=2, help="Untimed steps first.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed repeats; the median is reported.")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--resolution", type=int, default=28, help=argparse.SUPPRESS)
    parser.add_argument("--batch_size", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--channels_last", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> list[float]:
    """Images/s of each timed repeat for one configuration (run in its own process)."""
    from accelerate import Accelerator

    from hf_vaegan import Discriminator, Generator
    from hf_vaegan.training import GANTrainer, apply_channels_last, create_ema

    accelerator = Accelerator(mixed_precision="bf16" if args.precision == "bf16" else "no")
    channels = 1 if args.resolution == 28 else 3
    num_classes = 10
    sizes = {"resolution": args.resolution, "base_channels": args.base_channels, "num_classes": num_classes}
    generator = Generator(out_channels=channels, **sizes)
    discriminator = Discriminator(in_channels=channels, **sizes)
    if args.channels_last:
        apply_channels_last(generator, discriminator)
    optimizers = [
        torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.0, 0.99)) for model in (generator, discriminator)
    ]
    generator, discriminator, *optimizers = accelerator.prepare(generator, discriminator, *optimizers)
    trainer = GANTrainer(
        accelerator,
        generator,
        discriminator,
        *optimizers,
        r1_gamma=0.1,
        r1_interval=16,
        ema=create_ema(accelerator, generator, 0.999),
        rng=torch.Generator(accelerator.device).manual_seed(0),
        channels_last=args.channels_last,
    )
    data = torch.Generator().manual_seed(0)
    shape = (args.batch_size, channels, args.resolution, args.resolution)
    batch = {
        "pixel_values": torch.rand(shape, generator=data) * 2 - 1,
        "labels": torch.randint(0, num_classes, (args.batch_size,), generator=data),
    }
    batch = {name: tensor.to(accelerator.device) for name, tensor in batch.items()}
    step = 0

    def run(num_steps: int) -> None:
        nonlocal step
        for _ in range(num_steps):
            step += 1
            trainer.train_step(batch, step)

    run(args.warmup_steps)
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run(args.steps)
        rates.append(args.steps * args.batch_size / (time.perf_counter() - start))
    return rates


def run_worker(resolution: int, batch_size: int, precision: str, channels_last: bool, args) -> float:
    """Images/s of one timed repeat of one configuration, in a fresh process."""
    command = [sys.executable, __file__, "--worker", f"--resolution={resolution}", f"--batch_size={batch_size}"]
    command += [f"--precision={precision}", f"--base_channels={args.base_channels}", f"--steps={args.steps}"]
    command += [f"--warmup_steps={args.warmup_steps}", "--repeats=1"] + (["--channels_last"] if channels_last else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])[0]


def main() -> None:
    args = parse_args()
    if args.worker:
        print(json.dumps(measure(args)))
        return
    if len(args.batch_sizes) != len(args.resolutions):
        sys.exit("give one --batch_sizes value per --resolutions value")
    configs = [
        (resolution, batch_size, precision, channels_last)
        for resolution, batch_size in zip(args.resolutions, args.batch_sizes, strict=True)
        for precision, channels_last in itertools.product(("fp32", "bf16"), (False, True))
    ]
    # Other processes skew the figures, so the configurations take turns (one repeat each per round) rather than
    # running back to back, and the load average is recorded.
    rates: dict[tuple, list[float]] = {config: [] for config in configs}
    loads = []
    for round_index in range(args.repeats):
        for config in configs:
            rates[config].append(run_worker(*config, args))
            loads.append(os.getloadavg()[0])
        print(f"round {round_index + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, base_channels {args.base_channels}, "
        f"median of {args.repeats} repeats of {args.steps} steps, load average {min(loads):.1f}-{max(loads):.1f}\n"
    )
    header = f"| {'model':<14} | {'precision':<9} | {'channels_last':<13} | {'images/s':>9} | {'vs fp32':>7} |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for resolution, batch_size, precision, channels_last in configs:
        rate = statistics.median(rates[(resolution, batch_size, precision, channels_last)])
        baseline = statistics.median(rates[(resolution, batch_size, "fp32", False)])
        model = f"{resolution}x{resolution}x{1 if resolution == 28 else 3} b{batch_size}"
        print(
            f"| {model:<14} | {precision:<9} | {'on' if channels_last else 'off':<13} | {rate:>9.1f} | "
            f"{rate / baseline:>6.2f}x |"
        )


if __name__ == "__main__":
    main()
