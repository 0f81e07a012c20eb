"""Train a VAE anomaly detector (`TransformationVAE`) on normal images only and save it as a `VAEPipeline`.

    OMP_NUM_THREADS=1 python examples/train_anomaly_detector.py --train_data fashion_mnist/train.npz \
        --output_dir fashion-anomaly-vae

The recipe of `benchmarks/anomaly_auroc.py --protocol one-class`: each Adam step (batch 128, bf16 autocast on CPUs
with bf16 kernels) minimises the negative ELBO of the batch plus 100 times the cross-entropy of the transformation
head on the four quarter turns of every image of it (`hf_vaegan.training.anomaly`). `--classes` keeps the
images of some classes only (one class: the benchmark's protocol; all, the default: "anything unlike the training
set" is the anomaly). The folder loads with `VAEPipeline.from_pretrained(output_dir)`; score new images with
`pipe.anomaly_scores(images)` and calibrate a threshold on held-out normal images with
`pipe.calibrate_anomaly_threshold(images, false_positive_rate=0.01)`.
"""

import argparse
import time
from contextlib import nullcontext

import torch

from hf_vaegan import VAEPipeline
from hf_vaegan.data.loading import load_image_dataset
from hf_vaegan.hardware import cpu_info
from hf_vaegan.training.anomaly import train_transformation_vae


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_data", required=True, help="Normal images: a .npz with `images` (and `labels`).")
    parser.add_argument("--classes", type=int, nargs="+", help="Keep these labels only (default: every image).")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_steps", type=int, default=1000)
    parser.add_argument("--shift_pixels", type=int, default=0, help="0: quarter turns only; else shifts too.")
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
        )
    print(f"{args.num_steps} steps on {len(images)} images in {time.perf_counter() - started:.0f} s", flush=True)
    VAEPipeline(vae).save_pretrained(args.output_dir)
    print(f"saved to {args.output_dir}")


if __name__ == "__main__":
    main(parse_args())
