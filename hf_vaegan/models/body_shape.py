"""Interpretable directions in a body-shape VAE's latent space: latents <-> body parameters, both linear.

This file imports only torch, diffusers and sibling model files, so that it can be pushed beside the weights and
loaded as remote code.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from .blocks import check_positive_int
from .modeling_utils import VaeGanModelMixin


@dataclass
class BodyShapeHeadOutput(BaseOutput):
    """
    Args:
        parameters (`torch.Tensor` of shape `(batch_size, num_parameters)`): the body parameters read from the
            latents, in natural units (`config.parameter_names` order; not clamped to their ranges).
    """

    parameters: torch.Tensor


class BodyShapeHead(VaeGanModelMixin):
    r"""Two linear maps between a VAE's latent space and interpretable body parameters (height, widths, arm angles...).

    `forward` reads the parameters a latent encodes (a regression head); `latents_for` gives the latent of given
    parameters, the direction sliders move along. Both are fitted in closed form by least squares on the posterior
    means of rendered avatars and their known parameters (`fit`); parameters are scaled to [0, 1] by their ranges
    inside the maps, so every slider weighs the same.

    Parameters:
        latent_dim (`int`): size of the VAE's latent vector.
        parameter_names (`list[str]`): the parameters, in order.
        parameter_ranges (`list[[float, float]]`): each parameter's (low, high) range.
    """

    _no_split_modules = []

    model_card_tags = ("body-shape", "regression-head")

    @register_to_config
    def __init__(
        self,
        *,
        latent_dim: int = 16,
        parameter_names: Sequence[str] = (),
        parameter_ranges: Sequence[Sequence[float]] = (),
    ):
        super().__init__()
        check_positive_int("latent_dim", latent_dim)
        if not parameter_names or len(parameter_ranges) != len(parameter_names):
            raise ValueError(
                f"`parameter_ranges` must give one (low, high) pair per name of `parameter_names` (at least one), got "
                f"{len(parameter_ranges)} ranges for {len(parameter_names)} names."
            )
        if any(len(pair) != 2 or not pair[0] < pair[1] for pair in parameter_ranges):
            raise ValueError(f"`parameter_ranges` must be (low, high) pairs with low < high, got {parameter_ranges}.")
        self.to_parameters = nn.Linear(latent_dim, len(parameter_names))
        self.to_latents = nn.Linear(len(parameter_names), latent_dim)

    def forward(self, latents: torch.Tensor, return_dict: bool = True) -> BodyShapeHeadOutput | tuple:
        """Body parameters `(B, num_parameters)` in natural units from latents `(B, latent_dim)`."""
        self._check(latents, self.config.latent_dim, "latents")
        low, span = self._low_and_span(latents)
        parameters = low + span * self.to_parameters(latents)
        return BodyShapeHeadOutput(parameters=parameters) if return_dict else (parameters,)

    def latents_for(self, parameters: torch.Tensor) -> torch.Tensor:
        """The latents `(B, latent_dim)` of body parameters `(B, num_parameters)` in natural units."""
        self._check(parameters, len(self.config.parameter_names), "parameters")
        low, span = self._low_and_span(parameters)
        return self.to_latents((parameters - low) / span)

    def _low_and_span(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # From the config rather than buffers: diffusers builds models on the meta device, buffers included.
        ranges = torch.tensor(self.config.parameter_ranges, device=like.device, dtype=like.dtype)
        return ranges[:, 0], ranges[:, 1] - ranges[:, 0]

    @staticmethod
    def _check(values: torch.Tensor, size: int, name: str) -> None:
        if not isinstance(values, torch.Tensor) or values.ndim != 2 or values.shape[1] != size:
            shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise ValueError(f"`{name}` must be a tensor of shape (batch, {size}), got {shape}.")

    @torch.no_grad()
    def fit(self, latents: torch.Tensor, parameters: torch.Tensor) -> "BodyShapeHead":
        """Sets both maps to their least-squares fits on `latents` `(N, latent_dim)` and `parameters`
        `(N, num_parameters)` in natural units (N must exceed both sizes); returns `self`."""
        self._check(latents, self.config.latent_dim, "latents")
        self._check(parameters, len(self.config.parameter_names), "parameters")
        if len(latents) != len(parameters) or len(latents) <= max(latents.shape[1], parameters.shape[1]):
            raise ValueError(
                f"need as many latents as parameters, more than {max(latents.shape[1], parameters.shape[1])}; got "
                f"{len(latents)} and {len(parameters)}."
            )
        low, span = self._low_and_span(parameters.double())
        scaled = (parameters.double() - low) / span
        for layer, inputs, targets in (
            (self.to_parameters, latents.double(), scaled),
            (self.to_latents, scaled, latents.double()),
        ):
            with_bias = torch.cat([inputs, torch.ones(len(inputs), 1, dtype=inputs.dtype)], dim=1)
            solution = torch.linalg.lstsq(with_bias, targets).solution
            layer.weight.copy_(solution[:-1].T)
            layer.bias.copy_(solution[-1])
        return self

    def usage_snippet(self, repo_id: str) -> str:
        names = list(self.config.parameter_names)
        return f'''import torch
from diffusers import AutoModel

head = AutoModel.from_pretrained("{repo_id}", subfolder="body_shape_head", trust_remote_code=True)
vae = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
low, high = torch.tensor({[list(pair) for pair in self.config.parameter_ranges]}).T
parameters = ((low + high) / 2)[None]  # {names}
with torch.no_grad():
    avatar = vae.decode(head.latents_for(parameters)).sample   # (1, 3, R, R) in [-1, 1]
    recovered = head(vae.encode(avatar).latent_dist.mode()).parameters

# With hf-vaegan installed: BodyShapePipeline.from_pretrained("{repo_id}") (sliders, sampling, interpolation)'''
