from .pipeline_gan import GANPipeline
from .pipeline_utils import SingleModelPipeline
from .pipeline_vae import VAEPipeline

__all__ = ["GANPipeline", "SingleModelPipeline", "VAEPipeline"]
