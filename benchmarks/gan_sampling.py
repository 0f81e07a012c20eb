"""Time to sample a batch of images (default 64) from the bundled class-conditional GAN on this CPU.

One call = drawing the noise and running the generator on it with one class label per image (cycling through the
classes), the images left as a tensor in [-1, 1]. Measured in one process for several ways of running it, which take
turns call by call (so a machine whose load changes during the run skews them alike):

- `fp32 no_grad` (the baseline: `Generator.sample`), 1 thread;
- `fp32 inference_mode`, 1 thread;
- `bf16 autocast` (inference_mode), 1 thread;
- `channels_last` (fp32, inference_mode), 1 thread;
- `bf16 autocast channels_last`, 1 thread;
- `bf16 weights` (`model.to(torch.bfloat16)`, inference_mode; the images come out in bf16), 1 thread;
- `GANPipeline` (`output_type="pt"`: the user-facing call, with its label checks), 1 thread;
- `fp32 inference_mode` with 2 threads.

Prints the median and 95th percentile in milliseconds, each median's ratio to the baseline, and whether the fastest
median meets the 20 ms goal of issue 4.

    OMP_NUM_THREADS=1 python benchmarks/gan_sampling.py
    python benchmarks/gan_sampling.py --model path/to/generator --batch_size 16 --repeats 500
"""

import argparse
import contextlib
import copy
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import hf_vaegan
from hf_vaegan import GANPipeline, Generator, load_pretrained
from hf_vaegan.hardware import cpu_info

BUNDLED_MODEL = Path(hf_vaegan.__file__).parent / "pretrained" / "fashion-cgan"
GOAL_MS = 20.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", type=Path, default=BUNDLED_MODEL, help="A Generator or GANPipeline folder (default: bundled)."
    )
    parser.add_argument("--batch_size", type=int, default=64, help="Images per call (default 64).")
    parser.add_argument("--repeats", type=int, default=200, help="Timed calls per configuration (default 200).")
    parser.add_argument("--warmup", type=int, default=10, help="Untimed calls of each configuration first.")
    return parser.parse_args(argv)


@dataclass
class Method:
    name: str
    call: Callable[[], torch.Tensor]
    threads: int = 1
    timings: list[float] = field(default_factory=list)

    def run(self) -> torch.Tensor:
        torch.set_num_threads(self.threads)
        start = time.perf_counter()
        images = self.call()
        self.timings.append((time.perf_counter() - start) * 1000)
        return images


def make_methods(model: Generator, batch_size: int) -> list[Method]:
    num_classes = model.config.num_classes
    labels = torch.arange(batch_size) % num_classes if num_classes else None
    rng = torch.Generator().manual_seed(0)
    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    bfloat16 = copy.deepcopy(model).to(torch.bfloat16)
    pipe = GANPipeline(model)

    def draw(generator: Generator, mode, autocast: bool = False) -> Callable[[], torch.Tensor]:
        def call() -> torch.Tensor:
            precision = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
            with mode(), precision:
                return generator(generator.sample_noise(batch_size, rng), labels).sample

        return call

    return [
        Method("fp32 no_grad (baseline)", lambda: model.sample(batch_size, labels, rng)),
        Method("fp32 inference_mode", draw(model, torch.inference_mode)),
        Method("bf16 autocast", draw(model, torch.inference_mode, autocast=True)),
        Method("channels_last", draw(channels_last, torch.inference_mode)),
        Method("bf16 autocast channels_last", draw(channels_last, torch.inference_mode, autocast=True)),
        Method("bf16 weights", draw(bfloat16, torch.inference_mode)),
        Method("GANPipeline (pt)", lambda: pipe(batch_size, labels, rng, output_type="pt").images),
        Method("fp32 inference_mode", draw(model, torch.inference_mode), threads=2),
    ]


def main(argv: list[str] | None = None) -> None:
    print(f"CPU: {cpu_info().describe()}", flush=True)
    args = parse_args(argv)
    model = load_pretrained(args.model).eval()
    methods = make_methods(model, args.batch_size)
    for method in methods:
        for _ in range(args.warmup):
            images = method.run()
        assert images.shape[0] == args.batch_size and images.abs().max() <= 1
        method.timings.clear()
    loads = []
    for _ in range(args.repeats):
        for method in methods:
            method.run()
        loads.append(os.getloadavg()[0])

    print(
        f"{args.model.name}: {sum(p.numel() for p in model.parameters()):,} parameters, {args.batch_size} images "
        f"per call; torch {torch.__version__}, {os.cpu_count()} CPUs, load average {min(loads):.1f}-{max(loads):.1f}; "
        f"median of {args.repeats} calls each, taking turns\n"
    )
    header = f"| {'method':<28} | {'threads':>7} | {'median ms':>9} | {'p95 ms':>7} | {'speed-up':>11} |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    baseline = statistics.median(methods[0].timings)
    for method in methods:
        median = statistics.median(method.timings)
        p95 = float(np.percentile(method.timings, 95))
        print(
            f"| {method.name:<28} | {method.threads:>7} | {median:>9.2f} | {p95:>7.2f} | {baseline / median:>10.2f}x |"
        )
    best = min(methods, key=lambda method: statistics.median(method.timings))
    best_ms = statistics.median(best.timings)
    verdict = "meets" if best_ms < GOAL_MS else "misses"
    print(f"\nfastest: {best.name}, {best.threads} thread(s): {best_ms:.2f} ms, {verdict} the {GOAL_MS:.0f} ms goal")


if __name__ == "__main__":
    main()
