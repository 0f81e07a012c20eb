"""Full-reference image quality: how close outputs are to their ground truth (image-to-image, try-on, reconstruction).

- SSIM (Wang et al., 2004): structural similarity with the standard 11x11 Gaussian window (sigma 1.5), K1 = 0.01,
  K2 = 0.03, over the valid part of the image (no padding), averaged over the window positions and the channels.
  It is computed on intensities in [0, 1] (its luminance term assumes non-negative intensities: on [-1, 1] values an
  image and its negative would look alike), which matches `skimage.metrics.structural_similarity(image, reference,
  data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=...)` on
  `(x + 1) / 2`.
"""

import torch
import torch.nn.functional as F

from .features import check_metric_images


def _gaussian_windows(size: int, sigma: float, channels: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """The 2D Gaussian window as its two 1D factors (a column and a row), per channel: two 1D convolutions give
    the 2D one ~size/2 times faster (float64 convolutions are slow on CPUs)."""
    coordinates = torch.arange(size, dtype=dtype) - (size - 1) / 2
    profile = torch.exp(-(coordinates**2) / (2 * sigma**2))
    profile = profile / profile.sum()
    column = profile.view(1, 1, size, 1).expand(channels, 1, size, 1).contiguous()
    return column, column.view(channels, 1, 1, size)


@torch.no_grad()
def ssim(
    images: torch.Tensor,
    references: torch.Tensor,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
) -> torch.Tensor:
    """The SSIM of each image with its reference, `(N,)` float64 in [-1, 1] (1 for identical images).

    Args:
        images: `(N, C, H, W)` in [-1, 1].
        references: the ground truth, same shape.
        window_size: side of the Gaussian window (odd); images must be at least this large.
        sigma: standard deviation of the window, in pixels.
    """
    check_metric_images(images, "images")
    check_metric_images(references, "references")
    if images.shape != references.shape:
        raise ValueError(
            f"`images` and `references` must have the same shape, got {images.shape} and {references.shape}"
        )
    if window_size < 1 or window_size % 2 == 0 or min(images.shape[2:]) < window_size:
        raise ValueError(
            f"`window_size` must be odd and at most the image size {tuple(images.shape[2:])}, got {window_size}"
        )
    x, y = (images.double().cpu() + 1) / 2, (references.double().cpu() + 1) / 2
    column, row = _gaussian_windows(window_size, sigma, x.shape[1], x.dtype)

    def local_mean(values: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(values, column, groups=x.shape[1]), row, groups=x.shape[1])

    mean_x, mean_y = local_mean(x), local_mean(y)
    variance_x = local_mean(x * x) - mean_x**2
    variance_y = local_mean(y * y) - mean_y**2
    covariance = local_mean(x * y) - mean_x * mean_y
    c1, c2 = 0.01**2, 0.03**2
    similarity = ((2 * mean_x * mean_y + c1) * (2 * covariance + c2)) / (
        (mean_x**2 + mean_y**2 + c1) * (variance_x + variance_y + c2)
    )
    return similarity.flatten(1).mean(dim=1)
