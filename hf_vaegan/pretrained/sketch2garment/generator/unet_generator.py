"""This folder is bundled with hf-vaegan: diffusers' remote-code loader takes hf-vaegan's own class."""

from hf_vaegan.models.unet_generator import UNetGenerator

__all__ = ["UNetGenerator"]
