"""Virtual try-on in the VTON tradition: warp the garment onto the body, then render the dressed person.

This file imports only torch, diffusers and sibling model files, so that it can be pushed beside the weights and
loaded as remote code.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from .blocks import (
    IMAGE_RANGE,
    MASK_RANGE,
    NORM_TYPES,
    check_choice,
    check_image_batch,
    check_positive_int,
    check_values,
)
from .modeling_utils import VaeGanModelMixin
from .unet_generator import UNetGenerator

# What the person representation stacks: the agnostic image (3), its mask (1), the body mask (1), pose heatmaps.
_PERSON_IMAGE_CHANNELS = 5
# A garment and its mask, warped or not.
_GARMENT_CHANNELS = 4
# The person's own pixels (`person_image`), which the "person" composition also reads.
_PERSON_PIXEL_CHANNELS = 3
COMPOSITIONS = ("rendered", "person")
FLOW_UPSAMPLINGS = ("bilinear", "convex")
# The "person" composition's shading of the warped garment: a grey factor in this range (the wardrobe renderer's
# garments are shaded between 0.8 and 1), on the [0, 1] colour scale.
SHADE_RANGE = (0.6, 1.0)


@dataclass
class TryOnOutput(BaseOutput):
    """
    Args:
        sample (`torch.Tensor` of shape `(batch_size, 3, height, width)`): the person wearing the garment, in
            [-1, 1]; equal to `agnostic` outside `agnostic_mask`.
        warped_cloth (`torch.Tensor` of shape `(batch_size, 3, height, width)`): the garment warped onto the body,
            in [-1, 1] (the input `cloth` itself when the model has no warping module).
        warped_cloth_mask (`torch.Tensor` of shape `(batch_size, 1, height, width)`): its mask, in [0, 1].
        composition_mask (`torch.Tensor` of shape `(batch_size, 1, height, width)`): where `sample` takes the warped
            garment rather than the rendered person (`composition="rendered"`) or the person's own pixels
            (`composition="person"`), in [0, 1].
        rendered (`torch.Tensor` of shape `(batch_size, 3, height, width)`): the generator's free RGB rendering
            (`composition="rendered"`) or the shaded warped garment (`composition="person"`), in [-1, 1].
        flow (`torch.Tensor` of shape `(batch_size, 2, height, width)`): the appearance flow: where each output pixel
            samples the garment, as (x, y) offsets from its own position in `grid_sample` coordinates ([-1, 1]
            across the image); `None` without a warping module.
    """

    sample: torch.Tensor
    warped_cloth: torch.Tensor | None = None
    warped_cloth_mask: torch.Tensor | None = None
    composition_mask: torch.Tensor | None = None
    rendered: torch.Tensor | None = None
    flow: torch.Tensor | None = None


def keypoint_heatmaps(keypoints: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """One Gaussian bump per keypoint: `(B, K, 3)` [x, y, confidence] in pixels -> `(B, K, height, width)` in [0, 1].

    Keypoints with confidence 0 (undetected) give an empty map.
    """
    ys = torch.arange(height, device=keypoints.device, dtype=keypoints.dtype).view(1, 1, height, 1)
    xs = torch.arange(width, device=keypoints.device, dtype=keypoints.dtype).view(1, 1, 1, width)
    x, y, confidence = (keypoints[..., index, None, None] for index in range(3))
    # The 2D Gaussian is the product of two 1D ones: H + W exponentials per keypoint instead of H * W.
    bump_x = torch.exp(-((xs - x) ** 2) / (2 * sigma**2)) * (confidence > 0).to(keypoints.dtype)
    return torch.exp(-((ys - y) ** 2) / (2 * sigma**2)) * bump_x


def flow_in_pixels(flow: torch.Tensor) -> torch.Tensor:
    """A flow field `(B, 2, H, W)` as `TryOnOutput.flow` holds it (`grid_sample` units: 2 across the image), in
    pixels (float32)."""
    height, width = flow.shape[-2:]
    scale = torch.tensor([width / 2, height / 2], device=flow.device, dtype=torch.float32).view(1, 2, 1, 1)
    return flow.float() * scale


@cache  # read on every forward pass of a convex model
def bilinear_taps(factor: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """What bilinear upsampling by `factor` (`align_corners=False`, borders clamped) reads: for each of the 2 x 2
    coarse pixels it mixes (k) and each position (sy, sx) of a fine pixel in its coarse pixel, in the order
    (k, sy, sx), the coarse pixel's index in the 3 x 3 neighbourhood of the fine pixel's own coarse pixel (0 .. 8,
    row by row) and its weight."""
    axis_taps = []  # per position: the two coarse offsets and their weights
    for position in range(factor):
        shift = (position + 0.5) / factor - 0.5
        if shift > 0:
            axis_taps.append(((0, 1), (1 - shift, shift)))
        elif shift < 0:
            axis_taps.append(((-1, 0), (-shift, 1 + shift)))
        else:  # the coarse pixel's centre: read it alone, split into two taps
            axis_taps.append(((0, 0), (0.5, 0.5)))
    indices, weights = [], []
    for tap_y in range(2):
        for tap_x in range(2):
            for offsets_y, weights_y in axis_taps:
                for offsets_x, weights_x in axis_taps:
                    indices.append((1 + offsets_y[tap_y]) * 3 + 1 + offsets_x[tap_x])
                    weights.append(weights_y[tap_y] * weights_x[tap_x])
    return tuple(indices), tuple(weights)


def convex_upsample(flow: torch.Tensor, logits: torch.Tensor, factor: int) -> torch.Tensor:
    """A flow `(B, 2, h, w)` upsampled by `factor` to `(B, 2, h * factor, w * factor)`, each fine pixel a convex
    combination of the 2 x 2 coarse pixels bilinear upsampling mixes for it, with learnt weights: `logits`
    `(B, 4 * factor**2, h, w)`, softmax-normalised over the 4 taps, in the order of `bilinear_taps` (RAFT's convex
    upsampling, Teed & Deng 2020, on bilinear's taps). Logits equal to the log of bilinear's weights give bilinear
    upsampling; others can put a fine pixel wholly on one side of a jump in the flow (a sleeve over the torso), where
    bilinear upsampling blends the two sides' flows and samples the garment between them."""
    batch_size, _, height, width = flow.shape
    indices, _ = bilinear_taps(factor)
    neighbourhoods = F.unfold(F.pad(flow, (1, 1, 1, 1), mode="replicate"), 3).view(batch_size, 2, 9, height, width)
    taps = neighbourhoods[:, :, list(indices)].view(batch_size, 2, 4, factor, factor, height, width)
    weights = torch.softmax(logits.view(batch_size, 1, 4, factor, factor, height, width), dim=2)
    fine = (weights * taps).sum(dim=2)  # (B, 2, sy, sx, h, w)
    return fine.permute(0, 1, 4, 2, 5, 3).reshape(batch_size, 2, height * factor, width * factor)


def identity_grid(batch_size: int, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """The `grid_sample` grid `(B, H, W, 2)` that samples every pixel at its own centre (`align_corners=False`)."""
    theta = torch.eye(2, 3, device=like.device, dtype=like.dtype).expand(batch_size, 2, 3)
    return F.affine_grid(theta, [batch_size, 1, height, width], align_corners=False)


class TryOnModel(VaeGanModelMixin):
    r"""A virtual try-on model sized for CPUs: a warping U-Net and a try-on U-Net (CP-VTON / VITON-HD style).

    1. **Warping** (appearance flow, as in ClothFlow): a `UNetGenerator` reads the person representation and the flat
       garment at `1 / warp_downsampling` of their size and predicts, for every pixel, where to sample the garment;
       the flow is upsampled (bilinearly, or with `flow_upsampling="convex"` by learnt convex weights that keep a
       jump in the flow sharp, such as a sleeve's edge over the torso) and the garment and its mask are resampled
       there at full size (`grid_sample`). The flow starts at zero (the garment in place) and is learnt from the
       warped garment's appearance and mask, and from a target flow where the training data has one.
    2. **Try-on**: a second `UNetGenerator` reads the person representation and the warped garment and predicts an
       RGB rendering and a composition mask; the result takes the warped garment where the mask says so (keeping its
       texture sharp) and the rendering elsewhere (arms in front, skin, folds). Outside the agnostic region the
       person is kept as is.

    `composition="person"` (the bundled model's) replaces the free RGB rendering of step 2 by the person's own
    pixels (`person_image`: the undressed avatar, whose arms, skin and shorts are what shows where the garment does
    not): the try-on U-Net also reads them and predicts only a composition mask and a grey shading factor
    (`SHADE_RANGE`) of the warped garment, so every output pixel is the garment's colour (shaded) or the person's,
    or a blend of the two at edges: it cannot paint colours that are in neither. `composition="rendered"` (the
    default, for models saved before) keeps the free rendering, which paints the arms and skin inside the agnostic
    region from scratch.
    The person representation is the cloth-agnostic image (the person with the try-on region in grey), that region's
    mask, a body mask and one Gaussian heatmap per pose keypoint (OpenPose COCO-18 order by default). Images are in
    [-1, 1], masks in [0, 1], keypoints `[x, y, confidence]` in pixels of the input images. Heights and widths must
    be multiples of `2**num_downsamplings`. Values outside these ranges, NaN or infinite, are refused; inputs of
    another float dtype are cast to the model's.

    With `use_warping=False` the garment reaches the try-on U-Net unwarped: the ablation that measures what warping
    brings.

    Parameters:
        sample_size (`(height, width)`, defaults to `(128, 96)`): the size the model was trained at; pipelines check
            their inputs against it.
        base_channels (`int`, defaults to 8): width of both U-Nets at full resolution.
        num_downsamplings (`int`, defaults to 3): depth of both U-Nets.
        max_channel_multiplier (`int`, defaults to 8): cap on the U-Nets' widths, as a multiple of `base_channels`.
        layers_per_block (`int`, defaults to 1): 3x3 conv layers at each size of the U-Nets (each side).
        num_residual_blocks (`int`, defaults to 2): residual blocks at the U-Nets' smallest size.
        norm_type (`str`, defaults to `"group"`): normalisation of the U-Nets.
        num_keypoints (`int`, defaults to 18): pose keypoints per person.
        keypoint_sigma (`float`, defaults to 0.02): width of the keypoint heatmaps, as a fraction of the height.
        use_warping (`bool`, defaults to `True`): whether the model warps the garment.
        warp_downsampling (`int`, defaults to 2): the warping U-Net works at this fraction of the size.
        flow_upsampling (`str`, defaults to `"bilinear"`): how the flow returns to full size: `"bilinear"`, or
            `"convex"` (see `convex_upsample`: the warping U-Net also predicts the weights, `4 * warp_downsampling**2`
            more output channels, which start at bilinear's). `"convex"` needs `warp_downsampling` > 1.
        composition (`str`, defaults to `"rendered"`): what the result takes outside the garment in the agnostic
            region: the try-on U-Net's free RGB rendering (`"rendered"`) or the person's own pixels (`"person"`).
        num_garment_classes (`int`, defaults to 0): with N > 0, both U-Nets also read the garment's class
            (`garment_class`, 0 .. N-1, e.g. the Fashion-MNIST label) as N one-hot planes after the garment
            channels: how long a garment is worn (a coat to the thigh, a pullover to the hip) does not always show
            in the flat garment image. An unknown class (`None` or -1) gives empty planes.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["UNetGenerator"]

    model_card_tags = ("virtual-try-on", "image-to-image", "appearance-flow", "u-net")
    pipeline_tag = "image-to-image"

    @register_to_config
    def __init__(
        self,
        *,
        sample_size: tuple[int, int] = (128, 96),
        base_channels: int = 8,
        num_downsamplings: int = 3,
        max_channel_multiplier: int = 8,
        layers_per_block: int = 1,
        num_residual_blocks: int = 2,
        norm_type: str = "group",
        num_keypoints: int = 18,
        keypoint_sigma: float = 0.02,
        use_warping: bool = True,
        warp_downsampling: int = 2,
        composition: str = "rendered",
        num_garment_classes: int = 0,
        flow_upsampling: str = "bilinear",
    ):
        super().__init__()
        check_choice("composition", composition, COMPOSITIONS)
        check_choice("flow_upsampling", flow_upsampling, FLOW_UPSAMPLINGS)
        check_positive_int("num_garment_classes", num_garment_classes, minimum=0)
        check_positive_int("num_keypoints", num_keypoints, minimum=0)
        check_choice("norm_type", norm_type, NORM_TYPES)
        check_choice("use_warping", use_warping, (True, False))
        check_positive_int("warp_downsampling", warp_downsampling)
        if isinstance(keypoint_sigma, bool) or not isinstance(keypoint_sigma, (int, float)) or keypoint_sigma <= 0:
            raise ValueError(f"`keypoint_sigma` must be a positive number, got {keypoint_sigma!r}.")
        person_pixels = _PERSON_PIXEL_CHANNELS if composition == "person" else 0
        unet = {
            "in_channels": _PERSON_IMAGE_CHANNELS
            + num_keypoints
            + person_pixels
            + _GARMENT_CHANNELS
            + num_garment_classes,
            "base_channels": base_channels,
            "num_downsamplings": num_downsamplings,
            "max_channel_multiplier": max_channel_multiplier,
            "layers_per_block": layers_per_block,
            "num_residual_blocks": num_residual_blocks,
            "norm_type": norm_type,
            "output_activation": "none",
        }
        # UNetGenerator validates the sizes (positive multiples of 2**num_downsamplings).
        # "rendered": RGB + composition mask; "person": composition mask + shading.
        out_channels = 4 if composition == "rendered" else 2
        self.generator = UNetGenerator(out_channels=out_channels, sample_size=self._size(sample_size), **unet)
        self.warper = None
        if use_warping:
            height, width = self._size(sample_size)
            if height % warp_downsampling or width % warp_downsampling:
                raise ValueError(
                    f"`sample_size` {height}x{width} must be a multiple of `warp_downsampling` = {warp_downsampling}."
                )
            if flow_upsampling == "convex" and warp_downsampling == 1:
                raise ValueError(
                    '`flow_upsampling` "convex" needs `warp_downsampling` > 1: the flow is not upsampled.'
                )
            warp_size = (height // warp_downsampling, width // warp_downsampling)
            upsampling_channels = 4 * warp_downsampling**2 if flow_upsampling == "convex" else 0
            self.warper = UNetGenerator(out_channels=2 + upsampling_channels, sample_size=warp_size, **unet)
        if self.warper is not None:
            # A zero flow: training starts from the garment in place rather than from a random scramble of it.
            nn.init.zeros_(self.warper.to_output.weight)
            nn.init.zeros_(self.warper.to_output.bias)
            if flow_upsampling == "convex":  # and upsampled bilinearly, until the weights learn better
                _, weights = bilinear_taps(warp_downsampling)
                with torch.no_grad():
                    self.warper.to_output.bias[2:] = torch.tensor(weights).log()

    @staticmethod
    def _size(sample_size) -> tuple[int, int]:
        if isinstance(sample_size, int) and not isinstance(sample_size, bool):
            return sample_size, sample_size
        if isinstance(sample_size, (list, tuple)) and len(sample_size) == 2:
            return tuple(sample_size)
        raise ValueError(f"`sample_size` must be (height, width), got {sample_size!r}.")

    def person_representation(
        self,
        agnostic: torch.Tensor,
        agnostic_mask: torch.Tensor,
        body_mask: torch.Tensor,
        keypoints: torch.Tensor,
        person_image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The stacked person channels `(B, 5 + num_keypoints, H, W)` both U-Nets read (see the class docstring),
        followed by `person_image` (3 more) with `composition="person"`."""
        height, width = agnostic.shape[-2:]
        heatmaps = keypoint_heatmaps(keypoints.to(agnostic.dtype), height, width, self.config.keypoint_sigma * height)
        channels = [agnostic, agnostic_mask, body_mask, heatmaps]
        if self.config.composition == "person":
            channels.append(agnostic if person_image is None else person_image)
        return torch.cat(channels, dim=1)

    def class_planes(self, garment_class: torch.Tensor | None, like: torch.Tensor) -> list[torch.Tensor]:
        """The garment class as `num_garment_classes` one-hot planes shaped like `like` (`[]` without classes; empty
        planes for an unknown class, `None` or -1)."""
        count = self.config.num_garment_classes
        if not count:
            return []
        batch_size, _, height, width = like.shape
        planes = like.new_zeros(batch_size, count, height, width)
        if garment_class is not None:
            known = garment_class >= 0
            planes[known.nonzero(as_tuple=True)[0], garment_class[known]] = 1
        return [planes]

    def warp(
        self, person: torch.Tensor, cloth: torch.Tensor, cloth_mask: torch.Tensor, classes: Sequence = ()
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The garment and its mask warped onto the body, and the flow (unchanged, `None` without warping);
        `classes`: the class planes (see `class_planes`), if any."""
        if self.warper is None:
            return cloth, cloth_mask, None
        batch_size, _, height, width = cloth.shape
        stacked = torch.cat([person, cloth, cloth_mask, *classes], dim=1)
        inputs = F.avg_pool2d(stacked, self.config.warp_downsampling)
        flow = self.warper(inputs, return_dict=False)[0]
        if self.config.flow_upsampling == "convex":
            flow = convex_upsample(flow[:, :2], flow[:, 2:], self.config.warp_downsampling)
        else:
            flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
        grid = identity_grid(batch_size, height, width, flow) + flow.permute(0, 2, 3, 1)
        # The garment lies on white: sampling outside it must give white, and an empty mask.
        warped = F.grid_sample(cloth, grid, mode="bilinear", padding_mode="border", align_corners=False)
        warped_mask = F.grid_sample(cloth_mask, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return warped, warped_mask, flow

    def _check_inputs(
        self, agnostic, agnostic_mask, body_mask, keypoints, cloth, cloth_mask, person_image=None
    ) -> list[torch.Tensor]:
        """The inputs checked (see `forward`) and cast to the model's dtype, in the order of `forward`'s arguments
        (`person_image` last; `agnostic` when it is `None`)."""
        dtype = self.dtype
        agnostic = check_image_batch(agnostic, 3, name="agnostic", value_range=IMAGE_RANGE, dtype=dtype)
        cloth = check_image_batch(cloth, 3, name="cloth", value_range=IMAGE_RANGE, dtype=dtype)
        if person_image is None:
            person_image = agnostic
        else:
            person_image = check_image_batch(
                person_image, 3, name="person_image", value_range=IMAGE_RANGE, dtype=dtype
            )
        agnostic_mask, body_mask, cloth_mask = (
            check_image_batch(mask, 1, name=name, value_range=MASK_RANGE, dtype=dtype)
            for name, mask in (("agnostic_mask", agnostic_mask), ("body_mask", body_mask), ("cloth_mask", cloth_mask))
        )
        expected = (agnostic.shape[0], *agnostic.shape[2:])
        for name, tensor in (
            ("agnostic_mask", agnostic_mask),
            ("body_mask", body_mask),
            ("cloth", cloth),
            ("cloth_mask", cloth_mask),
            ("person_image", person_image),
        ):
            if (tensor.shape[0], *tensor.shape[2:]) != expected:
                raise ValueError(
                    f"`{name}` must have the batch size and size of `agnostic` {expected}, got {tuple(tensor.shape)}."
                )
        num_keypoints = self.config.num_keypoints
        if not isinstance(keypoints, torch.Tensor) or keypoints.shape != (expected[0], num_keypoints, 3):
            shape = tuple(keypoints.shape) if isinstance(keypoints, torch.Tensor) else type(keypoints).__name__
            raise ValueError(
                f"`keypoints` must be a tensor of shape ({expected[0]}, {num_keypoints}, 3), got {shape}."
            )
        if keypoints.dtype == torch.bool or keypoints.is_complex():
            raise TypeError(f"`keypoints` must be real numbers (pixels), got dtype {keypoints.dtype}.")
        check_values(keypoints, "keypoints")
        return [agnostic, agnostic_mask, body_mask, keypoints, cloth, cloth_mask, person_image]

    def _check_class(self, garment_class, batch_size: int) -> torch.Tensor | None:
        if garment_class is None or not self.config.num_garment_classes:
            return None
        garment_class = torch.as_tensor(garment_class, device=self.device)
        if garment_class.shape != (batch_size,) or garment_class.is_floating_point() or garment_class.is_complex():
            raise ValueError(
                f"`garment_class` must be {batch_size} integers, got "
                f"{garment_class.dtype} {tuple(garment_class.shape)}."
            )
        garment_class = garment_class.long()
        if ((garment_class < -1) | (garment_class >= self.config.num_garment_classes)).any():
            raise ValueError(
                f"`garment_class` must be in [0, {self.config.num_garment_classes}) or -1 (unknown), got "
                f"{garment_class.tolist()}."
            )
        return garment_class

    def forward(
        self,
        agnostic: torch.Tensor,
        agnostic_mask: torch.Tensor,
        body_mask: torch.Tensor,
        keypoints: torch.Tensor,
        cloth: torch.Tensor,
        cloth_mask: torch.Tensor,
        return_dict: bool = True,
        person_image: torch.Tensor | None = None,
        garment_class: torch.Tensor | None = None,
    ) -> TryOnOutput | tuple:
        """Dresses the person in the garment.

        Args:
            agnostic: `(B, 3, H, W)` in [-1, 1], the person with the try-on region in grey.
            agnostic_mask: `(B, 1, H, W)` in [0, 1], that region.
            body_mask: `(B, 1, H, W)` in [0, 1], the person's silhouette.
            keypoints: `(B, num_keypoints, 3)`, `[x, y, confidence]` in pixels; confidence 0 for missing points.
            cloth: `(B, 3, H, W)` in [-1, 1], the flat garment on white.
            cloth_mask: `(B, 1, H, W)` in [0, 1], its mask.
            person_image: `(B, 3, H, W)` in [-1, 1], the person's own pixels that may show where the garment does
                not (the undressed avatar of the synthetic wardrobe; for photographs, the agnostic image with the
                arms kept). Read with `composition="person"` only; default: `agnostic`.
            garment_class: `(B,)` integers, the garment's class (-1: unknown); read when `num_garment_classes` > 0.

        Returns:
            A `TryOnOutput` (or the tuple of its fields, `flow` last).
        """
        agnostic, agnostic_mask, body_mask, keypoints, cloth, cloth_mask, person_image = self._check_inputs(
            agnostic, agnostic_mask, body_mask, keypoints, cloth, cloth_mask, person_image
        )
        person = self.person_representation(agnostic, agnostic_mask, body_mask, keypoints, person_image)
        classes = self.class_planes(self._check_class(garment_class, len(agnostic)), agnostic)
        warped_cloth, warped_mask, flow = self.warp(person, cloth, cloth_mask, classes)
        stacked = torch.cat([person, warped_cloth, warped_mask, *classes], dim=1)
        generated = self.generator(stacked, return_dict=False)[0]
        if self.config.composition == "rendered":
            rendered = torch.tanh(generated[:, :3])
            composition_mask = torch.sigmoid(generated[:, 3:]) * warped_mask
            dressed = composition_mask * warped_cloth + (1 - composition_mask) * rendered
        else:
            # The garment's own colours, shaded by a grey factor (on the [0, 1] scale), over the person's pixels.
            low, high = SHADE_RANGE
            shade = low + (high - low) * torch.sigmoid(generated[:, 1:2])
            rendered = (warped_cloth + 1) * shade - 1
            composition_mask = torch.sigmoid(generated[:, :1]) * warped_mask
            dressed = composition_mask * rendered + (1 - composition_mask) * person_image
        sample = agnostic_mask * dressed + (1 - agnostic_mask) * agnostic
        if not return_dict:
            return sample, warped_cloth, warped_mask, composition_mask, rendered, flow
        return TryOnOutput(
            sample=sample,
            warped_cloth=warped_cloth,
            warped_cloth_mask=warped_mask,
            composition_mask=composition_mask,
            rendered=rendered,
            flow=flow,
        )

    def with_garment_classes(self, num_garment_classes: int) -> "TryOnModel":
        """A copy reading `num_garment_classes` class planes, computing what this model computes: the U-Nets' new
        input weights are zero, ready for fine-tuning. Only a model without class planes can be widened."""
        if self.config.num_garment_classes:
            raise ValueError(
                f"the model already reads {self.config.num_garment_classes} garment classes; only a model without "
                "classes can be given some"
            )
        return self._widened(num_garment_classes=num_garment_classes)

    def with_convex_flow_upsampling(self) -> "TryOnModel":
        """A copy with `flow_upsampling="convex"`, computing what this bilinear model computes: the warping U-Net's
        new outputs start at bilinear's weights (see `convex_upsample`), ready for fine-tuning with a target flow."""
        if self.config.flow_upsampling != "bilinear" or self.warper is None:
            raise ValueError(
                "only a warping model with bilinear flow upsampling can be given convex upsampling, got "
                f"flow_upsampling={self.config.flow_upsampling!r}, use_warping={self.config.use_warping}"
            )
        return self._widened(flow_upsampling="convex")

    def _widened(self, **changes) -> "TryOnModel":
        """A copy with `changes` to the config that only add input channels (given zero weights) or output channels
        (left at the new model's initialisation) to layers; every other weight is this model's."""
        config = {name: value for name, value in self.config.items() if not name.startswith("_")}
        widened = type(self)(**(config | changes))
        state = self.state_dict()
        for name, target in widened.state_dict().items():
            source = state[name]
            if source.shape != target.shape:
                more_inputs = target.ndim > 1 and target.shape[1] != source.shape[1]
                merged = torch.zeros_like(target) if more_inputs else target.clone()
                merged[tuple(slice(0, size) for size in source.shape)] = source
                state[name] = merged
        widened.load_state_dict(state)
        return widened.to(self.device, self.dtype)

    def usage_snippet(self, repo_id: str) -> str:
        height, width = self.config.sample_size
        keypoints = self.config.num_keypoints
        return f'''import torch
from diffusers import AutoModel

model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
person = torch.rand(1, 3, {height}, {width}) * 2 - 1    # the cloth-agnostic person image, in [-1, 1]
region = torch.zeros(1, 1, {height}, {width}); region[..., 30:90, 25:70] = 1  # its grey try-on region, in [0, 1]
body = torch.zeros(1, 1, {height}, {width}); body[..., 10:125, 25:70] = 1     # the body mask
keypoints = torch.zeros(1, {keypoints}, 3)                   # [x, y, confidence] in pixels (COCO-18 order)
cloth = torch.rand(1, 3, {height}, {width}) * 2 - 1      # the flat garment on white, and its mask
cloth_mask = torch.ones(1, 1, {height}, {width})
avatar = torch.rand(1, 3, {height}, {width}) * 2 - 1     # the person's own pixels (the undressed avatar), in [-1, 1]
with torch.no_grad():
    out = model(person, region, body, keypoints, cloth, cloth_mask, person_image=avatar)
out.sample, out.warped_cloth  # (1, 3, {height}, {width}) in [-1, 1]: the try-on and the warped garment

# With hf-vaegan installed, from an avatar of the synthetic wardrobe (or a VITON-HD row) and a garment image:
# from hf_vaegan import TryOnPipeline
# result = TryOnPipeline.from_pretrained("{repo_id}")(person=avatar, garment=garment)
# result.images[0], result.warped_garments[0]  # PIL images'''
