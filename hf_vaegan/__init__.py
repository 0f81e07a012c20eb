"""hf-vaegan: variational autoencoders and GANs as first-class Hugging Face models."""

from .auto import load_pretrained
from .models import (
    VAE,
    VAEGAN,
    AutoEncoder,
    AutoEncoderOutput,
    Discriminator,
    DiscriminatorOutput,
    FashionClassifier,
    Generator,
    GeneratorOutput,
    PatchDiscriminator,
    TryOnModel,
    UNetGenerator,
    VAELossOutput,
    VAEOutput,
)
from .pipelines import BodyShapePipeline, GANPipeline, ImageToImagePipeline, TryOnPipeline, VAEPipeline

__version__ = "0.1.0"

__all__ = [
    "VAE",
    "VAEGAN",
    "AutoEncoder",
    "AutoEncoderOutput",
    "BodyShapePipeline",
    "Discriminator",
    "DiscriminatorOutput",
    "FashionClassifier",
    "GANPipeline",
    "Generator",
    "GeneratorOutput",
    "ImageToImagePipeline",
    "PatchDiscriminator",
    "TryOnModel",
    "TryOnPipeline",
    "UNetGenerator",
    "VAELossOutput",
    "VAEOutput",
    "VAEPipeline",
    "load_pretrained",
]
