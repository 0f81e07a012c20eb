"""hf-vaegan: variational autoencoders and GANs as first-class Hugging Face models."""

from .models import (
    VAE,
    AutoEncoder,
    AutoEncoderOutput,
    Discriminator,
    DiscriminatorOutput,
    Generator,
    GeneratorOutput,
    VAELossOutput,
    VAEOutput,
)
from .pipelines import GANPipeline, VAEPipeline

__version__ = "0.1.0"

__all__ = [
    "VAE",
    "AutoEncoder",
    "AutoEncoderOutput",
    "Discriminator",
    "DiscriminatorOutput",
    "Generator",
    "GANPipeline",
    "GeneratorOutput",
    "VAELossOutput",
    "VAEOutput",
    "VAEPipeline",
]
