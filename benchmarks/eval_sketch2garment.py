"""Evaluate a sketch -> garment model on held-out pairs against two baselines, and print the table of its model card.

    python examples/make_sketch_dataset.py --train_data fashion_mnist/train.npz \
        --test_data fashion_mnist/test.npz --output_dir fashion-sketch-pairs
    python benchmarks/eval_sketch2garment.py --model hf_vaegan/pretrained/sketch2garment \
        --dataset_name fashion-sketch-pairs --sample_image sketch2garment.png

Methods, each turning every test sketch into a garment image:
- the model (`ImageToImagePipeline`);
- "sketch": the sketch itself (the trivial answer);
- "nearest neighbour": the training garment whose sketch is closest to the test sketch after a Gaussian blur
  (sigma `--blur_sigma`), which makes the pixel distance tolerant to strokes a pixel or two apart.

Metrics, against the real garment of each test sketch: L1 (mean absolute error of intensities in [0, 1]; lower is
better) and SSIM (`hf_vaegan.metrics.image_quality.ssim`; higher is better); against the set of real test garments:
FID in the feature space of the packaged Fashion-MNIST classifier (lower is better) and the classifier's accuracy on
the outputs with the test labels (whether the garment type survives). The reference row scores the real test garments
themselves, with the FID of as many real training garments: the floor at this sample size.
"""

import argparse
import time

import torch
import torch.nn.functional as F
from PIL import Image

from hf_vaegan.data.loading import load_paired_dataset, make_dataloader
from hf_vaegan.hardware import cpu_info
from hf_vaegan.metrics import FashionClassifierFeatures, classification_accuracy, feature_statistics, frechet_distance
from hf_vaegan.metrics.image_quality import ssim
from hf_vaegan.pipelines.pipeline_image_to_image import ImageToImagePipeline
from hf_vaegan.training.grids import comparison_grid


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Folder or Hub id of the UNetGenerator.")
    parser.add_argument("--dataset_name", required=True, help="Paired dataset with train and test splits.")
    parser.add_argument("--train_split", default="train", help="Split searched by the nearest-neighbour baseline.")
    parser.add_argument("--test_split", default="test", help="Split evaluated.")
    parser.add_argument("--source_column", default="sketch")
    parser.add_argument("--target_column", default="image")
    parser.add_argument("--label_column", default="label", help="Labels of the class-accuracy metric.")
    parser.add_argument("--max_test_samples", type=int, default=None, help="Evaluate a random subset (seed 0).")
    parser.add_argument("--blur_sigma", type=float, default=1.0, help="Blur of the sketches the baseline compares.")
    parser.add_argument("--batch_size", type=int, default=500)
    parser.add_argument("--sample_image", default=None, help="Write a PNG of sketch | output | real rows here.")
    parser.add_argument("--sample_scale", type=int, default=3, help="Upscaling of that PNG (nearest neighbour).")
    return parser.parse_args(argv)


def load_split(args: argparse.Namespace, split: str, max_samples: int | None = None) -> dict[str, torch.Tensor]:
    """All pairs of a split as tensors: ``source`` and ``target`` ``(N, C, H, W)`` in [-1, 1], ``labels`` ``(N,)``."""
    info = load_paired_dataset(
        args.dataset_name,
        split=split,
        source_column=args.source_column,
        target_column=args.target_column,
        max_train_samples=max_samples,
        seed=0,
    )
    loader = make_dataloader(info.with_image_transform(28), args.batch_size, shuffle=False)
    batches = list(loader)
    return {
        "source": torch.cat([batch["source_pixel_values"] for batch in batches]),
        "target": torch.cat([batch["target_pixel_values"] for batch in batches]),
        "labels": torch.tensor(info.dataset[args.label_column]),
    }


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, round(3 * sigma))
    profile = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    profile = profile / profile.sum()
    kernel = torch.outer(profile, profile)[None, None].expand(images.shape[1], 1, -1, -1)
    padded = F.pad(images, (radius,) * 4, mode="replicate")
    return F.conv2d(padded, kernel, groups=images.shape[1])


def nearest_neighbour_garments(test_sketches, train_sketches, train_garments, sigma: float, chunk: int = 1000):
    """For each test sketch, the training garment whose blurred sketch is nearest in L2."""
    train_codes = blur(train_sketches, sigma).flatten(1)
    train_norms = train_codes.pow(2).sum(1)
    indices = []
    for queries in blur(test_sketches, sigma).flatten(1).split(chunk):
        distances = train_norms[None] - 2 * queries @ train_codes.T  # + |query|^2, the same for every candidate
        indices.append(distances.argmin(1))
    return train_garments[torch.cat(indices)]


def evaluate(outputs, targets, labels, extractor, real_statistics) -> dict[str, float]:
    return {
        "L1": ((outputs - targets).abs().mean() / 2).item(),
        "SSIM": ssim(outputs, targets).mean().item(),
        "FID": frechet_distance(*real_statistics, *feature_statistics(extractor(outputs))),
        "class accuracy": classification_accuracy(outputs, labels, extractor),
    }


def class_balanced_indices(labels: torch.Tensor, per_class: int) -> torch.Tensor:
    """The first ``per_class`` examples of each class, class by class."""
    return torch.cat([torch.nonzero(labels == label).flatten()[:per_class] for label in labels.unique()])


def main(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    print(f"CPU: {cpu_info().describe()}", flush=True)
    start = time.perf_counter()
    test = load_split(args, args.test_split, args.max_test_samples)
    train = load_split(args, args.train_split)
    pipe = ImageToImagePipeline.from_pretrained(args.model)
    channels = pipe.generator.config.out_channels
    model_outputs = torch.cat(
        [pipe(batch, output_type="pt").images.float().cpu() for batch in test["source"].split(args.batch_size)]
    )
    outputs = {
        "model": model_outputs,
        "sketch": test["source"].expand(-1, channels, -1, -1),
        "nearest neighbour": nearest_neighbour_garments(
            test["source"], train["source"], train["target"], args.blur_sigma
        ),
    }
    extractor = FashionClassifierFeatures(device="cpu")
    real_statistics = feature_statistics(extractor(test["target"]))
    results = {
        name: evaluate(images, test["target"], test["labels"], extractor, real_statistics)
        for name, images in outputs.items()
    }

    print(
        f"{len(test['source']):,} test pairs of {args.dataset_name!r}, nearest neighbours among "
        f"{len(train['source']):,} training pairs ({time.perf_counter() - start:.0f} s)\n"
    )
    metrics = list(results["model"])
    print("| method | " + " | ".join(metrics) + " |")
    print("| --- |" + " --- |" * len(metrics))
    for name, values in results.items():
        print(f"| {name} | " + " | ".join(f"{values[metric]:.4f}" for metric in metrics) + " |")
    # The floor of FID at this sample size: real training garments, as many as there are test pairs.
    reference_fid = frechet_distance(
        *real_statistics, *feature_statistics(extractor(train["target"][: len(test["target"])]))
    )
    accuracy = classification_accuracy(test["target"], test["labels"], extractor)
    print(f"| real garments (reference) | 0 | 1 | {reference_fid:.4f} | {accuracy:.4f} |")

    if args.sample_image:
        shown = class_balanced_indices(test["labels"], per_class=2)
        grid = comparison_grid(test["source"][shown], model_outputs[shown], test["target"][shown], max_columns=10)
        scaled = (grid.width * args.sample_scale, grid.height * args.sample_scale)
        grid.resize(scaled, Image.Resampling.NEAREST).save(args.sample_image)
        print(f"\nSaved {args.sample_image}: sketch, model output and real garment, two per class")
    return results


if __name__ == "__main__":
    main(parse_args())
