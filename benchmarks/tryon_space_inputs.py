"""Try-on on the Space's own input distribution, scored against the renderer's ground truth, with an artefact rate.

    python benchmarks/tryon_space_inputs.py --grid worst_cases.png

The Space (`spaces/app.py`) dresses avatars of its gallery (random body parameters on a random backdrop, bent arms
included: `random_avatar(seed)`) in garments from the colour garment GAN (`wardrobe-garment-gan`, a class and a seed,
worn as drawn) or from the held-out Fashion-MNIST items it ships (`spaces/data/heldout_garments.npz`), colourised with
a colour seed (`make_garment`). This benchmark takes `--num_avatars` gallery seeds (0, 1, ...) x `--num_garments`
garments (half from the GAN, half held-out, the wearable classes in turn) x `--num_colour_seeds` colour seeds (for
the colour GAN: as many draws), every try-on scored against what the renderer draws for the same pair
(`hf_vaegan.data.wardrobe.dress`). `--gan hf_vaegan/pretrained/fashion-cgan` gives the cases of the Space before its
colour GAN (greyscale garments, colourised).

- SSIM: the mean and the 10th percentile over the cases;
- L1: mean absolute error on the [0, 1] scale;
- artefact rate: the share of pixels whose colour is off by more than 0.15 on the [0, 1] scale (mean over the
  channels), over whole images and over the avatars' arms and hands (the renderer's arm labels), pooled over the
  cases (`hf_vaegan.metrics.tryon.artefact_rate`);
- artefact rate with a one-pixel tolerance: the share of pixels whose colour is that far off from every ground-truth
  pixel within one pixel of them (`artefact_map(..., tolerance=1)`): wrong colours, such as fringing, and not an edge
  or a one-pixel stripe drawn a fraction of a pixel away from where the renderer drew it.

Methods: `--model` (default: the bundled `wardrobe-tryon`), each `--compare NAME=FOLDER`, and the naive paste
baseline (`paste_garment`); with `--renderer_warp`, also `--model`'s try-on U-Net fed the renderer's warped garment
instead of its own warp (what is left is the composition's error, the rest is the warp's). Seeded and deterministic.
Prints the CPU, one JSON line and a Markdown table, and with `--grid` writes the worst cases of the first model
(lowest SSIM) as a PNG: per row, the avatar, the garment, the result, the ground truth and the artefact map (white =
off by more than 0.15).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import hf_vaegan
from hf_vaegan.auto import load_pretrained
from hf_vaegan.data.wardrobe import DEFAULT_RESOLUTION, FASHION_MNIST_CLASSES, GARMENT_LABELS, dress, random_avatar
from hf_vaegan.hardware import cpu_info
from hf_vaegan.metrics.tryon import (
    SpaceCase,
    artefact_map,
    model_predictor,
    score_tryon_cases,
    space_case_batches,
    space_case_tensors,
    summarize_tryon_cases,
)
from hf_vaegan.pipelines.pipeline_gan import GANPipeline
from hf_vaegan.pipelines.pipeline_tryon import paste_garment

PRETRAINED = Path(hf_vaegan.__file__).parent / "pretrained"
SPACE = Path(__file__).resolve().parents[1] / "spaces"
HELDOUT = SPACE / "data" / "heldout_garments.npz"
# The Space's own garment handling, so that the cases are what the Space feeds the model.
sys.path.insert(0, str(SPACE))
from wardrobe_space.images import colour_garment_input, gan_garment_for_tryon  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=PRETRAINED / "wardrobe-tryon", help="the try-on model's folder")
    parser.add_argument("--compare", action="append", default=[], help="NAME=FOLDER: another try-on model")
    parser.add_argument(
        "--gan",
        type=Path,
        default=PRETRAINED / "wardrobe-garment-gan",
        help="the Space's garment GAN (a greyscale one, e.g. fashion-cgan, has its garments colourised)",
    )
    parser.add_argument("--heldout", type=Path, default=HELDOUT, help="the Space's held-out garments (.npz)")
    parser.add_argument("--num_avatars", type=int, default=16, help="gallery seeds 0 .. N-1")
    parser.add_argument("--num_garments", type=int, default=16, help="half from the GAN, half held-out")
    parser.add_argument("--num_colour_seeds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the garment draws")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument(
        "--renderer_warp",
        action="store_true",
        help="also score --model's try-on U-Net on the renderer's warped garment instead of its own warp",
    )
    parser.add_argument("--grid", type=Path, help="write the first model's worst cases here (PNG)")
    parser.add_argument("--num_worst", type=int, default=12, help="rows of the worst-case grid")
    args = parser.parse_args(argv)
    if min(args.num_avatars, args.num_garments, args.num_colour_seeds) < 1:
        parser.error("--num_avatars, --num_garments and --num_colour_seeds must be positive")
    for spec in args.compare:
        if "=" not in spec:
            parser.error(f"--compare takes NAME=FOLDER, got {spec!r}")
    return args


def space_cases(args: argparse.Namespace) -> list[SpaceCase]:
    """The gallery avatars x the garments x the colour seeds. A colour GAN's garment is drawn as the Space's GAN
    button draws it and worn as it comes (cropped to the garment, as the Space takes a colour garment), one GAN draw
    per colour seed; a greyscale GAN's and the held-out items are colourised with each colour seed."""
    rng = np.random.default_rng(args.seed)
    gan = GANPipeline.from_pretrained(args.gan)
    colour_gan = gan.gan.config.out_channels == 3
    colours = range(args.num_colour_seeds)
    with np.load(args.heldout) as data:
        images, labels = data["images"], data["labels"].astype(np.int64)
    garments = []  # (label, [(source, item, cloth) per colour seed])
    for index in range(args.num_garments):
        class_index = index // 2 % len(GARMENT_LABELS)
        label = GARMENT_LABELS[class_index]
        if index % 2 == 1:
            choice = int(rng.choice(np.flatnonzero(labels == label)))
            garments.append((label, [(f"held-out #{choice}", images[choice], None)] * len(colours)))
            continue
        gan_seed = int(rng.integers(0, 2**31))
        if not colour_gan:
            image = gan(class_labels=label, generator=torch.Generator().manual_seed(gan_seed)).images[0]
            garments.append((label, [(f"GAN seed {gan_seed}", np.asarray(image.convert("L")), None)] * len(colours)))
            continue
        draws = []
        for colour in colours:
            image = gan_garment_for_tryon(gan, class_index, torch.Generator().manual_seed(gan_seed + colour))
            draws.append((f"GAN seed {gan_seed + colour}", None, colour_garment_input(image)))
        garments.append((label, draws))
    return [
        SpaceCase(avatar, item, label, source, colour, cloth)
        for avatar in range(args.num_avatars)
        for label, draws in garments
        for colour, (source, item, cloth) in enumerate(draws)
    ]


def renderer_warp_predictor(model: torch.nn.Module, cases: list[SpaceCase], batch_size: int):
    """``model`` with the renderer's warped garment (``dress(...).warped_cloth``) in place of its own warp: how its
    composition does with a perfect warp, the ablation that tells warp errors from composition errors. Called once per
    batch of :func:`space_case_batches`, in order."""
    predict = model_predictor(model)
    starts = iter(range(0, len(cases), batch_size))

    def renderer_warps(batch_cases: list[SpaceCase]) -> tuple[torch.Tensor, torch.Tensor]:
        dressed = [dress(random_avatar(case.avatar_seed), case.garment()) for case in batch_cases]
        warped = torch.from_numpy(np.stack([d.warped_cloth for d in dressed])).permute(0, 3, 1, 2) / 127.5 - 1
        masks = torch.from_numpy(np.stack([d.warped_cloth_mask for d in dressed]))[:, None]
        return warped.to(model.dtype), masks.to(model.dtype)

    def run(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        start = next(starts)
        warped, mask = renderer_warps(cases[start : start + batch_size])
        model.warp = lambda *args, **kwargs: (warped, mask, None)
        try:
            return predict(inputs)
        finally:
            del model.warp  # the class's own warp again

    return run


def garment_sources(cases: list[SpaceCase]) -> dict[str, list[int]]:
    """The cases' indices by where their garment comes from: the GAN or the held-out set."""
    return {
        source: [index for index, case in enumerate(cases) if case.source.startswith(prefix)]
        for source, prefix in (("the GAN", "GAN"), ("the held-out set", "held-out"))
    }


def subset(scores: dict[str, torch.Tensor], indices: list[int]) -> dict[str, torch.Tensor]:
    return {name: values[indices] for name, values in scores.items()}


def markdown_table(results: dict[str, dict[str, float]], latencies: dict[str, float] | None = None) -> str:
    lines = [
        "| method | artefact rate | artefact rate, arms | artefact rate, 1-px tolerance | SSIM mean | SSIM 10th pct "
        "| L1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in results.items():
        lines.append(
            f"| {name} | {f['artefact_rate']:.4f} | {f['arm_artefact_rate']:.4f} | {f['tolerant_artefact_rate']:.4f} "
            f"| {f['ssim_mean']:.4f} | {f['ssim_p10']:.4f} | {f['l1']:.4f} |"
        )
    return "\n".join(lines)


def worst_case_grid(cases: list[SpaceCase], scores: dict[str, torch.Tensor], count: int) -> Image.Image:
    """Rows of the lowest-SSIM cases: avatar, garment, result, ground truth, artefact map."""
    order = torch.argsort(scores["ssim"])[:count].tolist()
    batch = space_case_tensors([cases[index] for index in order])
    results = scores["images"][order]
    artefacts = artefact_map(results, batch["target"]).float().expand(-1, 3, -1, -1) * 2 - 1
    columns = [batch["person_image"], batch["cloth"], results, batch["target"], artefacts]
    rows = torch.cat([torch.cat(list(column), dim=-1)[None] for column in zip(*columns, strict=True)], dim=0)
    grid = torch.cat(list(rows), dim=-2)
    array = ((grid.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array)


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    print(f"CPU: {cpu_info().describe()}", flush=True)
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    models = {"model": args.model} | dict(spec.split("=", 1) for spec in args.compare)
    cases = space_cases(args)
    classes = sorted({FASHION_MNIST_CLASSES[case.label] for case in cases})
    print(
        f"{len(cases)} cases: {args.num_avatars} gallery avatars x {args.num_garments} garments "
        f"({', '.join(classes)}) x {args.num_colour_seeds} colour seeds, at "
        f"{DEFAULT_RESOLUTION[0]}x{DEFAULT_RESOLUTION[1]}",
        flush=True,
    )
    loaded = {name: load_pretrained(Path(folder)).eval() for name, folder in models.items()}
    predictors = {name: model_predictor(model) for name, model in loaded.items()}
    if args.renderer_warp:
        predictors["model on the renderer's warp"] = renderer_warp_predictor(loaded["model"], cases, args.batch_size)
    predictors["naive paste"] = lambda inputs: paste_garment(
        inputs["agnostic"], inputs["agnostic_mask"], inputs["cloth"], inputs["cloth_mask"]
    )
    scores = score_tryon_cases(predictors, space_case_batches(cases, args.batch_size))
    results = {name: summarize_tryon_cases(score) for name, score in scores.items()}
    by_source = {
        source: {name: summarize_tryon_cases(subset(score, indices)) for name, score in scores.items()}
        for source, indices in garment_sources(cases).items()
    }
    summary = {"cases": len(cases), "models": {k: str(v) for k, v in models.items()}, **results}
    print(json.dumps(summary | {"by_garment_source": by_source}))
    print(markdown_table(results))
    for source, source_results in by_source.items():
        print(f"\nGarments from {source} only:\n{markdown_table(source_results)}")
    if args.grid is not None:
        worst_case_grid(cases, scores["model"], args.num_worst).save(args.grid, optimize=True)
        print(f"wrote the {args.num_worst} worst cases of {models['model']} (lowest SSIM) to {args.grid}")


if __name__ == "__main__":
    main()
