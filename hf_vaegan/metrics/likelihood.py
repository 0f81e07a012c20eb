"""Likelihood metrics of VAEs: negative ELBO, importance-weighted NLL (IWAE bound) and reconstruction error.

They work with any model with the interface of `hf_vaegan.VAE`: `encode(x).latent_dist` (a diagonal Gaussian with
`sample(generator)`, `mode()`, `kl()` and `log_prob(z)`, per example), `decode(z).sample` and
`reconstruction_nll(x, z)` (-log p(x|z) in nats, summed over pixels), with a standard normal prior. All values are per
image, in nats; [`evaluate_vae`] also reports bits per dimension.
"""

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from ..models.blocks import check_positive_int, standard_normal_log_prob
from .features import check_metric_images


@contextmanager
def evaluation_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Puts `model` in eval mode and disables gradients inside the block, restoring its previous mode after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def _batches(images: torch.Tensor, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    check_metric_images(images)
    check_positive_int("batch_size", batch_size)
    for batch in images.split(batch_size):
        yield batch.to(device)


def _per_image(
    vae: torch.nn.Module, images: torch.Tensor, batch_size: int, batch_values: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """`batch_values` of each batch of `images` on the model's device, with `vae` in evaluation mode: `(N,)` on CPU."""
    with evaluation_mode(vae):
        return torch.cat([batch_values(x).cpu() for x in _batches(images, batch_size, vae.device)])


def negative_elbo(
    vae: torch.nn.Module,
    images: torch.Tensor,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """-ELBO per image `(N,)`, in nats: E_q[-log p(x|z)] (Monte Carlo, `num_samples` draws) + KL(q(z|x) || p(z)).

    Uses `vae.loss` with `beta=1` whatever the model's training `beta`, so this is an upper bound on -log p(x).
    """
    check_positive_int("num_samples", num_samples)

    def batch_negative_elbo(x: torch.Tensor) -> torch.Tensor:
        losses = [vae.loss(x, beta=1.0, generator=generator, reduction="none").loss for _ in range(num_samples)]
        return sum(losses) / num_samples

    return _per_image(vae, images, batch_size, batch_negative_elbo)


def importance_weighted_nll(
    vae: torch.nn.Module,
    images: torch.Tensor,
    num_samples: int = 100,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Importance-weighted estimate of -log p(x) per image `(N,)`, in nats (the IWAE bound, Burda et al., 2016).

    -log (1/K sum_k p(x|z_k) p(z_k) / q(z_k|x)) with K = `num_samples` draws z_k ~ q(z|x). In expectation it
    upper-bounds -log p(x), is at most the negative ELBO (K = 1), and decreases towards -log p(x) as K grows.
    """
    check_positive_int("num_samples", num_samples)

    def batch_nll(x: torch.Tensor) -> torch.Tensor:
        posterior = vae.encode(x).latent_dist
        # A running log-sum-exp: memory stays that of one batch whatever K.
        log_sum = torch.full((len(x),), -math.inf, dtype=torch.float64, device=x.device)
        for _ in range(num_samples):
            z = posterior.sample(generator=generator)
            log_joint = standard_normal_log_prob(z) - vae.reconstruction_nll(x, z)
            log_sum = torch.logaddexp(log_sum, log_joint.double() - posterior.log_prob(z).double())
        return -(log_sum - math.log(num_samples))

    return _per_image(vae, images, batch_size, batch_nll)


def reconstruction_error(vae: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Mean squared error per image `(N,)` between images and their reconstructions from the posterior mean.

    Both in [-1, 1], averaged over pixels and channels (divide by 4 for the error on the [0, 1] scale).
    """

    def batch_errors(x: torch.Tensor) -> torch.Tensor:
        reconstruction = vae.decode(vae.encode(x).latent_dist.mode()).sample
        return (reconstruction - x).pow(2).flatten(1).mean(dim=1)

    return _per_image(vae, images, batch_size, batch_errors)


def evaluate_vae(
    vae: torch.nn.Module,
    images: torch.Tensor,
    num_importance_samples: int = 100,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
) -> dict[str, float]:
    """Dataset averages of the VAE metrics on `images` `(N, C, H, W)` in [-1, 1].

    Returns:
        `negative_elbo` and `nll` (IWAE, `num_importance_samples` draws) in nats per image, the same in bits per
        dimension (`elbo_bits_per_dim`, `nll_bits_per_dim`: nats / (C * H * W * ln 2)) and `reconstruction_mse`.
        Bits per dimension are those of the model's own likelihood (e.g. Bernoulli on intensities in [0, 1]), not of
        8-bit discretised pixels, so compare them only between models with the same likelihood.
    """
    num_dims = math.prod(images.shape[1:])
    elbo = negative_elbo(vae, images, generator=generator, batch_size=batch_size).double().mean().item()
    nll = importance_weighted_nll(vae, images, num_importance_samples, generator, batch_size).mean().item()
    return {
        "negative_elbo": elbo,
        "nll": nll,
        "elbo_bits_per_dim": elbo / (num_dims * math.log(2)),
        "nll_bits_per_dim": nll / (num_dims * math.log(2)),
        "reconstruction_mse": reconstruction_error(vae, images, batch_size).double().mean().item(),
    }
