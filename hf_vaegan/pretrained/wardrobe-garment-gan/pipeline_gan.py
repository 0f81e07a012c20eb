"""This folder is bundled with hf-vaegan: diffusers' remote-code loader takes hf-vaegan's own class."""

from hf_vaegan.pipelines.pipeline_gan import GANPipeline

__all__ = ["GANPipeline"]
