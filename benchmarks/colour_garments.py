"""New garments in colour: the colour garment GAN against a colour VAE and against the grey GAN + colourisation.

All three draw the wardrobe's 64x64 colour garments (``examples/make_garment_dataset.py``: the six wearable
Fashion-MNIST classes, colourised and patterned on white):

- ``colour GAN``: a class-conditional ``Generator`` trained on those garments (``--gan``, the bundled
  ``wardrobe-garment-gan`` by default);
- ``colour VAE``: a ``VAE`` trained on the same garments (``--vae``; unconditional, so no class accuracy);
- ``grey GAN + colourisation``: the Fashion-MNIST GAN (``--grey_gan``, the bundled ``fashion-cgan``) draws a 28x28 item
  of the class, which :func:`hf_vaegan.data.make_garment` colourises and patterns, as the Space did before.

Each is scored alike by :func:`hf_vaegan.metrics.evaluate_model`: ``--num_samples`` class-balanced samples against
``--test_data`` (FID, KID, precision/recall) in the feature space of the packaged garment classifier
(``hf_vaegan.metrics.GARMENT_CLASSIFIER_PATH``, or ``--extractor``), whose agreement with the requested class is the
class accuracy. Then the time to draw 64 garments on one thread (the median of ``--timing_rounds``, the three taking
turns round by round, so machine load hits them alike). Prints the CPU, a table and one final JSON line.

    OMP_NUM_THREADS=1 python benchmarks/colour_garments.py --test_data garments64/test.npz --vae colour-vae
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hf_vaegan import VAE, Generator
from hf_vaegan.data import GARMENT_LABELS, make_garment
from hf_vaegan.data.loading import load_image_dataset
from hf_vaegan.hardware import cpu_info
from hf_vaegan.metrics import GARMENT_CLASSIFIER_PATH, FashionClassifierFeatures, evaluate_model

PRETRAINED = Path(__file__).resolve().parents[1] / "hf_vaegan" / "pretrained"
RESOLUTION = 64
TIMED_BATCH = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test_data", required=True, help="The garments' test split (garments64/test.npz).")
    parser.add_argument("--gan", type=Path, default=PRETRAINED / "wardrobe-garment-gan", help="Colour GAN pipeline.")
    parser.add_argument("--vae", type=Path, default=None, help="A colour VAE (a train_vae.py output); optional.")
    parser.add_argument("--grey_gan", type=Path, default=PRETRAINED / "fashion-cgan", help="Fashion-MNIST GAN.")
    parser.add_argument(
        "--extractor", type=Path, default=GARMENT_CLASSIFIER_PATH, help="A FashionClassifier folder (features)."
    )
    parser.add_argument("--num_samples", type=int, default=6_000, help="Samples per model (default 6,000).")
    parser.add_argument("--timing_rounds", type=int, default=10, help="Rounds of the sampling-time comparison.")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


class ColourisedGreyGAN(nn.Module):
    """The Fashion-MNIST GAN's items of the wearable classes, colourised by ``make_garment`` at 64x64: a sampler
    with the interface ``evaluate_model`` takes (``sample(n, class_labels=, generator=)``, ``config.num_classes``)."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator
        self.config = {"num_classes": len(GARMENT_LABELS)}

    @property
    def device(self) -> torch.device:
        return self.generator.device

    @torch.no_grad()
    def sample(self, n: int, class_labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        fashion_labels = torch.tensor(GARMENT_LABELS)[class_labels.cpu()]
        items = self.generator.sample(n, class_labels=fashion_labels, generator=generator)
        items = ((items[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
        seeds = torch.randint(0, 2**31 - 1, (n,), generator=generator).tolist()
        garments = [
            make_garment(item, int(label), seed, (RESOLUTION, RESOLUTION)).image
            for item, label, seed in zip(items, fashion_labels, seeds, strict=True)
        ]
        return torch.from_numpy(np.stack(garments)).permute(0, 3, 1, 2).float() / 127.5 - 1


def load_models(args: argparse.Namespace) -> dict[str, nn.Module]:
    models = {"colour GAN": Generator.from_pretrained(args.gan, subfolder="gan")}
    if args.vae is not None:
        models["colour VAE"] = VAE.from_pretrained(args.vae)
    models["grey GAN + colourisation"] = ColourisedGreyGAN(Generator.from_pretrained(args.grey_gan, subfolder="gan"))
    return {name: model.eval() for name, model in models.items()}


@torch.no_grad()
def sampling_times(models: dict[str, nn.Module], rounds: int) -> dict[str, float]:
    """Median seconds to draw `TIMED_BATCH` garments, the models taking turns round by round."""
    times = {name: [] for name in models}
    labels = torch.arange(TIMED_BATCH) % len(GARMENT_LABELS)
    for round_index in range(rounds + 1):  # round 0 warms up
        for name, model in models.items():
            generator = torch.Generator().manual_seed(round_index)
            started = time.perf_counter()
            if model.config.get("num_classes", 0):
                model.sample(TIMED_BATCH, class_labels=labels, generator=generator)
            else:
                model.sample(TIMED_BATCH, generator=generator)
            if round_index:
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    cpu = cpu_info().describe()
    print(f"CPU: {cpu}; {torch.get_num_threads()} thread", flush=True)
    test_images, _ = load_image_dataset(args.test_data, num_channels=3).to_tensors(RESOLUTION)
    extractor = FashionClassifierFeatures.from_folder(args.extractor, device="cpu")
    models = load_models(args)
    rows = {}
    for name, model in models.items():
        metrics = evaluate_model(
            model,
            test_images,
            args.num_samples,
            extractor,
            dataset=args.test_data,
            seed=args.seed,
            likelihood_images=100,
            num_importance_samples=10,
        )
        rows[name] = metrics
        print(f"{name}: {json.dumps(metrics)}", flush=True)
    for name, seconds in sampling_times(models, args.timing_rounds).items():
        rows[name]["ms_per_64"] = 1000 * seconds

    print(
        f"\n{args.num_samples:,} samples each (class-balanced for the conditional models) against "
        f"{len(test_images):,} test garments, in the features of {extractor.name}; sampling time: median of "
        f"{args.timing_rounds} rounds of {TIMED_BATCH} garments, 1 thread\n"
    )
    print("| model | FID | KID | precision | recall | class accuracy | ms per 64 garments |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, row in rows.items():
        accuracy = f"{row['class_accuracy']:.1%}" if "class_accuracy" in row else "-"
        print(
            f"| {name} | {row['fid']:.2f} | {row['kid_mean']:.4f} +- {row['kid_std']:.4f} | {row['precision']:.3f} | "
            f"{row['recall']:.3f} | {accuracy} | {row['ms_per_64']:.1f} |"
        )
    summary = {"cpu": cpu, "extractor": extractor.name, "num_samples": args.num_samples, "models": rows}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
