"""Differentiable augmentation (Zhao et al., 2020) of everything a discriminator sees.

The same kind of random translation / cutout / colour change is applied to real and generated images (each image
drawn independently) before the discriminator, which keeps it from memorising small datasets; gradients flow through
the augmentation to the generator.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

DIFFAUGMENT_OPERATIONS = ("translation", "cutout", "color")


def parse_diffaugment_policy(policy: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"translation,cutout,color"`` -> ``("translation", "cutout", "color")``; ``""``/``"none"``/``None`` -> ``()``.

    Raises ``ValueError`` naming unknown operations.
    """
    if policy is None:
        return ()
    names = [name.strip() for name in policy.split(",")] if isinstance(policy, str) else list(policy)
    names = [name for name in names if name and name != "none"]
    unknown = [name for name in names if name not in DIFFAUGMENT_OPERATIONS]
    if unknown:
        raise ValueError(f"unknown DiffAugment operation(s) {unknown}; choose from {DIFFAUGMENT_OPERATIONS}")
    return tuple(dict.fromkeys(names))


class DiffAugment:
    """Differentiable augmentation of image batches ``(B, C, H, W)`` in [-1, 1], each image drawn independently.

    Operations (Zhao et al., 2020): ``translation`` shifts by up to 1/8 of the size, filling with zeros;
    ``cutout`` zeroes a square of half the size; ``color`` shifts brightness by U(-0.5, 0.5), scales saturation by
    U(0, 2) and contrast by U(0.5, 1.5). Gradients flow through all of them to the generator.

    Args:
        policy: Operations to apply, as for :func:`parse_diffaugment_policy`.
    """

    def __init__(self, policy: str | Iterable[str] | None):
        self.operations = parse_diffaugment_policy(policy)

    def __bool__(self) -> bool:
        return bool(self.operations)

    def __repr__(self) -> str:
        return f"DiffAugment({','.join(self.operations) or 'none'})"

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for operation in self.operations:
            images = getattr(self, f"_{operation}")(images, generator)
        return images

    @staticmethod
    def _uniform(images: torch.Tensor, generator: torch.Generator | None, low: float, high: float) -> torch.Tensor:
        draws = torch.rand(images.shape[0], 1, 1, 1, generator=generator, device=images.device, dtype=images.dtype)
        return low + (high - low) * draws

    def _color(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        images = images + self._uniform(images, generator, -0.5, 0.5)
        channel_mean = images.mean(dim=1, keepdim=True)
        images = (images - channel_mean) * self._uniform(images, generator, 0.0, 2.0) + channel_mean
        image_mean = images.mean(dim=(1, 2, 3), keepdim=True)
        return (images - image_mean) * self._uniform(images, generator, 0.5, 1.5) + image_mean

    @staticmethod
    def _offsets(images: torch.Tensor, generator: torch.Generator | None, low: int, high: int) -> torch.Tensor:
        """Integer draws in [low, high] per image, for rows and columns: ``(2, B)``."""
        return torch.randint(low, high + 1, (2, images.shape[0]), generator=generator, device=images.device)

    def _translation(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        batch, _, height, width = images.shape
        max_shift = round(min(height, width) / 8)
        shift_y, shift_x = self._offsets(images, generator, -max_shift, max_shift)
        rows = torch.arange(height, device=images.device)[None, :, None] - shift_y[:, None, None]
        cols = torch.arange(width, device=images.device)[None, None, :] - shift_x[:, None, None]
        # Source pixels outside the image read the zero border of the padded copy.
        rows = rows.clamp(-1, height) + 1
        cols = cols.clamp(-1, width) + 1
        padded = F.pad(images, (1, 1, 1, 1)).permute(0, 2, 3, 1)
        batch_index = torch.arange(batch, device=images.device)[:, None, None]
        return padded[batch_index, rows, cols].permute(0, 3, 1, 2).contiguous(memory_format=_memory_format(images))

    def _cutout(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        _, _, height, width = images.shape
        size_y, size_x = height // 2, width // 2
        center_y, center_x = self._offsets(images, generator, 0, max(height, width) - 1)
        center_y, center_x = center_y % height, center_x % width
        rows = torch.arange(height, device=images.device)[None, :, None]
        cols = torch.arange(width, device=images.device)[None, None, :]
        inside = ((rows - center_y[:, None, None]).abs() * 2 < size_y) & (
            (cols - center_x[:, None, None]).abs() * 2 < size_x
        )
        return images * (~inside)[:, None].to(images.dtype)


def _memory_format(images: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if images.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
