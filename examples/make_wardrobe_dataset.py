"""Render the synthetic virtual-wardrobe try-on dataset from Fashion-MNIST and save it (and optionally push it).

    python examples/make_wardrobe_dataset.py --fashion_mnist path/to/fashion_mnist --output_dir wardrobe \
        --num_train 8000 --num_test 2000

``--fashion_mnist`` is a folder with ``train.npz`` and ``test.npz`` (arrays ``images`` uint8 N x 28 x 28 and
``labels``). Both are concatenated, train first, so ``garment_id`` indexes that concatenation; garments are then split
between the wardrobe's train and test splits by source index. The dataset is written with ``save_to_disk`` to
``--output_dir``, next to ``preview.png``: one row per example showing cloth, avatar, agnostic, person, warped cloth,
parse and, for test rows, the unpaired cloth and its ground truth.

``--garment_gan`` (a class-conditional colour garment GAN, e.g. the bundled ``wardrobe-garment-gan``) with
``--num_gan_garments`` adds that many of its samples, class-balanced, to the train split's garments, worn as drawn:
the try-on model then learns the garments the Space's GAN invents, not only Fashion-MNIST's. Samples that cover less
than ``MIN_GARMENT_COVERAGE`` of their image are drawn again. Their ``garment_id`` follows the Fashion-MNIST ones.
"""

import argparse
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image

from hf_vaegan.data import GARMENT_LABELS, PARSE_LABELS, garment_gan_label, wardrobe_dataset_dict
from hf_vaegan.data.wardrobe.garment import MIN_GARMENT_COVERAGE, garment_coverage
from hf_vaegan.pipelines import GANPipeline
from hf_vaegan.training.dataset_args import parse_resolution


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
    parser.add_argument("--garment_gan", type=Path, help="a class-conditional colour garment GAN's folder")
    parser.add_argument(
        "--num_gan_garments", type=int, default=0, help="garments drawn by --garment_gan for the train split"
    )
    parser.add_argument("--no_unpaired_test", action="store_true", help="skip the unpaired ground truth of test rows")
    parser.add_argument("--preview_rows", type=int, default=8, help="examples per split in preview.png")
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_dataset_id", "--hub_model_id", dest="hub_dataset_id", help="e.g. user/virtual-wardrobe")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    args = parser.parse_args(argv)
    if args.push_to_hub and not args.hub_dataset_id:
        parser.error("--push_to_hub needs --hub_dataset_id")
    if args.num_gan_garments < 0 or bool(args.num_gan_garments) != (args.garment_gan is not None):
        parser.error("--garment_gan and a positive --num_gan_garments go together")
    return args


def draw_gan_garments(folder: Path, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` garments of a colour garment GAN, the wearable classes in turn: (count, S, S, 3) uint8 and labels."""
    pipeline = GANPipeline.from_pretrained(folder)
    config = pipeline.gan.config
    if config.out_channels != 3:
        raise ValueError(f"--garment_gan must be a colour GAN, got {config.out_channels} channel(s)")
    generator = torch.Generator().manual_seed(seed)
    drawn = {label: [] for label in GARMENT_LABELS}
    per_class = -(-count // len(GARMENT_LABELS))
    for index, label in enumerate(GARMENT_LABELS):
        gan_label = garment_gan_label(index, config.num_classes)
        while len(drawn[label]) < per_class:
            images = pipeline(batch_size=64, class_labels=gan_label, generator=generator, output_type="np").images
            images = (images * 255).round().astype(np.uint8)
            drawn[label] += [image for image in images if garment_coverage(image) >= MIN_GARMENT_COVERAGE]
    pairs = [(drawn[label][index], label) for index in range(per_class) for label in GARMENT_LABELS][:count]
    images, labels = zip(*pairs, strict=True)
    return np.stack(images), np.array(labels)


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
    drawn_garments = None
    if args.num_gan_garments:
        drawn_garments = draw_gan_garments(args.garment_gan, args.num_gan_garments, args.seed)
        print(f"drew {args.num_gan_garments} garments with {args.garment_gan} for the train split")
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
        drawn_garments=drawn_garments,
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
