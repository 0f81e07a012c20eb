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

from accelerate.logging import get_logger

from hf_vaegan.data.images import height_and_width
from hf_vaegan.data.loading import first_examples
from hf_vaegan.models.patch_discriminator import PatchDiscriminator
from hf_vaegan.models.unet_generator import UNetGenerator
from hf_vaegan.training import DiffAugment, TrainingSession, averaged_copy
from hf_vaegan.training.args import add_training_args, check_non_negative, parse_and_validate
from hf_vaegan.training.dataset_args import add_dataset_args, load_paired_dataset_from_args
from hf_vaegan.training.grids import comparison_grid, log_sample_grid
from hf_vaegan.training.hub import training_rows
from hf_vaegan.training.model_args import (
    add_image_to_image_args,
    patch_discriminator_config_from_args,
    unet_config_from_args,
    validate_image_to_image_args,
)
from hf_vaegan.training.pix2pix import Pix2PixTrainer, translate_samples
from hf_vaegan.training.session import run

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

    return parse_and_validate(parser, argv, validate_image_to_image_args, _validate_loss_weights)


def _validate_loss_weights(args: argparse.Namespace) -> None:
    check_non_negative(args, "l1_weight", "feature_matching_weight")


def main(args: argparse.Namespace) -> None:
    session = TrainingSession(args, "train_pix2pix")
    accelerator = session.accelerator
    with session.loading_data():
        info = load_paired_dataset_from_args(args)

    data_fit = {
        "in_channels": (info.source_num_channels, "the dataset's source channel count"),
        "out_channels": (info.target_num_channels, "the dataset's target channel count"),
    }
    generator = session.load_pretrained(
        UNetGenerator, must_match={**data_fit, "sample_size": (args.resolution, "--resolution")}
    ) or UNetGenerator(
        in_channels=info.source_num_channels, out_channels=info.target_num_channels, **unet_config_from_args(args)
    )
    pair_channels = info.source_num_channels + info.target_num_channels
    discriminator = session.load_pretrained(
        PatchDiscriminator,
        "discriminator",
        must_match={"in_channels": (pair_channels, "the dataset's source + target channel count")},
        required=False,
    ) or PatchDiscriminator(in_channels=pair_channels, **patch_discriminator_config_from_args(args))
    train_dataset = info.with_image_transform(
        args.resolution, random_flip=args.random_flip, center_crop=args.center_crop
    )
    loop = session.prepare_dataloader(train_dataset)
    generator = session.add_network("generator", generator, args.generator_learning_rate)
    discriminator = session.add_network("discriminator", discriminator, args.discriminator_learning_rate)
    ema = session.create_ema(generator)
    trainer = Pix2PixTrainer(
        accelerator,
        generator,
        discriminator,
        loss=args.loss,
        l1_weight=args.l1_weight,
        feature_matching_weight=args.feature_matching_weight,
        augment=DiffAugment(args.diffaugment),
        **session.trainer_options(ema),
    )
    examples = first_examples(train_dataset, args.num_sample_images)
    sample_inputs = session.fixed_tensors(
        source=examples["source_pixel_values"], target=examples["target_pixel_values"]
    )
    logger.info(
        f"{len(info.dataset)} training pairs, {info.source_num_channels} -> {info.target_num_channels} channel(s); "
        f"generator {generator.bare.num_parameters():,} parameters, "
        f"discriminator {discriminator.bare.num_parameters():,}"
    )
    session.start()

    for batch in loop:
        if not (loop.step_done(trainer.train_step(batch, loop.next_step)) and accelerator.is_main_process):
            continue
        if loop.is_due(args.sample_steps):
            outputs = translate_samples(averaged_copy(accelerator, generator.model, ema), sample_inputs.source)
            grid = comparison_grid(sample_inputs.source, outputs, sample_inputs.target)
            log_sample_grid(accelerator, grid, loop.global_step, args.output_dir)
    seconds = session.end_loop()
    if accelerator.is_main_process:
        final_generator = averaged_copy(accelerator, generator.model, ema)
        output_dir = session.save_models({"": final_generator, "discriminator": discriminator.bare})
        outputs = translate_samples(final_generator, sample_inputs.source)
        comparison_grid(sample_inputs.source, outputs, sample_inputs.target).save(output_dir / "samples.png")
        recipe = {
            "loss": f"{args.loss} + {args.l1_weight} x L1"
            + (f" + {args.feature_matching_weight} x feature matching" if args.feature_matching_weight else ""),
            "learning rates (G / D)": f"{args.generator_learning_rate} / {args.discriminator_learning_rate}",
            "DiffAugment": args.diffaugment,
            "spectral norm": discriminator.bare.config.spectral_norm,
        }
        final = [name for name in loop.step_logs if name.endswith(("_loss", "l1"))]
        height, width = height_and_width(args.resolution)
        session.write_card(
            final_generator,
            sample_caption="Training inputs (top row of each block), outputs of the EMA generator (middle) and "
            "targets (bottom).",
            training=training_rows(args, loop, seconds, recipe, loop.step_logs, final),
            dataset_description=f"`{args.dataset_name}` (split `{args.dataset_split}`): {len(info.dataset):,} "
            f"pairs `{info.source_column}` -> `{info.target_column}`, at {height}x{width}.",
            limitations=(
                "A small pix2pix model: it translates inputs resembling its training inputs, at the training "
                "resolution, and produces one plausible output per input (no diversity). Judge it on held-out pairs "
                "(L1, SSIM) and by FID against real images."
            ),
        )
        logger.info(f"Saved the generator (EMA weights) to {output_dir} and the discriminator to its subfolder")
    session.finish()


if __name__ == "__main__":
    run(main, parse_args())
