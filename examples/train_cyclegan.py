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

from accelerate.logging import get_logger

from hf_vaegan.data.images import height_and_width
from hf_vaegan.data.loading import UnpairedImageDataset, first_examples, select_classes
from hf_vaegan.models.patch_discriminator import PatchDiscriminator
from hf_vaegan.models.unet_generator import UNetGenerator
from hf_vaegan.training import DiffAugment, TrainingSession, averaged_copy
from hf_vaegan.training.args import add_training_args, check_non_negative, parse_and_validate
from hf_vaegan.training.cyclegan import CycleGANTrainer, create_replay_buffer
from hf_vaegan.training.dataset_args import add_dataset_args, load_image_dataset_from_args
from hf_vaegan.training.grids import comparison_grid, log_sample_grid
from hf_vaegan.training.hub import dataset_hub_ids, training_rows
from hf_vaegan.training.model_args import (
    add_image_to_image_args,
    patch_discriminator_config_from_args,
    unet_config_from_args,
    validate_image_to_image_args,
)
from hf_vaegan.training.pix2pix import translate_samples
from hf_vaegan.training.session import run

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

    return parse_and_validate(parser, argv, validate_image_to_image_args, _validate_domains)


def _validate_domains(args: argparse.Namespace) -> None:
    check_non_negative(args, "cycle_weight", "identity_weight", "replay_buffer_size")
    same_source = args.dataset_name_b in (None, args.dataset_name) and args.image_column_b in (
        None,
        args.image_column,
    )
    if same_source and args.domain_a_classes == args.domain_b_classes:
        raise ValueError(
            "domains A and B are the same images: pass --domain_a_classes/--domain_b_classes, --dataset_name_b "
            "or --image_column_b"
        )


def load_domains(args: argparse.Namespace):
    """The image datasets of domains A and B, restricted to their classes."""
    domain_a = load_image_dataset_from_args(args)
    domain_b = load_image_dataset_from_args(
        args, args.dataset_name_b, image_column=args.image_column_b or args.image_column
    )
    if args.domain_a_classes:
        domain_a = select_classes(domain_a, args.domain_a_classes)
    if args.domain_b_classes:
        domain_b = select_classes(domain_b, args.domain_b_classes)
    return domain_a, domain_b


def main(args: argparse.Namespace) -> None:
    session = TrainingSession(args, "train_cyclegan")
    accelerator = session.accelerator
    with session.loading_data():
        domain_a, domain_b = load_domains(args)
    transform = {"random_flip": args.random_flip, "center_crop": args.center_crop}
    images_a = domain_a.with_image_transform(args.resolution, **transform)
    images_b = domain_b.with_image_transform(args.resolution, **transform)

    channels_a, channels_b = domain_a.num_channels, domain_b.num_channels
    # Where each network lies in a pretrained run's folder (train_cyclegan's layout: A -> B at the root).
    pretrained_components = {
        "generator_a_to_b": None,
        "generator_b_to_a": "generator_b_to_a",
        "discriminator_a": "discriminator_a",
        "discriminator_b": "discriminator_b",
    }
    channels = {
        "generator_a_to_b": {"in_channels": channels_a, "out_channels": channels_b},
        "generator_b_to_a": {"in_channels": channels_b, "out_channels": channels_a},
        "discriminator_a": {"in_channels": channels_a},
        "discriminator_b": {"in_channels": channels_b},
    }

    def load_or_create(name: str, model_class: type, **kwargs):
        must_match = {key: (value, "the domains' channel counts") for key, value in channels[name].items()}
        if model_class is UNetGenerator:
            must_match["sample_size"] = (args.resolution, "--resolution")
        pretrained = session.load_pretrained(
            model_class, pretrained_components[name], must_match=must_match, required=name == "generator_a_to_b"
        )
        return pretrained or model_class(**channels[name], **kwargs)

    generators = {
        name: load_or_create(name, UNetGenerator, **unet_config_from_args(args))
        for name in ("generator_a_to_b", "generator_b_to_a")
    }
    discriminators = {
        name: load_or_create(name, PatchDiscriminator, **patch_discriminator_config_from_args(args))
        for name in ("discriminator_a", "discriminator_b")
    }
    loop = session.prepare_dataloader(UnpairedImageDataset(images_a, images_b))
    generators = session.add_network("generators", generators, args.generator_learning_rate)
    discriminators = session.add_network("discriminators", discriminators, args.discriminator_learning_rate)
    emas = (
        session.create_ema(generators, "ema_a_to_b", model="generator_a_to_b"),
        session.create_ema(generators, "ema_b_to_a", model="generator_b_to_a"),
    )

    def averaged_generators() -> list[UNetGenerator]:
        models = generators.models.values()
        return [averaged_copy(accelerator, model, ema) for model, ema in zip(models, emas, strict=True)]

    rng = session.create_rng()
    sample_inputs = session.fixed_tensors(
        a=first_examples(images_a, args.num_sample_images)["pixel_values"],
        b=first_examples(images_b, args.num_sample_images)["pixel_values"],
    )
    image_size = height_and_width(args.resolution)
    replay_buffers = (
        create_replay_buffer(accelerator, "replay_buffer_a", args.replay_buffer_size, (channels_a, *image_size), rng),
        create_replay_buffer(accelerator, "replay_buffer_b", args.replay_buffer_size, (channels_b, *image_size), rng),
    )
    # G_AB(b) = b only makes sense when both domains have the same channels.
    identity_weight = args.identity_weight if channels_a == channels_b else 0.0
    if args.identity_weight and not identity_weight:
        logger.warning(f"No identity loss: the domains have {channels_a} and {channels_b} channels")
    trainer = CycleGANTrainer(
        accelerator,
        generators,
        discriminators,
        loss=args.loss,
        cycle_weight=args.cycle_weight,
        identity_weight=identity_weight,
        replay_buffers=replay_buffers,
        augment=DiffAugment(args.diffaugment),
        emas=emas,
        **session.trainer_options(rng=rng),
    )
    generator_size = generators.bare_models["generator_a_to_b"].num_parameters()
    discriminator_size = discriminators.bare_models["discriminator_a"].num_parameters()
    logger.info(
        f"{len(domain_a.dataset)} images in domain A ({channels_a} channel(s)), {len(domain_b.dataset)} in domain B "
        f"({channels_b}); each generator {generator_size:,} parameters, each discriminator {discriminator_size:,}"
    )
    session.start()

    for batch in loop:
        if not (loop.step_done(trainer.train_step(batch, loop.next_step)) and accelerator.is_main_process):
            continue
        if loop.is_due(args.sample_steps):
            grid = sample_grid(*averaged_generators(), sample_inputs.a, sample_inputs.b)
            log_sample_grid(accelerator, grid, loop.global_step, args.output_dir)
    seconds = session.end_loop()
    if accelerator.is_main_process:
        final_a_to_b, final_b_to_a = averaged_generators()
        output_dir = session.save_models(
            {"": final_a_to_b, "generator_b_to_a": final_b_to_a, **discriminators.bare_models}
        )
        sample_grid(final_a_to_b, final_b_to_a, sample_inputs.a, sample_inputs.b).save(output_dir / "samples.png")
        write_card(session, final_a_to_b, domain_a, domain_b, identity_weight, seconds)
        logger.info(
            f"Saved the A -> B generator (EMA weights) to {output_dir}, the B -> A generator and the discriminators "
            "to its subfolders"
        )
    session.finish()


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
    session: TrainingSession, generator, domain_a, domain_b, identity_weight: float, seconds: float
) -> None:
    args = session.args
    recipe = {
        "loss": f"{args.loss} + {args.cycle_weight} x cycle L1"
        + (f" + {args.cycle_weight * identity_weight} x identity L1" if identity_weight else ""),
        "replay buffer": args.replay_buffer_size,
        "learning rates (G / D)": f"{args.generator_learning_rate} / {args.discriminator_learning_rate}",
        "DiffAugment": args.diffaugment,
        "spectral norm": session.networks["discriminators"].bare_models["discriminator_a"].config.spectral_norm,
    }
    logs = session.loop.step_logs
    training = training_rows(
        args, session.loop, seconds, recipe, logs, [name for name in logs if name.endswith("_loss")]
    )
    height, width = height_and_width(args.resolution)
    dataset_b = args.dataset_name_b or args.dataset_name
    session.write_card(
        generator,
        datasets=sorted({*(dataset_hub_ids(args.dataset_name) or []), *(dataset_hub_ids(dataset_b) or [])}) or None,
        tags=["cyclegan", "unpaired-image-translation"],
        sample_caption="Each column, top to bottom: an A image, A -> B, back to A; a B image, B -> A, back to B (EMA "
        "generators). This repository's root holds the A -> B generator; the B -> A generator is in the "
        "`generator_b_to_a` subfolder.",
        training=training,
        dataset_description=f"{describe_domain('A', args.dataset_name, domain_a, args.domain_a_classes)}; "
        f"{describe_domain('B', dataset_b, domain_b, args.domain_b_classes)}; at {height}x{width}.",
        limitations=(
            "A small CycleGAN: it maps images resembling domain A to domain B (and back, with the subfolder's "
            "generator) at the training resolution. Unpaired translation changes appearance more readily than "
            "shape, and may hide information in imperceptible patterns to satisfy the cycle loss."
        ),
    )


if __name__ == "__main__":
    run(main, parse_args())
