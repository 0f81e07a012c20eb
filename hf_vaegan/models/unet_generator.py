"""The image-to-image generator: a U-Net mapping images (sketches, masks, stacked conditions) to output images."""

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from .blocks import NORM_TYPES, check_choice, check_image_batch, check_positive_int, checkpointed, make_norm
from .modeling_utils import VaeGanModelMixin

OUTPUT_ACTIVATIONS = ("tanh", "none")


@dataclass
class UNetGeneratorOutput(BaseOutput):
    """
    Args:
        sample (`torch.Tensor` of shape `(batch_size, out_channels, height, width)`): the output images, in [-1, 1]
            with `output_activation="tanh"`, unbounded with `"none"`.
    """

    sample: torch.Tensor


def _conv_norm_act(in_channels: int, out_channels: int, norm_type: str, **conv_kwargs) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, **({"kernel_size": 3, "padding": 1} | conv_kwargs))
    return nn.Sequential(conv, make_norm(norm_type, out_channels), nn.SiLU())


class ResidualBlock(nn.Module):
    """x + conv(act(norm(conv(x)))), then norm and activation: widens the receptive field at the bottleneck."""

    def __init__(self, channels: int, norm_type: str):
        super().__init__()
        self.conv = _conv_norm_act(channels, channels, norm_type)
        self.residual = nn.Conv2d(channels, channels, 3, padding=1)
        self.out = nn.Sequential(make_norm(norm_type, channels), nn.SiLU())

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(hidden + self.residual(self.conv(hidden)))


class UNetGenerator(VaeGanModelMixin):
    r"""A U-Net image-to-image generator (pix2pix, CycleGAN, try-on rendering): images in, images out, same size.

    The encoder halves the size `num_downsamplings` times with strided convolutions; the decoder doubles it back
    with nearest-neighbour upsampling and 3x3 convolutions (no checkerboard artefacts), concatenating the encoder's
    features of the same size (skip connections), so fine detail such as the strokes of a sketch reaches the output
    directly. Residual blocks at the smallest size let every output pixel see the whole input.

    Any channel counts work: stack several conditions as input channels (e.g. a person image, a warped garment and a
    body mask), and split extra outputs off `sample` yourself (e.g. an RGB image plus a composition mask: 4 output
    channels with `output_activation="none"`, then `tanh` on the first 3 and `sigmoid` on the last).

    Parameters:
        in_channels (`int`, defaults to 1): channels of the input images.
        out_channels (`int`, defaults to 1): channels of the output images.
        base_channels (`int`, defaults to 64): width at full resolution; doubles at each downsampling, up to
            `max_channel_multiplier` times.
        num_downsamplings (`int`, defaults to 3): depth of the U-Net; input heights and widths must be multiples of
            `2**num_downsamplings` (e.g. 2 for 28x28 images, 5 for 128x96).
        max_channel_multiplier (`int`, defaults to 8): cap on the width, as a multiple of `base_channels`.
        layers_per_block (`int`, defaults to 1): 3x3 conv layers at each size, in the encoder and in the decoder.
        num_residual_blocks (`int`, defaults to 2): residual blocks at the smallest size.
        norm_type (`str`, defaults to `"group"`): `"group"` (each image independent of its batch), `"batch"` or
            `"none"`.
        output_activation (`str`, defaults to `"tanh"`): `"tanh"` for images in [-1, 1]; `"none"` for raw outputs.
        sample_size (`int` or `(height, width)`, *optional*): the size the model was trained at; pipelines resize
            inputs to it. The network itself takes any valid size.
    """

    model_card_tags = ("image-to-image", "pix2pix", "u-net")
    pipeline_tag = "image-to-image"
    _supports_gradient_checkpointing = True
    _no_split_modules = ["ResidualBlock"]

    @register_to_config
    def __init__(
        self,
        *,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 64,
        num_downsamplings: int = 3,
        max_channel_multiplier: int = 8,
        layers_per_block: int = 1,
        num_residual_blocks: int = 2,
        norm_type: str = "group",
        output_activation: str = "tanh",
        sample_size: int | tuple[int, int] | None = None,
    ):
        super().__init__()
        for name, value, minimum in (
            ("in_channels", in_channels, 1),
            ("out_channels", out_channels, 1),
            ("base_channels", base_channels, 1),
            ("num_downsamplings", num_downsamplings, 0),
            ("max_channel_multiplier", max_channel_multiplier, 1),
            ("layers_per_block", layers_per_block, 1),
            ("num_residual_blocks", num_residual_blocks, 0),
        ):
            check_positive_int(name, value, minimum)
        check_choice("norm_type", norm_type, NORM_TYPES)
        check_choice("output_activation", output_activation, OUTPUT_ACTIVATIONS)
        if sample_size is not None:
            sizes = (sample_size, sample_size) if isinstance(sample_size, int) else tuple(sample_size)
            if len(sizes) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
                raise ValueError(f"`sample_size` must be a positive int or (height, width), got {sample_size!r}.")
            self._check_size(*sizes, "sample_size")

        widths = [base_channels * min(2**level, max_channel_multiplier) for level in range(num_downsamplings + 1)]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.encoder_blocks = nn.ModuleList(
            nn.Sequential(*(_conv_norm_act(width, width, norm_type) for _ in range(layers_per_block)))
            for width in widths[:-1]
        )
        self.downsamplers = nn.ModuleList(
            _conv_norm_act(width, wider, norm_type, kernel_size=4, stride=2, padding=1)
            for width, wider in zip(widths[:-1], widths[1:], strict=True)
        )
        self.middle = nn.Sequential(*(ResidualBlock(widths[-1], norm_type) for _ in range(num_residual_blocks)))
        self.upsamplers = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv_norm_act(wider, width, norm_type))
            for width, wider in zip(widths[:-1], widths[1:], strict=True)
        )
        # The first layer of each decoder block merges the upsampled features with the skip connection.
        self.decoder_blocks = nn.ModuleList(
            nn.Sequential(
                _conv_norm_act(2 * width, width, norm_type),
                *(_conv_norm_act(width, width, norm_type) for _ in range(layers_per_block - 1)),
            )
            for width in widths[:-1]
        )
        self.to_output = nn.Conv2d(widths[0], out_channels, 3, padding=1)
        self.gradient_checkpointing = False

    @property
    def downsampling_factor(self) -> int:
        """Input heights and widths must be multiples of this (`2**num_downsamplings`)."""
        return 2**self.config.num_downsamplings

    def _check_size(self, height: int, width: int, name: str) -> None:
        factor = 2**self.config.num_downsamplings
        if height % factor or width % factor:
            raise ValueError(
                f"`{name}` height and width must be multiples of 2**num_downsamplings = {factor}, "
                f"got {height}x{width}."
            )

    def forward(self, sample: torch.Tensor, return_dict: bool = True) -> UNetGeneratorOutput | tuple:
        """Translates images `(B, in_channels, H, W)` (in [-1, 1] by convention) into `(B, out_channels, H, W)`.

        `H` and `W` must be multiples of `2**num_downsamplings`. Values are not range-checked (stacked conditions need
        not be images); inputs of another float dtype are cast to the model's.
        """
        sample = check_image_batch(sample, self.config.in_channels, dtype=self.dtype)
        self._check_size(sample.shape[2], sample.shape[3], "sample")

        hidden = self.stem(sample)
        skips = []
        for block, downsample in zip(self.encoder_blocks, self.downsamplers, strict=True):
            hidden = checkpointed(self, block, hidden)
            skips.append(hidden)
            hidden = checkpointed(self, downsample, hidden)
        for residual_block in self.middle:
            hidden = checkpointed(self, residual_block, hidden)
        for upsample, block, skip in zip(
            reversed(self.upsamplers), reversed(self.decoder_blocks), reversed(skips), strict=True
        ):
            hidden = checkpointed(self, block, torch.cat([checkpointed(self, upsample, hidden), skip], dim=1))
        output = self.to_output(hidden)
        if self.config.output_activation == "tanh":
            output = torch.tanh(output)
        return UNetGeneratorOutput(sample=output) if return_dict else (output,)

    def usage_snippet(self, repo_id: str) -> str:
        c = self.config
        height, width = self._example_size()
        return f'''import torch
from diffusers import AutoModel

generator = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
inputs = torch.rand(4, {c.in_channels}, {height}, {width}) * 2 - 1  # in [-1, 1], e.g. sketches
with torch.no_grad():
    outputs = generator(inputs).sample  # (4, {c.out_channels}, {height}, {width})

# Or, with hf-vaegan installed, on PIL images / numpy arrays of any size:
# from hf_vaegan import ImageToImagePipeline
# images = ImageToImagePipeline.from_pretrained("{repo_id}")(pil_images).images'''

    def _example_size(self) -> tuple[int, int]:
        size = self.config.sample_size
        if size is None:
            return (4 * self.downsampling_factor,) * 2
        return (size, size) if isinstance(size, int) else tuple(size)
