"""Input checks shared by the fully convolutional image-to-image models, which take images of any size.

This file imports only torch so that it can be pushed beside the weights and loaded as remote code.
"""

import torch


def check_image_batch(sample: torch.Tensor, channels: int, name: str = "sample") -> None:
    """Raises a clear error unless `sample` is a float tensor of shape (B, channels, H, W)."""
    if not isinstance(sample, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(sample).__name__}.")
    if sample.ndim != 4 or sample.shape[1] != channels:
        raise ValueError(f"`{name}` must have shape (batch, {channels}, height, width), got {tuple(sample.shape)}.")
    if not sample.is_floating_point():
        raise ValueError(f"`{name}` must be a floating point tensor in [-1, 1], got dtype {sample.dtype}.")
