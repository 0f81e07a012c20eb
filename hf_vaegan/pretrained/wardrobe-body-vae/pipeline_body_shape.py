"""This folder is bundled with hf-vaegan: diffusers' remote-code loader takes hf-vaegan's own class."""

from hf_vaegan.pipelines.pipeline_body_shape import BodyShapePipeline

__all__ = ["BodyShapePipeline"]
