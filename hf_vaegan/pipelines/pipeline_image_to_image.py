"""Image-to-image translation with a `UNetGenerator`: sketches -> garments, one domain -> another."""

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers.image_processor import PipelineImageInput, VaeImageProcessor
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput

from ..data.images import to_canonical_mode
from ..models.unet_generator import UNetGenerator
from .pipeline_utils import SingleModelPipeline

# ITU-R 601 luma, as PIL's convert("L").
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def _as_nchw(image: np.ndarray | torch.Tensor, channels_last: bool) -> torch.Tensor:
    """An image array as a tensor `(N, C, H, W)`. numpy (channels last): `(H, W)`, `(H, W, C)`, `(N, H, W)` or
    `(N, H, W, C)`; torch: `(H, W)`, `(C, H, W)` or `(N, C, H, W)`."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    if tensor.ndim == 2 or (channels_last and tensor.ndim == 3 and tensor.shape[-1] not in (1, 3, 4)):
        tensor = tensor.unsqueeze(-1 if channels_last else 0)
    if tensor.ndim == 3:
        tensor = tensor[None]
    if tensor.ndim != 4:
        raise ValueError(f"image arrays must have 2, 3 or 4 dimensions, got shape {tuple(image.shape)}")
    if channels_last:
        tensor = tensor.permute(0, 3, 1, 2)
    if tensor.shape[1] not in (1, 3, 4):
        layout = "(N, H, W, C)" if channels_last else "(N, C, H, W)"
        raise ValueError(f"images must have 1, 3 or 4 channels in the layout {layout}, got shape {tuple(image.shape)}")
    return tensor


class ImageToImagePipeline(SingleModelPipeline):
    r"""Translates images with a trained `UNetGenerator` (e.g. garment sketches -> garments).

    Takes PIL images (any mode: transparent ones are composited on white, as drawings usually are), numpy arrays
    `(H, W)`, `(H, W, C)` or `(N, H, W, C)` (uint8, or floats in [0, 1]) and tensors `(C, H, W)` or `(N, C, H, W)` in
    [-1, 1], alone or in lists. Images are converted to the generator's channels and resized to the size it was
    trained at (`generator.config.sample_size`), or to `height` x `width`.

    ```python
    from hf_vaegan import ImageToImagePipeline

    pipe = ImageToImagePipeline.from_pretrained("path/or/hub-id")
    garments = pipe([sketch_a, sketch_b]).images  # PIL images
    ```
    """

    model_name = "generator"
    model_class = UNetGenerator
    model_cpu_offload_seq = "generator"

    def __init__(self, generator: UNetGenerator):
        super().__init__()
        config = generator.config
        if config.in_channels not in (1, 3) or config.out_channels not in (1, 3):
            raise ValueError(
                "ImageToImagePipeline works on greyscale or RGB images; this generator maps "
                f"{config.in_channels} to {config.out_channels} channels: call it directly on tensors instead."
            )
        self.register_modules(generator=generator)

    @property
    def image_processor(self) -> VaeImageProcessor:
        channels = self.generator.config.in_channels
        return VaeImageProcessor(
            vae_scale_factor=self.generator.downsampling_factor,
            do_normalize=True,
            do_convert_grayscale=channels == 1,
            do_convert_rgb=channels == 3,
            resample="lanczos",
        )

    def _target_size(self, height: int | None, width: int | None) -> tuple[int | None, int | None]:
        sample_size = self.generator.config.sample_size
        if sample_size is not None:
            default_height, default_width = (sample_size,) * 2 if isinstance(sample_size, int) else sample_size
            height, width = height or default_height, width or default_width
        factor = self.generator.downsampling_factor
        for name, value in (("height", height), ("width", width)):
            if value is not None and (value <= 0 or value % factor):
                raise ValueError(f"`{name}` must be a positive multiple of {factor} for this generator, got {value}.")
        return height, width

    def _to_unit_range(self, images: list) -> torch.Tensor:
        """numpy arrays (uint8 or [0, 1]) and tensors ([-1, 1]) -> one float batch `(N, in_channels, H, W)` in
        [0, 1]."""
        batches = []
        for image in images:
            if isinstance(image, np.ndarray):
                if image.dtype == np.uint8:
                    image = image.astype(np.float32) / 255.0
                elif not np.issubdtype(image.dtype, np.floating):
                    raise TypeError(f"numpy images must be uint8 or float in [0, 1], got dtype {image.dtype}")
                elif image.min() < 0 or image.max() > 1:
                    low, high = image.min(), image.max()
                    raise ValueError(f"float numpy images must lie in [0, 1], got [{low:.3g}, {high:.3g}]")
                batch = _as_nchw(image, channels_last=True).float()
            else:
                if not image.is_floating_point():
                    raise TypeError(f"image tensors must be float in [-1, 1], got dtype {image.dtype}")
                if image.min() < -1.001 or image.max() > 1.001:
                    low, high = image.min().item(), image.max().item()
                    raise ValueError(f"image tensors must lie in [-1, 1], got [{low:.3g}, {high:.3g}]")
                batch = (_as_nchw(image, channels_last=False).float().cpu() + 1) / 2
            batches.append(self._convert_channels(batch.clamp(0, 1)))
        sizes = {tuple(batch.shape[2:]) for batch in batches}
        if len(sizes) > 1:
            raise ValueError(f"array and tensor images in one call must have the same size, got {sorted(sizes)}")
        return torch.cat(batches)

    def _convert_channels(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.shape[1] == 4:  # composite on white, like transparent PIL images
            batch = batch[:, :3] * batch[:, 3:] + (1 - batch[:, 3:])
        channels = self.generator.config.in_channels
        if batch.shape[1] == 3 and channels == 1:
            return torch.einsum("nchw,c->nhw", batch, torch.tensor(_LUMA_WEIGHTS)).unsqueeze(1)
        return batch.expand(-1, channels, -1, -1) if channels == 3 else batch

    def preprocess(
        self, images: PipelineImageInput, height: int | None = None, width: int | None = None
    ) -> torch.Tensor:
        """Any accepted input -> the generator's input batch `(N, in_channels, height, width)` in [-1, 1]."""
        if not isinstance(images, list):
            images = [images]
        if not images or any(image is None for image in images):
            raise ValueError("No image was given: pass a PIL image, a numpy array, a tensor, or a list of them.")
        if any(isinstance(image, np.ndarray) and image.size == 0 for image in images) or any(
            isinstance(image, torch.Tensor) and image.numel() == 0 for image in images
        ):
            raise ValueError("An image array or tensor is empty.")
        height, width = self._target_size(height, width)
        is_pil = all(isinstance(image, PIL.Image.Image) for image in images)
        if is_pil:
            images = [to_canonical_mode(image, self.generator.config.in_channels) for image in images]
        elif all(isinstance(image, (np.ndarray, torch.Tensor)) for image in images):
            images = self._to_unit_range(images)
        else:
            names = sorted({type(image).__name__ for image in images})
            raise TypeError(
                f"images must be PIL images, numpy arrays or torch tensors (not mixed with PIL), got {names}"
            )
        height, width = self.image_processor.get_default_height_width(images[0] if is_pil else images, height, width)
        if not (height and width):
            factor = self.generator.downsampling_factor
            raise ValueError(
                f"images must be at least {factor}x{factor} pixels for this generator (or pass height and width)."
            )
        if is_pil:
            batch = self.image_processor.preprocess(images, height=height, width=width)
        else:
            if images.shape[2:] != (height, width):
                images = F.interpolate(images, size=(height, width), mode="bicubic", antialias=True).clamp(0, 1)
            batch = images * 2 - 1
        return batch.to(device=self.device, dtype=self.generator.dtype)

    @torch.no_grad()
    def __call__(
        self,
        image: PipelineImageInput,
        height: int | None = None,
        width: int | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        """Translates one image or a batch.

        Args:
            image: The input image(s): PIL, numpy or torch, alone or in a list (see the class docstring).
            height, width: Size to resize the inputs to; multiples of `generator.downsampling_factor`. Default: the
                generator's `sample_size`, else the input's size rounded down to such a multiple.
            output_type: `"pil"` (a list of PIL images), `"np"` (`(N, H, W, C)` in [0, 1]) or `"pt"` (`(N, C, H, W)`
                in [-1, 1]).
            return_dict: Return an `ImagePipelineOutput` rather than a tuple.
        """
        batch = self.preprocess(image, height, width)
        images = self.postprocess(self.generator(batch).sample, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)
