"""Train a VAE anomaly detector (`TransformationVAE`) on normal images only and save it as a `VAEPipeline`.

    OMP_NUM_THREADS=1 python examples/train_anomaly_detector.py --train_data fashion_mnist/train.npz \
        --validation_data fashion_mnist/test.npz --output_dir fashion-anomaly-vae

The recipe of `benchmarks/anomaly_auroc.py --protocol one-class`: each Adam step (batch 128, bf16 autocast on CPUs
with bf16 kernels) minimises the negative ELBO of the batch plus 100 times the cross-entropy of the transformation
head on the four quarter turns of every image of it (`hf_vaegan.training.anomaly`). `--classes` keeps the
images of some classes only (one class: the benchmark's protocol; all, the default: "anything unlike the training
set" is the anomaly). The folder loads with `VAEPipeline.from_pretrained(output_dir)`; score new images with
`pipe.anomaly_scores(images)` and calibrate a threshold on held-out normal images with
`pipe.calibrate_anomaly_threshold(images, false_positive_rate=0.01)`. With `--num_reference_images N`, the detector
keeps N of its training images, drawn at random, and scores with `mahalanobis_knn` (the benchmark's best).

With `--validation_data` (normal images the detector never trained on), the folder also gets a model card with
held-out figures: a threshold calibrated on the first half of them at a 1% false-positive rate, the rate it flags on
the second half, and the AUROC of the score between that second half and three kinds of images unlike the training
set, made from it: uniform noise, the garments with their intensities inverted (dark on light) and the garments
turned upside down.
"""

import argparse
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from hf_vaegan import VAEPipeline
from hf_vaegan.data.loading import load_image_dataset
from hf_vaegan.hardware import cpu_info
from hf_vaegan.metrics import auroc, calibrate_threshold
from hf_vaegan.training.anomaly import train_transformation_vae


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_data", required=True, help="Normal images: a .npz with `images` (and `labels`).")
    parser.add_argument("--validation_data", help="Held-out normal images for the card's figures (a .npz).")
    parser.add_argument("--classes", type=int, nargs="+", help="Keep these labels only (default: every image).")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_steps", type=int, default=1000)
    parser.add_argument("--shift_pixels", type=int, default=0, help="0: quarter turns only; else shifts too.")
    parser.add_argument(
        "--num_reference_images",
        type=int,
        default=0,
        help="Training images the detector keeps (8-bit, 784 bytes each at 28x28) for the 'mahalanobis_knn' score, "
        "which adds the pixel distance to the nearest of them; 0 keeps none and scores with 'mahalanobis'.",
    )
    parser.add_argument("--train_batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--latent_dim", type=int, default=16)
    parser.add_argument("--base_channels", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    cpu = cpu_info()
    print(f"CPU: {cpu.describe()}", flush=True)
    images, labels = load_image_dataset(args.train_data, num_channels=1).to_tensors(args.resolution)
    if args.classes is not None:
        if labels is None:
            raise ValueError(f"--classes needs labels, and {args.train_data} has none")
        images = images[torch.isin(labels, torch.tensor(args.classes))]
        if len(images) == 0:
            raise ValueError(f"{args.train_data} has no image of the classes {args.classes}")
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if cpu.native_bf16 else nullcontext()
    started = time.perf_counter()
    with autocast:
        vae = train_transformation_vae(
            images,
            args.num_steps,
            batch_size=args.train_batch_size,
            learning_rate=args.learning_rate,
            seed=args.seed,
            resolution=args.resolution,
            latent_dim=args.latent_dim,
            base_channels=args.base_channels,
            shift_pixels=args.shift_pixels,
            num_reference_images=args.num_reference_images,
        )
    training_seconds = time.perf_counter() - started
    print(f"{args.num_steps} steps on {len(images)} images in {training_seconds:.0f} s", flush=True)
    pipe = VAEPipeline(vae)
    pipe.save_pretrained(args.output_dir)
    print(f"saved to {args.output_dir}")
    if args.validation_data:
        write_card(pipe, args, len(images), training_seconds)


def held_out_figures(pipe: VAEPipeline, images: torch.Tensor) -> dict[str, str]:
    """The card's metric rows, from held-out normal images `(N, C, R, R)` in [-1, 1] (see the module docstring)."""
    calibration, test = images[: len(images) // 2], images[len(images) // 2 :]
    threshold = calibrate_threshold(pipe.anomaly_scores(calibration), false_positive_rate=0.01)
    normal_scores = pipe.anomaly_scores(test)
    noise = torch.rand(test.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    upside_down = torch.rot90(test, 2, dims=(2, 3))
    unusual = {"uniform noise": noise, "inverted garments": -test, "upside-down garments": upside_down}
    rows = {"false-positive rate at the 1% threshold": f"{(normal_scores > threshold.threshold).mean():.4f}"}
    for name, anomalies in unusual.items():
        scores = np.concatenate([normal_scores, pipe.anomaly_scores(anomalies)])
        is_anomaly = np.arange(len(scores)) >= len(normal_scores)
        rows[f"AUROC vs {name}"] = f"{auroc(scores, is_anomaly):.4f}"
    return rows


def write_card(pipe: VAEPipeline, args: argparse.Namespace, num_images: int, training_seconds: float) -> None:
    images, _ = load_image_dataset(args.validation_data, num_channels=1).to_tensors(args.resolution)
    metrics = held_out_figures(pipe, images)
    half = len(images) // 2
    card = pipe.create_model_card(
        f"hf-vaegan/{Path(args.output_dir).name}",
        datasets=["zalando-datasets/fashion_mnist"],
        eval_dataset={"type": "zalando-datasets/fashion_mnist", "name": args.validation_data, "split": "test"},
        metrics=metrics,
        metrics_protocol=(
            f"Anomaly score: `pipe.anomaly_scores(images)` (method `{pipe.default_anomaly_method}`). The threshold is "
            "calibrated "
            f"on the first {half:,} images of `{args.validation_data}` (`calibrate_anomaly_threshold`, "
            f"false_positive_rate=0.01); the rate and the AUROCs are measured on the other {len(images) - half:,} "
            "(normal) and on images made from them (anomalies). One-class AUROC of this recipe, one detector per "
            "Fashion-MNIST class: see the hf-vaegan README (`benchmarks/anomaly_auroc.py --protocol one-class`)."
        ),
        dataset_description=f"`{args.train_data}`: {num_images:,} images, at {args.resolution}x{args.resolution}.",
        training_command="OMP_NUM_THREADS=1 python examples/train_anomaly_detector.py "
        + " ".join(f"--{name} {value}" for name, value in vars(args).items() if value is not None),
        training={
            "steps": args.num_steps,
            "batch size": f"{args.train_batch_size} images, each in its {pipe.vae.num_transformations} "
            "transformations for the head",
            "learning rate": args.learning_rate,
            "transformation loss weight": 100.0,
            "seed": args.seed,
            "training time": f"{training_seconds / 60:.1f} min on one thread",
        },
        limitations=(
            "An anomaly here is an image unlike the 28x28 Fashion-MNIST training garments (noise, photographs, "
            "drawings, inverted or turned images), not a garment of a rarer class: trained on all ten classes, it "
            "does not tell a shirt from a T-shirt. Its threshold holds its false-positive rate only for images drawn "
            "like the calibration images."
        ),
    )
    card.save(Path(args.output_dir) / "README.md")
    print("\n".join(f"{name}: {value}" for name, value in metrics.items()))


if __name__ == "__main__":
    main(parse_args())
