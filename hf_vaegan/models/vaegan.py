"""A VAE-GAN (Larsen et al., 2016): a VAE whose decoder also learns against a discriminator, in one model.

Every sibling file this model needs is imported here directly: diffusers copies only the relative imports of the top
module file when it loads a local folder as remote code.
"""

import torch
from diffusers.configuration_utils import register_to_config

from .blocks import NORM_TYPES, DecoderOutput, DiagonalGaussian, check_choice, check_vectors
from .discriminator import Discriminator, DiscriminatorOutput
from .modeling_utils import VaeGanModelMixin
from .vae import LIKELIHOODS, VAE, VAEEncoderOutput, VAEOutput

VAEGAN_LIKELIHOODS = ("features", *LIKELIHOODS)


def feature_reconstruction_nll(real_features: torch.Tensor, reconstruction_features: torch.Tensor) -> torch.Tensor:
    """-log N(real_features; reconstruction_features, I) per example, without its constant: `(B,)`, in nats.

    The learned similarity of Larsen et al. (2016): half the squared distance between discriminator features.
    """
    return 0.5 * (real_features - reconstruction_features).pow(2).flatten(1).sum(dim=1)


class VAEGAN(VaeGanModelMixin):
    r"""A VAE-GAN (Larsen et al., 2016): a variational autoencoder trained with a GAN discriminator, whose hidden
    features also measure how well an image is reconstructed.

    Use it like a `VAE` (`encode`, `decode`, `sample`, `loss`); `discriminator` scores images as real or fake. `vae`
    and `discriminator` are the two halves, each a full hf-vaegan model that can be saved on its own. Images are
    `(B, in_channels, resolution, resolution)` in [-1, 1].

    Parameters:
        resolution (`int`, defaults to 28): side of the square images; one of 28, 32, 64, 128, 256.
        in_channels (`int`, defaults to 1): 1 (greyscale) or 3 (RGB).
        latent_dim (`int`, defaults to 32): size of the latent vector.
        base_channels (`int`, defaults to 32): width of the first conv layer of the encoder and the last of the
            decoder; doubles at each resolution level (to 8x).
        likelihood (`str`, defaults to `"features"`): the reconstruction term of the ELBO. `"features"` is a unit
            Gaussian on the discriminator's last hidden layer (Larsen et al.); `"bernoulli"`, `"gaussian"` and
            `"laplace"` are the pixel likelihoods of `VAE`.
        beta (`float`, defaults to 1.0): weight of the KL term in `loss()`.
        norm_type (`str`, defaults to `"group"`): normalisation in the encoder and decoder.
        discriminator_base_channels (`int`, defaults to 32): width of the discriminator's first conv layer.
        discriminator_norm_type (`str`, defaults to `"none"`): normalisation in the discriminator.
        discriminator_spectral_norm (`bool`, defaults to `False`): spectral normalisation of the discriminator.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["ConvEncoder", "ConvDecoder"]

    model_card_tags = ("vae", "gan", "vae-gan")
    pipeline_tag = "unconditional-image-generation"

    @register_to_config
    def __init__(
        self,
        *,
        resolution: int = 28,
        in_channels: int = 1,
        latent_dim: int = 32,
        base_channels: int = 32,
        likelihood: str = "features",
        beta: float = 1.0,
        norm_type: str = "group",
        discriminator_base_channels: int = 32,
        discriminator_norm_type: str = "none",
        discriminator_spectral_norm: bool = False,
    ):
        super().__init__()
        check_choice("likelihood", likelihood, VAEGAN_LIKELIHOODS)
        check_choice("discriminator_norm_type", discriminator_norm_type, NORM_TYPES)
        # With feature reconstruction, the decoder outputs a mean image and needs no pixel scale: a Bernoulli decoder
        # is exactly that (its mean is tanh(logits / 2)) with no extra parameter.
        pixel_likelihood = "bernoulli" if likelihood == "features" else likelihood
        self.vae = VAE(
            resolution=resolution,
            in_channels=in_channels,
            latent_dim=latent_dim,
            base_channels=base_channels,
            likelihood=pixel_likelihood,
            beta=beta,
            norm_type=norm_type,
        )
        self.discriminator = Discriminator(
            resolution=resolution,
            in_channels=in_channels,
            base_channels=discriminator_base_channels,
            spectral_norm=discriminator_spectral_norm,
            norm_type=discriminator_norm_type,
        )

    def encode(self, sample: torch.Tensor, return_dict: bool = True) -> VAEEncoderOutput | tuple:
        """Encodes images `(B, in_channels, resolution, resolution)` in [-1, 1] into the posterior q(z|x)."""
        return self.vae.encode(sample, return_dict=return_dict)

    def decode(self, latents: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple:
        """Decodes latents `(B, latent_dim)` into images `(B, in_channels, resolution, resolution)` in [-1, 1]."""
        return self.vae.decode(latents, return_dict=return_dict)

    def forward(
        self,
        sample: torch.Tensor,
        sample_posterior: bool = False,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> VAEOutput | tuple:
        """Reconstructs `sample` from the posterior mean (or a posterior sample with `sample_posterior=True`); the
        tuple `(reconstruction,)` with `return_dict=False`, as [`VAE`]."""
        return self.vae(sample, sample_posterior=sample_posterior, generator=generator, return_dict=return_dict)

    def discriminate(self, sample: torch.Tensor) -> DiscriminatorOutput:
        """Real/fake logits `(B,)` and hidden features `(B, num_features)` of images in [-1, 1]."""
        return self.discriminator(sample)

    def reconstruction_nll(self, sample: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """-log p(sample | latents) per example under `config.likelihood`, in nats: shape `(B,)`.

        For `"features"`, the unit Gaussian on discriminator features, without its constant.
        """
        sample = self._check_sample(sample)
        return self._reconstruction_nll(sample, check_vectors(latents, self.config.latent_dim, "latents", self.dtype))

    def _reconstruction_nll(self, sample: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        if self.config.likelihood != "features":
            return self.vae._reconstruction_nll(sample, latents)
        reconstruction = self.decode(latents).sample
        features = self.discriminator(torch.cat([sample, reconstruction])).features
        return feature_reconstruction_nll(*features.chunk(2))

    def _check_sample(self, sample: torch.Tensor) -> torch.Tensor:
        return self.vae._check_sample(sample)

    def _posterior(self, sample: torch.Tensor) -> DiagonalGaussian:
        return self.vae._posterior(sample)

    # The ELBO assembly of `VAE` works unchanged on top of this model's `_posterior` and `_reconstruction_nll`.
    loss = VAE.loss

    @torch.no_grad()
    def sample(self, num_images: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws `num_images` images from the prior: `(num_images, in_channels, resolution, resolution)` in [-1, 1]."""
        return self.vae.sample(num_images, generator=generator)

    def usage_snippet(self, repo_id: str) -> str:
        c = self.config
        return f'''import torch
from diffusers import AutoModel

vaegan = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
generator = torch.Generator().manual_seed(0)
with torch.no_grad():
    samples = vaegan.sample(8, generator=generator)  # (8, {c.in_channels}, {c.resolution}, {c.resolution}) in [-1, 1]
    latents = vaegan.encode(samples).latent_dist.mode()  # (8, {c.latent_dim})
    reconstruction = vaegan.decode(latents).sample
    realness = vaegan.discriminate(samples).logits  # (8,): > 0 means "looks real"'''
