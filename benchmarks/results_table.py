"""Evaluate every bundled Fashion-MNIST generative model the same way and print the README's results table.

    OMP_NUM_THREADS=1 python benchmarks/results_table.py --data fashion_mnist/test.npz

Each model goes through `hf_vaegan.metrics.evaluate_model`, the protocol of `hf-vaegan evaluate` (same defaults, so
`hf-vaegan evaluate MODEL --data fashion_mnist/test.npz` reproduces a row): `--num-samples` generated images against
the whole reference split in the feature space of the packaged Fashion-MNIST classifier (FID, KID mean +- std over
subsets, precision/recall with k = 3), the classifier's agreement with the requested class for the conditional GAN,
and for VAEs with a pixel likelihood the negative ELBO and the IWAE bound of -log p(x) in nats per image on the first
`--likelihood-images` reference images. A VAE-GAN trained with the feature likelihood has no pixel likelihood: its
ELBO is measured in discriminator features, so the table leaves it out.
"""

import argparse
from pathlib import Path

import hf_vaegan
from hf_vaegan.auto import load_pretrained
from hf_vaegan.data.loading import load_image_dataset
from hf_vaegan.hardware import cpu_info
from hf_vaegan.metrics import FashionClassifierFeatures, evaluate_model

BUNDLED_DIR = Path(hf_vaegan.__file__).parent / "pretrained"
BUNDLED_MODELS = ("fashion-vae", "fashion-vaegan", "fashion-cgan")
COLUMNS = (
    "model",
    "FID",
    "KID",
    "precision",
    "recall",
    "class accuracy",
    "-ELBO (nats)",
    "NLL, IWAE (nats)",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="Reference images, e.g. the Fashion-MNIST test split .npz.")
    parser.add_argument("--split", default="test", help="Split of --data (ignored by .npz files).")
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(BUNDLED_MODELS),
        help="Bundled model names (folders of hf_vaegan/pretrained), other folders or Hub ids.",
    )
    parser.add_argument("--num-samples", type=int, default=10_000, help="Generated images per model.")
    parser.add_argument("--likelihood-images", type=int, default=1_000, help="VAEs: images for ELBO and IWAE.")
    parser.add_argument("--importance-samples", type=int, default=100, help="VAEs: K of the IWAE bound.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=500)
    return parser.parse_args(argv)


def resolve_model(name: str) -> str:
    bundled = BUNDLED_DIR / name
    return str(bundled) if bundled.is_dir() else name


def table_row(name: str, model, metrics: dict[str, float]) -> list[str]:
    pixel_likelihood = "nll" in metrics and model.config.get("likelihood") != "features"
    return [
        f"`{name}`",
        f"{metrics['fid']:.2f}",
        f"{metrics['kid_mean']:.4f} +- {metrics['kid_std']:.4f}",
        f"{metrics['precision']:.3f}",
        f"{metrics['recall']:.3f}",
        f"{metrics['class_accuracy']:.1%}" if "class_accuracy" in metrics else "-",
        f"{metrics['negative_elbo']:.1f}" if pixel_likelihood else "-",
        f"{metrics['nll']:.1f}" if pixel_likelihood else "-",
    ]


def main(args: argparse.Namespace) -> None:
    print(f"CPU: {cpu_info().describe()}", flush=True)
    extractor = FashionClassifierFeatures()
    rows = []
    for name in args.models:
        model = load_pretrained(resolve_model(name)).eval()
        channels = model.config.get("in_channels", model.config.get("out_channels"))
        real_images, _ = load_image_dataset(args.data, split=args.split, num_channels=channels).to_tensors(
            model.config.resolution
        )
        metrics = evaluate_model(
            model,
            real_images,
            args.num_samples,
            extractor,
            dataset=args.data,
            split=args.split,
            seed=args.seed,
            likelihood_images=args.likelihood_images,
            num_importance_samples=args.importance_samples,
            batch_size=args.batch_size,
        )
        print(f"{name}: {metrics}", flush=True)
        rows.append(table_row(name, model, metrics))

    print(
        f"\n{args.num_samples:,} samples per model against the {len(real_images):,} images of {Path(args.data).name}, "
        f"features of the packaged Fashion-MNIST classifier; likelihoods on {args.likelihood_images:,} images, "
        f"K = {args.importance_samples}.\n"
    )
    print("| " + " | ".join(COLUMNS) + " |")
    print("| --- |" + " ---: |" * (len(COLUMNS) - 1))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(parse_args())
