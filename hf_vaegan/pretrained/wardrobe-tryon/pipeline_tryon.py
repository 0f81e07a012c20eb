"""This folder is bundled with hf-vaegan: diffusers' remote-code loader takes hf-vaegan's own class."""

from hf_vaegan.pipelines.pipeline_tryon import TryOnPipeline

__all__ = ["TryOnPipeline"]
