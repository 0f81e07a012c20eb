"""The training layer of the scripts in ``examples/``: the plumbing of a run, the recipes, their losses.

One module per concern:

- ``args`` (the shared flags) and ``model_args`` (the flags of model families shared by several scripts);
- ``pretrained`` (``--pretrained_model_name_or_path``: fine-tuning from a Hub id, a bundled model or a run);
- ``session`` (the Accelerator, trackers, networks with their optimizers and schedules), ``loop`` (epochs, resuming,
  logging, periodic checkpoints), ``state`` (named training state: RNG, EMA, fixed inputs), ``checkpoints``;
- ``update`` (the one optimizer update, ``frozen()``, the divergence guard), ``losses``, ``augment`` (DiffAugment);
- ``grids`` (sample grids), ``hub`` (model cards, push), ``evaluation`` (``--eval_steps``);
- one recipe each: ``gan``, ``vae``, ``vaegan``, ``pix2pix``, ``cyclegan``, ``tryon``.

Datasets are loaded by ``hf_vaegan.data`` and evaluated by ``hf_vaegan.metrics``, which never import this package.
"""

from .augment import DiffAugment
from .checkpoints import list_checkpoints, load_checkpoint, resolve_checkpoint, save_checkpoint
from .errors import CheckpointError, TrainingDivergedError, TrainingError
from .gan import GANTrainer
from .loop import TrainingLoop
from .losses import GAN_LOSSES, discriminator_loss, generator_loss, input_gradient_penalty
from .session import TrainingSession, create_accelerator
from .state import (
    CheckpointedTensors,
    averaged_copy,
    create_ema,
    create_fixed_sample_inputs,
    create_training_rng,
    register_training_state,
)
from .update import Network, assert_finite_parameters, check_finite, frozen, optimizer_update

__all__ = [
    "GAN_LOSSES",
    "CheckpointError",
    "CheckpointedTensors",
    "DiffAugment",
    "GANTrainer",
    "Network",
    "TrainingDivergedError",
    "TrainingError",
    "TrainingLoop",
    "TrainingSession",
    "assert_finite_parameters",
    "averaged_copy",
    "check_finite",
    "create_accelerator",
    "create_ema",
    "create_fixed_sample_inputs",
    "create_training_rng",
    "discriminator_loss",
    "frozen",
    "generator_loss",
    "input_gradient_penalty",
    "list_checkpoints",
    "load_checkpoint",
    "optimizer_update",
    "register_training_state",
    "resolve_checkpoint",
    "save_checkpoint",
]
