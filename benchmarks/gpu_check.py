"""The GPU check of issue 16 (item 5), for a machine with CUDA GPUs: run it with `bash benchmarks/gpu_check.sh`.

1. Every training script (`examples/train_*.py`) for `--steps` steps (default 300) on the 1k Fashion-MNIST fixture of
   the tests, in fp16 (accelerate's GradScaler) and bf16 (skipped on GPUs without bf16), on one GPU and, with more
   than one visible, on all of them (`accelerate launch --multi_gpu`). pix2pix trains on sketch pairs that
   `examples/make_sketch_dataset.py` draws from the fixture first; the try-on model on the wardrobe it renders.
2. Latency on the first GPU: sampling 64 images from the bundled GAN (`GANPipeline`, tensors) and one try-on
   (`TryOnPipeline`, PIL images), median of 50 calls after 5 warm-up calls, synchronised.
3. Training throughput at 64, 128 and 256 px (`benchmarks/train_throughput.py --resolutions 64 128 256`).

Writes `OUTPUT_DIR/summary.json` (the machine, each run's command, status, seconds and log file, the latencies and
the throughput table) and a log per run beside it. Exits with 0 when every run succeeded, 1 when one failed, and 2
with a "no CUDA device" message on a machine without CUDA. `--allow_cpu` runs the same commands on the CPU instead
(`accelerate launch --cpu`), where torch allows fp16 autocast too: the test of the fp16 path does that with two steps.

    bash benchmarks/gpu_check.sh
    bash benchmarks/gpu_check.sh --steps 500 --output_dir /tmp/gpu_check
    bash benchmarks/gpu_check.sh --allow_cpu --steps 2 --scripts train_gan --precisions fp16 --parts train
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "fashion_mnist_1k.npz"
PRETRAINED = REPO / "hf_vaegan" / "pretrained"
SCRIPTS = (
    "train_classifier",
    "train_cyclegan",
    "train_gan",
    "train_pix2pix",
    "train_tryon",
    "train_vae",
    "train_vaegan",
)
PRECISIONS = ("fp16", "bf16")
PARTS = ("train", "latency", "throughput")
CLASSIFIER_BATCH = 32
NO_CUDA_EXIT = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="Optimizer steps of each training run (default 300).")
    parser.add_argument("--output_dir", type=Path, default=Path("gpu_check"), help="Where the runs and summary go.")
    parser.add_argument("--scripts", nargs="+", choices=SCRIPTS, default=list(SCRIPTS), help="Training scripts.")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="What to run (default all).")
    parser.add_argument(
        "--extra_args", default="", help="Flags added to every training command, e.g. '--base_channels 8'."
    )
    parser.add_argument("--allow_cpu", action="store_true", help="Without CUDA, run on the CPU instead of exiting.")
    return parser.parse_args(argv)


def script_args(script: str, steps: int, data: dict[str, Path]) -> list[str]:
    """The data and length flags of one training script; the classifier counts epochs of its batches instead."""
    if script == "train_classifier":
        epochs = math.ceil(steps * CLASSIFIER_BATCH / 1000)
        return [
            *("--train_data", str(FIXTURE), "--test_data", str(FIXTURE)),
            *("--train_batch_size", str(CLASSIFIER_BATCH), "--num_epochs", str(epochs), "--seed", "0"),
        ]
    flags = ["--max_train_steps", str(steps), "--report_to", "none", "--seed", "0"]
    if script == "train_cyclegan":
        return [*flags, "--dataset_name", str(FIXTURE), "--domain_a_classes", "7", "--domain_b_classes", "9"]
    if script == "train_pix2pix":
        return [*flags, "--dataset_name", str(data["sketch_pairs"])]
    if script == "train_tryon":
        return [*flags, "--dataset_name", str(FIXTURE), "--num_wardrobe_samples", "256"]
    return [*flags, "--dataset_name", str(FIXTURE)]


def launch_command(script: str, precision: str, processes: int, on_cpu: bool, extra: list[str]) -> list[str]:
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--dynamo_backend", "no"]
    if on_cpu:
        launcher += ["--cpu", "--num_processes", "1"]
    elif processes > 1:
        launcher += ["--multi_gpu", "--num_processes", str(processes)]
    else:
        launcher += ["--num_processes", "1"]
    return [*launcher, "--mixed_precision", precision, str(REPO / "examples" / f"{script}.py"), *extra]


def run_logged(command: list[str], log: Path) -> dict:
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as file:
        result = subprocess.run(command, cwd=REPO, stdout=file, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - start
    status = "ok" if result.returncode == 0 else "failed"
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return {
        "command": " ".join(command),
        "status": status,
        "returncode": result.returncode,
        "seconds": round(seconds, 1),
        "log": str(log),
        **({"last_line": lines[-1] if lines else ""} if status == "failed" else {}),
    }


def training_runs(args: argparse.Namespace, on_cpu: bool) -> list[dict]:
    data = {"sketch_pairs": args.output_dir / "data" / "sketch-pairs"}
    runs = []
    if "train_pix2pix" in args.scripts and not data["sketch_pairs"].exists():
        make_pairs = [sys.executable, str(REPO / "examples" / "make_sketch_dataset.py"), "--train_data", str(FIXTURE)]
        make_pairs += ["--output_dir", str(data["sketch_pairs"])]
        runs.append(
            {"name": "make_sketch_dataset", **run_logged(make_pairs, args.output_dir / "make_sketch_dataset.log")}
        )
    gpus = 1 if on_cpu else torch.cuda.device_count()
    process_counts = [1] if gpus == 1 else [1, gpus]
    for script in args.scripts:
        for precision in args.precisions:
            for processes in process_counts:
                name = f"{script}-{precision}-{'cpu' if on_cpu else f'{processes}gpu'}"
                if precision == "bf16" and not on_cpu and not torch.cuda.is_bf16_supported():
                    runs.append({"name": name, "status": "skipped", "reason": "this GPU has no bf16"})
                    continue
                flags = script_args(script, args.steps, data) + ["--output_dir", str(args.output_dir / name)]
                flags += ["--mixed_precision", precision, *args.extra_args.split()]
                command = launch_command(script, precision, processes, on_cpu, flags)
                print(f"{name}: {args.steps} steps", flush=True)
                run = {"name": name, "script": script, "precision": precision, "processes": processes}
                runs.append({**run, "steps": args.steps, **run_logged(command, args.output_dir / f"{name}.log")})
    return runs


def median_ms(call: Callable[[], object], device: torch.device, repeats: int = 50, warmup: int = 5) -> float:
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timings.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(timings), 2)


def latencies(device: torch.device) -> dict:
    from hf_vaegan import GANPipeline
    from hf_vaegan.data import GARMENT_LABELS, Wardrobe
    from hf_vaegan.pipelines.pipeline_tryon import TryOnPipeline

    gan = GANPipeline.from_pretrained(PRETRAINED / "fashion-cgan").to(device)
    labels = torch.arange(64) % gan.gan.config.num_classes
    rng = torch.Generator(device).manual_seed(0)
    tryon = TryOnPipeline.from_pretrained(PRETRAINED / "wardrobe-tryon").to(device)
    with np.load(FIXTURE, allow_pickle=False) as arrays:
        wardrobe = Wardrobe(arrays["images"], arrays["labels"], resolution=tryon.resolution, seed=0)
    garment_id = int(np.flatnonzero(np.isin(wardrobe.labels, GARMENT_LABELS))[0])
    avatar, garment = wardrobe.avatar(0), wardrobe.garment(garment_id)
    return {
        "gan_sampling_64_images_ms": median_ms(lambda: gan(64, labels, rng, output_type="pt"), device),
        "tryon_one_image_ms": median_ms(lambda: tryon(avatar, garment), device),
    }


def throughput(output_dir: Path) -> dict:
    command = [sys.executable, str(REPO / "benchmarks" / "train_throughput.py"), "--resolutions", "64", "128", "256"]
    run = run_logged(command, output_dir / "train_throughput.log")
    return {**run, "table": Path(run["log"]).read_text(encoding="utf-8", errors="replace").splitlines()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available() and not args.allow_cpu:
        print(
            "gpu_check: no CUDA device (torch.cuda.is_available() is False): run it on a machine with a GPU, "
            "or pass --allow_cpu to run the same commands on the CPU.",
            file=sys.stderr,
        )
        return NO_CUDA_EXIT
    on_cpu = not torch.cuda.is_available()
    device = torch.device("cpu" if on_cpu else "cuda")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if not on_cpu else [],
            "bf16": (not on_cpu) and torch.cuda.is_bf16_supported(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        },
        "steps": args.steps,
    }
    if "train" in args.parts:
        summary["training"] = training_runs(args, on_cpu)
    if "latency" in args.parts:
        summary["latency"] = latencies(device)
    if "throughput" in args.parts:
        summary["throughput"] = throughput(args.output_dir)
    path = args.output_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    runs = [*summary.get("training", []), *([summary["throughput"]] if "throughput" in summary else [])]
    failed = [run.get("name", "train_throughput") for run in runs if run["status"] == "failed"]
    print(f"wrote {path}" + (f"; failed: {', '.join(failed)}" if failed else "; every run succeeded"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
