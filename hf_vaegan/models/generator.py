"""The GAN generator: a noise vector (and, when conditional, a class label) -> an image in [-1, 1]."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
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


def split_phases(kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """A 3-tap kernel along `dim` -> `(2, ...)` with 2 taps along `dim`: what the even and the odd outputs of
    "nearest 2x upsampling, then the 3-tap kernel" see of the input before upsampling.

    Even output 2i covers upsampled positions 2i-1, 2i, 2i+1, i.e. inputs i-1, i, i: taps (first, middle + last) on
    (i-1, i). Odd output 2i+1 covers 2i, 2i+1, 2i+2, i.e. inputs i, i, i+1: taps (first + middle, last) on (i, i+1).
    """
    first, middle, last = kernel.unbind(dim)
    even = torch.stack([first, middle + last], dim)
    odd = torch.stack([first + middle, last], dim)
    return torch.stack([even, odd])


def upsample_conv(hidden: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """`conv(nearest_upsample_2x(hidden))` for a 3x3 `conv` with padding 1, without the upsampled copy.

    Each of the four output phases (row and column parity) is a 2x2 convolution of `hidden`: 16 multiply-adds per
    input channel for four output pixels instead of 36, and no 4x larger input to write and read. One convolution
    computes all four on `hidden` padded by 1; phase (a, b) is its output shifted by (a, b). Agrees with the upsample
    and the 3x3 convolution up to float rounding (the taps that fall on the same input are summed first).
    """
    batch, _, height, width = hidden.shape
    channels = conv.out_channels
    rows = split_phases(conv.weight, 2)  # (row phase, out, in, 2, 3)
    phases = split_phases(rows, 4)  # (column phase, row phase, out, in, 2, 2)
    weight = phases.transpose(0, 1).reshape(4 * channels, conv.in_channels, 2, 2)
    bias = None if conv.bias is None else conv.bias.repeat(4)
    outputs = F.conv2d(hidden, weight, bias, padding=1)  # (height + 1, width + 1)
    outputs = outputs.view(batch, 2, 2, channels, height + 1, width + 1)
    images = outputs.new_empty(batch, channels, height, 2, width, 2)
    for row in range(2):
        for column in range(2):
            images[:, :, :, row, :, column] = outputs[:, row, column, :, row : row + height, column : column + width]
    return images.view(batch, channels, 2 * height, 2 * width)


def few_channel_conv(hidden: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """`conv(hidden)` for a 3x3 `conv` with padding 1 and few output channels (the image's 1 or 3).

    oneDNN runs such a convolution at a few percent of its matmul rate, and a 1x1 convolution to one map per output
    channel and tap no better (8-15 ms for the bundled generator's 64 images); as one batched matmul that takes about
    1 ms, and the nine shifted maps then add up cheaply.
    """
    batch, _, height, width = hidden.shape
    channels = conv.out_channels
    weight = conv.weight.permute(2, 3, 0, 1).reshape(9 * channels, conv.in_channels)
    taps = torch.matmul(weight, hidden.reshape(batch, conv.in_channels, height * width))
    taps = F.pad(taps.view(batch, 9 * channels, height, width), (1, 1, 1, 1))
    taps = taps.view(batch, 3, 3, channels, height + 2, width + 2)
    images = taps[:, 0, 0, :, :height, :width].clone()
    if conv.bias is not None:
        images += conv.bias.view(1, channels, 1, 1)
    for row in range(3):
        for column in range(3):
            if row or column:
                images += taps[:, row, column, :, row : row + height, column : column + width]
    return images


def is_same_3x3_conv(layer: nn.Module | None) -> bool:
    """Whether `layer` is a plain 3x3 convolution keeping the map's size (stride 1, padding 1, zero padding)."""
    return (
        isinstance(layer, nn.Conv2d)
        and layer.kernel_size == (3, 3)
        and layer.stride == (1, 1)
        and layer.padding == (1, 1)
        and layer.dilation == (1, 1)
        and layer.groups == 1
        and layer.padding_mode == "zeros"
    )


def is_nearest_2x(layer: nn.Module) -> bool:
    return isinstance(layer, nn.Upsample) and layer.mode == "nearest" and layer.scale_factor in (2, 2.0, (2.0, 2.0))


def decode_for_inference(decoder: nn.Module, vectors: torch.Tensor) -> torch.Tensor:
    """`decoder(vectors)` (a `ConvDecoder`) with `upsample_conv` for each upsample and 3x3 convolution pair and
    `few_channel_conv` for the last convolution: 1.8x (AVX2) to 2.2x (AVX-512) faster on CPU for the bundled
    generator (`benchmarks/gan_sampling.py`). Other layers run as they are. It is differentiable too (the same
    function up to float rounding): `Generator.phase_upsampling_in_training` trains through it."""
    hidden = decoder.project(vectors).view(-1, decoder.start_channels, decoder.start_size, decoder.start_size)
    layers = list(decoder.layers)
    index = 0
    while index < len(layers):
        layer = layers[index]
        following = layers[index + 1] if index + 1 < len(layers) else None
        if is_nearest_2x(layer) and is_same_3x3_conv(following):
            hidden = upsample_conv(hidden, following)
            index += 2
            continue
        if following is None and is_same_3x3_conv(layer):
            hidden = few_channel_conv(hidden, layer)
        else:
            hidden = layer(hidden)
        index += 1
    return hidden


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
        # Not part of the config: a training speed-up (the GAN trainer's `fast_generator`), same function.
        self.phase_upsampling_in_training = False

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
        # The inference path reads the layers' weights itself, so it leaves out an accelerate hook on the decoder
        # (device_map offloading), which moves them in when the decoder's own forward is called. With
        # `phase_upsampling_in_training` it also trains through it (1.3-1.9x faster on CPU), unless gradient
        # checkpointing is on (which needs the decoder's stages).
        fast_training = self.phase_upsampling_in_training and not self.decoder.gradient_checkpointing
        if (torch.is_grad_enabled() and not fast_training) or hasattr(self.decoder, "_hf_hook"):
            hidden = self.decoder(noise)
        else:
            hidden = decode_for_inference(self.decoder, noise)
        images = torch.tanh(hidden)
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
