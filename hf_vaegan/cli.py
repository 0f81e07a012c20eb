"""The `hf-vaegan` command: sample from and evaluate models saved in folders or on the Hub.

hf-vaegan sample MODEL --num-images 64 --output grid.png [--class-label K | --all-classes] [--seed S]
hf-vaegan evaluate MODEL --data test.npz [--num-samples 10000]

This module only parses; `hf_vaegan.commands` does the work and is imported once a command runs, so that `--help` and
usage errors answer without importing torch.
"""

import argparse
import sys

DEFAULT_SPLIT = "test"


class ArgumentParser(argparse.ArgumentParser):
    """Usage errors on one line of stderr with exit code 2, like every other error of the command."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="hf-vaegan", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    sample = commands.add_parser("sample", help="Draw images from a generator, VAE or VAE-GAN.")
    sample.add_argument("model", help="A folder written by save_pretrained, or a Hub id.")
    sample.add_argument("--num-images", type=int, default=64, help="How many images (default 64).")
    sample.add_argument("--output", required=True, help="A .png grid, or a .npz with `images` (uint8) and `labels`.")
    labels = sample.add_mutually_exclusive_group()
    labels.add_argument("--class-label", type=int, help="Conditional generators: the class of every image.")
    labels.add_argument(
        "--all-classes", action="store_true", help="Conditional generators: cycle through the classes (a column each)."
    )
    sample.add_argument("--seed", type=int, default=0, help="Seed of the noise (default 0).")
    sample.add_argument("--truncation", type=float, help="GANs: draw the noise from a normal cut at +-truncation.")
    sample.add_argument("--batch-size", type=int, default=500, help="Images per forward pass (default 500).")
    sample.add_argument("--device", default=None, help="Torch device (default: cuda when available, else cpu).")

    evaluate = commands.add_parser(
        "evaluate", help="Print one JSON line of metrics: FID, KID, precision/recall (+ class accuracy, likelihoods)."
    )
    evaluate.add_argument("model", help="A folder written by save_pretrained, or a Hub id.")
    evaluate.add_argument(
        "--data",
        required=True,
        help="Reference images: a Hub dataset id (e.g. zalando-datasets/fashion_mnist, loaded with "
        "datasets.load_dataset), a .npz with `images`, an image folder or a save_to_disk folder.",
    )
    evaluate.add_argument(
        "--split", help=f"Split of --data (default {DEFAULT_SPLIT}); not for a .npz file, which holds one split."
    )
    evaluate.add_argument("--num-samples", type=int, default=10_000, help="Generated images (default 10,000).")
    evaluate.add_argument(
        "--extractor",
        default="fashion",
        help="Feature space: 'fashion' (the packaged Fashion-MNIST classifier), 'garments' (the packaged classifier "
        "of the wardrobe's 64x64 colour garments), a folder holding a FashionClassifier (examples/train_classifier.py "
        "writes one), 'inception' (needs torch-fidelity), or a transformers vision model id or folder, e.g. "
        "facebook/dinov2-base.",
    )
    evaluate.add_argument("--likelihood-images", type=int, default=1_000, help="VAEs: images for ELBO and IWAE.")
    evaluate.add_argument("--importance-samples", type=int, default=100, help="VAEs: K of the IWAE bound.")
    evaluate.add_argument("--seed", type=int, default=0, help="Seed of the generated images and KID subsets.")
    evaluate.add_argument("--batch-size", type=int, default=500, help="Images per forward pass (default 500).")
    evaluate.add_argument("--device", default=None, help="Torch device (default: cuda when available, else cpu).")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command; every error is one line on stderr and exit code 2 (130 when interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        from . import commands

        getattr(commands, args.command)(args)
    except KeyboardInterrupt:
        print(f"hf-vaegan {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        message = " ".join(str(error).split()) or "(no message)"
        if not isinstance(error, (ValueError, OSError, ImportError)):
            message = f"{type(error).__name__}: {message}"
        print(f"hf-vaegan {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
