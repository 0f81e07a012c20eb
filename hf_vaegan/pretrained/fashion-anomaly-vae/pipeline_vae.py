"""This folder is bundled with hf-vaegan: diffusers' remote-code loader takes hf-vaegan's own class."""

from hf_vaegan.pipelines.pipeline_vae import VAEPipeline

__all__ = ["VAEPipeline"]
