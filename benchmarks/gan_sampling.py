"""How close sampling from the bundled class-conditional GAN comes to this CPU's matmul rate, against today's path.

One call draws a batch of images (default 64, one class label per image, cycling through the classes). Every path
runs on one thread (`torch.set_num_threads(1)`), and all of them take turns call by call with a 1024x1024 matmul,
so a machine whose load changes during the run skews them alike:

- `matmul fp32` (and `matmul bf16` where the kernels have bf16 instructions): the rate a path is measured against;
- `Generator.sample`: the model's own call (fp32, no autograd);
- `GANPipeline pt`: the user-facing call with its label checks, images left as a tensor;
- `GANPipeline pil`: the same with PIL images, the Space's garment generation and the pipeline's default;
- each of these as it ran before issue 16 (`..., before`): the upsample + 3x3 conv modules of `ConvDecoder` as they
  are (`Generator.forward` with gradients on takes that path), fp32 everywhere.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode`. `model GFLOP` is the count for the decoder as written
(upsample then 3x3 conv), the work the model defines; `run GFLOP` is what each path executes (the phase
convolutions of `upsample_conv` do fewer). `of matmul` divides the model's FLOPs per second by the matmul rate in
the precision the path computes in (`hf_vaegan.hardware.fast_precision`: bf16 autocast only where bf16 is native);
`run of matmul` does the same with the executed FLOPs.

With `--cli_images N` (default 10,000) it also times `hf-vaegan sample MODEL --num-images N --all-classes --output
grid.png` in this process (the command's work after its imports), against the same before issue 16 (500 images per
forward pass through the modules, a PIL tile per image pasted into an RGB grid, PNG at PIL's default level), taking
turns for `--cli_rounds` rounds.

    python benchmarks/gan_sampling.py
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/gan_sampling.py  # an AVX2-only CPU
    python benchmarks/gan_sampling.py --model path/to/generator --batch_size 16 --repeats 500 --cli_images 0
    python benchmarks/gan_sampling.py --profile --repeats 20 --cli_images 0  # where each path's time goes, by op
"""

import argparse
import contextlib
import io
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import PIL.Image
import torch
from diffusers.utils import make_image_grid
from torch.utils.flop_counter import FlopCounterMode

import hf_vaegan
from hf_vaegan import GANPipeline, Generator, commands, load_pretrained
from hf_vaegan.hardware import bf16_is_fast, cpu_info

BUNDLED_MODEL = Path(hf_vaegan.__file__).parent / "pretrained" / "fashion-cgan"
MATMUL_SIZE = 1024
MATMUL_CALLS = 10  # of each matmul after each run of the command
GOAL_FRACTION = 0.7  # issue 16: every sampling path at 70% of the matmul rate or more


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", type=Path, default=BUNDLED_MODEL, help="A Generator or GANPipeline folder (default: bundled)."
    )
    parser.add_argument("--batch_size", type=int, default=64, help="Images per call (default 64).")
    parser.add_argument("--repeats", type=int, default=100, help="Timed calls per path (default 100).")
    parser.add_argument("--warmup", type=int, default=5, help="Untimed calls of each path first.")
    parser.add_argument("--cli_images", type=int, default=10_000, help="Images of the timed command; 0 skips it.")
    parser.add_argument("--cli_rounds", type=int, default=3, help="Timed runs of the command and of its baseline.")
    parser.add_argument(
        "--profile", action="store_true", help="First print where each path's time goes (torch.profiler, by operator)."
    )
    return parser.parse_args(argv)


@dataclass
class Method:
    name: str
    call: Callable[[], object]
    bf16: bool = False  # computes in bf16, so it is measured against the bf16 matmul rate
    timings: list[float] = field(default_factory=list)

    def run(self) -> None:
        start = time.perf_counter()
        self.call()
        self.timings.append((time.perf_counter() - start) * 1000)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.timings)


def generate_before(model: Generator, noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """`Generator.forward` before issue 16: the decoder's modules as they are, in fp32 (its input checks, a few
    microseconds, left out)."""
    if labels is not None:
        noise = torch.cat([noise, model.class_embedding(labels)], dim=1)
    return torch.tanh(model.decoder(noise))


@torch.no_grad()
def pipeline_before(pipe: GANPipeline, batch_size: int, labels, rng: torch.Generator, output_type: str):
    """`GANPipeline.__call__` before issue 16 (one chunk: the batch is below its chunk size of then)."""
    noise = pipe.noise(batch_size, rng)
    return pipe.postprocess(generate_before(pipe.gan, noise, pipe._class_labels(labels, batch_size)), output_type)


def make_methods(model: Generator, batch_size: int) -> list[Method]:
    num_classes = model.config.num_classes
    labels = torch.arange(batch_size) % num_classes if num_classes else None
    rng = torch.Generator().manual_seed(0)
    pipe = GANPipeline(model)
    bf16 = bf16_is_fast("cpu")
    left = torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=rng)
    right = torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=rng)

    @torch.no_grad()
    def sample_before() -> torch.Tensor:
        return generate_before(model, model.sample_noise(batch_size, rng), labels)

    methods = [Method("matmul fp32", lambda: left @ right)]
    if bf16:
        left_bf16, right_bf16 = left.bfloat16(), right.bfloat16()
        methods.append(Method("matmul bf16", lambda: left_bf16 @ right_bf16, bf16=True))
    methods += [
        Method("Generator.sample, before", sample_before),
        Method("Generator.sample", lambda: model.sample(batch_size, labels, rng)),
        Method("GANPipeline pt, before", lambda: pipeline_before(pipe, batch_size, labels, rng, "pt")),
        Method("GANPipeline pt", lambda: pipe(batch_size, labels, rng, output_type="pt").images, bf16=bf16),
        Method("GANPipeline pil, before", lambda: pipeline_before(pipe, batch_size, labels, rng, "pil")),
        Method("GANPipeline pil", lambda: pipe(batch_size, labels, rng).images, bf16=bf16),
    ]
    return methods


def print_profile(methods: list[Method], calls: int = 10) -> None:
    """The operators taking each path's time (self CPU time over `calls` calls, the top ones), as a share of it."""
    for method in methods:
        if method.name.startswith("matmul"):
            continue
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            for _ in range(calls):
                method.call()
        events = sorted(profile.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
        total = sum(event.self_cpu_time_total for event in events)
        shares = ", ".join(f"{event.key} {event.self_cpu_time_total / total:.0%}" for event in events[:6])
        print(f"{method.name}: {total / calls / 1000:.1f} ms per call: {shares}")
    print()


def count_flops(call: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops()


def cli_before(model: Generator, num_images: int, output: Path) -> None:
    """`hf-vaegan sample MODEL --num-images N --all-classes --output grid.png` before issue 16, after its imports."""
    pipe = GANPipeline(model)
    labels = torch.arange(num_images) % model.config.num_classes
    rng = torch.Generator().manual_seed(0)
    batches = []
    for start in range(0, num_images, 500):
        size = min(500, num_images - start)
        images = pipeline_before(pipe, size, labels[start : start + size], rng, "pt")
        batches.append(commands.to_uint8(images.float().cpu()))
    images = np.concatenate(batches)
    columns = model.config.num_classes
    rows = math.ceil(len(images) / columns)
    tiles = [PIL.Image.fromarray(image) for image in images]
    tiles += [PIL.Image.new(tiles[0].mode, tiles[0].size)] * (rows * columns - len(tiles))
    make_image_grid(tiles, rows=rows, cols=columns).save(output, format="PNG")


def cli_now(model_path: Path, num_images: int, output: Path) -> None:
    args = SimpleNamespace(
        model=str(model_path),
        num_images=num_images,
        output=str(output),
        class_label=None,
        all_classes=True,
        seed=0,
        truncation=None,
        batch_size=500,
        device="cpu",
    )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # its progress bar
        commands.sample(args)


def time_cli(args: argparse.Namespace, model: Generator, flops_per_image: float, matmuls: list[Method]) -> None:
    """Times the command against its baseline, with `MATMUL_CALLS` of each matmul after every run: the load may have
    changed since the table above, so the rate comes from these rounds."""
    if not args.cli_images or not model.config.num_classes:
        return
    runs = {"hf-vaegan sample, before": [], "hf-vaegan sample": []}
    for matmul in matmuls:
        matmul.timings.clear()
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "grid.png"
        for _ in range(args.cli_rounds):
            for name, run in (
                ("hf-vaegan sample, before", lambda: cli_before(model, args.cli_images, output)),
                ("hf-vaegan sample", lambda: cli_now(args.model, args.cli_images, output)),
            ):
                start = time.perf_counter()
                run()
                runs[name].append(time.perf_counter() - start)
                for _ in range(MATMUL_CALLS):
                    for matmul in matmuls:
                        matmul.run()
    rates = {matmul.bf16: 2 * MATMUL_SIZE**3 / matmul.median_ms / 1e6 for matmul in matmuls}
    print(
        f"\n`hf-vaegan sample {args.model.name} --num-images {args.cli_images} --all-classes --output grid.png` "
        f"(after its imports), median of {args.cli_rounds} runs, taking turns; load average now "
        f"{os.getloadavg()[0]:.1f}; matmul rate over these rounds: "
        + ", ".join(f"{'bf16' if bf16 else 'fp32'} {rate:.1f} GFLOP/s" for bf16, rate in rates.items())
        + "\n"
    )
    print("| path | precision | median s | model GFLOP/s | of matmul | vs before |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    before = statistics.median(runs["hf-vaegan sample, before"])
    for name, seconds in runs.items():
        median = statistics.median(seconds)
        bf16 = name == "hf-vaegan sample" and bf16_is_fast("cpu")
        achieved = flops_per_image * args.cli_images / median / 1e9
        print(
            f"| {name} | {'bf16' if bf16 else 'fp32'} | {median:.2f} | {achieved:.1f} | {achieved / rates[bf16]:.0%} "
            f"| {before / median:.2f}x |"
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    print(f"CPU: {cpu_info().describe()}", flush=True)
    model = load_pretrained(args.model).eval()
    methods = make_methods(model, args.batch_size)
    by_name = {method.name: method for method in methods}
    model_flops = count_flops(by_name["Generator.sample, before"].call)
    run_flops = {method.name: count_flops(method.call) for method in methods}
    if args.profile:
        print_profile(methods)
    for method in methods:
        for _ in range(args.warmup):
            method.run()
        method.timings.clear()
    loads = []
    for _ in range(args.repeats):
        for method in methods:
            method.run()
        loads.append(os.getloadavg()[0])

    # GFLOP/s of each precision's matmul, keyed by `Method.bf16`
    rates = {
        method.bf16: 2 * MATMUL_SIZE**3 / method.median_ms / 1e6
        for method in methods
        if method.name.startswith("matmul")
    }
    print(
        f"{args.model.name}: {sum(p.numel() for p in model.parameters()):,} parameters, {args.batch_size} images per "
        f"call, {model_flops / 1e9:.3f} GFLOP (FlopCounterMode); torch {torch.__version__}, 1 thread, load average "
        f"{min(loads):.1f}-{max(loads):.1f}; median of {args.repeats} calls each, taking turns\n"
    )
    print(
        "| path | precision | run GFLOP | median ms | p95 ms | model GFLOP/s | of matmul | run of matmul | vs before |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for method in methods:
        median = method.median_ms
        p95 = float(np.percentile(method.timings, 95))
        precision = "bf16" if method.bf16 else "fp32"
        if method.name.startswith("matmul"):
            rate = f"{rates[method.bf16]:.1f} (the rate)"
            print(f"| {method.name} {MATMUL_SIZE} | {precision} | | {median:.2f} | {p95:.2f} | {rate} | | | |")
            continue
        rate = rates[method.bf16]
        achieved = model_flops / median / 1e6
        run_achieved = run_flops[method.name] / median / 1e6
        before = by_name.get(method.name.removesuffix(", before") + ", before", method).median_ms
        verdict = "" if achieved / rate >= GOAL_FRACTION else " (below 70%)"
        print(
            f"| {method.name} | {precision} | {run_flops[method.name] / 1e9:.3f} | {median:.2f} | {p95:.2f} | "
            f"{achieved:.1f} | {achieved / rate:.0%}{verdict} | {run_achieved / rate:.0%} | {before / median:.2f}x |"
        )
    time_cli(args, model, model_flops / args.batch_size, [m for m in methods if m.name.startswith("matmul")])


if __name__ == "__main__":
    main()
