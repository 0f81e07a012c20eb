"""This folder is bundled with hf-vaegan: diffusers' remote-code loader takes hf-vaegan's own class."""

from hf_vaegan.models.body_shape import BodyShapeHead

__all__ = ["BodyShapeHead"]
