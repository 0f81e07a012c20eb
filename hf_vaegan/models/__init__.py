from importlib.resources import files

from .autoencoder import AutoEncoder, AutoEncoderEncoderOutput, AutoEncoderOutput
from .body_shape import BodyShapeHead, BodyShapeHeadOutput
from .discriminator import Discriminator, DiscriminatorOutput
from .fashion_classifier import FashionClassifier, FashionClassifierOutput
from .generator import Generator, GeneratorOutput
from .modeling_utils import VaeGanModelMixin
from .patch_discriminator import PatchDiscriminator, PatchDiscriminatorOutput
from .transformation_vae import TransformationVAE
from .tryon import TryOnModel, TryOnOutput
from .unet_generator import UNetGenerator, UNetGeneratorOutput
from .vae import VAE, VAEEncoderOutput, VAELossOutput, VAEOutput
from .vaegan import VAEGAN

# Cards pushed from an installed hf-vaegan use the packaged template; remote-code users get huggingface_hub's default.
VaeGanModelMixin.model_card_template = str(files("hf_vaegan.model_cards").joinpath("template.md"))

__all__ = [
    "VAE",
    "VAEGAN",
    "AutoEncoder",
    "AutoEncoderEncoderOutput",
    "AutoEncoderOutput",
    "BodyShapeHead",
    "BodyShapeHeadOutput",
    "Discriminator",
    "DiscriminatorOutput",
    "FashionClassifier",
    "FashionClassifierOutput",
    "Generator",
    "GeneratorOutput",
    "PatchDiscriminator",
    "PatchDiscriminatorOutput",
    "TransformationVAE",
    "TryOnModel",
    "TryOnOutput",
    "UNetGenerator",
    "UNetGeneratorOutput",
    "VAEEncoderOutput",
    "VAELossOutput",
    "VAEOutput",
    "VaeGanModelMixin",
]
