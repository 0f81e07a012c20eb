"""The CycleGAN recipe of ``examples/train_cyclegan.py`` (Zhu et al., 2017): unpaired translation between two
domains with two U-Net generators and two PatchGANs.

Per batch of unpaired images (a, b), under ``accelerator.accumulate``:

- **Gmain**: both generators, against the frozen discriminators: ``adversarial(D_B(G_AB(a))) +
  adversarial(D_A(G_BA(b))) + cycle_weight * (|G_BA(G_AB(a)) - a| + |G_AB(G_BA(b)) - b|) + cycle_weight *
  identity_weight * (|G_AB(b) - b| + |G_BA(a) - a|)``;
- **Dmain**: both discriminators, real images vs generated ones partly replayed from earlier steps
  (:class:`ImageReplayBuffer`, Shrivastava et al., 2017);
- the generators' EMAs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import gather
from diffusers.training_utils import EMAModel

from .losses import discriminator_loss, generator_loss
from .model_args import IMAGE_TO_IMAGE_GAN_LOSSES
from .pix2pix import judge, translate
from .state import register_training_state, step_emas
from .update import AdversarialTrainer, Network, frozen


class ImageReplayBuffer:
    """A pool of past generated images shown to a discriminator in place of some of the newest ones (CycleGAN).

    Until the pool is full, every generated image is stored and returned as is. Then each image is, with probability
    1/2, returned as is, or swapped with a random stored image, which is returned instead. This keeps the
    discriminator from forgetting earlier generator outputs and damps oscillations.

    The pool is checkpointed (see :func:`create_replay_buffer`); in multi-process runs each process keeps its own
    pool, all of them saved.

    Args:
        accelerator: The run's Accelerator.
        capacity: Images kept (CycleGAN uses 50); 0 disables the buffer.
        image_shape: ``(C, H, W)`` of the images.
        generator: Source of the random choices (the checkpointed training RNG).
    """

    def __init__(
        self,
        accelerator: Accelerator,
        capacity: int,
        image_shape: Sequence[int],
        generator: torch.Generator | None = None,
    ):
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.accelerator = accelerator
        self.capacity = capacity
        self.generator = generator
        self.images = torch.zeros(capacity, *image_shape, device=accelerator.device)
        self.size = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Store ``images`` ``(B, C, H, W)`` (detached) and return the batch the discriminator should see."""
        images = images.detach()
        if self.capacity == 0:
            return images
        output = images.clone()
        for index, image in enumerate(images):
            if self.size < self.capacity:
                self.images[self.size] = image
                self.size += 1
            elif torch.rand((), generator=self.generator, device=self.images.device) < 0.5:
                slot = int(torch.randint(self.capacity, (), generator=self.generator, device=self.images.device))
                output[index] = self.images[slot]
                self.images[slot] = image
        return output

    def state_dict(self) -> dict[str, torch.Tensor]:
        # Checkpoints are written by the main process only: gather every process's pool.
        state = torch.tensor([self.size], device=self.images.device)
        # A snapshot (gather returns the live tensor itself in single-process runs).
        return {"images": gather(self.images[None]).cpu().clone(), "sizes": gather(state).cpu()}

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        images, sizes = state_dict["images"], state_dict["sizes"]
        if len(images) != self.accelerator.num_processes or images.shape[1:] != self.images.shape:
            raise ValueError(
                f"the checkpoint holds {len(images)} replay buffers of shape {tuple(images.shape[1:])}; this run has "
                f"{self.accelerator.num_processes} of shape {tuple(self.images.shape)}"
            )
        self.images = images[self.accelerator.process_index].to(self.images.device)
        self.size = int(sizes[self.accelerator.process_index])


def create_replay_buffer(
    accelerator: Accelerator,
    name: str,
    capacity: int,
    image_shape: Sequence[int],
    generator: torch.Generator | None = None,
) -> ImageReplayBuffer:
    """An :class:`ImageReplayBuffer`, checkpointed as ``name``."""
    buffer = ImageReplayBuffer(accelerator, capacity, image_shape, generator)
    register_training_state(accelerator, name, buffer)
    return buffer


class CycleGANTrainer(AdversarialTrainer):
    """One CycleGAN update per batch (see the module docstring).

    Args:
        accelerator: The run's Accelerator.
        generators: The network of ``generator_a_to_b`` and ``generator_b_to_a`` (``UNetGenerator`` s).
        discriminators: The network of ``discriminator_a`` and ``discriminator_b`` (``PatchDiscriminator`` s judging
            domain A and domain B images).
        cycle_weight: Weight of the cycle-consistency L1 losses (10 in CycleGAN).
        identity_weight: Weight of the identity L1 losses, relative to ``cycle_weight`` (0.5 in CycleGAN); needs
            domains with the same number of channels; 0 disables them.
        replay_buffers: :class:`ImageReplayBuffer` of generated A and of generated B images, or ``None``.
        emas: EMAs of the two generators (or ``None`` s).
        options: ``loss``, ``augment`` of :class:`~hf_vaegan.training.update.AdversarialTrainer`; ``max_grad_norm``,
            ``rng``, ``channels_last`` of :class:`~hf_vaegan.training.update.Trainer`.
    """

    LOSSES = IMAGE_TO_IMAGE_GAN_LOSSES

    def __init__(
        self,
        accelerator: Accelerator,
        generators: Network,
        discriminators: Network,
        *,
        cycle_weight: float = 10.0,
        identity_weight: float = 0.5,
        replay_buffers: tuple[ImageReplayBuffer, ImageReplayBuffer] | None = None,
        emas: tuple[EMAModel | None, EMAModel | None] = (None, None),
        **options,
    ):
        if cycle_weight < 0 or identity_weight < 0:
            raise ValueError(f"loss weights must be >= 0, got {cycle_weight} and {identity_weight}")
        config = generators.bare_models["generator_a_to_b"].config
        if identity_weight and config.in_channels != config.out_channels:
            raise ValueError(
                f"the identity loss needs domains with the same number of channels, got "
                f"{(config.in_channels, config.out_channels)}; set identity_weight=0"
            )
        super().__init__(accelerator, **options)
        self.generators, self.discriminators = generators, discriminators
        self.cycle_weight, self.identity_weight = cycle_weight, identity_weight
        self.replay_buffers = replay_buffers
        self.emas = emas

    def train_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        """Train on ``{"pixel_values_a", "pixel_values_b"}`` (``(B, C, H, W)`` in [-1, 1], unpaired).

        Returns:
            Losses (adversarial, cycle, identity), mean logits, gradient norms and learning rates, averaged over the
            processes.
        """
        accelerator = self.accelerator
        real_a = self.images(batch["pixel_values_a"])
        real_b = self.images(batch["pixel_values_b"])
        a_to_b, b_to_a = self.generators.models.values()
        bare_a_to_b, bare_b_to_a = self.generators.bare_models.values()
        discriminator_a, discriminator_b = self.discriminators.models.values()
        bare_discriminator_a, bare_discriminator_b = self.discriminators.bare_models.values()
        batch_size = real_a.shape[0]
        logs: dict[str, float] = {}
        with accelerator.accumulate(a_to_b, b_to_a, discriminator_a, discriminator_b):
            # Gmain: one pass of each prepared model (identity images batched in); the cycle's second pass goes
            # through the bare model, so a DDP model runs forward once per backward.
            if self.identity_weight:
                fake_b, same_b = translate(a_to_b, torch.cat([real_a, real_b])).split(batch_size)
                fake_a, same_a = translate(b_to_a, torch.cat([real_b, real_a])).split(batch_size)
            else:
                fake_b, fake_a = translate(a_to_b, real_a), translate(b_to_a, real_b)
            with frozen(bare_discriminator_a, bare_discriminator_b):
                adversarial = sum(
                    generator_loss(judge(discriminator, self.augment(fake, self.rng))[0], self.loss)
                    for discriminator, fake in ((bare_discriminator_b, fake_b), (bare_discriminator_a, fake_a))
                )
            cycle = F.l1_loss(translate(bare_b_to_a, fake_b).float(), real_a.float()) + F.l1_loss(
                translate(bare_a_to_b, fake_a).float(), real_b.float()
            )
            g_loss = adversarial + self.cycle_weight * cycle
            terms = {"adversarial_loss": adversarial, "cycle_loss": cycle}
            if self.identity_weight:
                terms["identity_loss"] = F.l1_loss(same_b.float(), real_b.float()) + F.l1_loss(
                    same_a.float(), real_a.float()
                )
                g_loss = g_loss + self.cycle_weight * self.identity_weight * terms["identity_loss"]
            logs |= self.update(self.generators, g_loss, step, "generator_grad_norm",
                generator_loss=g_loss, **terms,
            )  # fmt: skip

            # Dmain: real images vs generated ones, partly replayed from earlier steps.
            fake_a, fake_b = fake_a.detach().to(real_a.dtype), fake_b.detach().to(real_b.dtype)
            if self.replay_buffers is not None:
                fake_a, fake_b = self.replay_buffers[0](fake_a), self.replay_buffers[1](fake_b)
            d_terms = {}
            d_loss = 0.0
            for domain, discriminator, real, fake in (
                ("a", discriminator_a, real_a, fake_a),
                ("b", discriminator_b, real_b, fake_b),
            ):
                judged = self.augment(torch.cat([real, fake]), self.rng)
                real_logits, fake_logits = judge(discriminator, judged)[0].chunk(2)
                d_loss = d_loss + discriminator_loss(real_logits, fake_logits, self.loss)
                d_terms[f"real_logits_{domain}"] = real_logits.mean()
                d_terms[f"fake_logits_{domain}"] = fake_logits.mean()
            logs |= self.update(self.discriminators, d_loss, step, "discriminator_grad_norm",
                discriminator_loss=d_loss, **d_terms,
            )  # fmt: skip

        if accelerator.sync_gradients:
            step_emas(self.emas, [bare_a_to_b, bare_b_to_a])
            logs["lr_generator"] = self.generators.learning_rate
            logs["lr_discriminator"] = self.discriminators.learning_rate
        return logs
