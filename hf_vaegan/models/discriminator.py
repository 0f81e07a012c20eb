"""The GAN discriminator: an image (and, when conditional, a class label) -> a real/fake logit."""

import math
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from .blocks import NORM_TYPES, ConvEncoder, check_choice, check_class_labels, check_image_batch, check_image_config
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
    inner product of a class embedding with the last feature map summed over positions, as in the paper.

    Parameters:
        resolution (`int`, defaults to 28): side of the square images; one of 28, 32, 64, 128, 256.
        in_channels (`int`, defaults to 1): 1 (greyscale) or 3 (RGB).
        base_channels (`int`, defaults to 64): width of the first conv layer; doubles at each downsampling (to 8x).
        num_classes (`int`, defaults to 0): number of classes; 0 means unconditional.
        spectral_norm (`bool`, defaults to `False`): spectral normalisation of every layer (Miyato et al., 2018).
        norm_type (`str`, defaults to `"none"`): `"none"`, `"group"` or `"batch"` normalisation of the hidden layers.
        minibatch_std_group_size (`int`, defaults to 0): when > 1, the logit also sees the standard deviation of the
            features over groups of this many consecutive images of the batch (Karras et al., 2018), so that a
            generator that ignores its noise is caught; 0 disables it. Batch every group from one source (e.g. all
            real or all generated) and make the batch size a multiple of it; smaller batches use the largest common
            divisor.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["ConvEncoder"]

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
        minibatch_std_group_size: int = 0,
    ):
        super().__init__()
        check_image_config(resolution, in_channels, base_channels, None, num_classes, channels_name="in_channels")
        check_choice("spectral_norm", spectral_norm, (True, False))
        check_choice("norm_type", norm_type, NORM_TYPES)
        if not isinstance(minibatch_std_group_size, int) or minibatch_std_group_size < 0:
            raise ValueError(f"`minibatch_std_group_size` must be an integer >= 0, got {minibatch_std_group_size!r}")
        self.encoder = ConvEncoder(in_channels, resolution, base_channels, norm_type, spectral_norm)
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda module: module)
        extra_features = 1 if minibatch_std_group_size > 1 else 0
        self.to_logit = wrap(nn.Linear(self.encoder.num_features + extra_features, 1))
        self.class_projection = wrap(nn.Embedding(num_classes, self.encoder.out_channels)) if num_classes else None

    def forward(
        self, sample: torch.Tensor, class_labels: torch.Tensor | None = None, return_dict: bool = True
    ) -> DiscriminatorOutput | tuple:
        """Scores images `(B, in_channels, resolution, resolution)` in [-1, 1]; conditional models also take integer
        `class_labels` `(B,)`.

        Values are not range-checked: augmented images (DiffAugment's colour jitter) go beyond [-1, 1]. Inputs of
        another float dtype are cast to the model's.
        """
        sample = check_image_batch(sample, self.config.in_channels, self.config.resolution, dtype=self.dtype)
        check_class_labels(class_labels, self.config.num_classes, sample.shape[0])
        feature_map = self.encoder(sample)
        features = feature_map.flatten(1)
        if self.config.minibatch_std_group_size > 1:
            logit_inputs = torch.cat([features, minibatch_std(features, self.config.minibatch_std_group_size)], 1)
        else:
            logit_inputs = features
        logits = self.to_logit(logit_inputs).squeeze(1)
        if self.class_projection is not None:
            pooled = feature_map.sum(dim=(2, 3))
            logits = logits + (self.class_projection(class_labels) * pooled).sum(dim=1)
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


def minibatch_std(features: torch.Tensor, group_size: int) -> torch.Tensor:
    """`(B, F)` features -> `(B, 1)`: for each image, the standard deviation of the features over its group of
    consecutive images, averaged over the features (the group is `gcd(group_size, B)` images; 0 for single images)."""
    batch, num_features = features.shape
    group = math.gcd(group_size, batch)
    if group < 2:
        return features.new_zeros(batch, 1)
    grouped = features.float().view(batch // group, group, num_features)
    spread = grouped.var(dim=1, unbiased=False).add(1e-8).sqrt().mean(dim=1)
    return spread.repeat_interleave(group).unsqueeze(1).to(features.dtype)
