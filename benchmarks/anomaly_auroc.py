"""Anomaly detection AUROC on Fashion-MNIST: train on nine classes, the tenth is the anomaly, for each held-out class.

    OMP_NUM_THREADS=1 python benchmarks/anomaly_auroc.py --train_data fashion_mnist/train.npz \
        --test_data fashion_mnist/test.npz

For each held-out class k, a small VAE (the recipe of the bundled `fashion-vae`: Bernoulli likelihood, 16 latent
dimensions, base width 16, batch 128, Adam 2e-3, bf16) is trained for `--num_epochs` on the training images of the
other nine classes, then every test image is scored; the 1,000 test images of class k are the anomalies
(`hf_vaegan.metrics.leave_one_class_out_auroc`). Scores, higher meaning more anomalous:
- "-ELBO": the VAE's negative ELBO in nats (one posterior sample);
- "recon. MSE": the VAE's squared reconstruction error from the posterior mean;
- "-ELBO - PNG": the negative ELBO minus the image's PNG-compressed length in nats, the input-complexity correction of
  Serrà et al. (2020): likelihood models give simple images (trousers, sneakers: little ink) a high likelihood
  whatever their class, and a generic compressor measures that simplicity;
- "nearest mean" (baseline, no learning beyond averaging): the pixel distance to the nearest of the nine training
  class-mean images;
- "ink" (baseline): how far the image's total intensity lies from the mean of the nine training classes.
The table ends with the mean over the held-out classes; 0.5 is chance.
"""

import argparse
import io
import math
import time

import numpy as np
import PIL.Image
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from hf_vaegan.data import FASHION_MNIST_CLASSES
from hf_vaegan.data.loading import load_image_dataset
from hf_vaegan.hardware import cpu_info
from hf_vaegan.metrics import anomaly_scores, auroc, leave_one_class_out_auroc
from hf_vaegan.models import VAE
from hf_vaegan.training import Network
from hf_vaegan.training.vae import VAEObjective, VAETrainer

VAE_METHODS = {"-ELBO": "elbo", "recon. MSE": "reconstruction"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_data", required=True, help="Training split: a .npz with `images` and `labels`.")
    parser.add_argument("--test_data", required=True, help="Test split, scored whole.")
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)), help="Classes held out in turn.")
    parser.add_argument("--num_epochs", type=float, default=1.0, help="Training epochs of each VAE (fixed budget).")
    parser.add_argument("--train_batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--latent_dim", type=int, default=16)
    parser.add_argument("--base_channels", type=int, default=16)
    parser.add_argument("--mixed_precision", choices=("no", "bf16"), default="bf16")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the models, data order and ELBO samples.")
    args = parser.parse_args(argv)
    if args.num_epochs <= 0:
        parser.error(f"--num_epochs must be positive, got {args.num_epochs}")
    return args


def load_split(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_image_dataset(path, num_channels=1).to_tensors(28)
    if labels is None:
        raise ValueError(f"{path} has no labels: the protocol needs the class of every image")
    return images, labels


def train_vae(images: torch.Tensor, args: argparse.Namespace, seed: int) -> VAE:
    """A VAE trained with the package's `VAETrainer` for `--num_epochs` over `images` `(N, 1, 28, 28)` in [-1, 1]."""
    set_seed(seed)
    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=True)
    vae = VAE(latent_dim=args.latent_dim, base_channels=args.base_channels)
    optimizer = torch.optim.Adam(vae.parameters(), lr=args.learning_rate)
    network = Network.prepare(accelerator, VAEObjective(vae), optimizer)
    rng = torch.Generator().manual_seed(seed)
    trainer = VAETrainer(accelerator, network, rng=rng)
    steps_per_epoch = len(images) // args.train_batch_size
    num_steps = max(1, round(args.num_epochs * steps_per_epoch))
    order = torch.cat([torch.randperm(len(images), generator=rng) for _ in range(int(args.num_epochs) + 1)])
    for step in range(1, num_steps + 1):
        batch = images[order[(step - 1) * args.train_batch_size : step * args.train_batch_size]]
        logs = trainer.train_step({"pixel_values": batch}, step)
    print(f"  {num_steps} steps, final training -ELBO {logs['negative_elbo']:.1f} nats", flush=True)
    return network.bare.model.eval()


def png_length_nats(images: torch.Tensor) -> torch.Tensor:
    """Length of each image `(N, 1, H, W)` in [-1, 1] as a losslessly compressed 8-bit PNG, in nats `(N,)`."""
    pixels = ((images[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    lengths = []
    for image in pixels:
        buffer = io.BytesIO()
        PIL.Image.fromarray(image).save(buffer, format="PNG", optimize=True)
        lengths.append(buffer.tell() * 8 * math.log(2))
    return torch.from_numpy(np.array(lengths))


def nearest_mean_distance(train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor):
    """Distance of each test image to the nearest class-mean image of the training split `(N,)`."""
    means = torch.stack([train_images[train_labels == label].mean(0) for label in train_labels.unique()])
    return torch.cdist(test_images.flatten(1), means.flatten(1)).min(dim=1).values


def main(args: argparse.Namespace) -> None:
    print(f"CPU: {cpu_info().describe()}", flush=True)
    train_images, train_labels = load_split(args.train_data)
    test_images, test_labels = load_split(args.test_data)
    names = ["-ELBO", "recon. MSE", "-ELBO - PNG", "nearest mean", "ink"]
    print(
        f"{len(train_images)} training and {len(test_images)} test images; each VAE trains for {args.num_epochs} "
        f"epoch(s) on the other nine classes",
        flush=True,
    )
    trained: dict[int, VAE] = {}

    def train_once(images: torch.Tensor, held_out_class: int) -> VAE:
        # One model per held-out class, scored by every VAE score.
        if held_out_class not in trained:
            trained[held_out_class] = train_vae(images, args, args.seed + held_out_class)
        return trained[held_out_class]

    test_complexity = png_length_nats(test_images)
    train_ink, test_ink = train_images.flatten(1).sum(dim=1), test_images.flatten(1).sum(dim=1)
    rows: dict[int, dict[str, float]] = {}
    started = time.perf_counter()
    for held_out in args.classes:
        print(f"held out: {held_out} {FASHION_MNIST_CLASSES[held_out]}", flush=True)
        row = {}
        for name, method in VAE_METHODS.items():
            (row[name],) = leave_one_class_out_auroc(
                train_once,
                train_images,
                train_labels,
                test_images,
                test_labels,
                classes=(held_out,),
                method=method,
                generator=torch.Generator().manual_seed(args.seed),
            ).values()
        is_anomaly = test_labels == held_out
        # The same ELBO draws as the protocol's "-ELBO" column (same seed), corrected for input complexity.
        generator = torch.Generator().manual_seed(args.seed)
        elbo = anomaly_scores(trained[held_out], test_images, "elbo", generator=generator)
        row["-ELBO - PNG"] = auroc(elbo - test_complexity, is_anomaly)
        normal = train_labels != held_out
        row["nearest mean"] = auroc(
            nearest_mean_distance(train_images[normal], train_labels[normal], test_images), is_anomaly
        )
        row["ink"] = auroc((test_ink - train_ink[normal].mean()).abs(), is_anomaly)
        rows[held_out] = row
        trained.clear()
        print("  " + ", ".join(f"{name} {value:.3f}" for name, value in row.items()), flush=True)

    print(f"\nAUROC per held-out class ({time.perf_counter() - started:.0f} s in all):\n")
    print("| held-out class | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for held_out, row in rows.items():
        print(f"| {held_out} {FASHION_MNIST_CLASSES[held_out]} | " + " | ".join(f"{row[n]:.3f}" for n in names) + " |")
    means = {name: sum(row[name] for row in rows.values()) / len(rows) for name in names}
    print("| **mean** | " + " | ".join(f"**{means[n]:.3f}**" for n in names) + " |")


if __name__ == "__main__":
    main(parse_args())
