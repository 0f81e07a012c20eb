"""Fit the `BodyShapeHead` of a body-shape VAE: linear maps between its latents and the body parameters.

    python examples/fit_body_shape_head.py --model_dir wardrobe-body-vae --dataset_dir bodies

`--model_dir` is a `VAE` trained by `examples/train_vae.py` on `examples/make_body_dataset.py` avatars, `--dataset_dir`
that dataset (`train.npz` and `test.npz` with `images` and `body_shapes`). Both maps are least-squares fits on the
posterior means of the training avatars (closed form, seconds). On the test avatars the script measures how well
the head reads each parameter from a latent (R^2) and how close the avatar decoded from the parameters alone (the
sliders) comes to the rendered one, next to the VAE's own reconstruction. It writes the head to
`model_dir/body_shape_head/`, a figure of every slider swept over its range (`body_shape_sliders.png`), one of new
bodies (`body_shape_samples.png`) and a "Body-shape head" section with the figures into the model card;
`BodyShapePipeline.from_pretrained(model_dir)` then loads both.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from hf_vaegan.data import BODY_SHAPE_RANGES
from hf_vaegan.model_cards.sections import command_block, replace_card_section
from hf_vaegan.models import VAE
from hf_vaegan.models.body_shape import BodyShapeHead
from hf_vaegan.pipelines.pipeline_body_shape import HEAD_SUBFOLDER, BodyShapePipeline
from hf_vaegan.training.grids import make_sample_grid

SECTION_TITLE = "## Body-shape head"
SLIDER_STEPS = 7


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", type=Path, required=True, help="the trained VAE's folder")
    parser.add_argument("--dataset_dir", type=Path, required=True, help="folder with train.npz and test.npz")
    parser.add_argument("--batch_size", type=int, default=500)
    return parser.parse_args(argv)


def load_split(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    if not path.is_file():
        raise SystemExit(f"error: {path} not found; make it with examples/make_body_dataset.py")
    with np.load(path, allow_pickle=False) as data:
        images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float() / 127.5 - 1
        return images, torch.from_numpy(data["body_shapes"]), [str(name) for name in data["body_shape_names"]]


@torch.no_grad()
def encode(vae: VAE, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([vae.encode(batch).latent_dist.mode() for batch in images.split(batch_size)])


def r_squared(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination per column."""
    residual = (predictions - targets).pow(2).sum(dim=0)
    total = (targets - targets.mean(dim=0)).pow(2).sum(dim=0)
    return 1 - residual / total


@torch.no_grad()
def slider_grid(pipe: BodyShapePipeline) -> torch.Tensor:
    """One row per parameter swept from low to high, the others at the middle of their ranges."""
    ranges = pipe._ranges()
    rows = []
    for index in range(len(ranges)):
        values = ranges.mean(dim=1).repeat(SLIDER_STEPS, 1)
        values[:, index] = torch.linspace(ranges[index, 0], ranges[index, 1], SLIDER_STEPS)
        rows.append(pipe(body_shapes=values, output_type="pt").images)
    return torch.cat(rows)


def write_card_section(readme: Path, rows: list[tuple[str, float]], slider_mae: float, reconstruction_mae: float):
    table = "\n".join(f"| {name} | {value:.3f} |" for name, value in rows)
    command = command_block("examples/fit_body_shape_head.py")
    section = f"""{SECTION_TITLE}

`body_shape_head/` holds a `BodyShapeHead`: two linear maps, fitted by least squares on the posterior means of the
training avatars (made by `examples/make_body_dataset.py`), between the latent space and the avatar's body
parameters. Load both with `BodyShapePipeline.from_pretrained`: sliders (body parameters) -> an avatar, new bodies
with their parameters, interpolation between two bodies.

![Sliders](body_shape_sliders.png)

Each row sweeps one parameter over its range (in the order of the table), the others at the middle of theirs.

![New bodies](body_shape_samples.png)

New bodies: parameters drawn uniformly from their ranges, decoded through the head (`pipe(batch_size=16)`).

How well the head reads each parameter from the latent of a held-out avatar (R^2, 1 is perfect):

| parameter | R^2 |
| --- | --- |
{table}

Mean absolute error ([0, 1] scale) on the held-out avatars of the avatar decoded from the parameters alone (the
sliders): {slider_mae:.4f}; of the VAE's reconstruction: {reconstruction_mae:.4f}.

{command}
"""
    replace_card_section(readme, SECTION_TITLE, section)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    vae = VAE.from_pretrained(args.model_dir).eval()
    train_images, train_shapes, names = load_split(args.dataset_dir / "train.npz")
    test_images, test_shapes, _ = load_split(args.dataset_dir / "test.npz")
    if train_images.shape[-1] != vae.config.resolution:
        raise SystemExit(f"error: the avatars are {train_images.shape[-1]}px, the VAE takes {vae.config.resolution}px")
    head = BodyShapeHead(
        latent_dim=vae.config.latent_dim,
        parameter_names=names,
        parameter_ranges=[BODY_SHAPE_RANGES[name] for name in names],
    )
    head.fit(encode(vae, train_images, args.batch_size), train_shapes).eval()
    pipe = BodyShapePipeline(vae, head)

    test_latents = encode(vae, test_images, args.batch_size)
    with torch.no_grad():
        scores = r_squared(head(test_latents).parameters, test_shapes)
        from_sliders = torch.cat([vae.decode(head.latents_for(batch)).sample for batch in test_shapes.split(500)])
        reconstructions = torch.cat([vae.decode(batch).sample for batch in test_latents.split(500)])
    slider_mae = ((from_sliders - test_images).abs().mean() / 2).item()
    reconstruction_mae = ((reconstructions - test_images).abs().mean() / 2).item()
    rows = list(zip(names, scores.tolist(), strict=True))
    for name, score in rows:
        print(f"R^2 {name:>18}: {score:.3f}")
    print(f"MAE from the sliders: {slider_mae:.4f}; of the reconstructions: {reconstruction_mae:.4f}")

    head.save_pretrained(args.model_dir / HEAD_SUBFOLDER)
    make_sample_grid(slider_grid(pipe), rows=len(names)).save(args.model_dir / "body_shape_sliders.png")
    bodies = pipe(batch_size=16, generator=torch.Generator().manual_seed(0), output_type="pt").images
    make_sample_grid(bodies, rows=2).save(args.model_dir / "body_shape_samples.png")
    write_card_section(args.model_dir / "README.md", rows, slider_mae, reconstruction_mae)
    print(f"saved the head to {args.model_dir / HEAD_SUBFOLDER} and updated {args.model_dir / 'README.md'}")


if __name__ == "__main__":
    main()
