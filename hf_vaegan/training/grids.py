"""Sample grids: images in [-1, 1] laid out as PIL grids, saved under ``--output_dir/samples`` and logged."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils import make_image_grid
from PIL import Image


def images_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """Images ``(B, C, H, W)`` in [-1, 1] -> PIL images (mode ``L`` for one channel, ``RGB`` for three)."""
    array = VaeImageProcessor.pt_to_numpy(VaeImageProcessor.denormalize(images.detach().float().cpu()))
    return VaeImageProcessor.numpy_to_pil(array)


def make_sample_grid(images: torch.Tensor, rows: int | None = None) -> Image.Image:
    """One PIL grid of ``images`` ``(B, C, H, W)`` in [-1, 1]; ``rows`` defaults to a square-ish layout (with
    class-conditional grids, pass ``rows=num_classes`` and order the images class by class)."""
    count = len(images)
    if rows is None:
        rows = max(divisor for divisor in range(1, math.isqrt(count) + 1) if count % divisor == 0)
    if count % rows:
        raise ValueError(f"{count} images do not fill a grid of {rows} rows")
    return make_image_grid(images_to_pil(images), rows=rows, cols=count // rows)


def log_sample_grid(
    accelerator: Accelerator, grid: Image.Image, step: int, output_dir: str | os.PathLike, name: str = "samples"
) -> Path:
    """Save ``grid`` as ``output_dir/samples/step-<step>.png`` and log it to every tracker that takes images.

    Call on the main process only. Returns the PNG path.
    """
    path = Path(output_dir) / "samples" / f"step-{step:07d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    array = np.asarray(grid.convert("RGB"))
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.log_images({name: array[None]}, step=step, dataformats="NHWC")
        elif hasattr(tracker, "log_images"):
            tracker.log_images({name: [array]}, step=step)
    return path


def comparison_grid(*batches: torch.Tensor, max_columns: int = 8) -> Image.Image:
    """A grid comparing batches of corresponding images, e.g. ``(sources, outputs, targets)``.

    Each batch is ``(N, C, H, W)`` in [-1, 1] with the same ``N``, ``H`` and ``W``; greyscale batches are shown in RGB
    when another batch is in colour. Examples are laid out in blocks of up to ``max_columns`` columns, one row per
    batch, so each column reads top to bottom as source, output, target.
    """
    count = len(batches[0])
    if any(len(batch) != count or batch.shape[2:] != batches[0].shape[2:] for batch in batches):
        raise ValueError(f"batches must have the same number and size of images, got {[b.shape for b in batches]}")
    channels = max(batch.shape[1] for batch in batches)
    batches = [batch.detach().float().cpu().expand(-1, channels, -1, -1) for batch in batches]
    columns = max(d for d in range(1, min(count, max_columns) + 1) if count % d == 0)
    rows = [batch[start : start + columns] for start in range(0, count, columns) for batch in batches]
    return make_sample_grid(torch.cat(rows), rows=len(rows))
