"""What `--gradient_checkpointing` (diffusers' `enable_gradient_checkpointing()`) costs and saves: peak memory and time
of one training step (forward, a loss, backward) with and without it, per model.

Memory is the growth of the process's peak resident set (``ru_maxrss``) during one step, measured in a fresh process
per configuration (the model and its inputs are built first, so the figure is the activations and gradients the step
adds). Time is the median over ``--repeats`` rounds in which the configurations take turns in one process, so a load
change on the machine skews them alike; ratios are against the same model without checkpointing.

    python benchmarks/gradient_checkpointing.py
    python benchmarks/gradient_checkpointing.py --models tryon --repeats 7
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from hf_vaegan import VAE, Generator, TryOnModel, UNetGenerator
from hf_vaegan.hardware import cpu_info


def images(batch_size: int, channels: int, height: int, width: int) -> torch.Tensor:
    return torch.rand(batch_size, channels, height, width) * 2 - 1


def tryon_inputs(batch_size: int, height: int, width: int) -> dict[str, torch.Tensor]:
    masks = (torch.rand(batch_size, 3, height, width) > 0.5).float()
    return {
        "agnostic": images(batch_size, 3, height, width),
        "agnostic_mask": masks[:, :1],
        "body_mask": masks[:, 1:2],
        "keypoints": torch.rand(batch_size, 18, 3) * torch.tensor([width, height, 1.0]),
        "cloth": images(batch_size, 3, height, width),
        "cloth_mask": masks[:, 2:],
    }


# name -> (description, model factory, inputs factory); the sizes of the scripts' defaults or the bundled models
MODELS = {
    "gan28": (
        "Generator 28x28x1, base 32 (bundled fashion-cgan), batch 64",
        lambda: Generator(resolution=28, base_channels=32, latent_dim=64, num_classes=10),
        lambda: {"noise": torch.randn(64, 64), "class_labels": torch.arange(64) % 10},
    ),
    "gan64": (
        "Generator 64x64x3, base 32, batch 32",
        lambda: Generator(resolution=64, out_channels=3, base_channels=32, latent_dim=64),
        lambda: {"noise": torch.randn(32, 64)},
    ),
    "vae64": (
        "VAE 64x64x3, base 32, batch 32",
        lambda: VAE(resolution=64, in_channels=3, base_channels=32, latent_dim=32, likelihood="laplace"),
        lambda: {"sample": images(32, 3, 64, 64)},
    ),
    "unet128": (
        "UNetGenerator 128x128x3 (pix2pix), base 32, batch 8",
        lambda: UNetGenerator(in_channels=3, out_channels=3, base_channels=32, num_downsamplings=4),
        lambda: {"sample": images(8, 3, 128, 128)},
    ),
    "tryon": (
        "TryOnModel 128x96, base 8, batch 8",
        lambda: TryOnModel(sample_size=(128, 96), base_channels=8),
        lambda: tryon_inputs(8, 128, 96),
    ),
}


def build(name: str, checkpointing: bool) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    _, make_model, make_inputs = MODELS[name]
    model = make_model().train()
    if checkpointing:
        model.enable_gradient_checkpointing()
    return model, make_inputs()


def train_step(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> None:
    outputs = model(**inputs, return_dict=False)
    outputs[0].float().square().mean().backward()
    model.zero_grad(set_to_none=True)


def peak_step_memory(name: str, checkpointing: bool) -> int:
    """Bytes the peak resident set grows by during one step, in a fresh process."""
    code = (
        "import resource, sys, torch\n"
        "sys.path.insert(0, 'benchmarks')\n"
        "from gradient_checkpointing import build, train_step\n"
        f"model, inputs = build({name!r}, {checkpointing})\n"
        "with torch.no_grad():\n"
        "    model(**inputs)\n"  # the weights' lazily allocated buffers first
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "train_step(model, inputs)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1]) * 1024  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS), help="What to measure.")
    parser.add_argument("--steps", type=int, default=3, help="Steps per timed repeat.")
    parser.add_argument("--repeats", type=int, default=5, help="Rounds of timed repeats; the median is reported.")
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_info().describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads")

    configs = [(name, checkpointing) for name in args.models for checkpointing in (False, True)]
    memory = {config: peak_step_memory(*config) for config in configs}
    built = {config: build(*config) for config in configs}
    for model, inputs in built.values():
        train_step(model, inputs)  # warm-up
    times = {config: [] for config in configs}
    for _ in range(args.repeats):
        for config, (model, inputs) in built.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                train_step(model, inputs)
            times[config].append((time.perf_counter() - start) / args.steps)

    print(f"{'model':<62} {'checkpointing':>13} {'step memory':>12} {'vs off':>7} {'step time':>10} {'vs off':>7}")
    results = {}
    for name, checkpointing in configs:
        seconds = statistics.median(times[name, checkpointing])
        base_seconds = statistics.median(times[name, False])
        megabytes, base_megabytes = memory[name, checkpointing] / 2**20, memory[name, False] / 2**20
        print(
            f"{MODELS[name][0]:<62} {'on' if checkpointing else 'off':>13} {megabytes:>9.0f} MB "
            f"{megabytes / base_megabytes:>6.2f}x {seconds * 1000:>7.0f} ms {seconds / base_seconds:>6.2f}x"
        )
        results.setdefault(name, {})["on" if checkpointing else "off"] = {
            "step_memory_mb": round(megabytes, 1),
            "step_ms": round(seconds * 1000, 1),
        }
    print(json.dumps({"cpu": cpu_info().describe(), "results": results}))


if __name__ == "__main__":
    main()
