"""Training an anomaly detector on normal images only: a `TransformationVAE` (VAE + transformation head), and the
plain autoencoder the benchmark compares it with.

Both run a fixed number of Adam steps on a tensor of images in memory (a class of Fashion-MNIST is 6,000 images), as
the one-class benchmark trains ten of each; the recipe is documented in `benchmarks/anomaly_auroc.py` and the README.
"""

import torch

from ..models import AutoEncoder
from ..models.blocks import check_image_batch, check_positive_int
from ..models.transformation_vae import TransformationVAE


def _batches(images: torch.Tensor, batch_size: int, num_steps: int, generator: torch.Generator):
    """`num_steps` batches of `batch_size` images, in epochs of a fresh random order each."""
    check_image_batch(images, (1, 3), value_range=(-1.0, 1.0), name="images")
    check_positive_int("num_steps", num_steps)
    check_positive_int("batch_size", batch_size)
    if len(images) < batch_size:
        raise ValueError(f"{len(images)} training images cannot fill a batch of {batch_size}")
    steps_per_epoch = len(images) // batch_size
    for step in range(num_steps):
        if step % steps_per_epoch == 0:
            order = torch.randperm(len(images), generator=generator)
        start = (step % steps_per_epoch) * batch_size
        yield images[order[start : start + batch_size]]


def train_transformation_vae(
    images: torch.Tensor,
    num_steps: int,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    transformation_weight: float = 100.0,
    seed: int = 0,
    **config,
) -> TransformationVAE:
    """A `TransformationVAE(**config)` trained on normal `images` `(N, C, R, R)` in [-1, 1], returned in eval mode.

    Each step minimises the negative ELBO of a batch (nats per image) plus `transformation_weight` times the
    cross-entropy of the transformation head on every transformation of every image of the batch. The weight puts
    the two terms on a similar scale (a 28x28 image's ELBO is a few hundred nats, the cross-entropy at most
    log(num_transformations)). The Gaussian of the normal features is then fitted on `images`
    (`TransformationVAE.fit_normal_features`, which also keeps `num_reference_images` of them, drawn with `seed`), so
    that the model scores with `"mahalanobis"` and `"mahalanobis_knn"` as returned.
    """
    torch.manual_seed(seed)
    vae = TransformationVAE(**config)
    optimizer = torch.optim.Adam(vae.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    vae.train()
    for batch in _batches(images, batch_size, num_steps, generator):
        elbo = vae.loss(batch, generator=generator).loss
        loss = elbo + transformation_weight * vae.transformation_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    vae.eval()
    with torch.autocast(images.device.type, enabled=False):  # the statistics in float32 even under bf16 training
        vae.fit_normal_features(images, generator=torch.Generator().manual_seed(seed))
    return vae


def train_autoencoder(
    images: torch.Tensor, num_steps: int, batch_size: int = 128, learning_rate: float = 2e-3, seed: int = 0, **config
) -> AutoEncoder:
    """An `AutoEncoder(**config)` trained on `images` `(N, C, R, R)` in [-1, 1] with its mean squared error,
    returned in eval mode: the reconstruction-error baseline of the anomaly benchmark."""
    torch.manual_seed(seed)
    autoencoder = AutoEncoder(**config)
    optimizer = torch.optim.Adam(autoencoder.parameters(), lr=learning_rate)
    autoencoder.train()
    for batch in _batches(images, batch_size, num_steps, torch.Generator().manual_seed(seed)):
        loss = autoencoder.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return autoencoder.eval()
