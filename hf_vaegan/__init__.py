"""hf-vaegan: variational autoencoders and GANs as first-class Hugging Face models.

The public names load on first use (PEP 562, as diffusers' lazy modules do): `import hf_vaegan` imports neither torch
nor diffusers, and `from hf_vaegan import VAE` imports the models, not the training layer, accelerate or datasets.
"""

import importlib
from typing import TYPE_CHECKING

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

# Public name -> the submodule that defines it.
_EXPORTS = {
    name: ".auto" if name == "load_pretrained" else ".pipelines" if name.endswith("Pipeline") else ".models"
    for name in __all__
}

if TYPE_CHECKING:
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


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
