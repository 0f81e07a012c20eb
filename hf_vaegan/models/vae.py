"""A variational autoencoder with a Gaussian posterior over a latent vector and a choice of pixel likelihoods."""

import math
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from .blocks import (
    IMAGE_RANGE,
    NORM_TYPES,
    ConvDecoder,
    ConvEncoder,
    DecoderOutput,
    DiagonalGaussian,
    check_choice,
    check_image_batch,
    check_image_config,
    check_non_negative_number,
    check_positive_int,
    check_vectors,
)
from .modeling_utils import VaeGanModelMixin

LIKELIHOODS = ("bernoulli", "gaussian", "laplace")


@dataclass
class VAEEncoderOutput(BaseOutput):
    """
    Args:
        latent_dist (`DiagonalGaussian`): the posterior q(z|x); `.mean`, `.logvar`, `.std` are `(batch_size,
            latent_dim)`; `.sample(generator=...)`, `.mode()`, `.kl()` (per example, nats), `.log_prob(z)`.
    """

    latent_dist: DiagonalGaussian


@dataclass
class VAEOutput(BaseOutput):
    """
    Args:
        sample (`torch.Tensor` of shape `(batch_size, in_channels, resolution, resolution)`): reconstructions in
            [-1, 1] (the mean of p(x|z)).
        latent_dist (`DiagonalGaussian`): the posterior the latents were taken from.
    """

    sample: torch.Tensor
    latent_dist: DiagonalGaussian | None = None


@dataclass
class VAELossOutput(BaseOutput):
    """
    The negative ELBO and its two terms, in nats: `loss = reconstruction_loss + beta * kl_loss`.

    Args:
        loss (`torch.Tensor`): the total; a scalar (batch mean), or `(batch_size,)` with `reduction="none"`.
        reconstruction_loss (`torch.Tensor`): -log p(x|z), summed over pixels.
        kl_loss (`torch.Tensor`): KL(q(z|x) || N(0, I)), summed over latent dimensions.
    """

    loss: torch.Tensor
    reconstruction_loss: torch.Tensor | None = None
    kl_loss: torch.Tensor | None = None


class VAE(VaeGanModelMixin):
    r"""A convolutional variational autoencoder (Kingma & Welling, 2014) with a vector latent and a N(0, I) prior.

    The encoder gives the mean and log-variance of q(z|x); the decoder gives the parameters of p(x|z): Bernoulli
    logits on pixels rescaled to [0, 1], or the mean of a Gaussian or Laplace distribution with a learned per-channel
    scale (a calibrated decoder, Rybkin et al. 2021). Images are `(B, in_channels, resolution, resolution)` in [-1, 1]:
    `encode`, `forward`, `loss` and `reconstruction_nll` refuse NaN, infinite or out-of-range values rather than
    return a meaningless likelihood. Inputs of another float dtype are cast to the model's.

    Parameters:
        resolution (`int`, defaults to 28): side of the square images; one of 28, 32, 64, 128, 256.
        in_channels (`int`, defaults to 1): 1 (greyscale) or 3 (RGB).
        latent_dim (`int`, defaults to 16): size of the latent vector.
        base_channels (`int`, defaults to 32): width of the first conv layer; doubles at each downsampling (to 8x).
        likelihood (`str`, defaults to `"bernoulli"`): `"bernoulli"`, `"gaussian"` or `"laplace"`.
        beta (`float`, defaults to 1.0): weight of the KL term in `loss()` (beta-VAE, Higgins et al. 2017).
        norm_type (`str`, defaults to `"group"`): `"group"`, `"batch"` or `"none"`.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["ConvEncoder", "ConvDecoder"]

    model_card_tags = ("vae", "variational-autoencoder")
    pipeline_tag = "unconditional-image-generation"

    @register_to_config
    def __init__(
        self,
        *,
        resolution: int = 28,
        in_channels: int = 1,
        latent_dim: int = 16,
        base_channels: int = 32,
        likelihood: str = "bernoulli",
        beta: float = 1.0,
        norm_type: str = "group",
    ):
        super().__init__()
        check_image_config(resolution, in_channels, base_channels, latent_dim, channels_name="in_channels")
        check_choice("likelihood", likelihood, LIKELIHOODS)
        check_choice("norm_type", norm_type, NORM_TYPES)
        check_non_negative_number("beta", beta)
        self.encoder = ConvEncoder(in_channels, resolution, base_channels, norm_type)
        self.to_posterior = nn.Linear(self.encoder.num_features, 2 * latent_dim)
        self.decoder = ConvDecoder(latent_dim, in_channels, resolution, base_channels, norm_type)
        if likelihood != "bernoulli":
            self.log_scale = nn.Parameter(torch.full((in_channels, 1, 1), math.log(0.1)))

    def encode(self, sample: torch.Tensor, return_dict: bool = True) -> VAEEncoderOutput | tuple:
        """Encodes images `(B, in_channels, resolution, resolution)` in [-1, 1] into the posterior q(z|x)."""
        posterior = self._posterior(self._check_sample(sample))
        return VAEEncoderOutput(latent_dist=posterior) if return_dict else (posterior,)

    def _check_sample(self, sample: torch.Tensor) -> torch.Tensor:
        channels, resolution = self.config.in_channels, self.config.resolution
        return check_image_batch(sample, channels, resolution, value_range=IMAGE_RANGE, dtype=self.dtype)

    def _posterior(self, sample: torch.Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(self.to_posterior(self.encoder(sample).flatten(1)))

    def _decoder_parameters(self, latents: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits, or the mean in [-1, 1] for the Gaussian and Laplace likelihoods."""
        raw = self.decoder(latents)
        return raw if self.config.likelihood == "bernoulli" else torch.tanh(raw)

    def decode(self, latents: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple:
        """Decodes latents `(B, latent_dim)` into images `(B, in_channels, resolution, resolution)` in [-1, 1]."""
        latents = check_vectors(latents, self.config.latent_dim, "latents", self.dtype)
        parameters = self._decoder_parameters(latents)
        # 2 * sigmoid(l) - 1 == tanh(l / 2): the Bernoulli mean, rescaled to [-1, 1]
        images = torch.tanh(parameters / 2) if self.config.likelihood == "bernoulli" else parameters
        return DecoderOutput(sample=images) if return_dict else (images,)

    def forward(
        self,
        sample: torch.Tensor,
        sample_posterior: bool = False,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> VAEOutput | tuple:
        """Reconstructs `sample` from the posterior mean (or a posterior sample with `sample_posterior=True`).

        With `return_dict=False`, the tuple `(reconstruction,)` of tensors only, as diffusers' `AutoencoderKL` (what
        `torch.jit.trace` and ONNX export need); the posterior is in the [`VAEOutput`].
        """
        posterior = self.encode(sample).latent_dist
        latents = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        reconstruction = self.decode(latents).sample
        return VAEOutput(sample=reconstruction, latent_dist=posterior) if return_dict else (reconstruction,)

    def reconstruction_nll(self, sample: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """-log p(sample | latents) per example, summed over pixels, in nats: shape `(B,)`."""
        sample = self._check_sample(sample)
        return self._reconstruction_nll(sample, check_vectors(latents, self.config.latent_dim, "latents", self.dtype))

    def _reconstruction_nll(self, sample: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        parameters = self._decoder_parameters(latents)
        likelihood = self.config.likelihood
        if likelihood == "bernoulli":
            targets = (sample + 1) / 2
            per_pixel = nn.functional.binary_cross_entropy_with_logits(parameters, targets, reduction="none")
        elif likelihood == "gaussian":
            scaled = (sample - parameters) * torch.exp(-self.log_scale)
            per_pixel = 0.5 * scaled.pow(2) + self.log_scale + 0.5 * math.log(2 * math.pi)
        else:
            per_pixel = (sample - parameters).abs() * torch.exp(-self.log_scale) + self.log_scale + math.log(2)
        return per_pixel.flatten(1).sum(dim=1)

    def loss(
        self,
        sample: torch.Tensor,
        beta: float | None = None,
        generator: torch.Generator | None = None,
        reduction: str = "mean",
    ) -> VAELossOutput:
        """The negative ELBO of `sample` with one reparameterised posterior sample (gradients flow through it).

        Args:
            sample: images `(B, in_channels, resolution, resolution)` in [-1, 1].
            beta: weight of the KL term; defaults to `config.beta` (pass it to schedule a KL warm-up).
            generator: makes the posterior sample reproducible.
            reduction: `"mean"` over the batch, or `"none"` for per-example values `(B,)`.
        """
        check_choice("reduction", reduction, ("mean", "none"))
        beta = self.config.beta if beta is None else beta
        check_non_negative_number("beta", beta)
        # One check of `sample` for both terms (a value check reads the tensor back).
        sample = self._check_sample(sample)
        posterior = self._posterior(sample)
        reconstruction_loss = self._reconstruction_nll(sample, posterior.sample(generator=generator))
        kl_loss = posterior.kl()
        loss = reconstruction_loss + beta * kl_loss
        if reduction == "mean":
            loss, reconstruction_loss, kl_loss = loss.mean(), reconstruction_loss.mean(), kl_loss.mean()
        return VAELossOutput(loss=loss, reconstruction_loss=reconstruction_loss, kl_loss=kl_loss)

    @torch.no_grad()
    def sample(self, num_images: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws `num_images` images from the prior: `(num_images, in_channels, resolution, resolution)` in [-1, 1]."""
        check_positive_int("num_images", num_images)
        latents = randn_tensor(
            (num_images, self.config.latent_dim), generator=generator, device=self.device, dtype=self.dtype
        )
        return self.decode(latents).sample

    def usage_snippet(self, repo_id: str) -> str:
        c = self.config
        return f'''import torch
from diffusers import AutoModel

vae = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
generator = torch.Generator().manual_seed(0)
with torch.no_grad():
    samples = vae.sample(8, generator=generator)     # (8, {c.in_channels}, {c.resolution}, {c.resolution}) in [-1, 1]
    posterior = vae.encode(samples).latent_dist       # q(z|x): mean, logvar, sample(), kl()
    reconstruction = vae.decode(posterior.mode()).sample
    negative_elbo = vae.loss(samples, reduction="none").loss  # per image, in nats: high for outliers'''
