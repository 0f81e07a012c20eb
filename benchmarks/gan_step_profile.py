"""Where the time of one ``GANTrainer`` step goes, on one CPU thread, and the step time before/after the speed-ups.

Builds the networks of ``examples/train_gan.py`` (class-conditional, 28x28, ``--base_channels`` wide, spectrally
normalised discriminator with minibatch std) with its default recipe (non-saturating loss, lazy R1 every 16 steps,
mode seeking, EMA), trains on random images (data loading is timed apart, on ``--train_data`` when given), and prints:

- the CPU (``hf_vaegan.hardware``);
- the cost of each part of a step, measured by switching it off or timing it alone (generator forward for the
  batch and its mode-seeking twins, discriminator step, lazy R1, generator step, spectral-norm power iterations,
  minibatch std, EMA, data loading);
- the mean step time of the trainer with ``fast_generator=False`` (before) and ``True`` (after: the generator's
  upsampling convolutions computed as four 2x2 phase convolutions, as its inference path does), and the same with
  channels_last.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/gan_step_profile.py --steps 32
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OMP_NUM_THREADS=1 python benchmarks/gan_step_profile.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable

import torch
from accelerate import Accelerator
from torch.nn.utils import parametrize

from hf_vaegan import Discriminator, Generator
from hf_vaegan.hardware import cpu_info
from hf_vaegan.training.gan import GANTrainer
from hf_vaegan.training.state import DeviceEMAModel
from hf_vaegan.training.update import Network


def build(
    args: argparse.Namespace,
    *,
    channels_last: bool = False,
    fast_generator: bool = False,
    compile_models: bool = False,
    **recipe,
):
    """A fresh trainer of the given recipe (defaults: ``train_gan.py``'s) and a batch of random images."""
    torch.manual_seed(0)
    options = {"r1_gamma": 0.1, "r1_interval": 16, "mode_seeking_weight": 0.3, "ema": True, "spectral_norm": True}
    options |= {"minibatch_std_group_size": 4} | recipe
    generator = Generator(resolution=28, latent_dim=64, base_channels=args.base_channels, num_classes=10)
    discriminator = Discriminator(
        resolution=28,
        base_channels=args.base_channels,
        num_classes=10,
        spectral_norm=options["spectral_norm"],
        minibatch_std_group_size=options["minibatch_std_group_size"],
    )
    if channels_last:
        generator.to(memory_format=torch.channels_last)
        discriminator.to(memory_format=torch.channels_last)
    if compile_models:
        generator.compile()
        discriminator.compile()
    accelerator = Accelerator(cpu=True)
    networks = []
    for model, learning_rate in ((generator, 2e-4), (discriminator, 2e-4)):
        optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, betas=(0.0, 0.99))
        networks.append(Network.prepare(accelerator, model, optimizer))
    ema = DeviceEMAModel(generator.parameters(), decay=0.999, foreach=True) if options["ema"] else None
    trainer = GANTrainer(
        accelerator,
        *networks,
        r1_gamma=options["r1_gamma"],
        r1_interval=options["r1_interval"],
        mode_seeking_weight=options["mode_seeking_weight"],
        ema=ema,
        rng=torch.Generator().manual_seed(0),
        channels_last=channels_last,
        fast_generator=fast_generator,
    )
    batch = {
        "pixel_values": torch.rand(args.batch_size, 1, 28, 28) * 2 - 1,
        "labels": torch.arange(args.batch_size) % 10,
    }
    return trainer, batch


def time_steps(args: argparse.Namespace, configurations: dict[str, dict]) -> dict[str, float]:
    """Mean seconds per step of each configuration over steps 1 to ``args.steps`` (16 steps hold one lazy R1), after
    4 warm-up steps; the configurations take turns step by step, so that a change of the machine's load hits all."""
    trainers = {}
    for name, options in configurations.items():
        trainer, batch = build(args, **options)
        started = time.perf_counter()
        for step in range(4):
            trainer.train_step(batch, 100 * 16 + 1 + step)  # warm-up steps, no R1
        if options.get("compile_models"):
            print(f"({name}: 4 warm-up steps with compilation took {time.perf_counter() - started:.0f} s)")
        trainers[name] = trainer, batch
    seconds = dict.fromkeys(configurations, 0.0)
    for step in range(1, args.steps + 1):
        for name, (trainer, batch) in trainers.items():
            started = time.perf_counter()
            trainer.train_step(batch, step)
            seconds[name] += time.perf_counter() - started
    return {name: total / args.steps for name, total in seconds.items()}


def time_call(function: Callable[[], object], repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def components(args: argparse.Namespace) -> dict[str, float]:
    """Milliseconds of each part of a default step."""
    trainer, batch = build(args)
    generator, discriminator = trainer.generator.bare, trainer.discriminator.bare
    batch_size = args.batch_size
    noise = torch.randn(batch_size + batch_size // 2, 64)
    labels = batch["labels"]
    twin_labels = torch.cat([labels, labels[: batch_size // 2]])
    real = batch["pixel_values"]
    both = torch.cat([real, real])
    both_labels = labels.repeat(2)
    repeats = args.repeats
    parts = {}

    def generator_pass(count: int, backward: bool) -> Callable[[], None]:
        def run() -> None:
            images = generator(noise[:count], twin_labels[:count]).sample
            if backward:
                images.sum().backward()

        return run

    parts["G forward, batch"] = time_call(generator_pass(batch_size, False), repeats)
    parts["G forward, batch + twins"] = time_call(generator_pass(len(noise), False), repeats)
    parts["G forward+backward, batch"] = time_call(generator_pass(batch_size, True), repeats)
    parts["G forward+backward, batch + twins"] = time_call(generator_pass(len(noise), True), repeats)
    generator.phase_upsampling_in_training = True
    parts["G forward+backward, batch + twins, phase-decomposed"] = time_call(generator_pass(len(noise), True), repeats)
    generator.phase_upsampling_in_training = False

    def discriminator_pass(images, image_labels, backward: bool, r1: bool = False) -> Callable[[], None]:
        def run() -> None:
            inputs = images.detach().requires_grad_(r1)
            logits = discriminator(inputs, image_labels).logits
            loss = logits.sum()
            if r1:
                (gradient,) = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
                loss = loss + gradient.pow(2).sum()
            if backward:
                loss.backward()

        return run

    parts["D forward, real + fake"] = time_call(discriminator_pass(both, both_labels, False), repeats)
    parts["D forward+backward, real + fake"] = time_call(discriminator_pass(both, both_labels, True), repeats)
    parts["D forward+backward with R1 (every 16th step)"] = time_call(
        discriminator_pass(both, both_labels, True, r1=True), repeats
    )
    with parametrize.cached():
        cached = time_call(discriminator_pass(both, both_labels, False), repeats)
    parts["spectral-norm power iterations (per D forward)"] = parts["D forward, real + fake"] - cached
    no_std = Discriminator(
        resolution=28, base_channels=args.base_channels, num_classes=10, spectral_norm=True, minibatch_std_group_size=0
    )
    without_std = time_call(lambda: no_std(both, both_labels), repeats)
    parts["minibatch std (per D forward)"] = parts["D forward, real + fake"] - without_std
    if trainer.ema is not None:
        parts["EMA step"] = time_call(lambda: trainer.ema.step(generator.parameters()), repeats)
    parts["optimizer steps (Adam, G + D)"] = time_call(
        lambda: (trainer.generator.optimizer.step(), trainer.discriminator.optimizer.step()), repeats
    )
    if args.train_data:
        parts["data loading (one batch)"] = data_loading_seconds(args)
    return {name: 1000 * seconds for name, seconds in parts.items()}


def data_loading_seconds(args: argparse.Namespace) -> float:
    """Seconds per batch of the training script's dataloader on ``--train_data``."""
    from hf_vaegan.data.loading import load_image_dataset, make_dataloader

    info = load_image_dataset(args.train_data)
    loader = make_dataloader(info.with_image_transform(28), args.batch_size, seed=0)
    iterator = iter(loader)
    next(iterator)
    started = time.perf_counter()
    for _ in range(args.repeats):
        next(iterator)
    return (time.perf_counter() - started) / args.repeats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base_channels", type=int, default=32, help="The bundled model's width (32).")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=16, help="Timed steps per configuration (16 hold one R1).")
    parser.add_argument("--repeats", type=int, default=10, help="Repeats of each component timing (median).")
    parser.add_argument("--train_data", default=None, help="A .npz of training images, to time data loading.")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="Also time torch.compile'd networks (without R1: compiled graphs have no double backward).",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"CPU: {cpu_info().describe()}; torch {torch.__version__}, {torch.get_num_threads()} thread", flush=True)
    print(f"\nParts of one step (batch {args.batch_size}, base_channels {args.base_channels}, fp32), ms:\n")
    print("| part | ms |\n|---|---|")
    parts = components(args)
    for name, milliseconds in parts.items():
        print(f"| {name} | {milliseconds:.1f} |", flush=True)

    configurations = {
        "before (as trained until now)": {},
        "after: phase-decomposed upsampling convolutions": {"fast_generator": True},
        "after + channels_last": {"fast_generator": True, "channels_last": True},
    }
    if args.compile:
        configurations |= {
            "after, without R1": {"fast_generator": True, "channels_last": True, "r1_gamma": 0.0},
            "after, without R1, torch.compile": {
                "fast_generator": True,
                "channels_last": True,
                "r1_gamma": 0.0,
                "compile_models": True,
            },
        }
    print(f"\nMean step time over {args.steps} steps (one lazy R1 in each 16; configurations taking turns), ms:\n")
    print("| configuration | ms / step | speed-up |\n|---|---|---|")
    results = {name: 1000 * seconds for name, seconds in time_steps(args, configurations).items()}
    for name in configurations:
        speedup = results["before (as trained until now)"] / results[name]
        print(f"| {name} | {results[name]:.0f} | {speedup:.2f}x |", flush=True)
    print(json.dumps({"components_ms": parts, "step_ms": results}))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
