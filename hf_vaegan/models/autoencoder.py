"""A deterministic convolutional autoencoder: image -> latent vector -> image."""

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from .blocks import (
    IMAGE_RANGE,
    NORM_TYPES,
    ConvDecoder,
    ConvEncoder,
    DecoderOutput,
    check_choice,
    check_image_batch,
    check_image_config,
    check_vectors,
)
from .modeling_utils import VaeGanModelMixin


@dataclass
class AutoEncoderEncoderOutput(BaseOutput):
    """
    Args:
        latents (`torch.Tensor` of shape `(batch_size, latent_dim)`): the codes of the input images.
    """

    latents: torch.Tensor


@dataclass
class AutoEncoderOutput(BaseOutput):
    """
    Args:
        sample (`torch.Tensor` of shape `(batch_size, in_channels, resolution, resolution)`): reconstructions in
            [-1, 1].
        latents (`torch.Tensor` of shape `(batch_size, latent_dim)`): the codes they were decoded from.
    """

    sample: torch.Tensor
    latents: torch.Tensor | None = None


class AutoEncoder(VaeGanModelMixin):
    r"""A convolutional autoencoder that compresses images to a `latent_dim` vector and reconstructs them.

    The deterministic foundation of the VAE: same encoder and decoder stacks, without the Gaussian posterior. Images
    are `(B, in_channels, resolution, resolution)` in [-1, 1] (NaN, infinite or out-of-range values are refused);
    inputs of another float dtype are cast to the model's.

    Parameters:
        resolution (`int`, defaults to 28): side of the square input images; one of 28, 32, 64, 128, 256.
        in_channels (`int`, defaults to 1): 1 (greyscale) or 3 (RGB).
        latent_dim (`int`, defaults to 32): size of the latent vector.
        base_channels (`int`, defaults to 32): width of the first conv layer; doubles at each downsampling (to 8x).
        norm_type (`str`, defaults to `"group"`): `"group"`, `"batch"` or `"none"`.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["ConvEncoder", "ConvDecoder"]

    model_card_tags = ("autoencoder",)

    @register_to_config
    def __init__(
        self,
        *,
        resolution: int = 28,
        in_channels: int = 1,
        latent_dim: int = 32,
        base_channels: int = 32,
        norm_type: str = "group",
    ):
        super().__init__()
        check_image_config(resolution, in_channels, base_channels, latent_dim, channels_name="in_channels")
        check_choice("norm_type", norm_type, NORM_TYPES)
        self.encoder = ConvEncoder(in_channels, resolution, base_channels, norm_type)
        self.to_latent = nn.Linear(self.encoder.num_features, latent_dim)
        self.decoder = ConvDecoder(latent_dim, in_channels, resolution, base_channels, norm_type)

    def encode(self, sample: torch.Tensor, return_dict: bool = True) -> AutoEncoderEncoderOutput | tuple:
        """Encodes images `(B, in_channels, resolution, resolution)` in [-1, 1] into latents `(B, latent_dim)`."""
        latents = self._latents(self._check_sample(sample))
        return AutoEncoderEncoderOutput(latents=latents) if return_dict else (latents,)

    def _check_sample(self, sample: torch.Tensor) -> torch.Tensor:
        channels, resolution = self.config.in_channels, self.config.resolution
        return check_image_batch(sample, channels, resolution, value_range=IMAGE_RANGE, dtype=self.dtype)

    def _latents(self, sample: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(sample).flatten(1))

    def decode(self, latents: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple:
        """Decodes latents `(B, latent_dim)` into images `(B, in_channels, resolution, resolution)` in [-1, 1]."""
        latents = check_vectors(latents, self.config.latent_dim, "latents", self.dtype)
        images = torch.tanh(self.decoder(latents))
        return DecoderOutput(sample=images) if return_dict else (images,)

    def forward(self, sample: torch.Tensor, return_dict: bool = True) -> AutoEncoderOutput | tuple:
        """Reconstructs `sample` (B, in_channels, resolution, resolution) in [-1, 1]."""
        latents = self.encode(sample).latents
        reconstruction = self.decode(latents).sample
        return AutoEncoderOutput(sample=reconstruction, latents=latents) if return_dict else (reconstruction, latents)

    def loss(self, sample: torch.Tensor) -> torch.Tensor:
        """Mean squared reconstruction error (scalar) of images in [-1, 1]."""
        sample = self._check_sample(sample)
        return nn.functional.mse_loss(self.decode(self._latents(sample)).sample, sample)

    def usage_snippet(self, repo_id: str) -> str:
        c = self.config
        return f'''import torch
from diffusers import AutoModel

autoencoder = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
images = torch.rand(4, {c.in_channels}, {c.resolution}, {c.resolution}) * 2 - 1  # your images, in [-1, 1]
with torch.no_grad():
    latents = autoencoder.encode(images).latents        # (4, {c.latent_dim})
    reconstruction = autoencoder.decode(latents).sample  # (4, {c.in_channels}, {c.resolution}, {c.resolution})'''
