"""Train a pix2pix image-to-image GAN (a `UNetGenerator` and a conditional `PatchDiscriminator`) on image pairs.

Runs anywhere Accelerate does, from a laptop CPU to many GPUs on several machines. Sketch -> garment on Fashion-MNIST:

    python examples/make_sketch_dataset.py --train_data fashion_mnist/train.npz \
        --test_data fashion_mnist/test.npz --output_dir fashion-sketch-pairs
    accelerate launch examples/train_pix2pix.py --dataset_name fashion-sketch-pairs --output_dir sketch2garment \
        --mixed_precision bf16

`--dataset_name` takes any paired dataset: a Hub dataset id, a local folder (e.g. a clone of a dataset repository)
or a folder written by `save_to_disk`, with two image columns, the input (`--source_column`, default `sketch`) and the
image to produce (`--target_column`, default `image`); both get the same flip and crop. The recipe follows pix2pix
(Isola et al., 2017): a U-Net generator, a PatchGAN judging (input, output) pairs, the non-saturating (or hinge) loss
plus `--l1_weight` x L1 to the target, Adam with betas (0.5, 0.999), optionally the feature-matching loss of pix2pixHD
and differentiable augmentation; an EMA of the generator is saved. `--resume_from_checkpoint latest` continues an
interrupted run exactly. The output folder loads with `ImageToImagePipeline.from_pretrained(output_dir)` or
`UNetGenerator.from_pretrained(output_dir)` (EMA weights), and `PatchDiscriminator.from_pretrained(output_dir +
"/discriminator")` (from the Hub, pass `subfolder="discriminator"`); it also holds a model card, the sample grids
(`samples/`: rows of inputs, outputs and targets), the TensorBoard logs (`logs/`) and the checkpoints.
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
    load_paired_dataset_from_args,
    log_sample_grid,
    make_dataloader,
    push_output_dir,
    start_trackers,
    training_command,
    validate_training_args,
    write_model_card,
)
from hf_vaegan.training.image_to_image import (
    Pix2PixTrainer,
    add_image_to_image_args,
    comparison_grid,
    first_examples,
    translate_samples,
    validate_image_to_image_args,
)

logger = get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataset_args(parser, paired=True, default_resolution=28)
    add_training_args(parser, default_output_dir="pix2pix-model", default_num_epochs=20)
    parser.set_defaults(train_batch_size=64, adam_beta1=0.5, adam_beta2=0.999, num_sample_images=16)
    gan = add_image_to_image_args(parser)
    gan.add_argument(
        "--l1_weight", type=float, default=100.0, help="Weight of the L1 distance to the target image (pix2pix: 100)."
    )
    gan.add_argument(
        "--feature_matching_weight",
        type=float,
        default=0.0,
        help="Weight of the discriminator feature-matching loss of pix2pixHD (e.g. 10); 0 disables it.",
    )

    args = parser.parse_args(argv)
    try:
        validate_training_args(args)
        validate_image_to_image_args(args)
        for name in ("l1_weight", "feature_matching_weight"):
            if getattr(args, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(args, name)}")
    except ValueError as error:
        parser.error(str(error))
    return args


def main(args: argparse.Namespace) -> None:
    accelerator = create_accelerator(args)
    with accelerator.main_process_first():
        try:
            info = load_paired_dataset_from_args(args)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
    train_dataset = info.with_image_transform(
        args.resolution, random_flip=args.random_flip, center_crop=args.center_crop
    )
    dataloader = make_dataloader(
        train_dataset, args.train_batch_size, seed=args.seed, num_workers=args.dataloader_num_workers
    )

    generator = UNetGenerator(
        in_channels=info.source_num_channels,
        out_channels=info.target_num_channels,
        base_channels=args.base_channels,
        num_downsamplings=args.num_downsamplings,
        layers_per_block=args.layers_per_block,
        num_residual_blocks=args.num_residual_blocks,
        norm_type=args.norm_type,
        sample_size=args.resolution,
    )
    discriminator = PatchDiscriminator(
        in_channels=info.source_num_channels + info.target_num_channels,
        base_channels=args.discriminator_base_channels or args.base_channels,
        num_layers=args.discriminator_num_layers,
        spectral_norm=args.spectral_norm,
    )
    if args.channels_last:
        apply_channels_last(generator, discriminator)
    generator_optimizer = create_optimizer(generator.parameters(), args.generator_learning_rate, args)
    discriminator_optimizer = create_optimizer(discriminator.parameters(), args.discriminator_learning_rate, args)
    generator, discriminator, generator_optimizer, discriminator_optimizer, dataloader = accelerator.prepare(
        generator, discriminator, generator_optimizer, discriminator_optimizer, dataloader
    )
    loop = TrainingLoop(accelerator, dataloader, args, models={"generator": generator, "discriminator": discriminator})
    generator_lr_scheduler, discriminator_lr_scheduler = accelerator.prepare(
        create_lr_scheduler(generator_optimizer, args, loop.max_train_steps, accelerator.num_processes),
        create_lr_scheduler(discriminator_optimizer, args, loop.max_train_steps, accelerator.num_processes),
    )
    # Checkpointed in this order; keep it stable so old checkpoints stay loadable.
    ema = create_ema(accelerator, generator, args.ema_decay)
    rng = create_training_rng(accelerator, args.seed)
    examples = first_examples(train_dataset, args.num_sample_images)
    sample_inputs = create_fixed_sample_inputs(
        accelerator, source=examples["source_pixel_values"], target=examples["target_pixel_values"]
    )
    trainer = Pix2PixTrainer(
        accelerator,
        generator,
        discriminator,
        generator_optimizer,
        discriminator_optimizer,
        generator_lr_scheduler,
        discriminator_lr_scheduler,
        loss=args.loss,
        l1_weight=args.l1_weight,
        feature_matching_weight=args.feature_matching_weight,
        augment=DiffAugment(args.diffaugment),
        max_grad_norm=args.max_grad_norm,
        ema=ema,
        rng=rng,
        channels_last=args.channels_last,
    )

    start_trackers(accelerator, "train_pix2pix", args)
    logger.info(
        f"{len(info.dataset)} training pairs, {info.source_num_channels} -> {info.target_num_channels} channel(s); "
        f"generator {sum(p.numel() for p in generator.parameters()):,} parameters, "
        f"discriminator {sum(p.numel() for p in discriminator.parameters()):,}"
    )
    loop.resume()
    logs: dict[str, float] = {}
    for batch in loop:
        step_logs = trainer.train_step(batch, loop.next_step)
        if not loop.step_done(step_logs):
            continue
        logs = step_logs
        if loop.is_due(args.sample_steps) and accelerator.is_main_process:
            model = averaged_copy(accelerator, generator, ema)
            outputs = translate_samples(model, sample_inputs.source)
            grid = comparison_grid(sample_inputs.source, outputs, sample_inputs.target)
            log_sample_grid(accelerator, grid, loop.global_step, args.output_dir)
    seconds = loop.end()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final_generator = averaged_copy(accelerator, generator, ema)
        final_discriminator = accelerator.unwrap_model(discriminator)
        assert_finite_parameters(generator=final_generator, discriminator=final_discriminator)
        output_dir = Path(args.output_dir)
        final_generator.save_pretrained(output_dir)
        final_discriminator.save_pretrained(output_dir / "discriminator")
        outputs = translate_samples(final_generator, sample_inputs.source)
        comparison_grid(sample_inputs.source, outputs, sample_inputs.target).save(output_dir / "samples.png")
        write_card(args, final_generator, info, loop, seconds, logs)
        logger.info(f"Saved the generator (EMA weights) to {output_dir} and the discriminator to its subfolder")
        if args.push_to_hub:
            logger.info(f"Pushed to {push_output_dir(args)}")
    accelerator.end_training()


def write_card(args, generator, info, loop: TrainingLoop, seconds: float, logs: dict) -> None:
    training = {
        "steps": loop.global_step,
        "batch size (all processes)": loop.batch_size,
        "epochs": f"{loop.global_step / loop.steps_per_epoch:.2f}",
        "loss": f"{args.loss} + {args.l1_weight} x L1"
        + (f" + {args.feature_matching_weight} x feature matching" if args.feature_matching_weight else ""),
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
    training |= {f"final {name}": f"{value:.4g}" for name, value in logs.items() if name.endswith(("_loss", "l1"))}
    height, width = (args.resolution,) * 2 if isinstance(args.resolution, int) else args.resolution
    write_model_card(
        generator,
        args.output_dir,
        hub_repo_id(args),
        datasets=dataset_hub_ids(args.dataset_name),
        sample_image="samples.png",
        sample_caption="Training inputs (top row of each block), outputs of the EMA generator (middle) and targets "
        "(bottom).",
        training=training,
        training_command=training_command("examples/train_pix2pix.py"),
        dataset_description=f"`{args.dataset_name}` (split `{args.dataset_split}`): {len(info.dataset):,} pairs "
        f"`{info.source_column}` -> `{info.target_column}`, at {height}x{width}.",
        limitations=(
            "A small pix2pix model: it translates inputs resembling its training inputs, at the training resolution, "
            "and produces one plausible output per input (no diversity). Judge it on held-out pairs (L1, SSIM) and "
            "by FID against real images."
        ),
    )


if __name__ == "__main__":
    try:
        main(parse_args())
    except TrainingError as error:
        sys.exit(f"error: {error}")
