"""A training run's plumbing: the Accelerator, the trackers, the networks with their optimizers and schedules.

:class:`TrainingSession` is what a script builds first and asks for everything else; the loop and the recipe stay
in the script and its trainer::

    session = TrainingSession(args, "train_gan")  # Accelerator, logging, seed (args.seed is set if it was None)
    with session.loading_data():  # bad data: `error: ...`
        info = load_image_dataset_from_args(args)
    generator, discriminator = Generator(...), Discriminator(...)
    loop = session.prepare_dataloader(info.with_image_transform(args.resolution))  # a TrainingLoop
    generator = session.add_network("generator", generator, args.generator_learning_rate)  # a Network
    ema = session.create_ema(generator)  # named training state, checkpointed as "ema"
    trainer = GANTrainer(accelerator, generator, discriminator, **session.trainer_options(ema))  # + "rng"
    session.start()  # creates --output_dir, starts the trackers, resumes --resume_from_checkpoint
    for batch in loop:
        ...
    seconds = session.end_loop()
    if session.is_main_process:
        session.save_models({"": final_generator, "discriminator": discriminator.bare})
        session.write_card(final_generator, training=..., ...)
    session.finish()  # --push_to_hub, end the trackers

The free functions (``create_accelerator``, ``create_optimizer``, ...) are what the session is made of.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import diffusers
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, broadcast_object_list, set_seed
from diffusers import ModelMixin
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch import nn

from ..data.loading import make_dataloader
from ..hardware import bf16_is_fast, cpu_info
from .errors import TrainingError
from .hub import dataset_hub_ids, eval_dataset, hub_repo_id, push_output_dir, training_command, write_model_card
from .loop import TrainingLoop
from .pretrained import ModelT, load_pretrained_model
from .state import CheckpointedTensors, create_ema, create_fixed_sample_inputs, create_training_rng, training_state
from .trackers import available_trackers, tracker_install_hint
from .update import Network, assert_finite_parameters

logger = get_logger(__name__)


def create_accelerator(args: argparse.Namespace) -> Accelerator:
    """Build the Accelerator from the shared flags, set up logging, and seed every process.

    The data order depends only on (seed, epoch) (accelerate's seedable sampler), so a resumed run sees the same
    batches. When ``--seed`` is not given, a random one is drawn on the main process, shared with the others and
    written back to ``args.seed`` (so it is logged and lands in the model card).
    """
    report_to = {"none": None, "all": "all"}.get(args.report_to) or available_trackers(args.report_to)
    missing = [] if args.report_to in ("none", "all") else sorted(set(args.report_to.split(",")) - set(report_to))
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(args.mixed_precision),
        log_with=report_to,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, args.logging_dir)
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S", level=logging.INFO
    )
    logger.info(accelerator.state, main_process_only=False)
    logger.info(f"CPU: {cpu_info().describe()}")
    if missing:
        logger.warning(
            f"--report_to {args.report_to}: {', '.join(missing)} is not installed, so nothing is logged there "
            f"({tracker_install_hint(missing)}, or pass --report_to none)"
        )
    if accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_warning()
        diffusers.utils.logging.set_verbosity_info()
    else:
        datasets.utils.logging.set_verbosity_error()
        diffusers.utils.logging.set_verbosity_error()
    if args.seed is None:
        seed = [random.SystemRandom().randrange(2**31) if accelerator.is_main_process else None]
        args.seed = broadcast_object_list(seed)[0]
        logger.info(f"No --seed given; using seed {args.seed}")
    set_seed(args.seed)
    args.mixed_precision = accelerator.mixed_precision  # the resolved value, for the logs and the model card
    return accelerator


def fast_bf16_available() -> bool:
    """Whether the device accelerate will train on runs bf16 autocast faster than fp32: a CUDA GPU with bf16
    support, or (without a GPU, or with ``accelerate launch --cpu``) a CPU whose kernels have bf16 instructions.

    The GAN step in bf16 ran at 1.98x the fp32 rate with AMX (Intel Xeon), 1.56x with AVX-512 BF16 (AMD EPYC, Zen
    4) and 0.11x on AVX2 alone, where bf16 is emulated (``benchmarks/train_throughput.py``). Kernel caps
    (``ONEDNN_MAX_CPU_ISA``, ``ATEN_CPU_CAPABILITY``) count, see :func:`hf_vaegan.hardware.cpu_info`."""
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "false").lower() in ("1", "true", "yes")
    if torch.cuda.is_available() and not use_cpu:
        return bf16_is_fast("cuda")
    if torch.backends.mps.is_available() and not use_cpu:
        return False
    return bf16_is_fast("cpu")


def resolve_mixed_precision(value: str) -> str:
    """The precision ``--mixed_precision value`` selects ('auto' resolved as its help says)."""
    if value != "auto":
        return value
    configured = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if configured != "no":
        return configured
    return "bf16" if fast_bf16_available() else "no"


def start_trackers(accelerator: Accelerator, project_name: str, args: argparse.Namespace) -> None:
    """``accelerator.init_trackers`` with the run's flags as its config (TensorBoard needs scalars: others become
    strings; the Hub token is left out). Creates ``--output_dir``: nothing is written before this call."""
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
    config = {
        name: value if isinstance(value, (int, float, str, bool)) else str(value)
        for name, value in vars(args).items()
        if name != "hub_token"
    }
    accelerator.init_trackers(args.tracker_project_name or project_name, config=config)


def create_optimizer(
    parameters: Sequence[nn.Parameter] | Iterator[nn.Parameter], learning_rate: float, args: argparse.Namespace
) -> torch.optim.Adam:
    """Adam (AdamW when ``--adam_weight_decay`` > 0) with the shared ``--adam_*`` flags."""
    if not learning_rate > 0:
        raise ValueError(f"learning rates must be positive, got {learning_rate}")
    optimizer_class = torch.optim.AdamW if args.adam_weight_decay > 0 else torch.optim.Adam
    return optimizer_class(
        parameters,
        lr=learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        weight_decay=args.adam_weight_decay,
    )


def create_lr_scheduler(
    optimizer: torch.optim.Optimizer, args: argparse.Namespace, max_train_steps: int, num_processes: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """``--lr_scheduler`` over ``max_train_steps`` optimizer steps.

    The counts are multiplied by ``num_processes`` because a prepared scheduler steps once per process.
    """
    return get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps * num_processes,
        num_training_steps=max_train_steps * num_processes,
    )


def apply_channels_last(*modules: nn.Module) -> None:
    """Switch the 4-d weights of ``modules`` to channels-last memory format in place."""
    for module in modules:
        module.to(memory_format=torch.channels_last)


def enable_gradient_checkpointing(models: Mapping[str, nn.Module]) -> None:
    """Turn on gradient checkpointing in every diffusers model among ``models`` (or inside them) that supports it;
    the others are logged with the reason."""
    for name, model in models.items():
        enabled: list[str] = []
        for path, module in model.named_modules():
            inside_enabled = any(path.startswith(f"{outer}.") or not outer for outer in enabled)
            if inside_enabled or not isinstance(module, ModelMixin) or not module._supports_gradient_checkpointing:
                continue
            where = ".".join(filter(None, (name, path)))
            try:
                module.enable_gradient_checkpointing()
            except ValueError as error:
                logger.info(f"--gradient_checkpointing: {where} trains without it: {error}")
            else:
                enabled.append(path)
                logger.info(f"--gradient_checkpointing: on for {where} ({type(module).__name__})")


class TrainingSession:
    """One training run: its Accelerator, dataloader and loop, networks and named training state.

    Args:
        args: The parsed flags of :func:`~hf_vaegan.training.args.add_training_args` and
            :func:`~hf_vaegan.training.dataset_args.add_dataset_args`.
        project_name: The trackers' project (``--tracker_project_name`` overrides it).
    """

    def __init__(self, args: argparse.Namespace, project_name: str):
        self.args = args
        self.project_name = project_name
        self.accelerator = create_accelerator(args)
        self.networks: dict[str, Network] = {}
        # The models checked for NaN/inf before each checkpoint, by name; filled as networks are added.
        self._checked_models: dict[str, nn.Module] = {}
        self.loop: TrainingLoop | None = None

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    @contextlib.contextmanager
    def loading_data(self) -> Iterator[None]:
        """Run the block on the main process first (dataset preparation caches), then on the others; a
        ``ValueError`` or ``FileNotFoundError`` (how ``hf_vaegan.data`` reports bad or missing data) ends the run
        with ``error: <message>``."""
        with self.accelerator.main_process_first():
            try:
                yield
            except (ValueError, FileNotFoundError) as error:
                raise SystemExit(f"error: {error}") from None

    def load_pretrained(
        self, model_class: type[ModelT], component: str | None = None, **options: Any
    ) -> ModelT | None:
        """The ``model_class`` of ``--pretrained_model_name_or_path`` (``None`` without the flag), loaded on the
        main process first; a source that cannot be loaded or does not fit the data ends the run with
        ``error: <message>`` (:func:`~hf_vaegan.training.pretrained.load_pretrained_model` has the options)."""
        with self.loading_data():
            return load_pretrained_model(self.args, model_class, component, **options)

    def prepare_dataloader(self, dataset: torch.utils.data.Dataset) -> TrainingLoop:
        """The prepared shuffling dataloader of ``dataset`` (``--train_batch_size``, ``--seed``,
        ``--dataloader_num_workers``) wrapped in the run's :class:`TrainingLoop`. Call before :meth:`add_network`:
        the learning-rate schedules need the number of steps."""
        args = self.args
        dataloader = make_dataloader(
            dataset, args.train_batch_size, seed=args.seed, num_workers=args.dataloader_num_workers
        )
        self.loop = TrainingLoop(self.accelerator, self.accelerator.prepare(dataloader), args, self._checked_models)
        return self.loop

    def add_network(
        self,
        name: str,
        models: nn.Module | Mapping[str, nn.Module],
        learning_rate: float,
        parameters: Sequence[nn.Parameter] | None = None,
    ) -> Network:
        """Prepare ``models`` (one, or several by name) with an Adam optimizer of ``parameters`` (default: all of
        theirs) at ``learning_rate`` and the ``--lr_scheduler`` schedule; ``--channels_last`` applies.

        Networks are checkpointed in the order they are added (accelerate's ``model.safetensors``,
        ``model_1.safetensors``...); the order is recorded by name and checked on resume.
        """
        if self.loop is None:
            raise RuntimeError("call prepare_dataloader before add_network: the schedules need the step count")
        models = dict(models) if isinstance(models, Mapping) else {name: models}
        if self.args.channels_last:
            apply_channels_last(*models.values())
        if self.args.gradient_checkpointing:
            enable_gradient_checkpointing(models)
        if parameters is None:
            parameters = [parameter for model in models.values() for parameter in model.parameters()]
        optimizer = create_optimizer(parameters, learning_rate, self.args)
        num_processes = self.accelerator.num_processes
        lr_scheduler = create_lr_scheduler(optimizer, self.args, self.loop.max_train_steps, num_processes)
        network = Network.prepare(self.accelerator, models, optimizer, lr_scheduler)
        self.networks[name] = network
        self._checked_models.update(network.models)
        training_state(self.accelerator).networks.append(name)
        return network

    def create_ema(self, network: Network, name: str = "ema", model: str | None = None) -> EMAModel | None:
        """An EMA (``--ema_decay``; ``None`` when 0) of ``network``'s model (or its model named ``model``),
        checkpointed as ``name``."""
        prepared = network.models[model] if model is not None else network.model
        return create_ema(self.accelerator, prepared, self.args.ema_decay, name)

    def create_rng(self, name: str = "rng") -> torch.Generator:
        """The per-process generator of the training noise, seeded with ``--seed`` and checkpointed as ``name``."""
        return create_training_rng(self.accelerator, self.args.seed, name)

    def fixed_tensors(self, name: str = "sample_inputs", **tensors: torch.Tensor) -> CheckpointedTensors:
        """Tensors kept fixed through the run and checkpointed as ``name`` (the inputs of the sample grids)."""
        return create_fixed_sample_inputs(self.accelerator, name, **tensors)

    def trainer_options(self, ema: EMAModel | None = None, rng: torch.Generator | None = None) -> dict[str, Any]:
        """The keywords every trainer takes from the run: ``ema``, ``--max_grad_norm``, ``--channels_last``, and the
        training RNG (``rng``; by default created here and checkpointed as ``"rng"``)."""
        return {
            "ema": ema,
            "max_grad_norm": self.args.max_grad_norm,
            "rng": self.create_rng() if rng is None else rng,
            "channels_last": self.args.channels_last,
        }

    def start(self) -> None:
        """Create ``--output_dir``, start the trackers, and load ``--resume_from_checkpoint``. Call after every
        network and piece of training state is registered."""
        start_trackers(self.accelerator, self.project_name, self.args)
        self.loop.resume()

    def end_loop(self) -> float:
        """After the loop: close its progress bar and wait for every process; returns the seconds of training."""
        seconds = self.loop.end()
        self.accelerator.wait_for_everyone()
        return seconds

    def save_models(self, models: Mapping[str, nn.Module]) -> Path:
        """Check ``models`` for NaN/inf and ``save_pretrained`` each into its subfolder of ``--output_dir``
        (``""``: the folder itself). Call on the main process; returns the output folder."""
        output_dir = Path(self.args.output_dir)
        assert_finite_parameters(**{subfolder or "model": model for subfolder, model in models.items()})
        for subfolder, model in models.items():
            model.save_pretrained(output_dir / subfolder)
        return output_dir

    @functools.cached_property
    def repo_id(self) -> str:
        """The Hub repository of this run (:func:`~hf_vaegan.training.hub.hub_repo_id`): with ``--push_to_hub``
        created on first use, on the main process, so that the card names the full id before it is written."""
        return hub_repo_id(self.args)

    def write_card(self, model: nn.Module, **sections: Any) -> Path:
        """Write ``model``'s card to ``--output_dir/README.md`` (:func:`~hf_vaegan.training.hub.write_model_card`):
        the repository id, the Hub datasets, the data of its figures, ``samples.png`` and the command of this run
        are filled in; ``sections`` are the rest (``sample_caption``, ``training``, ``dataset_description``,
        ``limitations``, ``metrics``...)."""
        sections = {
            "datasets": dataset_hub_ids(self.args.dataset_name),
            "eval_dataset": eval_dataset(self.args),
            "sample_image": "samples.png",
            "training_command": training_command(f"examples/{self.project_name}.py"),
            **sections,
        }
        return write_model_card(model, self.args.output_dir, self.repo_id, **sections)

    def finish(self) -> None:
        """Push ``--output_dir`` when ``--push_to_hub`` (main process), then end the trackers."""
        if self.args.push_to_hub and self.is_main_process:
            logger.info(f"Pushed to {push_output_dir(self.args, self.repo_id)}")
        self.accelerator.end_training()


def run(main: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> None:
    """``main(args)``, ending the process with ``error: <message>`` (status 1) on a
    :class:`~hf_vaegan.training.errors.TrainingError`: a diverged loss, or a checkpoint that cannot be read or
    written."""
    try:
        main(args)
        return
    except TrainingError as error:
        message = f"error: {error}"
    # Raised once the failed run's frames are released, so that their progress bar is closed (and drawn) before
    # the message, which stays the last line the user sees.
    raise SystemExit(message)
