"""Throughput of the GAN training step (one discriminator + one generator update), in images per second.

Measures `GANTrainer.train_step` (the code `examples/train_gan.py` runs, with its default recipe: non-saturating loss,
lazy R1 every 16 steps, EMA) on synthetic batches, for the default 28x28 grayscale model and a 64x64 RGB model, in
fp32 and bf16 autocast (what `--mixed_precision bf16` does), with and without channels-last memory format
(`--channels_last`).

All configurations live in one process and take turns, one timed repeat of `--steps` steps each per round, so a
machine whose load changes during the run (other jobs) skews them alike; the median over `--repeats` rounds is
reported with its range and its ratio to the fp32 baseline.

    python benchmarks/train_throughput.py
    python benchmarks/train_throughput.py --resolutions 28 --batch_sizes 128 --repeats 9
"""

import argparse
import itertools
import os
import statistics
import time
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel

from hf_vaegan import Discriminator, Generator
from hf_vaegan.hardware import cpu_info
from hf_vaegan.training import GANTrainer, Network
from hf_vaegan.training.session import apply_channels_last

NUM_CLASSES = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[28, 64], help="Image sizes to measure.")
    parser.add_argument(
        "--batch_sizes",
        type=int,
        nargs="+",
        default=[64, 16],
        help="Images per step, one per resolution (64 is the script's default; 64x64 steps cost ~10x more).",
    )
    parser.add_argument("--base_channels", type=int, default=32, help="Model width (the script's default).")
    parser.add_argument(
        "--steps", type=int, default=16, help="Steps per timed repeat; 16 includes one lazy R1 step (the default)."
    )
    parser.add_argument("--warmup_steps", type=int, default=3, help="Untimed steps of each configuration first.")
    parser.add_argument("--repeats", type=int, default=5, help="Rounds of timed repeats; the median is reported.")
    args = parser.parse_args(argv)
    if len(args.batch_sizes) != len(args.resolutions):
        parser.error("give one --batch_sizes value per --resolutions value")
    return args


@dataclass
class Config:
    resolution: int
    batch_size: int
    precision: str
    channels_last: bool

    @property
    def label(self) -> str:
        channels = 1 if self.resolution == 28 else 3
        return f"{self.resolution}x{self.resolution}x{channels} b{self.batch_size}"


class Bench:
    """One configuration: its models, optimizers, trainer and batch."""

    def __init__(self, accelerator: Accelerator, config: Config, base_channels: int):
        self.config = config
        channels = 1 if config.resolution == 28 else 3
        sizes = {"resolution": config.resolution, "base_channels": base_channels, "num_classes": NUM_CLASSES}
        generator = Generator(out_channels=channels, **sizes)
        discriminator = Discriminator(in_channels=channels, **sizes)
        if config.channels_last:
            apply_channels_last(generator, discriminator)
        if config.precision == "bf16":
            # What `--mixed_precision bf16` makes accelerate do: run the forward passes under autocast.
            for model in (generator, discriminator):
                model.forward = torch.autocast(accelerator.device.type, dtype=torch.bfloat16)(model.forward)
        optimizers = [
            torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.0, 0.99)) for model in (generator, discriminator)
        ]
        generator, discriminator = (
            Network.prepare(accelerator, model, optimizer)
            for model, optimizer in zip((generator, discriminator), optimizers, strict=True)
        )
        self.trainer = GANTrainer(
            accelerator,
            generator,
            discriminator,
            r1_gamma=0.1,
            r1_interval=16,
            ema=EMAModel(generator.bare.parameters(), decay=0.999, foreach=True),  # as the script's, not checkpointed
            rng=torch.Generator(accelerator.device).manual_seed(0),
            channels_last=config.channels_last,
        )
        data = torch.Generator().manual_seed(0)
        shape = (config.batch_size, channels, config.resolution, config.resolution)
        self.batch = {
            "pixel_values": (torch.rand(shape, generator=data) * 2 - 1).to(accelerator.device),
            "labels": torch.randint(0, NUM_CLASSES, (config.batch_size,), generator=data).to(accelerator.device),
        }
        self.step = 0
        self.rates: list[float] = []

    def run(self, num_steps: int) -> float:
        """Train ``num_steps`` steps; returns images/s."""
        start = time.perf_counter()
        for _ in range(num_steps):
            self.step += 1
            self.trainer.train_step(self.batch, self.step)
        return num_steps * self.config.batch_size / (time.perf_counter() - start)


def main() -> None:
    print(f"CPU: {cpu_info().describe()}", flush=True)
    args = parse_args()
    accelerator = Accelerator(mixed_precision="no")
    benches = [
        Bench(accelerator, Config(resolution, batch_size, precision, channels_last), args.base_channels)
        for resolution, batch_size in zip(args.resolutions, args.batch_sizes, strict=True)
        for precision, channels_last in itertools.product(("fp32", "bf16"), (False, True))
    ]
    for bench in benches:
        bench.run(args.warmup_steps)
    loads = []
    for _ in range(args.repeats):
        for bench in benches:
            bench.rates.append(bench.run(args.steps))
            loads.append(os.getloadavg()[0])

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, base_channels {args.base_channels}, "
        f"median of {args.repeats} rounds of {args.steps} steps, load average {min(loads):.1f}-{max(loads):.1f}\n"
    )
    header = (
        f"| {'model':<14} | {'precision':<9} | {'channels_last':<13} | {'images/s':>9} | {'range':>13} | "
        f"{'vs fp32':>7} |"
    )
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    baselines = {}
    for bench in benches:
        config, rate = bench.config, statistics.median(bench.rates)
        baseline = baselines.setdefault(config.resolution, rate)  # fp32 without channels_last comes first
        spread = f"{min(bench.rates):.1f}-{max(bench.rates):.1f}"
        print(
            f"| {config.label:<14} | {config.precision:<9} | {'on' if config.channels_last else 'off':<13} | "
            f"{rate:>9.1f} | {spread:>13} | {rate / baseline:>6.2f}x |"
        )


if __name__ == "__main__":
    main()
