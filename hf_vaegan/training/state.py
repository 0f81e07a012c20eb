"""Training state beyond models and optimizers, saved in every checkpoint by name: RNG, EMA, fixed sample inputs.

Accelerate's ``register_for_checkpointing`` writes objects with ``torch.save`` and reads them back with
``weights_only=False``, i.e. unpickles them, and matches them by registration order. Here each object is registered
under a name; its ``state_dict()`` (tensors, possibly nested in dicts and lists, and JSON scalars) is split into
safetensors tensors and a JSON skeleton in the metadata of ``checkpoint-<step>/training_state.safetensors``, through
accelerate's save/load hooks, so ``save_state``/``load_state`` handle it like the rest of the state::

    rng = create_training_rng(accelerator, seed)  # "rng": a per-process generator for the training noise
    ema = create_ema(accelerator, generator, decay=0.999)  # "ema"
    inputs = create_fixed_sample_inputs(accelerator, noise=torch.randn(64, 128))  # "sample_inputs"

Checkpoints written before the state was named hold an unnamed list: they load when this run registers objects with
the same state keys in the same order (what the scripts of that time did), and are refused otherwise.
"""

from __future__ import annotations

import copy
import json
import os
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import gather
from diffusers.training_utils import EMAModel
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .errors import CheckpointError

logger = get_logger(__name__)

TRAINING_STATE_NAME = "training_state.safetensors"
_TENSOR_KEY = "__tensor__"


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


class TrainingState:
    """The named objects of a run, saved in each checkpoint as ``training_state.safetensors``.

    ``state_dict()`` runs on every process (it may gather), the main process writes the file. ``networks`` (the
    names of the prepared networks, in the order accelerate saves them as ``model.safetensors``,
    ``model_1.safetensors``...) is recorded too, so a checkpoint is refused when a script prepares its networks in
    another order.
    """

    def __init__(self, accelerator: Accelerator):
        self.accelerator = accelerator
        self.objects: dict[str, Stateful] = {}
        self.networks: list[str] = []
        accelerator.register_save_state_pre_hook(lambda models, weights, output_dir: self.save(output_dir))
        accelerator.register_load_state_pre_hook(lambda models, input_dir: self.load(input_dir))

    def register(self, name: str, obj: Stateful) -> None:
        if name in self.objects:
            raise ValueError(f"training state {name!r} is already registered")
        self.objects[name] = obj

    def save(self, output_dir: str | os.PathLike) -> None:
        tensors: dict[str, torch.Tensor] = {}
        skeleton = {name: _split_tensors(obj.state_dict(), name, tensors) for name, obj in self.objects.items()}
        if self.accelerator.is_main_process:
            metadata = {"skeleton": json.dumps(skeleton), "networks": json.dumps(self.networks)}
            save_file(tensors, Path(output_dir) / TRAINING_STATE_NAME, metadata=metadata)

    def load(self, input_dir: str | os.PathLike) -> None:
        path = Path(input_dir) / TRAINING_STATE_NAME
        if not path.is_file():
            if not self.objects:
                return
            pickled = sorted(Path(input_dir).glob("custom_checkpoint_*.pkl"))
            reason = f"it holds pickled state ({pickled[0].name}), never loaded" if pickled else "it is missing"
            raise CheckpointError(f"cannot resume from {input_dir}: {TRAINING_STATE_NAME} {reason}")
        try:
            with safe_open(path, framework="pt") as file:
                metadata = file.metadata()
                skeleton = json.loads(metadata["skeleton"])
                networks = json.loads(metadata.get("networks", "null"))
                tensors = {key: file.get_tensor(key) for key in file.keys()}
        except Exception as error:
            raise CheckpointError(f"cannot resume from {input_dir}: {path.name} is corrupt ({error})") from error
        if networks is not None and self.networks and networks != self.networks:
            raise CheckpointError(
                f"cannot resume from {input_dir}: it holds the networks {networks}, in this order, but this run "
                f"prepares {self.networks}; prepare them in the checkpoint's order"
            )
        states = self._legacy_states(input_dir, skeleton) if isinstance(skeleton, list) else skeleton
        if set(states) != set(self.objects):
            raise CheckpointError(
                f"cannot resume from {input_dir}: its {path.name} holds the training state {sorted(states)} but this "
                f"run has {sorted(self.objects)}; resume with the script and flags that wrote it (e.g. the same "
                "--ema_decay)"
            )
        for name, obj in self.objects.items():
            try:
                obj.load_state_dict(_join_tensors(states[name], tensors))
            except (ValueError, KeyError, RuntimeError) as error:
                raise CheckpointError(f"cannot resume from {input_dir}: {path.name}, {name!r}: {error}") from error

    def _legacy_states(self, input_dir: str | os.PathLike, skeleton: list) -> dict[str, Any]:
        """Name the unnamed list of a checkpoint written before the state was named, when it fits this run."""
        expected = {name: sorted(obj.state_dict()) for name, obj in self.objects.items()}
        found = [sorted(state) if isinstance(state, dict) else None for state in skeleton]
        if found != list(expected.values()):
            raise CheckpointError(
                f"cannot resume from {input_dir}: it was written before hf-vaegan named the training state, and its "
                f"{len(skeleton)} unnamed objects (keys {found}) do not match this run's {list(expected)} (keys "
                f"{list(expected.values())}); resume with the script and flags that wrote it, or start a new run"
            )
        logger.info(f"{input_dir} predates named training state; its objects are, in order, {list(expected)}")
        return dict(zip(expected, skeleton, strict=True))


_training_states: weakref.WeakKeyDictionary[Accelerator, TrainingState] = weakref.WeakKeyDictionary()


def training_state(accelerator: Accelerator) -> TrainingState:
    """The :class:`TrainingState` of ``accelerator`` (created, and hooked into its checkpoints, on first use)."""
    if accelerator not in _training_states:
        _training_states[accelerator] = TrainingState(accelerator)
    return _training_states[accelerator]


def register_training_state(accelerator: Accelerator, name: str, obj: Stateful) -> None:
    """Save ``obj.state_dict()`` as ``name`` in every checkpoint of ``accelerator`` and restore it on resume, without
    pickle. Register before :meth:`~hf_vaegan.training.loop.TrainingLoop.resume`; names must be unique."""
    training_state(accelerator).register(name, obj)


def _split_tensors(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` with each tensor moved into ``tensors`` (CPU, contiguous) and replaced by a reference to its key."""
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().contiguous()
        return {_TENSOR_KEY: key}
    if isinstance(value, Mapping):
        return {name: _split_tensors(item, f"{key}.{name}", tensors) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_split_tensors(item, f"{key}.{index}", tensors) for index, item in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot checkpoint {key!r} of type {type(value).__name__}: use tensors, lists, dicts or scalars")


def _join_tensors(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The inverse of :func:`_split_tensors`."""
    if isinstance(value, dict):
        if set(value) == {_TENSOR_KEY}:
            return tensors[value[_TENSOR_KEY]]
        return {name: _join_tensors(item, tensors) for name, item in value.items()}
    if isinstance(value, list):
        return [_join_tensors(item, tensors) for item in value]
    return value


# Randomness


class ProcessGenerator:
    """A ``torch.Generator`` per process, seeded with ``seed + process_index``, whose state is checkpointed.

    Draw the training noise from it rather than from the global RNG: the data pipeline also draws from the global
    RNG, one batch ahead of training, so only a separate generator resumes exactly. Checkpoints are written by the main
    process only, so :meth:`state_dict` gathers the states of all processes.
    """

    def __init__(self, accelerator: Accelerator, seed: int):
        self.accelerator = accelerator
        self.generator = torch.Generator(accelerator.device).manual_seed(seed + accelerator.process_index)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = self.generator.get_state().to(self.accelerator.device)
        return {"states": gather(state[None]).cpu()}

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        states = state_dict["states"]
        if len(states) != self.accelerator.num_processes:
            raise ValueError(
                f"the checkpoint was written by {len(states)} processes but this run has "
                f"{self.accelerator.num_processes}; resume with the same number of processes"
            )
        self.generator.set_state(states[self.accelerator.process_index].cpu())


def create_training_rng(accelerator: Accelerator, seed: int, name: str = "rng") -> torch.Generator:
    """A per-process generator for training noise, checkpointed as ``name`` (see :class:`ProcessGenerator`)."""
    process_generator = ProcessGenerator(accelerator, seed)
    register_training_state(accelerator, name, process_generator)
    return process_generator.generator


# Fixed inputs of the sample grids


class CheckpointedTensors:
    """Named tensors saved with each checkpoint, e.g. the fixed noise and labels of the sample grids.

    Attribute access returns the tensors: ``inputs.noise``.
    """

    def __init__(self, **tensors: torch.Tensor):
        self._tensors = dict(tensors)

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self.__dict__["_tensors"][name]
        except KeyError:
            raise AttributeError(name) from None

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: tensor.cpu() for name, tensor in self._tensors.items()}

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        missing = set(self._tensors) - set(state_dict)
        if missing:
            raise ValueError(f"the checkpoint lacks the tensors {sorted(missing)}")
        self._tensors = {name: state_dict[name].to(self._tensors[name].device) for name in self._tensors}


def create_fixed_sample_inputs(
    accelerator: Accelerator, name: str = "sample_inputs", **tensors: torch.Tensor
) -> CheckpointedTensors:
    """Wrap the fixed inputs of the sample grids, move them to the device, and checkpoint them as ``name``."""
    inputs = CheckpointedTensors(**{key: tensor.to(accelerator.device) for key, tensor in tensors.items()})
    register_training_state(accelerator, name, inputs)
    return inputs


# Exponential moving averages


class DeviceEMAModel(EMAModel):
    """diffusers' ``EMAModel`` whose state, loaded from a checkpoint (on the CPU), goes back to the model's device."""

    def load_state_dict(self, state_dict: dict) -> None:
        device = self.shadow_params[0].device
        super().load_state_dict(state_dict)
        self.to(device)


def create_ema(accelerator: Accelerator, model: nn.Module, decay: float, name: str = "ema") -> EMAModel | None:
    """An EMA of ``model``'s parameters (``None`` when ``decay`` is 0), checkpointed as ``name``.

    The trainers step it after each optimizer step; :func:`averaged_copy` gives the averaged model.
    """
    if decay == 0:
        return None
    ema = DeviceEMAModel(accelerator.unwrap_model(model).parameters(), decay=decay, foreach=True)
    register_training_state(accelerator, name, ema)
    return ema


def averaged_copy(accelerator: Accelerator, model: nn.Module, ema: EMAModel | None) -> nn.Module:
    """A copy of the unwrapped ``model`` in eval mode holding the EMA weights (the live weights when ``ema`` is
    ``None``); the training model is left untouched."""
    averaged = copy.deepcopy(accelerator.unwrap_model(model))
    if ema is not None:
        ema.copy_to(averaged.parameters())
    return averaged.eval()


def step_emas(emas: Sequence[EMAModel | None], models: Sequence[nn.Module]) -> None:
    """Step each EMA of ``emas`` (``None`` for no EMA) towards the parameters of its (unwrapped) model."""
    for ema, model in zip(emas, models, strict=True):
        if ema is not None:
            ema.step(model.parameters())
