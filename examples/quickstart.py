"""Build a small VAE, fit it for a few seconds to the bundled Fashion-MNIST sample, save it, write sample grids.

python examples/quickstart.py --output_dir outputs/quickstart
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from diffusers.utils import make_image_grid
from tqdm.auto import tqdm

from hf_vaegan import VAE, VAEPipeline

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "fashion_mnist_1k.npz"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/quickstart", help="Where the model and the grids go.")
    parser.add_argument("--data", default=str(FIXTURE), help="A .npz with `images` (uint8, N x 28 x 28).")
    parser.add_argument("--max_train_steps", type=int, default=300, help="Optimiser steps.")
    parser.add_argument("--train_batch_size", type=int, default=64, help="Images per step.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the weights, the batches and the samples.")
    return parser.parse_args()


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    images = torch.from_numpy(np.load(args.data)["images"]).float().div(127.5).sub(1).unsqueeze(1)
    vae = VAE(resolution=28, in_channels=1, latent_dim=16, base_channels=32)
    optimizer = torch.optim.Adam(vae.parameters(), lr=2e-3)
    progress = tqdm(range(args.max_train_steps), desc="training")
    for _ in progress:
        batch = images[torch.randint(len(images), (args.train_batch_size,))]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = vae.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.loss.backward()
        optimizer.step()
        progress.set_postfix(negative_elbo=f"{loss.loss.item():.1f}")

    output_dir = Path(args.output_dir)
    vae.eval().save_pretrained(output_dir / "vae")
    pipe = VAEPipeline.from_pretrained(output_dir / "vae")
    samples = pipe(batch_size=64, generator=torch.Generator().manual_seed(args.seed)).images
    make_image_grid(samples, rows=8, cols=8).resize((448, 448)).save(output_dir / "samples.png")
    originals = images[:8]
    reconstructions = pipe.reconstruct(originals).images
    make_image_grid(pipe.postprocess(originals, "pil") + reconstructions, rows=2, cols=8).resize((448, 112)).save(
        output_dir / "reconstructions.png"
    )
    print(f"model: {output_dir / 'vae'}\nsamples: {output_dir / 'samples.png'}")


if __name__ == "__main__":
    main()
