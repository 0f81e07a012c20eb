"""This folder is bundled with hf-vaegan: diffusers' remote-code loader takes hf-vaegan's own class."""

from hf_vaegan.models.transformation_vae import TransformationVAE

__all__ = ["TransformationVAE"]
