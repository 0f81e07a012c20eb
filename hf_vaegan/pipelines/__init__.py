from .pipeline_body_shape import BodyShapePipeline
from .pipeline_gan import GANPipeline
from .pipeline_image_to_image import ImageToImagePipeline
from .pipeline_tryon import TryOnPipeline
from .pipeline_utils import SingleModelPipeline
from .pipeline_vae import VAEPipeline

__all__ = [
    "BodyShapePipeline",
    "GANPipeline",
    "ImageToImagePipeline",
    "SingleModelPipeline",
    "TryOnPipeline",
    "VAEPipeline",
]
