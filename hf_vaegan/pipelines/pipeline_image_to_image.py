"""Image-to-image translation with a `UNetGenerator`: sketches -> garments, one domain -> another."""

import torch
from diffusers.image_processor import PipelineImageInput
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput

from ..data.images import Background, count_images, height_and_width, image_size, images_to_tensor
from ..models.unet_generator import UNetGenerator
from .pipeline_utils import CHUNK_VALUES, SingleModelPipeline, check_count, check_output_type, in_chunks

# The largest image the pipeline translates (4 megapixels: about 1 GB per full-size layer of a 64-channel U-Net);
# translate larger ones in tiles with the generator itself.
MAX_IMAGE_PIXELS = 2048 * 2048


class ImageToImagePipeline(SingleModelPipeline):
    r"""Translates images with a trained `UNetGenerator` (e.g. garment sketches -> garments).

    Takes images as every pipeline does (`hf_vaegan.data.images.images_to_tensor`): PIL images of any mode
    (transparent ones are composited on white, as drawings usually are), numpy arrays `(H, W)`, `(H, W, C)` or
    `(N, H, W, C)` (uint8, or floats in [0, 1]) and tensors `(C, H, W)` or `(N, C, H, W)` in [-1, 1], alone or in
    lists. Images are converted to the generator's channels and resized to the size it was trained at
    (`generator.config.sample_size`), or to `height` x `width` (at most `MAX_IMAGE_PIXELS`).

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

    def usage_example(self) -> str:
        mode = "L" if self.generator.config.in_channels == 1 else "RGB"
        return f"""from PIL import Image, ImageDraw

drawing = Image.new("{mode}", (112, 112), "white")  # an input drawn by hand: a T-shirt outline, dark on white
ImageDraw.Draw(drawing).polygon(
    [(36, 16), (76, 16), (100, 40), (88, 50), (80, 44), (80, 100), (32, 100), (32, 44), (24, 50), (12, 40)],
    outline="black", width=6,
)
outputs = pipe([drawing]).images  # PIL images at the generator's resolution"""

    def _target_size(self, images: list, height: int | None, width: int | None) -> tuple[int, int]:
        """`(height, width)` given, else the generator's `sample_size`, else the first image's size rounded down to a
        multiple of the downsampling factor."""
        factor = self.generator.downsampling_factor
        for name, value in (("height", height), ("width", width)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % factor:
                raise ValueError(
                    f"`{name}` must be a positive multiple of {factor} for this generator, got {value!r}."
                )
        sample_size = self.generator.config.sample_size
        if sample_size is not None:
            default_height, default_width = height_and_width(sample_size)
        else:
            first_height, first_width = image_size(images[0])
            default_height, default_width = first_height // factor * factor, first_width // factor * factor
        height, width = height or default_height, width or default_width
        if not (height and width):
            raise ValueError(
                f"images must be at least {factor}x{factor} pixels for this generator (or pass height and width)."
            )
        if height * width > MAX_IMAGE_PIXELS:
            raise ValueError(
                f"{height}x{width} images are more than this pipeline translates ({MAX_IMAGE_PIXELS / 1e6:.1f} "
                "megapixels): pass a smaller height and width, or run the generator on tiles."
            )
        return height, width

    def preprocess(
        self,
        images: PipelineImageInput,
        height: int | None = None,
        width: int | None = None,
        background: Background = 255,
    ) -> torch.Tensor:
        """Any accepted input -> the generator's input batch `(N, in_channels, height, width)` in [-1, 1]."""
        items = images if isinstance(images, (list, tuple)) else [images]
        if not items or any(item is None for item in items):
            raise ValueError("No image was given: pass a PIL image, a numpy array, a tensor, or a list of them.")
        size = self._target_size(items, height, width)
        config = self.generator.config
        values_per_image = max(config.in_channels, config.out_channels) * size[0] * size[1]
        # minimum 0: empty arrays get images_to_tensor's own error
        check_count("the number of images", sum(count_images(item) for item in items), values_per_image, minimum=0)
        channels = self.generator.config.in_channels
        batch = images_to_tensor(images, channels, size, background=background, name="image")
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
        check_output_type(output_type)
        batch = self.preprocess(image, height, width)
        config = self.generator.config
        values_per_image = max(config.in_channels, config.out_channels) * batch.shape[2] * batch.shape[3]
        chunk_size = max(1, CHUNK_VALUES // values_per_image)
        outputs = in_chunks(lambda sample: self.generator(sample).sample, chunk_size, sample=batch)
        images = self.postprocess(outputs, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)
