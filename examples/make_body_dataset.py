"""Render the body-shape dataset: undressed wardrobe avatars with random `BodyShape`s, for the body-shape VAE.

    python examples/make_body_dataset.py --output_dir bodies --num_train 12000 --num_test 2000
    accelerate launch examples/train_vae.py --dataset_name bodies/train.npz --validation_dataset_name bodies/test.npz \
        --resolution 64 --likelihood laplace --latent_dim 16 --output_dir wardrobe-body-vae
    python examples/fit_body_shape_head.py --model_dir wardrobe-body-vae --dataset_dir bodies

Each avatar (`hf_vaegan.data.render_avatar`) stands on a plain light background in a square image (the VAE takes
square images; body lengths are fractions of the image height, so the body looks as in the 128x96 wardrobe). Every
`BodyShape` parameter is drawn uniformly from its range. `train.npz` and `test.npz` hold `images` (N, R, R, 3) uint8,
`body_shapes` (N, P) float32 in natural units and `body_shape_names` (P,); `preview.png` shows the first avatars.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from hf_vaegan.data import BODY_SHAPE_RANGES, BodyShape, render_avatar

SPLITS = {"train": 0, "test": 1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--resolution", type=int, default=64, help="side of the square images (default 64)")
    parser.add_argument("--num_train", type=int, default=12000)
    parser.add_argument("--num_test", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.resolution < 32:
        parser.error(f"--resolution must be at least 32, got {args.resolution}")
    if min(args.num_train, args.num_test) < 1:
        parser.error("--num_train and --num_test must be positive")
    return args


def render_bodies(count: int, resolution: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``count`` avatars of random shapes: images (N, R, R, 3) uint8 and their parameters (N, P) float32."""
    rng = np.random.default_rng([seed, SPLITS[split]])
    shapes = [BodyShape.sample(rng) for _ in range(count)]
    images = np.stack([render_avatar(shape, (resolution, resolution)).image for shape in shapes])
    parameters = np.array([[getattr(shape, name) for name in BODY_SHAPE_RANGES] for shape in shapes], np.float32)
    return images, parameters


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", args.num_train), ("test", args.num_test)):
        images, parameters = render_bodies(count, args.resolution, args.seed, split)
        np.savez_compressed(
            args.output_dir / f"{split}.npz",
            images=images,
            body_shapes=parameters,
            body_shape_names=np.array(list(BODY_SHAPE_RANGES)),
        )
        print(f"{split}: {count} avatars at {args.resolution}x{args.resolution}")
        if split == "train":
            preview = images[:32].reshape(4, 8, *images.shape[1:]).transpose(0, 2, 1, 3, 4)
            Image.fromarray(preview.reshape(4 * args.resolution, 8 * args.resolution, 3)).save(
                args.output_dir / "preview.png"
            )
    print(f"saved to {args.output_dir}")


if __name__ == "__main__":
    main()
