"""Render the synthetic virtual-wardrobe try-on dataset from Fashion-MNIST and save it (and optionally push it).

    python examples/make_wardrobe_dataset.py --fashion_mnist path/to/fashion_mnist --output_dir wardrobe \
        --num_train 8000 --num_test 2000

``--fashion_mnist`` is a folder with ``train.npz`` and ``test.npz`` (arrays ``images`` uint8 N x 28 x 28 and
``labels``). Both are concatenated, train first, so ``garment_id`` indexes that concatenation; garments are then split
between the wardrobe's train and test splits by source index. The dataset is written with ``save_to_disk`` to
``--output_dir``, next to ``preview.png``: one row per example showing cloth, avatar, agnostic, person, warped cloth,
parse and, for test rows, the unpaired cloth and its ground truth.
"""

import argparse
import time
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from hf_vaegan.data import PARSE_LABELS, wardrobe_dataset_dict
from hf_vaegan.training.args import parse_resolution


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fashion_mnist", type=Path, required=True, help="folder with train.npz and test.npz")
    parser.add_argument("--output_dir", type=Path, required=True, help="where save_to_disk writes the DatasetDict")
    parser.add_argument("--resolution", type=parse_resolution, default=(128, 96), help="HEIGHTxWIDTH (default 128x96)")
    parser.add_argument("--num_train", type=int, default=8000)
    parser.add_argument("--num_test", type=int, default=2000)
    parser.add_argument("--garments_per_avatar", type=int, default=2)
    parser.add_argument("--test_fraction", type=float, default=0.2, help="share of garments held out for test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_unpaired_test", action="store_true", help="skip the unpaired ground truth of test rows")
    parser.add_argument("--preview_rows", type=int, default=8, help="examples per split in preview.png")
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_dataset_id", "--hub_model_id", dest="hub_dataset_id", help="e.g. user/virtual-wardrobe")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    args = parser.parse_args(argv)
    if args.push_to_hub and not args.hub_dataset_id:
        parser.error("--push_to_hub needs --hub_dataset_id")
    return args


def load_fashion_mnist(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    for name in ("train.npz", "test.npz"):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: --fashion_mnist must hold train.npz and test.npz")
        with np.load(path) as data:
            parts.append((data["images"], data["labels"]))
    return np.concatenate([images for images, _ in parts]), np.concatenate([labels for _, labels in parts])


def colorize_parse(parse: np.ndarray) -> np.ndarray:
    palette = np.random.default_rng(7).integers(40, 256, (len(PARSE_LABELS), 3), dtype=np.uint8)
    palette[0] = 255
    return palette[parse]


def preview(dataset_dict: datasets.DatasetDict, rows: int) -> Image.Image:
    """A grid with one example per row; test rows also show the unpaired cloth and its ground truth."""
    lines = []
    for split, dataset in dataset_dict.items():
        for example in dataset.select(range(min(rows, len(dataset)))):
            panels = [example[name] for name in ("cloth", "avatar", "agnostic", "image", "warped_cloth")]
            panels = [np.asarray(panel.convert("RGB")) for panel in panels]
            panels.append(colorize_parse(np.asarray(example["image_parse"])))
            for name in ("unpaired_cloth", "unpaired_image"):
                blank = np.full_like(panels[0], 255 if split == "train" else 0)
                panels.append(np.asarray(example[name].convert("RGB")) if name in example else blank)
            lines.append(np.concatenate(panels, axis=1))
    grid = np.concatenate(lines, axis=0)
    return Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.Resampling.NEAREST)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    images, labels = load_fashion_mnist(args.fashion_mnist)
    start, start_cpu = time.perf_counter(), time.process_time()
    dataset_dict = wardrobe_dataset_dict(
        images,
        labels,
        num_train=args.num_train,
        num_test=args.num_test,
        garments_per_avatar=args.garments_per_avatar,
        resolution=args.resolution,
        seed=args.seed,
        test_fraction=args.test_fraction,
        unpaired_test=not args.no_unpaired_test,
    )
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    total = args.num_train + args.num_test
    print(f"rendered {total} examples in {elapsed:.1f} s ({total / elapsed:.0f}/s; {total / cpu:.0f}/s of CPU time)")

    dataset_dict.save_to_disk(args.output_dir)
    preview(dataset_dict, args.preview_rows).save(args.output_dir / "preview.png")
    print(f"saved {dataset_dict} to {args.output_dir} (preview: {args.output_dir / 'preview.png'})")
    if args.push_to_hub:
        dataset_dict.push_to_hub(args.hub_dataset_id, private=args.private)
        print(f"pushed to https://huggingface.co/datasets/{args.hub_dataset_id}")


if __name__ == "__main__":
    main()
