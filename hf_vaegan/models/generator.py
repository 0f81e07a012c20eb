"""The GAN generator: a noise vector (and, when conditional, a class label) -> an image in [-1, 1]."""

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from .blocks import (
    NORM_TYPES,
    ConvDecoder,
    check_choice,
    check_class_labels,
    check_image_config,
    check_positive_int,
    check_values,
    check_vectors,
)
from .modeling_utils import VaeGanModelMixin


@dataclass
class GeneratorOutput(BaseOutput):
    """
    Args:
        sample (`torch.Tensor` of shape `(batch_size, out_channels, resolution, resolution)`): images in [-1, 1].
    """

    sample: torch.Tensor


class Generator(VaeGanModelMixin):
    r"""A convolutional GAN generator mapping N(0, I) noise `(B, latent_dim)` to images in [-1, 1].

    With `num_classes > 0` it is class-conditional: a learned class embedding is concatenated to the noise.

    Parameters:
        resolution (`int`, defaults to 28): side of the square images; one of 28, 32, 64, 128, 256.
        out_channels (`int`, defaults to 1): 1 (greyscale) or 3 (RGB).
        latent_dim (`int`, defaults to 64): size of the noise vector.
        base_channels (`int`, defaults to 64): width of the last (full-resolution) conv layer; doubles towards the
            smallest feature map (to 8x).
        num_classes (`int`, defaults to 0): number of classes; 0 means unconditional.
        norm_type (`str`, defaults to `"group"`): `"group"` (each image independent of its batch), `"batch"` (the
            DCGAN choice) or `"none"`.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["ConvDecoder"]

    model_card_tags = ("gan", "generator")
    pipeline_tag = "unconditional-image-generation"

    @register_to_config
    def __init__(
        self,
        *,
        resolution: int = 28,
        out_channels: int = 1,
        latent_dim: int = 64,
        base_channels: int = 64,
        num_classes: int = 0,
        norm_type: str = "group",
    ):
        super().__init__()
        check_image_config(resolution, out_channels, base_channels, latent_dim, num_classes, "out_channels")
        check_choice("norm_type", norm_type, NORM_TYPES)
        self.class_embedding = nn.Embedding(num_classes, latent_dim) if num_classes else None
        in_features = 2 * latent_dim if num_classes else latent_dim
        self.decoder = ConvDecoder(in_features, out_channels, resolution, base_channels, norm_type)

    def forward(
        self, noise: torch.Tensor, class_labels: torch.Tensor | None = None, return_dict: bool = True
    ) -> GeneratorOutput | tuple:
        """Generates images `(B, out_channels, resolution, resolution)` in [-1, 1] from noise `(B, latent_dim)` and,
        for a conditional model, integer `class_labels` `(B,)` in [0, num_classes).

        The noise must be finite floats (another float dtype is cast to the model's); integer noise is refused.
        """
        noise = check_vectors(noise, self.config.latent_dim, "noise", self.dtype)
        check_values(noise, "noise")
        check_class_labels(class_labels, self.config.num_classes, noise.shape[0])
        if self.class_embedding is not None:
            noise = torch.cat([noise, self.class_embedding(class_labels)], dim=1)
        images = torch.tanh(self.decoder(noise))
        return GeneratorOutput(sample=images) if return_dict else (images,)

    def sample_noise(self, num_images: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """N(0, I) noise `(num_images, latent_dim)` on the model's device and dtype."""
        check_positive_int("num_images", num_images)
        shape = (num_images, self.config.latent_dim)
        return randn_tensor(shape, generator=generator, device=self.device, dtype=self.dtype)

    @torch.no_grad()
    def sample(
        self, num_images: int, class_labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draws `num_images` images `(num_images, out_channels, resolution, resolution)` in [-1, 1]."""
        if isinstance(class_labels, torch.Tensor):
            class_labels = class_labels.to(self.device)
        return self(self.sample_noise(num_images, generator), class_labels).sample

    def usage_snippet(self, repo_id: str) -> str:
        c = self.config
        labels = f", class_labels=torch.arange(8) % {c.num_classes}" if c.num_classes else ""
        return f'''import torch
from diffusers import AutoModel

generator = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
noise = torch.randn(8, {c.latent_dim}, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    images = generator(noise{labels}).sample  # (8, {c.out_channels}, {c.resolution}, {c.resolution}) in [-1, 1]'''
