"""Train a GAN (a `Generator` and a `Discriminator`), class-conditional when the dataset has labels.

Runs anywhere Accelerate does, from a laptop CPU to many GPUs on several machines:

    accelerate launch examples/train_gan.py --dataset_name fashion_mnist/train.npz --output_dir gan-fashion-mnist \
        --mixed_precision bf16

`--dataset_name` takes a Hub dataset id, a folder of images (one subfolder per class), a `.npz` file with `images`
(and `labels`), or a folder written by `save_to_disk`. The recipe follows StyleGAN2-ADA: the non-saturating loss with
lazy R1 (or hinge / WGAN-GP), an EMA of the generator, optional differentiable augmentation for small datasets, and
separate generator and discriminator learning rates. `--resume_from_checkpoint latest` continues an interrupted run
exactly. `--preset cpu-budget` swaps the defaults for a recipe that learns more per second on a CPU thread (narrower
networks, larger learning rates; flags given explicitly still win). The output folder loads with
`Generator.from_pretrained(output_dir)` (EMA weights) and `Discriminator.from_pretrained(output_dir,
subfolder="discriminator")`; it also holds a model card, the sample grids
(`samples/`), the TensorBoard logs (`logs/`) and the checkpoints.
"""

import argparse

from accelerate.logging import get_logger

from hf_vaegan import Discriminator, Generator
from hf_vaegan.models.blocks import NORM_TYPES, SUPPORTED_RESOLUTIONS
from hf_vaegan.training import DiffAugment, GANTrainer, TrainingSession, averaged_copy
from hf_vaegan.training.args import add_training_args, check_positive, check_positive_ints, parse_and_validate
from hf_vaegan.training.dataset_args import add_dataset_args, load_image_dataset_from_args
from hf_vaegan.training.evaluation import (
    add_evaluation_args,
    evaluation_card_sections,
    load_evaluation_reference,
    log_evaluation,
    validate_evaluation_args,
)
from hf_vaegan.training.gan import create_sample_inputs, generate_sample_images
from hf_vaegan.training.grids import log_sample_grid, make_sample_grid
from hf_vaegan.training.hub import training_rows
from hf_vaegan.training.losses import GAN_LOSSES
from hf_vaegan.training.model_args import (
    add_discriminator_args,
    add_lazy_r1_args,
    diffaugment_policy,
    validate_discriminator_args,
    validate_lazy_r1_args,
)
from hf_vaegan.training.presets import GAN_PRESETS, add_preset_arg, apply_preset
from hf_vaegan.training.session import run

logger = get_logger(__name__)


def _num_classes(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'auto' or an integer, got {value!r}") from None
    if number < 0 or number == 1:
        raise argparse.ArgumentTypeError(f"must be 'auto', 0 (unconditional) or >= 2, got {number}")
    return number


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_preset_arg(
        parser,
        GAN_PRESETS,
        "quality",
        "Defaults of the recipe: 'quality' (the bundled model's recipe, for long runs) or 'cpu-budget' (for a short "
        "training on a CPU: narrower networks, larger learning rates; the README compares it with plain "
        "baselines at an equal budget).",
    )
    add_dataset_args(parser, default_resolution=28)
    add_training_args(parser, default_output_dir="gan-model", default_num_epochs=20)
    parser.set_defaults(train_batch_size=64)

    model = parser.add_argument_group("model")
    model.add_argument("--latent_dim", type=int, default=64, help="Size of the generator's noise vector.")
    model.add_argument(
        "--base_channels",
        type=int,
        default=64,
        help="Width of the full-resolution layers of both networks; widths double at each halving of the size.",
    )
    model.add_argument(
        "--num_classes",
        type=_num_classes,
        default="auto",
        help="'auto' (default): class-conditional on the dataset's labels when it has a label column, else "
        "unconditional. 0 forces an unconditional GAN; N >= 2 a conditional one with N classes.",
    )
    model.add_argument(
        "--generator_norm_type",
        type=str,
        choices=NORM_TYPES,
        default="group",
        help="Normalisation of the generator's hidden layers: 'group' (default; each image independent of its "
        "batch), 'batch' (DCGAN, Radford et al. 2016) or 'none'.",
    )
    discriminator = add_discriminator_args(parser, default_spectral_norm=True)
    discriminator.add_argument(
        "--discriminator_norm_type",
        type=str,
        choices=NORM_TYPES,
        default="none",
        help="Normalisation of the discriminator's hidden layers: 'none' (default, as StyleGAN2), 'group', or "
        "'batch' (DCGAN's choice, but a poor one here: the discriminator step scores real and fake images in one "
        "batch and the generator step the fakes alone, so BatchNorm statistics differ between the two steps).",
    )
    discriminator.add_argument(
        "--minibatch_std_group_size",
        type=int,
        default=4,
        help="The discriminator also sees the spread of its features over groups of this many images (Karras et "
        "al., 2018), which keeps the generator from ignoring its noise (mode collapse). 0 disables it.",
    )

    gan = parser.add_argument_group("GAN training")
    gan.add_argument(
        "--mode_seeking_weight",
        type=float,
        default=0.3,
        help="Weight of the mode-seeking regulariser of the generator (Mao et al., 2019): it rewards two images of "
        "the same class that differ as their noise vectors do, against the within-class mode collapse of "
        "class-conditional GANs (the README has the ablation); costs half a batch of extra generator passes. 0 "
        "disables it.",
    )
    gan.add_argument(
        "--loss",
        type=str,
        choices=GAN_LOSSES,
        default="non-saturating",
        help="Adversarial loss: the non-saturating logistic loss of StyleGAN2 (default), hinge, or WGAN-GP (which "
        "adds its own gradient penalty on interpolates, weight 10).",
    )
    add_lazy_r1_args(gan)
    gan.add_argument(
        "--diffaugment",
        type=diffaugment_policy,
        default="none",
        help="Differentiable augmentation of everything the discriminator sees: comma-separated operations among "
        "translation, cutout, color (e.g. 'translation,cutout,color'), or 'none'. Recommended below ~10k images.",
    )
    gan.add_argument("--generator_learning_rate", type=float, default=2e-4, help="Learning rate of the generator.")

    add_evaluation_args(parser)

    apply_preset(parser, argv, GAN_PRESETS)
    return parse_and_validate(
        parser, argv, validate_discriminator_args, validate_lazy_r1_args, validate_evaluation_args, _validate_gan_args
    )


def _validate_gan_args(args: argparse.Namespace) -> None:
    if not isinstance(args.resolution, int) or args.resolution not in SUPPORTED_RESOLUTIONS:
        raise ValueError(f"--resolution must be one of {SUPPORTED_RESOLUTIONS} (square), got {args.resolution}")
    check_positive_ints(args, "latent_dim", "base_channels")
    check_positive(args, "generator_learning_rate")


def resolve_num_classes(requested: int | str, dataset_num_classes: int | None, label_column: str | None) -> int:
    """The generator's ``num_classes`` from ``--num_classes`` and the dataset's labels."""
    if requested == "auto":
        return dataset_num_classes or 0
    if requested and label_column is None:
        raise ValueError(
            f"--num_classes {requested} needs class labels, but the dataset has no label column; pass --label_column "
            "or --num_classes 0"
        )
    if requested and dataset_num_classes > requested:
        raise ValueError(f"--num_classes {requested} is fewer than the dataset's {dataset_num_classes} classes")
    return requested


def main(args: argparse.Namespace) -> None:
    session = TrainingSession(args, "train_gan")
    accelerator = session.accelerator
    with session.loading_data():
        info = load_image_dataset_from_args(args)
    data_fit = {"resolution": (args.resolution, "--resolution")}
    pretrained = session.load_pretrained(
        Generator, must_match={**data_fit, "out_channels": (info.num_channels, "the dataset's channel count")}
    )
    with session.loading_data():
        if pretrained is not None and args.num_classes not in ("auto", pretrained.config.num_classes):
            raise ValueError(
                f"--num_classes {args.num_classes} differs from the pretrained generator's "
                f"{pretrained.config.num_classes} classes; leave it at 'auto' when fine-tuning"
            )
        requested = args.num_classes if pretrained is None else pretrained.config.num_classes
        num_classes = resolve_num_classes(requested, info.num_classes, info.label_column)

    generator = pretrained or Generator(
        resolution=args.resolution,
        out_channels=info.num_channels,
        latent_dim=args.latent_dim,
        base_channels=args.base_channels,
        num_classes=num_classes,
        norm_type=args.generator_norm_type,
    )
    discriminator = session.load_pretrained(
        Discriminator,
        "discriminator",
        must_match={
            **data_fit,
            "in_channels": (info.num_channels, "the dataset's channel count"),
            "num_classes": (num_classes, "the generator"),
        },
        required=False,
    ) or Discriminator(
        resolution=args.resolution,
        in_channels=info.num_channels,
        base_channels=args.discriminator_base_channels or args.base_channels,
        num_classes=num_classes,
        spectral_norm=args.spectral_norm,
        norm_type=args.discriminator_norm_type,
        minibatch_std_group_size=args.minibatch_std_group_size,
    )
    latent_dim = generator.config.latent_dim
    transform = {"random_flip": args.random_flip, "center_crop": args.center_crop}
    loop = session.prepare_dataloader(info.with_image_transform(args.resolution, **transform))
    generator = session.add_network("generator", generator, args.generator_learning_rate)
    discriminator = session.add_network("discriminator", discriminator, args.discriminator_learning_rate)
    ema = session.create_ema(generator)
    trainer = GANTrainer(
        accelerator,
        generator,
        discriminator,
        loss=args.loss,
        r1_gamma=0.0 if args.loss == "wgan-gp" else args.r1_gamma,
        r1_interval=args.r1_interval,
        augment=DiffAugment(args.diffaugment),
        max_grad_norm=args.max_grad_norm,
        mode_seeking_weight=args.mode_seeking_weight,
        ema=ema,
        rng=session.create_rng(),
        channels_last=args.channels_last,
    )
    sample_inputs = create_sample_inputs(accelerator, latent_dim, args.num_sample_images, num_classes, args.seed)
    logger.info(
        f"{len(info.dataset)} training images, {info.num_channels} channel(s), "
        f"{'conditional on ' + str(num_classes) + ' classes' if num_classes else 'unconditional'}; "
        f"generator {generator.bare.num_parameters():,} parameters, "
        f"discriminator {discriminator.bare.num_parameters():,}"
    )
    reference = None
    if args.eval_steps and accelerator.is_main_process:
        try:
            reference = load_evaluation_reference(args, info)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
    session.start()

    metrics: dict[str, float] | None = None
    for batch in loop:
        if not (loop.step_done(trainer.train_step(batch, loop.next_step)) and accelerator.is_main_process):
            continue
        if loop.is_due(args.sample_steps):
            images = generate_sample_images(averaged_copy(accelerator, generator.model, ema), sample_inputs)
            log_sample_grid(
                accelerator, make_sample_grid(images, rows=num_classes or None), loop.global_step, args.output_dir
            )
        if args.eval_steps and loop.is_due(args.eval_steps):
            model = averaged_copy(accelerator, generator.model, ema)
            metrics = log_evaluation(accelerator, model, reference, loop.global_step, args.eval_num_samples, args.seed)
    seconds = session.end_loop()
    if accelerator.is_main_process:
        final_generator = averaged_copy(accelerator, generator.model, ema)
        final_discriminator = discriminator.bare
        output_dir = session.save_models({"": final_generator, "discriminator": final_discriminator})
        grid = make_sample_grid(generate_sample_images(final_generator, sample_inputs), rows=num_classes or None)
        grid.save(output_dir / "samples.png")
        recipe = {
            "preset": args.preset,
            "loss": args.loss,
            "R1 gamma / interval": f"{args.r1_gamma} / {args.r1_interval}" if args.loss != "wgan-gp" else "-",
            "learning rates (G / D)": f"{args.generator_learning_rate} / {args.discriminator_learning_rate}",
            "DiffAugment": args.diffaugment,
            "norm (G / D)": f"{final_generator.config.norm_type} / {final_discriminator.config.norm_type}",
            "spectral norm": final_discriminator.config.spectral_norm,
            "minibatch std group size": final_discriminator.config.minibatch_std_group_size,
            "mode-seeking weight": args.mode_seeking_weight,
        }
        rows = "one row per class, in label order" if num_classes else "fixed noise"
        classes = f", {num_classes} classes ({', '.join(info.class_names)})" if num_classes else ""
        session.write_card(
            final_generator,
            tags=["class-conditional"] if num_classes else None,
            sample_caption=f"Samples of the EMA generator ({rows}).",
            training=training_rows(args, loop, seconds, recipe, loop.step_logs, final=("d_loss", "g_loss")),
            dataset_description=f"`{args.dataset_name}`: {len(info.dataset):,} images{classes}, at "
            f"{args.resolution}x{args.resolution}.",
            limitations=(
                f"A small convolutional GAN: it produces {args.resolution}x{args.resolution} images resembling its "
                "training data and nothing else, and it can drop modes of the data. Judge its quality by the sample "
                "grid and by metrics such as FID on held-out data."
            ),
            **evaluation_card_sections(metrics, reference),
        )
        logger.info(f"Saved the generator (EMA weights) to {output_dir} and the discriminator to its subfolder")
    session.finish()


if __name__ == "__main__":
    run(main, parse_args())
