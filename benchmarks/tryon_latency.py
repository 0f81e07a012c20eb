"""Per-image latency of `TryOnPipeline` on this machine, from an avatar and a garment to PIL images.

    python benchmarks/tryon_latency.py --num_threads 1

Times, one image at a time after a warm-up: the whole pipeline call (the agnostic representation derived from the
`Avatar`, the model, the PIL conversion of the result and of the warped garment), the model's forward pass alone,
and the naive baseline through the same input preparation and output conversion (the garment pasted unwarped,
`paste_garment`). Prints the median and 95th percentile of each, in milliseconds, and whether the pipeline's median
is under the 100 ms budget. Garments come from `--fashion_mnist` (an .npz with `images` and `labels`; default: the
1k test fixture of the repository).
"""

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import hf_vaegan
from hf_vaegan.data import GARMENT_LABELS, Wardrobe
from hf_vaegan.hardware import cpu_info
from hf_vaegan.pipelines.pipeline_tryon import TryOnPipeline, paste_garment

BUNDLED_MODEL = Path(hf_vaegan.__file__).parent / "pretrained" / "wardrobe-tryon"
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "fashion_mnist_1k.npz"
BUDGET_MS = 100.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL, help="the try-on model's folder")
    parser.add_argument("--fashion_mnist", type=Path, default=FIXTURE, help=".npz with Fashion-MNIST images, labels")
    parser.add_argument("--repeats", type=int, default=100, help="timed calls per method")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls first")
    parser.add_argument("--num_threads", type=int, default=None, help="torch threads (default: torch's choice)")
    return parser.parse_args(argv)


def time_calls(function: Callable[[int], object], repeats: int, warmup: int) -> list[float]:
    """Milliseconds of ``function(i)`` for i in range(repeats), after ``warmup`` untimed calls."""
    for index in range(warmup):
        function(index)
    timings = []
    for index in range(repeats):
        start = time.perf_counter()
        function(index)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def summary(timings: list[float]) -> tuple[float, float]:
    return statistics.median(timings), float(np.percentile(timings, 95))


def main(argv: list[str] | None = None) -> None:
    print(f"CPU: {cpu_info().describe()}", flush=True)
    args = parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    pipe = TryOnPipeline.from_pretrained(args.model)
    with np.load(args.fashion_mnist, allow_pickle=False) as data:
        wardrobe = Wardrobe(data["images"], data["labels"], resolution=pipe.resolution, seed=0)
    garment_ids = np.flatnonzero(np.isin(wardrobe.labels, GARMENT_LABELS))[:10]
    pairs = [
        (wardrobe.avatar(index), wardrobe.garment(int(garment_id))) for index, garment_id in enumerate(garment_ids)
    ]
    prepared = [pipe.prepare_inputs(avatar, garment) for avatar, garment in pairs]

    def pipeline(index: int) -> object:
        return pipe(*pairs[index % len(pairs)])

    @torch.no_grad()
    def model_only(index: int) -> object:
        return pipe.tryon(**prepared[index % len(prepared)])

    def naive(index: int) -> object:
        inputs = pipe.prepare_inputs(*pairs[index % len(pairs)])
        pasted = paste_garment(inputs["agnostic"], inputs["agnostic_mask"], inputs["cloth"], inputs["cloth_mask"])
        return pipe.postprocess(pasted, "pil"), pipe.postprocess(inputs["cloth"], "pil")

    height, width = pipe.resolution
    print(
        f"{sum(p.numel() for p in pipe.tryon.parameters()):,}-parameter try-on model at {height}x{width}, "
        f"{torch.get_num_threads()} torch thread(s), {args.repeats} calls after {args.warmup} warm-up calls, batch 1"
    )
    results = {}
    for name, function in (("pipeline", pipeline), ("model forward only", model_only), ("naive paste", naive)):
        results[name] = summary(time_calls(function, args.repeats, args.warmup))
        print(f"{name:>20}: median {results[name][0]:7.1f} ms   p95 {results[name][1]:7.1f} ms")
    median = results["pipeline"][0]
    verdict = "under" if median < BUDGET_MS else "OVER"
    print(f"pipeline median {median:.1f} ms: {verdict} the {BUDGET_MS:.0f} ms budget")


if __name__ == "__main__":
    main()
