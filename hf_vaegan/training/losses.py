"""The losses of every recipe, each with its formula: what the trainers add up, phase by phase.

Notation: ``D(x)`` the discriminator's logit (patch logits for a PatchGAN: every term is a mean over them too),
``G(z)`` a generated image, ``E`` a batch mean, ``softplus(t) = log(1 + exp(t))``.

- adversarial losses (:func:`discriminator_loss`, :func:`generator_loss`): non-saturating logistic (Goodfellow et
  al., 2014; StyleGAN2), hinge (Miyato et al., 2018), WGAN-GP's critic (Gulrajani et al., 2017);
- input-gradient penalties (:func:`input_gradient_penalty`): R1 (Mescheder et al., 2018), WGAN-GP;
- :func:`mode_seeking_loss` (Mao et al., 2019);
- :func:`feature_matching_loss` (pix2pixHD, Wang et al., 2018), :func:`multiscale_l1` (the L1 pyramid),
  :func:`total_variation` (flow smoothness).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..models.tryon import flow_in_pixels

GAN_LOSSES = ("non-saturating", "hinge", "wgan-gp")
# WGAN-GP: weight of the gradient penalty, and of the drift term keeping critic outputs near 0 (Karras et al., 2018).
GRADIENT_PENALTY_WEIGHT = 10.0
WGAN_DRIFT_WEIGHT = 1e-3


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    """The discriminator's adversarial loss (without penalties):

    - ``non-saturating``: ``E softplus(-D(x)) + E softplus(D(G(z)))``;
    - ``hinge``: ``E relu(1 - D(x)) + E relu(1 + D(G(z)))``;
    - ``wgan-gp``: ``E D(G(z)) - E D(x) + 0.001 E D(x)^2`` (the drift term of Karras et al., 2018).

    Args:
        real_logits: Logits of real images; positive means "real".
        fake_logits: Logits of generated images.
        loss: One of :data:`GAN_LOSSES`.
    """
    if loss == "non-saturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if loss == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    if loss == "wgan-gp":
        return fake_logits.mean() - real_logits.mean() + WGAN_DRIFT_WEIGHT * real_logits.pow(2).mean()
    raise ValueError(f"loss must be one of {GAN_LOSSES}, got {loss!r}")


def generator_loss(fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    """The generator's adversarial loss: ``E softplus(-D(G(z)))`` (non-saturating), ``-E D(G(z))`` (hinge,
    WGAN-GP)."""
    if loss == "non-saturating":
        return F.softplus(-fake_logits).mean()
    if loss in ("hinge", "wgan-gp"):
        return -fake_logits.mean()
    raise ValueError(f"loss must be one of {GAN_LOSSES}, got {loss!r}")


def input_gradient_penalty(outputs: torch.Tensor, inputs: torch.Tensor, target_norm: float = 0.0) -> torch.Tensor:
    """``E (||d sum(outputs) / d inputs|| - target_norm)^2`` over the batch, differentiable (``create_graph``).

    ``target_norm=0`` on real images is R1, ``E ||grad D(x)||^2`` (Mescheder et al., 2018; the trainers weight it by
    ``gamma / 2`` and, lazily applied every ``k`` steps, by ``k``); ``target_norm=1`` on random interpolates of real
    and generated images is the WGAN-GP penalty (weight :data:`GRADIENT_PENALTY_WEIGHT`).
    """
    (gradients,) = torch.autograd.grad(outputs.float().sum(), inputs, create_graph=True)
    squared_norms = gradients.float().pow(2).flatten(1).sum(dim=1)
    if target_norm == 0.0:
        return squared_norms.mean()
    return (squared_norms.add(1e-12).sqrt() - target_norm).pow(2).mean()


def lazy_r1(
    real_logits: torch.Tensor, real_images: torch.Tensor, gamma: float, interval: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """StyleGAN2's lazy R1 at a step where it applies: ``(gamma / 2 * interval * R1, R1)``, ``R1 = E ||grad D(x)||^2``
    on real images (:func:`input_gradient_penalty`); applied every ``interval`` steps, it weighs ``gamma / 2`` on
    average. ``real_images`` must have required gradients before ``D`` saw them."""
    r1 = input_gradient_penalty(real_logits, real_images)
    return 0.5 * gamma * interval * r1, r1


def mode_seeking_loss(
    noise: torch.Tensor, images: torch.Tensor, twin_noise: torch.Tensor, twins: torch.Tensor
) -> torch.Tensor:
    """``1 / (E [mean|G(z1) - G(z2)| / mean|z1 - z2|] + 1e-5)`` over pairs ``(images, twins)`` generated from
    ``(noise, twin_noise)`` with the same labels (Mao et al., 2019): large when the generator ignores its noise."""
    image_distance = (images - twins).abs().float().flatten(1).mean(dim=1)
    noise_distance = (noise - twin_noise).abs().mean(dim=1)
    return 1.0 / ((image_distance / noise_distance).mean() + 1e-5)


def feature_matching_loss(
    real_features: Sequence[torch.Tensor], fake_features: Sequence[torch.Tensor]
) -> torch.Tensor:
    """``mean over layers l of E |D_l(y) - D_l(G(x))|``: the L1 distance between the discriminator's hidden features
    of real and generated images (pix2pixHD). The real features are constants; gradients reach the generator through
    ``fake_features``."""
    if len(real_features) != len(fake_features) or not real_features:
        raise ValueError(f"need the same non-zero number of layers, got {len(real_features)} and {len(fake_features)}")
    pairs = zip(real_features, fake_features, strict=True)
    losses = [F.l1_loss(fake.float(), real.detach().float()) for real, fake in pairs]
    return torch.stack(losses).mean()


def multiscale_l1(images: torch.Tensor, targets: torch.Tensor, num_scales: int = 3) -> torch.Tensor:
    """``mean over s < num_scales of E |P_s(images) - P_s(targets)|``, ``P_s`` average pooling by ``2**s``: an L1
    pyramid, whose coarse levels pass gradients over a wider area than the pixel-exact L1 alone."""
    images, targets = images.float(), targets.float()
    losses = []
    for scale in range(num_scales):
        if scale:
            images, targets = F.avg_pool2d(images, 2), F.avg_pool2d(targets, 2)
        losses.append(F.l1_loss(images, targets))
    return torch.stack(losses).mean()


def total_variation(flow: torch.Tensor) -> torch.Tensor:
    """``(E |f[., x+1] - f[., x]| + E |f[y+1, .] - f[y, .]|) / 2`` of a flow field ``(B, 2, H, W)`` in
    ``grid_sample`` units, measured in pixels (so it does not depend on the image size)."""
    pixels = flow_in_pixels(flow)
    return (pixels.diff(dim=-1).abs().mean() + pixels.diff(dim=-2).abs().mean()) / 2


def flow_endpoint_error(flow: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The mean distance in pixels between a flow field ``(B, 2, H, W)`` and a target flow (same shape, both in
    ``grid_sample`` units) over the pixels where the target is finite (NaN: no target there); 0 if it is nowhere.

    The renderer's flow supervises the warp directly: thin stripes shifted by a fraction of a pixel cost the
    appearance losses little, but their full distance here."""
    known = torch.isfinite(target).all(dim=1, keepdim=True)
    difference = flow_in_pixels(flow) - flow_in_pixels(torch.nan_to_num(target))
    # The smooth form of the distance: finite gradients where the flow is already exact.
    distances = (difference.square().sum(dim=1, keepdim=True) + 1e-6).sqrt()
    return (distances * known).sum() / known.sum().clamp(min=1)
