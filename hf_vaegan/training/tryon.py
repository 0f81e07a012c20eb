"""The virtual try-on recipe of ``examples/train_tryon.py``: a ``TryOnModel`` (appearance-flow warp + try-on U-Net)
against a conditional PatchGAN that judges (agnostic person, result) pairs.

Per batch, under ``accelerator.accumulate``:

- **Dmain**: the PatchGAN on (agnostic, person) vs (agnostic, try-on) pairs;
- **Gmain**, against the updated, frozen PatchGAN: the adversarial loss + ``l1_weight`` x a multi-scale L1 to the
  ground truth (the coarse scales give the warp and the rendering gradients over a wider area) +
  ``feature_matching_weight`` x feature matching on every hidden layer of the PatchGAN (a perceptual-style loss
  without any pretrained network: its features are learnt on this very data, nothing is downloaded) and, for the
  warp, ``warp_weight`` x a multi-scale L1 between the warped garment (and its mask) and the garment as worn +
  ``flow_smoothness_weight`` x the total variation of the flow. The garment as worn is the wardrobe's
  ``warped_cloth`` column where the dataset has it, else (VITON-HD) the clothes of ``image_parse`` cut out of the
  person image, as in CP-VTON. Where the dataset also has the renderer's own flow (the wardrobe's
  ``warped_cloth_flow``), + ``flow_weight`` x the flow's mean distance to it in pixels: the appearance losses alone
  leave thin stripes a fraction of a pixel from where the renderer draws them;
- the model's EMA.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from accelerate import Accelerator
from PIL import Image
from torch import nn

from ..data.tryon import model_inputs
from ..metrics.tryon import cast_inputs
from .grids import comparison_grid
from .losses import flow_endpoint_error, multiscale_l1, total_variation
from .pix2pix import ConditionalPatchGANTrainer
from .update import Network, frozen


class TryOnTrainer(ConditionalPatchGANTrainer):
    """One try-on update per batch (see the module docstring).

    Args:
        accelerator: The run's Accelerator.
        model: The ``TryOnModel`` network.
        discriminator: The ``PatchDiscriminator`` network, ``in_channels=6``.
        l1_weight, feature_matching_weight, warp_weight, flow_smoothness_weight, flow_weight: Loss weights (see
            the module docstring); the adversarial loss has weight 1.
        class_dropout: Share of the garments given to a model with `num_garment_classes` as of unknown class (-1).
        options: ``loss``, ``augment`` of :class:`~hf_vaegan.training.update.AdversarialTrainer`; ``ema``,
            ``max_grad_norm``, ``rng``, ``channels_last`` of :class:`~hf_vaegan.training.update.Trainer`.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        model: Network,
        discriminator: Network,
        *,
        l1_weight: float = 10.0,
        feature_matching_weight: float = 5.0,
        warp_weight: float = 10.0,
        flow_smoothness_weight: float = 1.0,
        flow_weight: float = 1.0,
        class_dropout: float = 0.1,
        **options,
    ):
        weights = (l1_weight, feature_matching_weight, warp_weight, flow_smoothness_weight, flow_weight)
        if min(weights) < 0:
            raise ValueError(f"loss weights must be >= 0, got {weights}")
        super().__init__(accelerator, **options)
        self.model, self.discriminator = model, discriminator
        self.l1_weight, self.feature_matching_weight = l1_weight, feature_matching_weight
        self.warp_weight, self.flow_smoothness_weight = warp_weight, flow_smoothness_weight
        self.flow_weight = flow_weight
        if not 0 <= class_dropout <= 1:
            raise ValueError(f"class_dropout must be in [0, 1], got {class_dropout}")
        self.class_dropout = class_dropout

    def train_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        """Train on a batch of :class:`~hf_vaegan.data.tryon.TryOnTransform` tensors; ``step`` is the 1-based
        optimizer step.

        Returns the losses, mean logits, gradient norms and learning rates, averaged over the processes.
        """
        accelerator, model, discriminator = self.accelerator, self.model, self.discriminator
        inputs = {
            name: tensor.contiguous(memory_format=self.memory_format) if tensor.ndim == 4 else tensor
            for name, tensor in model_inputs(batch).items()
            if tensor is not None
        }
        if "garment_class" in inputs and self.class_dropout:
            # Some garments as of unknown class, so that the model also dresses garments without one.
            unknown = torch.rand(inputs["garment_class"].shape, device=inputs["garment_class"].device)
            inputs["garment_class"] = inputs["garment_class"].masked_fill(unknown < self.class_dropout, -1)
        target = self.images(batch["image"])
        logs: dict[str, float] = {}
        with accelerator.accumulate(model.model, discriminator.model):
            sample, warped, warped_mask, _, _, flow = model.model(**inputs, return_dict=False)
            real_pairs = torch.cat([inputs["agnostic"], target], dim=1)
            fake_pairs = torch.cat([inputs["agnostic"], sample.to(target.dtype)], dim=1)

            # Dmain
            logs |= self.discriminator_update(discriminator, real_pairs, fake_pairs, step)

            # Gmain
            with frozen(discriminator.bare):
                adversarial, fake_features = self.adversarial_loss(discriminator, fake_pairs)
                terms = {"adversarial_loss": adversarial, "l1": multiscale_l1(sample, target)}
                weights = {"adversarial_loss": 1.0, "l1": self.l1_weight}
                if self.feature_matching_weight:
                    terms["feature_matching_loss"] = self.feature_matching(
                        discriminator, real_pairs, fake_pairs, fake_features
                    )
                    weights["feature_matching_loss"] = self.feature_matching_weight
                if flow is not None:
                    worn_mask = batch["warped_cloth_mask"]
                    terms["warp_loss"] = multiscale_l1(warped * worn_mask, batch["warped_cloth"] * worn_mask)
                    terms["warp_loss"] = terms["warp_loss"] + multiscale_l1(warped_mask, worn_mask)
                    terms["flow_smoothness"] = total_variation(flow)
                    weights |= {"warp_loss": self.warp_weight, "flow_smoothness": self.flow_smoothness_weight}
                    if self.flow_weight and "warped_cloth_flow" in batch:
                        terms["flow_loss"] = flow_endpoint_error(flow, batch["warped_cloth_flow"])
                        weights["flow_loss"] = self.flow_weight
                model_loss = sum(weights[name] * value for name, value in terms.items())
                logs |= self.update(model, model_loss, step, "model_grad_norm",
                    model_loss=model_loss, **terms,
                )  # fmt: skip

        return logs | self.end_step(model.bare, discriminator=discriminator, model=model)


@torch.no_grad()
def tryon_samples(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The try-on results and warped garments ``(N, 3, H, W)`` (float32) of ``model`` for the grids' fixed inputs."""
    inputs = cast_inputs(model_inputs(batch), model)
    output = model(**inputs)
    return output.sample.float(), output.warped_cloth.float()


def tryon_grid(model: nn.Module, batch: Mapping[str, torch.Tensor], max_columns: int = 8) -> Image.Image:
    """Rows of garments, agnostic persons, warped garments, try-on results and ground truths."""
    samples, warped = tryon_samples(model, batch)
    return comparison_grid(batch["cloth"], batch["agnostic"], warped, samples, batch["image"], max_columns=max_columns)
