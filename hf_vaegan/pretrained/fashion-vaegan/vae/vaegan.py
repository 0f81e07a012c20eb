"""This folder is bundled with hf-vaegan: diffusers' remote-code loader takes hf-vaegan's own class."""

from hf_vaegan.models.vaegan import VAEGAN

__all__ = ["VAEGAN"]
