"""Build the sketch -> garment pairs of pix2pix from garment images (e.g. Fashion-MNIST), reproducibly.

    python examples/make_sketch_dataset.py --train_data fashion_mnist/train.npz --test_data fashion_mnist/test.npz \
        --output_dir fashion-sketch-pairs
    accelerate launch examples/train_pix2pix.py --dataset_name fashion-sketch-pairs

Each garment is paired with its outline sketch, drawn by `hf_vaegan.data.sketch.garment_to_sketch` (the silhouette
and the strongest interior edges, with a seeded hand-drawn wobble). The data may be anything `--dataset_name` of the
training scripts accepts (a `.npz` file, a folder of images, a `save_to_disk` folder, a Hub id); the sketches depend
only on the images and `--seed` (split `train` uses the seed, `test` the seed + 1), so the same command always writes
the same pairs. The result is a `DatasetDict` (`sketch`, `image` and, with labels, `label` columns) written with
`save_to_disk`; `datasets.load_from_disk(output_dir).push_to_hub(repo_id)` shares it. Fashion-MNIST's 60,000 training
images take a few minutes on one CPU core.
"""

import argparse
import time

import datasets

from hf_vaegan.data.loading import load_image_dataset
from hf_vaegan.data.sketch import sketch_pairs_from_images


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_data", required=True, help="Garment images of the train split (any dataset source).")
    parser.add_argument("--test_data", default=None, help="Garment images of the test split, if any.")
    parser.add_argument("--dataset_config_name", default=None, help="Config of Hub or folder datasets.")
    parser.add_argument("--output_dir", required=True, help="Where save_to_disk writes the DatasetDict.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the hand-drawn wobble of the sketches.")
    parser.add_argument(
        "--jitter", type=float, default=0.6, help="Maximum stroke displacement in pixels; 0 draws crisp outlines."
    )
    parser.add_argument(
        "--max_samples", type=int, default=None, help="Keep a random subset of this many images per split (--seed)."
    )
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> datasets.DatasetDict:
    splits = {}
    for offset, (split, source) in enumerate((("train", args.train_data), ("test", args.test_data))):
        if source is None:
            continue
        start = time.perf_counter()
        images = load_image_dataset(
            source, args.dataset_config_name, split=split, max_train_samples=args.max_samples, seed=args.seed
        )
        splits[split] = sketch_pairs_from_images(images, seed=args.seed + offset, jitter=args.jitter).dataset
        print(f"{split}: {len(splits[split]):,} pairs in {time.perf_counter() - start:.0f} s")
    pairs = datasets.DatasetDict(splits)
    pairs.save_to_disk(args.output_dir)
    print(f"Saved to {args.output_dir}")
    return pairs


if __name__ == "__main__":
    try:
        main(parse_args())
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
