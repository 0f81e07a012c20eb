"""Train a virtual try-on model (a `TryOnModel`: garment warping + try-on U-Nets) against a conditional PatchGAN.

Runs anywhere Accelerate does, from a laptop CPU to many GPUs on several machines. On the synthetic wardrobe:

    python examples/make_wardrobe_dataset.py --fashion_mnist fashion_mnist --output_dir wardrobe
    accelerate launch examples/train_tryon.py --dataset_name wardrobe --output_dir wardrobe-tryon

`--dataset_name` takes a wardrobe dataset written by `save_to_disk` (or pushed to the Hub), a VITON-HD folder (with
`train_pairs.txt`, `train/image/` ...; read by `hf_vaegan.data.load_viton_hd`), or a Fashion-MNIST `.npz` (`images`,
`labels`) from which `--num_wardrobe_samples` wardrobe rows are rendered on the fly. The model warps the garment with
an appearance flow and renders the dressed person with a composition mask (`--no-use_warping` trains the ablation
without the warp); the losses are a multi-scale L1, feature matching on the PatchGAN's features (the
perceptual-style loss, no pretrained network needed), the adversarial loss and, for the warp, an L1 loss to the garment
as worn plus flow smoothness. `--resume_from_checkpoint latest` continues an interrupted run exactly. At the end the
model is evaluated on `--num_validation_examples` held-out pairs (SSIM, L1, FID). The output folder loads with
`TryOnPipeline.from_pretrained(output_dir)` or `TryOnModel.from_pretrained(output_dir)` (EMA weights), and
`PatchDiscriminator.from_pretrained(output_dir / "discriminator")`; it also holds a model card, the sample
grids (`samples/`: rows of garments, agnostic persons, warped garments, results and ground truths), the TensorBoard
logs (`logs/`) and the checkpoints.
"""

import argparse
import sys
from pathlib import Path

from accelerate.logging import get_logger

from hf_vaegan.models.patch_discriminator import PatchDiscriminator
from hf_vaegan.models.tryon import TryOnModel
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
    log_sample_grid,
    make_dataloader,
    push_output_dir,
    start_trackers,
    training_command,
    validate_training_args,
    write_model_card,
)
from hf_vaegan.training.image_to_image import first_examples
from hf_vaegan.training.tryon import (
    DEFAULT_TRYON_RESOLUTION,
    FID_PROTOCOL,
    TryOnTrainer,
    add_tryon_args,
    evaluate_tryon,
    evaluation_batches,
    format_metrics,
    load_tryon_dataset_from_args,
    model_predictor,
    tryon_grid,
    validate_tryon_args,
)

logger = get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataset_args(parser, default_resolution=DEFAULT_TRYON_RESOLUTION)
    add_training_args(parser, default_output_dir="tryon-model", default_num_epochs=10)
    parser.set_defaults(train_batch_size=16, adam_beta1=0.5, adam_beta2=0.999, num_sample_images=16)
    add_tryon_args(parser)
    args = parser.parse_args(argv)
    try:
        validate_training_args(args)
        validate_tryon_args(args)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(args: argparse.Namespace) -> None:
    accelerator = create_accelerator(args)
    with accelerator.main_process_first():
        try:
            info = load_tryon_dataset_from_args(args, args.dataset_split, args.max_train_samples)
            held_out = None
            if args.num_validation_examples:
                held_out = load_tryon_dataset_from_args(args, args.validation_split, args.num_validation_examples)
        except (ValueError, FileNotFoundError) as error:
            raise SystemExit(f"error: {error}") from None
    train_dataset = info.with_transform(args.resolution)
    dataloader = make_dataloader(
        train_dataset, args.train_batch_size, seed=args.seed, num_workers=args.dataloader_num_workers
    )

    model = TryOnModel(
        sample_size=args.resolution,
        base_channels=args.base_channels,
        num_downsamplings=args.num_downsamplings,
        max_channel_multiplier=args.max_channel_multiplier,
        layers_per_block=args.layers_per_block,
        num_residual_blocks=args.num_residual_blocks,
        norm_type=args.norm_type,
        keypoint_sigma=args.keypoint_sigma,
        use_warping=args.use_warping,
        warp_downsampling=args.warp_downsampling,
    )
    discriminator = PatchDiscriminator(
        in_channels=6,
        base_channels=args.discriminator_base_channels or args.base_channels,
        num_layers=args.discriminator_num_layers,
        spectral_norm=args.spectral_norm,
    )
    if args.channels_last:
        apply_channels_last(model, discriminator)
    model_optimizer = create_optimizer(model.parameters(), args.generator_learning_rate, args)
    discriminator_optimizer = create_optimizer(discriminator.parameters(), args.discriminator_learning_rate, args)
    model, discriminator, model_optimizer, discriminator_optimizer, dataloader = accelerator.prepare(
        model, discriminator, model_optimizer, discriminator_optimizer, dataloader
    )
    loop = TrainingLoop(accelerator, dataloader, args, models={"model": model, "discriminator": discriminator})
    model_lr_scheduler, discriminator_lr_scheduler = accelerator.prepare(
        create_lr_scheduler(model_optimizer, args, loop.max_train_steps, accelerator.num_processes),
        create_lr_scheduler(discriminator_optimizer, args, loop.max_train_steps, accelerator.num_processes),
    )
    # Checkpointed in this order; keep it stable so old checkpoints stay loadable.
    ema = create_ema(accelerator, model, args.ema_decay)
    rng = create_training_rng(accelerator, args.seed)
    grid_dataset = held_out.with_transform(args.resolution) if held_out is not None else train_dataset
    sample_inputs = create_fixed_sample_inputs(accelerator, **first_examples(grid_dataset, args.num_sample_images))
    trainer = TryOnTrainer(
        accelerator,
        model,
        discriminator,
        model_optimizer,
        discriminator_optimizer,
        model_lr_scheduler,
        discriminator_lr_scheduler,
        loss=args.loss,
        l1_weight=args.l1_weight,
        feature_matching_weight=args.feature_matching_weight,
        warp_weight=args.warp_weight,
        flow_smoothness_weight=args.flow_smoothness_weight,
        augment=DiffAugment(args.diffaugment),
        max_grad_norm=args.max_grad_norm,
        ema=ema,
        rng=rng,
        channels_last=args.channels_last,
    )

    start_trackers(accelerator, "train_tryon", args)
    logger.info(
        f"{len(info.dataset)} training pairs ({info.source}) at {args.resolution[0]}x{args.resolution[1]}; try-on "
        f"model {sum(p.numel() for p in model.parameters()):,} parameters "
        f"({'with' if args.use_warping else 'without'} warping), "
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
            grid = tryon_grid(averaged_copy(accelerator, model, ema), sample_inputs.state_dict())
            log_sample_grid(accelerator, grid, loop.global_step, args.output_dir)
    seconds = loop.end()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final_model = averaged_copy(accelerator, model, ema)
        final_discriminator = accelerator.unwrap_model(discriminator)
        assert_finite_parameters(model=final_model, discriminator=final_discriminator)
        output_dir = Path(args.output_dir)
        final_model.save_pretrained(output_dir)
        final_discriminator.save_pretrained(output_dir / "discriminator")
        tryon_grid(final_model, sample_inputs.state_dict()).save(output_dir / "samples.png")
        metrics = {}
        if held_out is not None:
            batches = evaluation_batches(held_out, args.resolution)
            metrics = evaluate_tryon({"model": model_predictor(final_model)}, batches)["model"]
            logger.info(f"Held-out figures: {metrics}")
        write_card(args, final_model, info, held_out, metrics, loop, seconds, logs)
        logger.info(f"Saved the try-on model (EMA weights) to {output_dir} and the discriminator to its subfolder")
        if args.push_to_hub:
            logger.info(f"Pushed to {push_output_dir(args)}")
    accelerator.end_training()


def write_card(args, model, info, held_out, metrics, loop: TrainingLoop, seconds: float, logs: dict) -> None:
    weights = (
        f"{args.loss} + {args.l1_weight} x multi-scale L1 + {args.feature_matching_weight} x PatchGAN feature matching"
    )
    if args.use_warping:
        weights += f" + {args.warp_weight} x warp L1 + {args.flow_smoothness_weight} x flow TV"
    training = {
        "steps": loop.global_step,
        "batch size (all processes)": loop.batch_size,
        "epochs": f"{loop.global_step / loop.steps_per_epoch:.2f}",
        "warping": "appearance flow" if args.use_warping else "none (ablation)",
        "loss": weights,
        "learning rates (model / D)": f"{args.generator_learning_rate} / {args.discriminator_learning_rate}",
        "Adam betas": f"({args.adam_beta1}, {args.adam_beta2})",
        "EMA decay": args.ema_decay,
        "DiffAugment": args.diffaugment,
        "mixed precision": loop.accelerator.mixed_precision,
        "processes": loop.accelerator.num_processes,
        "seed": args.seed,
        "training time": f"{seconds / 60:.1f} min",
    }
    training |= {f"final {name}": f"{value:.4g}" for name, value in logs.items() if name.endswith(("_loss", "l1"))}
    height, width = args.resolution
    protocol = None
    if held_out is not None:
        protocol = (
            f"On {len(held_out.dataset):,} held-out pairs (split `{args.validation_split}`), each person trying on "
            f"their own garment, against the ground truth, with the EMA weights. SSIM and L1 over whole images. "
            + FID_PROTOCOL
        )
    write_model_card(
        model,
        args.output_dir,
        hub_repo_id(args),
        datasets=dataset_hub_ids(args.dataset_name),
        sample_image="samples.png",
        sample_caption="Held-out examples, one per column; rows: garment, agnostic person, warped garment, try-on "
        "result of the EMA model, ground truth.",
        metrics=format_metrics(metrics),
        metrics_protocol=protocol,
        training=training,
        training_command=training_command("examples/train_tryon.py"),
        dataset_description=f"`{args.dataset_name}` ({info.source}, split `{args.dataset_split}`): "
        f"{len(info.dataset):,} try-on pairs at {height}x{width}.",
        limitations=(
            f"A small try-on model for {height}x{width} images like its training data (the synthetic wardrobe's "
            "avatars and Fashion-MNIST garments, or the dataset it was trained on). It needs the agnostic person "
            "image, its mask, a body mask and pose keypoints; garments far from the training distribution warp "
            "poorly. It is a research and teaching model, not a product."
        ),
    )


if __name__ == "__main__":
    try:
        main(parse_args())
    except TrainingError as error:
        sys.exit(f"error: {error}")
