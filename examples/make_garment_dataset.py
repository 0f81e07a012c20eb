"""Render the wardrobe's flat colour garments ("cloth" images on white) as a class-labelled image dataset.

    python examples/make_garment_dataset.py --fashion_mnist path/to/fashion_mnist --output_dir garments64 \
        --resolution 64

Every wearable Fashion-MNIST item (T-shirt/top, trouser, pullover, dress, coat, shirt) is colourised and patterned by
:func:`hf_vaegan.data.make_garment`, exactly as the try-on data and the Space make garments, at a square resolution.
``--fashion_mnist`` is a folder with ``train.npz`` and ``test.npz`` (``images`` uint8 N x 28 x 28, ``labels``). The
output folder gets ``train.npz`` and ``test.npz`` with ``images`` (uint8 N x R x R x 3), ``labels`` (0-5, in
:data:`~hf_vaegan.data.GARMENT_LABELS` order) and ``class_names``, which ``examples/train_gan.py --dataset_name``
reads directly, and ``preview.png`` (a row per class).
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from hf_vaegan.data import FASHION_MNIST_CLASSES, GARMENT_LABELS, make_garment


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fashion_mnist", type=Path, required=True, help="folder with train.npz and test.npz")
    parser.add_argument("--output_dir", type=Path, required=True, help="where train.npz, test.npz and preview.png go")
    parser.add_argument("--resolution", type=int, default=64, help="side of the square garment images (default 64)")
    parser.add_argument("--max_items", type=int, default=None, help="use at most this many items per split")
    parser.add_argument("--seed", type=int, default=0, help="colours and patterns: item i of a split uses (seed, i)")
    return parser.parse_args(argv)


def render_split(images: np.ndarray, labels: np.ndarray, resolution: int, seed: int, split_id: int) -> dict:
    """Garment images and 0-based garment classes of the wearable items of one Fashion-MNIST split."""
    wearable = np.flatnonzero(np.isin(labels, GARMENT_LABELS))
    garment_class = {label: index for index, label in enumerate(GARMENT_LABELS)}
    rendered = np.empty((len(wearable), resolution, resolution, 3), np.uint8)
    for row, index in enumerate(tqdm(wearable, desc="garments", unit="item")):
        seeds = (seed, split_id, int(index))
        rendered[row] = make_garment(images[index], int(labels[index]), seeds, (resolution, resolution)).image
    classes = np.array([garment_class[int(label)] for label in labels[wearable]], np.int64)
    return {"images": rendered, "labels": classes}


def preview(split: dict, per_class: int = 8) -> Image.Image:
    classes = range(len(GARMENT_LABELS))
    rows = [split["images"][np.flatnonzero(split["labels"] == label)[:per_class]] for label in classes]
    return Image.fromarray(np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0))


def main(args: argparse.Namespace) -> None:
    args.output_dir.mkdir(parents=True, exist_ok=True)
    class_names = np.array([FASHION_MNIST_CLASSES[label] for label in GARMENT_LABELS])
    for split_id, split_name in enumerate(("train", "test")):
        source = np.load(args.fashion_mnist / f"{split_name}.npz")
        images, labels = source["images"][: args.max_items], source["labels"][: args.max_items]
        split = render_split(images, labels, args.resolution, args.seed, split_id)
        np.savez_compressed(args.output_dir / f"{split_name}.npz", **split, class_names=class_names)
        print(f"{split_name}: {len(split['labels'])} garments of {len(class_names)} classes")
        if split_name == "train":
            preview(split).save(args.output_dir / "preview.png")


if __name__ == "__main__":
    main(parse_args())
