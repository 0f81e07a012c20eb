"""Train a CycleGAN: unpaired translation between two image domains with two `UNetGenerator`s and two
`PatchDiscriminator`s.

Runs anywhere Accelerate does, from a laptop CPU to many GPUs on several machines. Sneakers <-> ankle boots from the
classes of Fashion-MNIST (labels 7 and 9):

    accelerate launch examples/train_cyclegan.py --dataset_name fashion_mnist/train.npz \
        --domain_a_classes 7 --domain_b_classes 9 --output_dir sneaker2boot --mixed_precision bf16

The two domains are image datasets, as `--dataset_name` of the other scripts accepts (a Hub id, a folder of images, a
`.npz` file, a `save_to_disk` folder). Domain B comes from `--dataset_name_b` (default: the same dataset) and
`--image_column_b` (default: the same column), restricted to `--domain_b_classes` when given, and likewise for
domain A with `--domain_a_classes`: two folders, one dataset with two image columns (e.g. `--image_column imageA
--image_column_b imageB`) or two sets of classes of one dataset all work. The recipe follows CycleGAN (Zhu et al.,
2017): adversarial losses on both domains, cycle consistency (`--cycle_weight`), identity losses
(`--identity_weight`, relative to the cycle weight), replay buffers of generated images, Adam with betas
(0.5, 0.999); EMAs of both generators are saved. `--resume_from_checkpoint latest` continues an interrupted run
exactly. The output folder loads with `ImageToImagePipeline.from_pretrained(output_dir)` (A -> B, EMA weights) and
`ImageToImagePipeline.from_pretrained(output_dir + "/generator_b_to_a")` (B -> A; from the Hub, pass
`subfolder="generator_b_to_a"`); the discriminators are in `discriminator_a/` and `discriminator_b/`. It also holds a
model card, the sample grids (`samples/`: A, A -> B, A -> B -> A, B, B -> A, B -> A -> B), the TensorBoard logs
(`logs/`) and the checkpoints.
"""

import argparse
import sys
from pathlib import Path

from accelerate.logging import get_logger

from hf_vaegan.models.patch_discriminator import PatchDiscriminator
from hf_vaegan.models.unet_generator import UNetGenerator
from hf_vaegan.training import (
    DiffAugment,
    TrainingError,
    TrainingLoop,
    add_dataset_args,
    add_training_args,
    apply_channels_last,
    assert_finite_parameters,
    averaged_copy,
    create_accelerator,
    create_ema,
    create_fixed_sample_inputs,
    create_lr_scheduler,
    create_optimizer,
    create_training_rng,
    dataset_hub_ids,
    hub_repo_id,
    load_image_dataset,
    load_image_dataset_from_args,
    log_sample_grid,
    make_dataloader,
    push_output_dir,
    start_trackers,
    training_command,
    validate_training_args,
    write_model_card,
)
from hf_vaegan.training.image_to_image import (
    CycleGANTrainer,
    UnpairedImageDataset,
    add_image_to_image_args,
    comparison_grid,
    create_replay_buffer,
    first_examples,
    select_classes,
    translate_samples,
    validate_image_to_image_args,
)

logger = get_logger(__name__)


def _class_list(value: str) -> list[str]:
    classes = [name.strip() for name in value.split(",") if name.strip()]
    if not classes:
        raise argparse.ArgumentTypeError(f"expected comma-separated class names or ids, got {value!r}")
    return classes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataset_args(parser, default_resolution=28)
    domains = parser.add_argument_group("domains")
    domains.add_argument(
        "--domain_a_classes",
        type=_class_list,
        default=None,
        help="Restrict domain A to these classes of --dataset_name (comma-separated names or ids). Default: all.",
    )
    domains.add_argument(
        "--dataset_name_b", type=str, default=None, help="The images of domain B. Default: --dataset_name."
    )
    domains.add_argument(
        "--image_column_b", type=str, default=None, help="The image column of domain B. Default: --image_column."
    )
    domains.add_argument(
        "--domain_b_classes",
        type=_class_list,
        default=None,
        help="Restrict domain B to these classes (comma-separated names or ids). Default: all.",
    )
    add_training_args(parser, default_output_dir="cyclegan-model", default_num_epochs=20)
    parser.set_defaults(train_batch_size=32, adam_beta1=0.5, adam_beta2=0.999, num_sample_images=16)
    gan = add_image_to_image_args(parser)
    gan.add_argument(
        "--cycle_weight", type=float, default=10.0, help="Weight of the cycle-consistency L1 losses (CycleGAN: 10)."
    )
    gan.add_argument(
        "--identity_weight",
        type=float,
        default=0.5,
        help="Weight of the identity L1 losses (G_AB(b) = b), relative to --cycle_weight (CycleGAN: 0.5); needs "
        "domains with the same number of channels; 0 disables them.",
    )
    gan.add_argument(
        "--replay_buffer_size",
        type=int,
        default=50,
        help="Generated images kept per domain and shown again to the discriminators (CycleGAN: 50); 0 disables.",
    )

    args = parser.parse_args(argv)
    try:
        validate_training_args(args)
        validate_image_to_image_args(args)
        for name in ("cycle_weight", "identity_weight", "replay_buffer_size"):
            if getattr(args, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(args, name)}")
        same_source = args.dataset_name_b in (None, args.dataset_name) and args.image_column_b in (
            None,
            args.image_column,
        )
        if same_source and args.domain_a_classes == args.domain_b_classes:
            raise ValueError(
                "domains A and B are the same images: pass --domain_a_classes/--domain_b_classes, --dataset_name_b "
                "or --image_column_b"
            )
    except ValueError as error:
        parser.error(str(error))
    return args


def load_domains(args: argparse.Namespace):
    """The image datasets of domains A and B, restricted to their classes."""
    domain_a = load_image_dataset_from_args(args)
    domain_b = load_image_dataset(
        args.dataset_name_b or args.dataset_name,
        args.dataset_config_name,
        split=args.dataset_split,
        image_column=args.image_column_b or args.image_column,
        label_column=args.label_column,
        cache_dir=args.cache_dir,
        max_train_samples=args.max_train_samples,
        seed=args.seed,
        num_channels=args.num_channels,
    )
    if args.domain_a_classes:
        domain_a = select_classes(domain_a, args.domain_a_classes)
    if args.domain_b_classes:
        domain_b = select_classes(domain_b, args.domain_b_classes)
    return domain_a, domain_b


def main(args: argparse.Namespace) -> None:
    accelerator = create_accelerator(args)
    with accelerator.main_process_first():
        try:
            domain_a, domain_b = load_domains(args)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
    transform = {"random_flip": args.random_flip, "center_crop": args.center_crop}
    images_a = domain_a.with_image_transform(args.resolution, **transform)
    images_b = domain_b.with_image_transform(args.resolution, **transform)
    dataloader = make_dataloader(
        UnpairedImageDataset(images_a, images_b),
        args.train_batch_size,
        seed=args.seed,
        num_workers=args.dataloader_num_workers,
    )

    channels_a, channels_b = domain_a.num_channels, domain_b.num_channels
    generator_kwargs = {
        "base_channels": args.base_channels,
        "num_downsamplings": args.num_downsamplings,
        "layers_per_block": args.layers_per_block,
        "num_residual_blocks": args.num_residual_blocks,
        "norm_type": args.norm_type,
        "sample_size": args.resolution,
    }
    discriminator_kwargs = {
        "base_channels": args.discriminator_base_channels or args.base_channels,
        "num_layers": args.discriminator_num_layers,
        "spectral_norm": args.spectral_norm,
    }
    generator_a_to_b = UNetGenerator(in_channels=channels_a, out_channels=channels_b, **generator_kwargs)
    generator_b_to_a = UNetGenerator(in_channels=channels_b, out_channels=channels_a, **generator_kwargs)
    discriminator_a = PatchDiscriminator(in_channels=channels_a, **discriminator_kwargs)
    discriminator_b = PatchDiscriminator(in_channels=channels_b, **discriminator_kwargs)
    models = {
        "generator_a_to_b": generator_a_to_b,
        "generator_b_to_a": generator_b_to_a,
        "discriminator_a": discriminator_a,
        "discriminator_b": discriminator_b,
    }
    if args.channels_last:
        apply_channels_last(*models.values())
    generator_optimizer = create_optimizer(
        [*generator_a_to_b.parameters(), *generator_b_to_a.parameters()], args.generator_learning_rate, args
    )
    discriminator_optimizer = create_optimizer(
        [*discriminator_a.parameters(), *discriminator_b.parameters()], args.discriminator_learning_rate, args
    )
    *prepared, generator_optimizer, discriminator_optimizer, dataloader = accelerator.prepare(
        *models.values(), generator_optimizer, discriminator_optimizer, dataloader
    )
    models = dict(zip(models, prepared, strict=True))
    generator_a_to_b, generator_b_to_a, discriminator_a, discriminator_b = prepared
    loop = TrainingLoop(accelerator, dataloader, args, models=models)
    generator_lr_scheduler, discriminator_lr_scheduler = accelerator.prepare(
        create_lr_scheduler(generator_optimizer, args, loop.max_train_steps, accelerator.num_processes),
        create_lr_scheduler(discriminator_optimizer, args, loop.max_train_steps, accelerator.num_processes),
    )
    # Checkpointed in this order; keep it stable so old checkpoints stay loadable.
    emas = (
        create_ema(accelerator, generator_a_to_b, args.ema_decay),
        create_ema(accelerator, generator_b_to_a, args.ema_decay),
    )

    def averaged_generators() -> list[UNetGenerator]:
        return [averaged_copy(accelerator, model, ema) for model, ema in zip(prepared[:2], emas, strict=True)]

    rng = create_training_rng(accelerator, args.seed)
    sample_inputs = create_fixed_sample_inputs(
        accelerator,
        a=first_examples(images_a, args.num_sample_images)["pixel_values"],
        b=first_examples(images_b, args.num_sample_images)["pixel_values"],
    )
    image_size = (args.resolution,) * 2 if isinstance(args.resolution, int) else args.resolution
    replay_buffers = (
        create_replay_buffer(accelerator, args.replay_buffer_size, (channels_a, *image_size), rng),
        create_replay_buffer(accelerator, args.replay_buffer_size, (channels_b, *image_size), rng),
    )
    # G_AB(b) = b only makes sense when both domains have the same channels.
    identity_weight = args.identity_weight if channels_a == channels_b else 0.0
    if args.identity_weight and not identity_weight:
        logger.warning(f"No identity loss: the domains have {channels_a} and {channels_b} channels")
    trainer = CycleGANTrainer(
        accelerator,
        generator_a_to_b,
        generator_b_to_a,
        discriminator_a,
        discriminator_b,
        generator_optimizer,
        discriminator_optimizer,
        generator_lr_scheduler,
        discriminator_lr_scheduler,
        loss=args.loss,
        cycle_weight=args.cycle_weight,
        identity_weight=identity_weight,
        replay_buffers=replay_buffers,
        augment=DiffAugment(args.diffaugment),
        max_grad_norm=args.max_grad_norm,
        emas=emas,
        rng=rng,
        channels_last=args.channels_last,
    )

    start_trackers(accelerator, "train_cyclegan", args)
    logger.info(
        f"{len(domain_a.dataset)} images in domain A ({channels_a} channel(s)), {len(domain_b.dataset)} in domain B "
        f"({channels_b}); each generator {sum(p.numel() for p in generator_a_to_b.parameters()):,} parameters, "
        f"each discriminator {sum(p.numel() for p in discriminator_a.parameters()):,}"
    )
    loop.resume()
    logs: dict[str, float] = {}
    for batch in loop:
        step_logs = trainer.train_step(batch, loop.next_step)
        if not loop.step_done(step_logs):
            continue
        logs = step_logs
        if loop.is_due(args.sample_steps) and accelerator.is_main_process:
            grid = sample_grid(*averaged_generators(), sample_inputs.a, sample_inputs.b)
            log_sample_grid(accelerator, grid, loop.global_step, args.output_dir)
    seconds = loop.end()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final_a_to_b, final_b_to_a = averaged_generators()
        final_discriminator_a = accelerator.unwrap_model(discriminator_a)
        final_discriminator_b = accelerator.unwrap_model(discriminator_b)
        assert_finite_parameters(
            generator_a_to_b=final_a_to_b,
            generator_b_to_a=final_b_to_a,
            discriminator_a=final_discriminator_a,
            discriminator_b=final_discriminator_b,
        )
        output_dir = Path(args.output_dir)
        final_a_to_b.save_pretrained(output_dir)
        final_b_to_a.save_pretrained(output_dir / "generator_b_to_a")
        final_discriminator_a.save_pretrained(output_dir / "discriminator_a")
        final_discriminator_b.save_pretrained(output_dir / "discriminator_b")
        sample_grid(final_a_to_b, final_b_to_a, sample_inputs.a, sample_inputs.b).save(output_dir / "samples.png")
        write_card(args, final_a_to_b, domain_a, domain_b, identity_weight, loop, seconds, logs)
        logger.info(
            f"Saved the A -> B generator (EMA weights) to {output_dir}, the B -> A generator and the discriminators "
            "to its subfolders"
        )
        if args.push_to_hub:
            logger.info(f"Pushed to {push_output_dir(args)}")
    accelerator.end_training()


def sample_grid(generator_a_to_b, generator_b_to_a, images_a, images_b):
    """Columns of A, A -> B, A -> B -> A, B, B -> A, B -> A -> B."""
    a_to_b = translate_samples(generator_a_to_b, images_a)
    b_to_a = translate_samples(generator_b_to_a, images_b)
    return comparison_grid(
        images_a,
        a_to_b,
        translate_samples(generator_b_to_a, a_to_b),
        images_b,
        b_to_a,
        translate_samples(generator_a_to_b, b_to_a),
    )


def describe_domain(name: str, dataset_name: str, info, classes: list[str] | None) -> str:
    selected = f", classes {', '.join(classes)}" if classes else ""
    return f"{name}: `{info.image_column}` of `{dataset_name}`{selected} ({len(info.dataset):,} images)"


def write_card(
    args, generator, domain_a, domain_b, identity_weight: float, loop: TrainingLoop, seconds: float, logs: dict
) -> None:
    training = {
        "steps": loop.global_step,
        "batch size (all processes)": loop.batch_size,
        "epochs": f"{loop.global_step / loop.steps_per_epoch:.2f}",
        "loss": f"{args.loss} + {args.cycle_weight} x cycle L1"
        + (f" + {args.cycle_weight * identity_weight} x identity L1" if identity_weight else ""),
        "replay buffer": args.replay_buffer_size,
        "learning rates (G / D)": f"{args.generator_learning_rate} / {args.discriminator_learning_rate}",
        "Adam betas": f"({args.adam_beta1}, {args.adam_beta2})",
        "EMA decay": args.ema_decay,
        "DiffAugment": args.diffaugment,
        "spectral norm": args.spectral_norm,
        "mixed precision": loop.accelerator.mixed_precision,
        "processes": loop.accelerator.num_processes,
        "seed": args.seed,
        "training time": f"{seconds / 60:.1f} min",
    }
    training |= {f"final {name}": f"{value:.4g}" for name, value in logs.items() if name.endswith("_loss")}
    height, width = (args.resolution,) * 2 if isinstance(args.resolution, int) else args.resolution
    dataset_b = args.dataset_name_b or args.dataset_name
    write_model_card(
        generator,
        args.output_dir,
        hub_repo_id(args),
        datasets=sorted({*(dataset_hub_ids(args.dataset_name) or []), *(dataset_hub_ids(dataset_b) or [])}) or None,
        tags=["cyclegan", "unpaired-image-translation"],
        sample_image="samples.png",
        sample_caption="Each column, top to bottom: an A image, A -> B, back to A; a B image, B -> A, back to B (EMA "
        "generators). This repository's root holds the A -> B generator; the B -> A generator is in the "
        "`generator_b_to_a` subfolder.",
        training=training,
        training_command=training_command("examples/train_cyclegan.py"),
        dataset_description=f"{describe_domain('A', args.dataset_name, domain_a, args.domain_a_classes)}; "
        f"{describe_domain('B', dataset_b, domain_b, args.domain_b_classes)}; at {height}x{width}.",
        limitations=(
            "A small CycleGAN: it maps images resembling domain A to domain B (and back, with the subfolder's "
            "generator) at the training resolution. Unpaired translation changes appearance more readily than "
            "shape, and may hide information in imperceptible patterns to satisfy the cycle loss."
        ),
    )


if __name__ == "__main__":
    try:
        main(parse_args())
    except TrainingError as error:
        sys.exit(f"error: {error}")
