"""The GAN discriminator: an image (and, when conditional, a class label) -> a real/fake logit."""

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from .blocks import NORM_TYPES, ConvEncoder, check_choice, check_class_labels, check_image_config, check_images
from .modeling_utils import VaeGanModelMixin


@dataclass
class DiscriminatorOutput(BaseOutput):
    """
    Args:
        logits (`torch.Tensor` of shape `(batch_size,)`): real/fake logits; positive means "real".
        features (`torch.Tensor` of shape `(batch_size, num_features)`): the last hidden layer, flattened; the
            feature space of the VAE-GAN's learned similarity loss (Larsen et al., 2016).
    """

    logits: torch.Tensor
    features: torch.Tensor | None = None


class Discriminator(VaeGanModelMixin):
    r"""A convolutional GAN discriminator: a binary real/fake classifier returning one logit per image.

    With `num_classes > 0` it is class-conditional through a projection (Miyato & Koyama, 2018): the logit adds the
    inner product of a class embedding with the image features.

    Parameters:
        resolution (`int`, defaults to 28): side of the square images; one of 28, 32, 64, 128, 256.
        in_channels (`int`, defaults to 1): 1 (greyscale) or 3 (RGB).
        base_channels (`int`, defaults to 64): width of the first conv layer; doubles at each downsampling (to 8x).
        num_classes (`int`, defaults to 0): number of classes; 0 means unconditional.
        spectral_norm (`bool`, defaults to `False`): spectral normalisation of every layer (Miyato et al., 2018).
        norm_type (`str`, defaults to `"none"`): `"none"`, `"group"` or `"batch"` normalisation of the hidden layers.
    """

    model_card_tags = ("gan", "discriminator")

    @register_to_config
    def __init__(
        self,
        *,
        resolution: int = 28,
        in_channels: int = 1,
        base_channels: int = 64,
        num_classes: int = 0,
        spectral_norm: bool = False,
        norm_type: str = "none",
    ):
        super().__init__()
        check_image_config(resolution, in_channels, base_channels, None, num_classes, channels_name="in_channels")
        check_choice("spectral_norm", spectral_norm, (True, False))
        check_choice("norm_type", norm_type, NORM_TYPES)
        self.encoder = ConvEncoder(in_channels, resolution, base_channels, norm_type, spectral_norm)
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda module: module)
        self.to_logit = wrap(nn.Linear(self.encoder.num_features, 1))
        self.class_projection = wrap(nn.Embedding(num_classes, self.encoder.num_features)) if num_classes else None

    def forward(
        self, sample: torch.Tensor, class_labels: torch.Tensor | None = None, return_dict: bool = True
    ) -> DiscriminatorOutput | tuple:
        """Scores images `(B, in_channels, resolution, resolution)` in [-1, 1]; conditional models also take integer
        `class_labels` `(B,)`."""
        check_images(sample, self.config.in_channels, self.config.resolution)
        check_class_labels(class_labels, self.config.num_classes, sample.shape[0])
        features = self.encoder(sample).flatten(1)
        logits = self.to_logit(features).squeeze(1)
        if self.class_projection is not None:
            logits = logits + (self.class_projection(class_labels) * features).sum(dim=1)
        return DiscriminatorOutput(logits=logits, features=features) if return_dict else (logits, features)

    def usage_snippet(self, repo_id: str) -> str:
        c = self.config
        labels = ", class_labels=torch.zeros(4, dtype=torch.long)" if c.num_classes else ""
        return f'''import torch
from diffusers import AutoModel

discriminator = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
images = torch.rand(4, {c.in_channels}, {c.resolution}, {c.resolution}) * 2 - 1  # in [-1, 1]
with torch.no_grad():
    logits = discriminator(images{labels}).logits  # (4,): > 0 means "looks real"'''
