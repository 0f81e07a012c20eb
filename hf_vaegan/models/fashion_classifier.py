"""A small convolutional Fashion-MNIST classifier, used as the domain feature extractor of `hf_vaegan.metrics`."""

from dataclasses import dataclass
from itertools import pairwise

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn


@dataclass
class FashionClassifierOutput(BaseOutput):
    """
    Output of [`FashionClassifier`].

    Args:
        logits (`torch.Tensor` of shape `(batch_size, num_classes)`): unnormalised class scores.
        features (`torch.Tensor` of shape `(batch_size, feature_dim)`): penultimate-layer activations (after ReLU),
            the embedding used for FID, KID and precision/recall.
    """

    logits: torch.Tensor
    features: torch.Tensor


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class FashionClassifier(ModelMixin, ConfigMixin):
    r"""
    VGG-style CNN classifier for 28x28 greyscale images: stages of two 3x3 convolutions (batch norm, ReLU) and a 2x2
    max pool, then a fully connected feature layer and a linear classification head.

    Parameters:
        in_channels (`int`, defaults to 1): number of image channels.
        resolution (`int`, defaults to 28): height and width of the (square) input images.
        num_classes (`int`, defaults to 10): number of classes.
        block_out_channels (`tuple[int, ...]`, defaults to `(32, 64, 128)`): channels of each convolutional stage;
            each stage halves the spatial size (rounding down).
        feature_dim (`int`, defaults to 128): size of the penultimate layer returned as `features`.
        dropout (`float`, defaults to 0.3): dropout before the classification head (training only).
    """

    _no_split_modules = []

    @register_to_config
    def __init__(
        self,
        *,
        in_channels: int = 1,
        resolution: int = 28,
        num_classes: int = 10,
        block_out_channels: tuple[int, ...] = (32, 64, 128),
        feature_dim: int = 128,
        dropout: float = 0.3,
    ):
        super().__init__()
        channels = [in_channels, *block_out_channels]
        self.blocks = nn.Sequential(*[_conv_block(c_in, c_out) for c_in, c_out in pairwise(channels)])
        spatial = resolution // 2 ** len(block_out_channels)
        if spatial < 1:
            raise ValueError(
                f"resolution={resolution} is too small for {len(block_out_channels)} stages of 2x downsampling"
            )
        self.to_features = nn.Sequential(
            nn.Flatten(), nn.Linear(channels[-1] * spatial * spatial, feature_dim), nn.ReLU(inplace=True)
        )
        self.head_dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, sample: torch.Tensor, return_dict: bool = True) -> FashionClassifierOutput | tuple:
        r"""
        Args:
            sample (`torch.Tensor` of shape `(batch_size, in_channels, resolution, resolution)`): images in [-1, 1].
            return_dict (`bool`, defaults to `True`): return a [`FashionClassifierOutput`] instead of a tuple.

        Returns:
            [`FashionClassifierOutput`] or `(logits, features)`.
        """
        expected = (self.config.in_channels, self.config.resolution, self.config.resolution)
        if sample.ndim != 4 or tuple(sample.shape[1:]) != expected:
            raise ValueError(
                f"sample must have shape (batch_size, {', '.join(map(str, expected))}), got {tuple(sample.shape)}"
            )
        features = self.to_features(self.blocks(sample))
        logits = self.head(self.head_dropout(features))
        if not return_dict:
            return logits, features
        return FashionClassifierOutput(logits=logits, features=features)
