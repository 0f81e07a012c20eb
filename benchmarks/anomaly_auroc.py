"""Anomaly detection AUROC on Fashion-MNIST, under two protocols.

    OMP_NUM_THREADS=1 python benchmarks/anomaly_auroc.py --protocol one-class \
        --train_data fashion_mnist/train.npz --test_data fashion_mnist/test.npz

`--protocol one-class` (the literature's standard, e.g. Golan & El-Yaniv 2018): for each class k, the detector trains
on the 6,000 training images of class k only (no labels, no other class, no pretrained features), then scores the
10,000 test images, of which the 9,000 of the nine other classes are the anomalies. Each detector is a
`TransformationVAE` (a VAE whose encoder also predicts which quarter turn was applied to its input, see
`hf_vaegan/models/transformation_vae.py`) trained by `hf_vaegan.training.anomaly.train_transformation_vae` for
`--num_steps` Adam steps (batch 128 images, each in its four turns for the head; bf16 autocast). Scores, higher
meaning more anomalous:
- "mahalanobis_knn" (ours, the package's best, `anomaly_scores(..., method="mahalanobis_knn")`): "mahalanobis" plus
  the pixel distance to the nearest training image, each standardised by its mean and std on the training images
  (for the distance: to the nearest *other* training image); the detector keeps the class's 6,000 training images
  (`num_reference_images`, 4.7 MB);
- "mahalanobis" (ours, `method="mahalanobis"`): the squared Mahalanobis distance of the image's features (posterior
  mean, and the head's log-probabilities for each of its four turns) to the Gaussian of the training images'
  features;
- "transformation": GEOM's simplified score, how badly the transformation head recognises the four turns of the
  image (`method="transformation"`);
- "-ELBO - PNG" (measured, not kept in the package): the VAE's negative ELBO minus the image's PNG-compressed length
  in nats, the input-complexity correction of Serrà et al. (2020): likelihood models give simple images (little ink)
  a high likelihood whatever their class, and a generic compressor measures that simplicity;
- "latent Mahalanobis" (measured, not kept): the same with the posterior mean alone;
- "-ELBO" (baseline): the same VAE's negative ELBO in nats (one posterior draw);
- "AE recon. MSE" (baseline): the squared reconstruction error of a plain `AutoEncoder` of the same size trained
  for the same number of steps on the same images;
- "kNN pixels" (baseline, no learning): the Euclidean pixel distance to the nearest training image of class k;
- "layers + mahalanobis" (issue 15, measured, not kept): the multi-layer Mahalanobis score of Lee et al. (2018):
  the per-channel mean and std of each encoder stage's activations, each stage with its own Gaussian fitted on the
  class's training images, the distances divided by their dimension and summed with "mahalanobis" (likewise);
- "latent kNN" (issue 15, measured, not kept): the mean distance of the posterior mean to its 5 nearest posterior
  means of the training images.

`--protocol leave-one-out` (as GANomaly, Akçay et al. 2018): for each held-out class k, a small VAE (the recipe of
the bundled `fashion-vae`: Bernoulli likelihood, 16 latent dimensions, base width 16, batch 128, Adam 2e-3, bf16) is
trained for `--num_epochs` on the training images of the other nine classes, then every test image is scored; the
1,000 test images of class k are the anomalies (`hf_vaegan.metrics.leave_one_class_out_auroc`). Scores: the VAE's
"-ELBO", "recon. MSE" and "-ELBO - PNG"; baselines "nearest mean" (pixel distance to the nearest of the nine training
class-mean images) and "ink" (how far the image's total intensity lies from the training mean).

Both print a table (AUROC per class, mean; 0.5 is chance) and one final JSON line
`{"protocol": ..., "mean_auroc": {score: value}, "per_class": {class: {score: value}}}`.
"""

import argparse
import io
import json
import math
import time
from contextlib import nullcontext
from itertools import pairwise

import numpy as np
import PIL.Image
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from hf_vaegan.data import FASHION_MNIST_CLASSES
from hf_vaegan.data.loading import load_image_dataset
from hf_vaegan.hardware import cpu_info
from hf_vaegan.metrics import anomaly_scores, auroc, leave_one_class_out_auroc
from hf_vaegan.metrics.likelihood import evaluation_mode
from hf_vaegan.models import VAE, AutoEncoder
from hf_vaegan.training import Network
from hf_vaegan.training.anomaly import train_autoencoder, train_transformation_vae
from hf_vaegan.training.vae import VAEObjective, VAETrainer

VAE_METHODS = {"-ELBO": "elbo", "recon. MSE": "reconstruction"}
ONE_CLASS_SCORES = (
    "mahalanobis_knn",
    "mahalanobis",
    "transformation",
    "latent Mahalanobis",
    "-ELBO - PNG",
    "-ELBO",
    "AE recon. MSE",
    "kNN pixels",
    "layers + mahalanobis",
    "latent kNN",
)
LEAVE_ONE_OUT_SCORES = ("-ELBO", "recon. MSE", "-ELBO - PNG", "nearest mean", "ink")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", choices=("one-class", "leave-one-out"), default="one-class")
    parser.add_argument("--train_data", required=True, help="Training split: a .npz with `images` and `labels`.")
    parser.add_argument("--test_data", required=True, help="Test split, scored whole.")
    parser.add_argument(
        "--classes", type=int, nargs="+", default=list(range(10)), help="Normal (one-class) or held-out classes."
    )
    parser.add_argument("--num_epochs", type=float, default=1.0, help="leave-one-out: epochs of each VAE.")
    parser.add_argument("--num_steps", type=int, default=100, help="one-class: Adam steps of each detector.")
    parser.add_argument(
        "--shift_pixels", type=int, default=0, help="one-class: 0 for quarter turns only, else also shifts."
    )
    parser.add_argument("--train_batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--latent_dim", type=int, default=16)
    parser.add_argument("--base_channels", type=int, default=16)
    parser.add_argument("--mixed_precision", choices=("no", "bf16"), default="bf16")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the models, data order and ELBO samples.")
    args = parser.parse_args(argv)
    if args.num_epochs <= 0 or args.num_steps <= 0:
        parser.error(f"--num_epochs and --num_steps must be positive, got {args.num_epochs}, {args.num_steps}")
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


def leave_one_out(args: argparse.Namespace) -> dict[int, dict[str, float]]:
    train_images, train_labels = load_split(args.train_data)
    test_images, test_labels = load_split(args.test_data)
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

    print(f"\n{time.perf_counter() - started:.0f} s in all")
    return rows


def knn_distance(normal: torch.Tensor, images: torch.Tensor, chunk_size: int = 1000) -> torch.Tensor:
    """Euclidean pixel distance `(N,)` of each image `(N, C, H, W)` to its nearest neighbour among `normal`."""
    normal = normal.flatten(1)
    return torch.cat([torch.cdist(chunk.flatten(1), normal).min(dim=1).values for chunk in images.split(chunk_size)])


def autoencoder_error(autoencoder: AutoEncoder, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Mean squared reconstruction error `(N,)` of images `(N, C, H, W)` in [-1, 1]."""
    with evaluation_mode(autoencoder):
        errors = [(autoencoder(batch).sample - batch).pow(2).flatten(1).mean(1) for batch in images.split(batch_size)]
    return torch.cat(errors)


def posterior_means(vae: VAE, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    with evaluation_mode(vae):
        return torch.cat([vae.encode(batch).latent_dist.mean for batch in images.split(batch_size)])


def mahalanobis(reference: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Squared Mahalanobis distance `(N,)` of `vectors` `(N, D)` to the Gaussian fitted to `reference` `(M, D)`."""
    mean = reference.mean(dim=0)
    # A small ridge: posterior means of a few thousand images can leave some latent directions nearly unused.
    precision = torch.linalg.inv(torch.cov((reference - mean).T) + 1e-4 * torch.eye(reference.shape[1]))
    centred = vectors - mean
    return ((centred @ precision) * centred).sum(dim=1)


def encoder_stage_statistics(vae: VAE, images: torch.Tensor, batch_size: int = 500) -> list[torch.Tensor]:
    """For each stage (resolution) of the encoder, the per-channel mean and std of its activations on each image
    `(N, C, H, W)`: a list of `(N, 2 * channels)`, the pooled features of Lee et al. (2018)."""
    encoder, stages = vae.encoder, [[] for _ in vae.encoder.stage_ends]
    with evaluation_mode(vae):
        for hidden in images.split(batch_size):
            for stage, (start, end) in enumerate(pairwise((0, *encoder.stage_ends))):
                hidden = encoder.layers[start:end](hidden)
                stages[stage].append(torch.cat([hidden.mean(dim=(2, 3)), hidden.std(dim=(2, 3))], dim=1))
    return [torch.cat(stage) for stage in stages]


def gaussian_distance(reference: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Squared Mahalanobis distance `(N,)` of `vectors` `(N, D)` to the Gaussian fitted to `reference` `(M, D)`, with
    a ridge of 1e-3 times the mean variance (the activations' scales differ from stage to stage)."""
    reference, vectors = reference.double(), vectors.double()
    mean = reference.mean(dim=0)
    covariance = torch.cov((reference - mean).T)
    covariance += 1e-3 * covariance.diagonal().mean() * torch.eye(len(covariance), dtype=covariance.dtype)
    centred = vectors - mean
    return ((centred @ torch.linalg.inv(covariance)) * centred).sum(dim=1)


def layer_mahalanobis(vae, normal: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Lee et al.'s (2018) multi-layer Mahalanobis score `(N,)`: each encoder stage's distance to its own Gaussian
    of the normal images, plus `mahalanobis`, each divided by its dimension (its mean on normal images) and summed."""
    num_features = vae.normal_feature_mean.shape[0]
    total = anomaly_scores(vae, images, "mahalanobis").double() / num_features
    stages = zip(encoder_stage_statistics(vae, normal), encoder_stage_statistics(vae, images), strict=True)
    for normal_stage, stage in stages:
        total += gaussian_distance(normal_stage, stage) / stage.shape[1]
    return total


def latent_knn(vae: VAE, normal: torch.Tensor, images: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Mean distance `(N,)` of each image's posterior mean to the `k` nearest posterior means of `normal`."""
    distances = torch.cdist(posterior_means(vae, images), posterior_means(vae, normal))
    return distances.topk(k, dim=1, largest=False).values.mean(dim=1)


def one_class(args: argparse.Namespace) -> dict[int, dict[str, float]]:
    train_images, train_labels = load_split(args.train_data)
    test_images, test_labels = load_split(args.test_data)
    print(
        f"{len(test_images)} test images; each detector trains for {args.num_steps} steps on one class's training "
        f"images (shift_pixels={args.shift_pixels})",
        flush=True,
    )
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.mixed_precision == "bf16" else nullcontext()
    test_complexity = png_length_nats(test_images)
    model_config = {"latent_dim": args.latent_dim, "base_channels": args.base_channels}
    training = {"batch_size": args.train_batch_size, "learning_rate": args.learning_rate}
    rows: dict[int, dict[str, float]] = {}
    started = time.perf_counter()
    for normal_class in args.classes:
        class_started = time.perf_counter()
        print(f"normal: {normal_class} {FASHION_MNIST_CLASSES[normal_class]}", flush=True)
        normal = train_images[train_labels == normal_class]
        seed = args.seed + normal_class
        with autocast:
            vae = train_transformation_vae(
                normal,
                args.num_steps,
                seed=seed,
                shift_pixels=args.shift_pixels,
                num_reference_images=len(normal),
                **model_config,
                **training,
            )
            autoencoder = train_autoencoder(normal, args.num_steps, seed=seed, **model_config, **training)
        print(f"  trained in {time.perf_counter() - class_started:.0f} s", flush=True)
        is_anomaly = test_labels != normal_class
        scores = {
            name: anomaly_scores(vae, test_images, name)
            for name in ("mahalanobis_knn", "mahalanobis", "transformation")
        }
        elbo = anomaly_scores(vae, test_images, "elbo", generator=torch.Generator().manual_seed(seed))
        scores["-ELBO"] = elbo
        scores["-ELBO - PNG"] = elbo - test_complexity
        scores["latent Mahalanobis"] = mahalanobis(posterior_means(vae, normal), posterior_means(vae, test_images))
        scores["AE recon. MSE"] = autoencoder_error(autoencoder, test_images)
        scores["kNN pixels"] = knn_distance(normal, test_images)
        with torch.no_grad():
            scores["layers + mahalanobis"] = layer_mahalanobis(vae, normal, test_images)
            scores["latent kNN"] = latent_knn(vae, normal, test_images)
        rows[normal_class] = {name: auroc(scores[name], is_anomaly) for name in ONE_CLASS_SCORES}
        aurocs = ", ".join(f"{name} {value:.3f}" for name, value in rows[normal_class].items())
        print(f"  {time.perf_counter() - class_started:.0f} s: {aurocs}", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    return rows


def report(protocol: str, rows: dict[int, dict[str, float]], names: tuple[str, ...]) -> None:
    """The markdown table of AUROCs per class and their mean, then the JSON line."""
    first_column = "normal class" if protocol == "one-class" else "held-out class"
    print(f"\nAUROC per {first_column} ({protocol}):\n")
    print(f"| {first_column} | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for label, row in rows.items():
        print(f"| {label} {FASHION_MNIST_CLASSES[label]} | " + " | ".join(f"{row[n]:.3f}" for n in names) + " |")
    means = {name: round(sum(row[name] for row in rows.values()) / len(rows), 4) for name in names}
    print("| **mean** | " + " | ".join(f"**{means[n]:.3f}**" for n in names) + " |")
    per_class = {str(label): {name: round(row[name], 4) for name in names} for label, row in rows.items()}
    print(json.dumps({"protocol": protocol, "mean_auroc": means, "per_class": per_class}))


def main(args: argparse.Namespace) -> None:
    print(f"CPU: {cpu_info().describe()}; torch threads {torch.get_num_threads()}", flush=True)
    if args.protocol == "one-class":
        report(args.protocol, one_class(args), ONE_CLASS_SCORES)
    else:
        report(args.protocol, leave_one_out(args), LEAVE_ONE_OUT_SCORES)


if __name__ == "__main__":
    main(parse_args())
