"""The PatchGAN discriminator: images -> a map of real/fake logits, one per overlapping patch."""

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from .blocks import NORM_TYPES, check_choice, check_image_batch, check_positive_int, make_norm
from .modeling_utils import VaeGanModelMixin


@dataclass
class PatchDiscriminatorOutput(BaseOutput):
    """
    Args:
        logits (`torch.Tensor` of shape `(batch_size, 1, h, w)`): one real/fake logit per patch; positive means
            "real". See `PatchDiscriminator.logits_size` for `(h, w)`.
        features (`tuple[torch.Tensor]`): the activations of every hidden layer, from the first (largest) to the last:
            the feature space of a feature-matching loss (pix2pixHD, Wang et al., 2018).
    """

    logits: torch.Tensor
    features: tuple[torch.Tensor, ...] | None = None


def patch_logits_size(size: int, num_layers: int) -> int:
    """Side of the logit map for an input side `size`: `num_layers` 4x4 stride-2 convs, then two 4x4 stride-1."""
    for _ in range(num_layers):
        size = (size + 2 - 4) // 2 + 1
    return size - 2


class PatchDiscriminator(VaeGanModelMixin):
    r"""A PatchGAN discriminator (pix2pix, Isola et al., 2017): classifies every overlapping patch of an image as
    real or fake, which penalises texture and local structure while an L1 or cycle loss takes care of the rest.

    Conditional use (pix2pix): concatenate the source and the target (or generated) image along the channels and
    set `in_channels` to the sum. `num_layers=3` gives the 70x70 patches of pix2pix; fewer layers judge smaller
    patches (2 suits 28x28 images: 34x34 patches, a 5x5 logit map).

    Parameters:
        in_channels (`int`, defaults to 2): channels of the judged images (e.g. 1 sketch + 1 garment channel).
        base_channels (`int`, defaults to 64): width of the first layer; doubles at each layer, up to
            `max_channel_multiplier` times.
        num_layers (`int`, defaults to 3): stride-2 layers; each halves the size and roughly doubles the patch side.
        max_channel_multiplier (`int`, defaults to 8): cap on the width, as a multiple of `base_channels`.
        norm_type (`str`, defaults to `"group"`): `"group"`, `"batch"` or `"none"` normalisation of the hidden layers
            (not of the first, as in pix2pix).
        spectral_norm (`bool`, defaults to `False`): spectral normalisation of every layer (Miyato et al., 2018).
    """

    _no_split_modules = []

    model_card_tags = ("gan", "discriminator", "patchgan")

    @register_to_config
    def __init__(
        self,
        *,
        in_channels: int = 2,
        base_channels: int = 64,
        num_layers: int = 3,
        max_channel_multiplier: int = 8,
        norm_type: str = "group",
        spectral_norm: bool = False,
    ):
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("base_channels", base_channels),
            ("num_layers", num_layers),
            ("max_channel_multiplier", max_channel_multiplier),
        ):
            check_positive_int(name, value)
        check_choice("norm_type", norm_type, NORM_TYPES)
        check_choice("spectral_norm", spectral_norm, (True, False))
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda module: module)
        widths = [base_channels * min(2**layer, max_channel_multiplier) for layer in range(num_layers + 1)]
        layers = [nn.Sequential(wrap(nn.Conv2d(in_channels, widths[0], 4, stride=2, padding=1)), nn.LeakyReLU(0.2))]
        strides = [2] * (num_layers - 1) + [1]
        for in_width, out_width, stride in zip(widths[:-1], widths[1:], strides, strict=True):
            conv = wrap(nn.Conv2d(in_width, out_width, 4, stride=stride, padding=1))
            layers.append(nn.Sequential(conv, make_norm(norm_type, out_width), nn.LeakyReLU(0.2)))
        self.layers = nn.ModuleList(layers)
        self.to_logits = wrap(nn.Conv2d(widths[-1], 1, 4, padding=1))

    def logits_size(self, height: int, width: int) -> tuple[int, int]:
        """`(h, w)` of the logit map for `height x width` inputs."""
        return patch_logits_size(height, self.config.num_layers), patch_logits_size(width, self.config.num_layers)

    def forward(self, sample: torch.Tensor, return_dict: bool = True) -> PatchDiscriminatorOutput | tuple:
        """Scores the patches of images `(B, in_channels, H, W)` in [-1, 1]; returns logits `(B, 1, h, w)`.

        Values are not range-checked (augmented or generated images may leave [-1, 1]); inputs of another float dtype
        are cast to the model's.
        """
        sample = check_image_batch(sample, self.config.in_channels, dtype=self.dtype)
        if min(self.logits_size(*sample.shape[2:])) < 1:
            raise ValueError(
                f"`sample` of {sample.shape[2]}x{sample.shape[3]} is too small for {self.config.num_layers} layers; "
                "use fewer `num_layers` or larger images."
            )
        features = []
        hidden = sample
        for layer in self.layers:
            hidden = layer(hidden)
            features.append(hidden)
        logits, features = self.to_logits(hidden), tuple(features)
        return PatchDiscriminatorOutput(logits=logits, features=features) if return_dict else (logits, features)

    def usage_snippet(self, repo_id: str) -> str:
        channels = self.config.in_channels
        return f'''import torch
from diffusers import AutoModel

discriminator = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
images = torch.rand(4, {channels}, 64, 64) * 2 - 1  # in [-1, 1]; conditional: source and image stacked on channels
with torch.no_grad():
    logits = discriminator(images).logits  # (4, 1, h, w): > 0 where a patch "looks real"'''
