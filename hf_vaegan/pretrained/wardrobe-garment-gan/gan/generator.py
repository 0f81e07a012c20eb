"""This folder is bundled with hf-vaegan: diffusers' remote-code loader takes hf-vaegan's own class."""

from hf_vaegan.models.generator import Generator

__all__ = ["Generator"]
