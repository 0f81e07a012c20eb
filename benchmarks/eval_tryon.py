"""Evaluate a try-on model on held-out pairs against the ground truth, next to a naive baseline and an ablation.

    python benchmarks/eval_tryon.py --dataset_name wardrobe --ablation wardrobe-tryon-no-warp --card

Methods: the model (`--model`, default the bundled `hf_vaegan/pretrained/wardrobe-tryon`), the naive baseline (the
unwarped garment stretched over the try-on region's box and pasted on the agnostic person,
`hf_vaegan.pipelines.pipeline_tryon.paste_garment`) and, with `--ablation`, the same model trained without its
warping module. Figures: mean SSIM and mean absolute error ([0, 1] scale) over whole images, the mean absolute
error inside the try-on region, and the FID of that region (see `hf_vaegan.training.tryon.evaluate_tryon`); on the
synthetic wardrobe, also how far the model's flow lies from the renderer's warp, in pixels (mean and median over the
garments' pixels, `hf_vaegan.metrics.tryon.flow_distances`).
Paired: each person tries on their own garment. When the split has the synthetic wardrobe's unpaired ground truth
(`unpaired_*` columns), the unpaired setting (another garment of the same group) is measured too. Prints one JSON
line and a Markdown table; `--card` writes the table and this command into the model's README.md.
"""

import argparse
import json
from pathlib import Path

import torch

import hf_vaegan
from hf_vaegan.auto import load_pretrained
from hf_vaegan.data.tryon import DEFAULT_TRYON_RESOLUTION, evaluation_batches, load_tryon_dataset
from hf_vaegan.hardware import cpu_info
from hf_vaegan.metrics.tryon import FID_PROTOCOL, evaluate_tryon, flow_distances, model_predictor
from hf_vaegan.model_cards.sections import command_block, replace_card_section
from hf_vaegan.pipelines.pipeline_tryon import paste_garment

BUNDLED_MODEL = Path(hf_vaegan.__file__).parent / "pretrained" / "wardrobe-tryon"
SECTION_TITLE = "## Comparison on held-out pairs"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dataset_name", required=True, help="wardrobe dataset (save_to_disk or Hub), VITON-HD folder or .npz"
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL, help="the try-on model's folder")
    parser.add_argument("--ablation", type=Path, help="the same model trained without warping (--no-use_warping)")
    parser.add_argument("--num_examples", type=int, help="evaluate the first N pairs (default: all)")
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--card", action="store_true", help="write the comparison into --model's README.md")
    return parser.parse_args(argv)


def markdown_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [
        "| setting | method | SSIM (higher is better) | L1 (lower is better) | L1 in the try-on region "
        "| FID of the region |",
        "|---|---|---|---|---|---|",
    ]
    for setting, methods in results.items():
        for method, f in methods.items():
            lines.append(
                f"| {setting} | {method} | {f['ssim']:.4f} | {f['l1']:.4f} | {f['l1_region']:.4f} | {f['fid']:.2f} |"
            )
    return "\n".join(lines)


def write_card_section(readme: Path, table: str, count: int, split: str) -> None:
    command = command_block("benchmarks/eval_tryon.py")
    section = f"""{SECTION_TITLE}

On the {count:,} pairs of the `{split}` split (avatars and garments never seen in training): the model, the naive
baseline (the unwarped garment stretched over the box of the try-on region and pasted on the agnostic person) and
the same model trained without its warping module for the same number of steps (the ablation). "Unpaired": each
person tries on another garment of the same group, against the synthetic wardrobe's rendered ground truth.

{table}

SSIM and L1 ([0, 1] scale) over whole images, and L1 inside the try-on region (the agnostic mask: outside it every
method keeps the given person). {FID_PROTOCOL}

{command}
"""
    replace_card_section(readme, SECTION_TITLE, section)


def main(argv: list[str] | None = None) -> None:
    print(f"CPU: {cpu_info().describe()}", flush=True)
    args = parse_args(argv)
    model = load_pretrained(args.model).eval()
    resolution = tuple(model.config.sample_size or DEFAULT_TRYON_RESOLUTION)
    info = load_tryon_dataset(args.dataset_name, args.split, resolution, max_samples=None)
    if args.num_examples is not None:
        info.dataset = info.dataset.select(range(min(args.num_examples, len(info.dataset))))
    predictors = {"model": model_predictor(model), "naive paste": lambda inputs: paste_garment(
        inputs["agnostic"], inputs["agnostic_mask"], inputs["cloth"], inputs["cloth_mask"]
    )}  # fmt: skip
    if args.ablation is not None:
        ablation = load_pretrained(args.ablation).eval()
        if ablation.config.use_warping:
            raise SystemExit(f"error: --ablation {args.ablation} warps; train it with --no-use_warping")
        predictors["ablation: no warping"] = model_predictor(ablation)
    torch.set_grad_enabled(False)
    batches = evaluation_batches(info, resolution, args.batch_size)
    results = {"paired": evaluate_tryon(predictors, batches)}
    if "unpaired_image" in info.dataset.column_names:
        results["unpaired"] = evaluate_tryon(predictors, batches, unpaired=True)
    distances = flow_distances(model, batches)
    flow = None
    if distances is not None:
        flow = {"mean": distances.mean().item(), "median": distances.median().item()}
    print(json.dumps({"examples": len(info.dataset), **results, "flow_distance_px": flow}))
    table = markdown_table(results)
    print(table)
    if flow is not None:
        print(
            f"The model's flow lies {flow['mean']:.2f} pixels (median {flow['median']:.2f}) from the renderer's warp, "
            f"over the {len(distances):,} pixels of the paired ground truth's garments"
        )
    if args.card:
        write_card_section(args.model / "README.md", table, len(info.dataset), args.split)
        print(f"wrote the comparison into {args.model / 'README.md'}")


if __name__ == "__main__":
    main()
