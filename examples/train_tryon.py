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
as worn plus flow smoothness, and on the synthetic wardrobe the distance to the renderer's own flow
(`--flow_weight`). `--resume_from_checkpoint latest` continues an interrupted run exactly. At the end the
model is evaluated on `--num_validation_examples` held-out pairs (SSIM, L1, FID). The output folder loads with
`TryOnPipeline.from_pretrained(output_dir)` or `TryOnModel.from_pretrained(output_dir)` (EMA weights), and
`PatchDiscriminator.from_pretrained(output_dir / "discriminator")`; it also holds a model card, the sample
grids (`samples/`: rows of garments, agnostic persons, warped garments, results and ground truths), the TensorBoard
logs (`logs/`) and the checkpoints.
"""

import argparse

from accelerate.logging import get_logger

from hf_vaegan.data import TRYON_COLUMNS
from hf_vaegan.data.loading import first_examples
from hf_vaegan.data.tryon import (
    DEFAULT_TRYON_RESOLUTION,
    TryOnDatasetInfo,
    evaluation_batches,
    load_tryon_dataset,
)
from hf_vaegan.metrics.tryon import FID_PROTOCOL, evaluate_tryon, format_metrics, model_predictor
from hf_vaegan.models.patch_discriminator import PatchDiscriminator
from hf_vaegan.models.tryon import FLOW_UPSAMPLINGS, TryOnModel
from hf_vaegan.training import DiffAugment, TrainingSession, averaged_copy
from hf_vaegan.training.args import (
    add_training_args,
    check_non_negative,
    check_positive,
    check_positive_ints,
    parse_and_validate,
)
from hf_vaegan.training.dataset_args import add_dataset_args
from hf_vaegan.training.grids import log_sample_grid
from hf_vaegan.training.hub import training_rows
from hf_vaegan.training.model_args import (
    add_image_to_image_args,
    patch_discriminator_config_from_args,
    unet_config_from_args,
    validate_image_to_image_args,
)
from hf_vaegan.training.session import run
from hf_vaegan.training.tryon import TryOnTrainer, tryon_grid

logger = get_logger(__name__)


def add_tryon_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the model, GAN, loss and data flags of ``train_tryon.py`` (the U-Net and PatchGAN flags are those of
    ``train_pix2pix.py``); returns the loss group. Call :func:`validate_tryon_args` after parsing."""
    gan = add_image_to_image_args(parser)
    parser.set_defaults(base_channels=8, discriminator_base_channels=16, num_downsamplings=3)
    model = parser.add_argument_group("try-on model")
    model.add_argument(
        "--use_warping",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Warp the garment with the appearance-flow U-Net (default); --no-use_warping trains the ablation that "
        "feeds the try-on U-Net the unwarped garment.",
    )
    model.add_argument(
        "--composition",
        choices=("person", "rendered"),
        default="person",
        help="What the result shows outside the garment in the try-on region: the person's own pixels (the "
        "dataset's undressed `avatar`, else `agnostic`), the model predicting only a composition mask and a grey "
        "shading of the warped garment (default); or 'rendered', a free RGB rendering by the try-on U-Net (the "
        "models before, which paint arms and skin from scratch and fringe in colour).",
    )
    model.add_argument(
        "--num_garment_classes",
        type=int,
        default=0,
        help="With N > 0 the model also reads the garment's class (the dataset's `garment_label`, 0 .. N-1; 10 for "
        "the Fashion-MNIST labels of the synthetic wardrobe): a coat and a pullover look alike flat but are worn to "
        "different lengths. Unknown classes (VITON-HD) read as empty.",
    )
    model.add_argument(
        "--class_dropout",
        type=float,
        default=0.1,
        help="With --num_garment_classes: share of the training garments given as of unknown class.",
    )
    model.add_argument(
        "--max_channel_multiplier",
        type=int,
        default=8,
        help="Cap on the U-Nets' widths, as a multiple of --base_channels.",
    )
    model.add_argument(
        "--warp_downsampling", type=int, default=2, help="The warping U-Net works at 1/N of the image size."
    )
    model.add_argument(
        "--flow_upsampling",
        choices=FLOW_UPSAMPLINGS,
        default="bilinear",
        help="How the flow returns to full size: bilinearly, or by learnt convex weights that keep a jump in the flow "
        "sharp (a sleeve's edge over the torso). A --pretrained_model_name_or_path model with bilinear upsampling "
        "is given convex upsampling that starts at bilinear's weights.",
    )
    model.add_argument(
        "--keypoint_sigma",
        type=float,
        default=0.02,
        help="Width of the pose keypoint heatmaps, as a fraction of the image height.",
    )

    gan.add_argument("--l1_weight", type=float, default=10.0, help="Weight of the multi-scale L1 loss to the target.")
    gan.add_argument(
        "--feature_matching_weight",
        type=float,
        default=5.0,
        help="Weight of the PatchGAN feature-matching loss (pix2pixHD), the perceptual-style loss; 0 disables it.",
    )
    gan.add_argument(
        "--warp_weight",
        type=float,
        default=10.0,
        help="Weight of the multi-scale L1 loss between the warped garment (and its mask) and the garment as worn.",
    )
    gan.add_argument(
        "--flow_smoothness_weight",
        type=float,
        default=1.0,
        help="Weight of the total variation of the appearance flow.",
    )
    gan.add_argument(
        "--flow_weight",
        type=float,
        default=1.0,
        help="Weight of the mean distance, in pixels, between the appearance flow and the renderer's, where the "
        "dataset has it (the synthetic wardrobe's warped_cloth_flow column; VITON-HD has none); 0 trains the warp "
        "on appearance alone.",
    )

    data = parser.add_argument_group("try-on data")
    data.add_argument(
        "--num_wardrobe_samples",
        type=int,
        default=8000,
        help="When --dataset_name is a Fashion-MNIST .npz: rows of the synthetic wardrobe rendered for training.",
    )
    data.add_argument(
        "--wardrobe_seed",
        type=int,
        default=0,
        help="When --dataset_name is a Fashion-MNIST .npz: seed of the rendered wardrobe (avatars, garment split).",
    )
    data.add_argument(
        "--validation_split",
        type=str,
        default="test",
        help="Held-out split for the sample grids and the final evaluation (rendered for a .npz).",
    )
    data.add_argument(
        "--num_validation_examples",
        type=int,
        default=500,
        help="Held-out pairs evaluated at the end (SSIM, L1, FID); 0 skips the evaluation and takes the grids' "
        "examples from the training data.",
    )
    return gan


def validate_tryon_args(args: argparse.Namespace) -> None:
    """Check the flags of :func:`add_tryon_args` (and the shared data flags try-on cannot honour); raises
    ``ValueError`` naming the flag."""
    if isinstance(args.resolution, int):
        args.resolution = (args.resolution, args.resolution)
    validate_image_to_image_args(args)
    for name in ("image_column", "label_column", "num_channels"):
        if getattr(args, name) is not None:
            raise ValueError(f"--{name} does not apply: try-on datasets have the fixed columns {TRYON_COLUMNS}")
    if args.random_flip or not args.center_crop:
        raise ValueError(
            "--random_flip and --no-center_crop do not apply: try-on images are resized whole, so that masks and "
            "keypoints stay aligned"
        )
    height, width = args.resolution
    factor = args.warp_downsampling * 2**args.num_downsamplings
    if args.warp_downsampling < 1 or height % factor or width % factor:
        raise ValueError(
            f"--resolution {height}x{width} must be a multiple of --warp_downsampling x 2**--num_downsamplings = "
            f"{factor}"
        )
    if args.flow_upsampling == "convex" and args.warp_downsampling == 1:
        raise ValueError("--flow_upsampling convex needs --warp_downsampling > 1: the flow is not upsampled")
    check_positive_ints(args, "max_channel_multiplier")
    check_positive(args, "keypoint_sigma")
    check_non_negative(
        args, "l1_weight", "feature_matching_weight", "warp_weight", "flow_smoothness_weight", "flow_weight"
    )
    if args.num_garment_classes < 0 or not 0 <= args.class_dropout <= 1:
        raise ValueError(
            f"--num_garment_classes must be >= 0 and --class_dropout in [0, 1], got {args.num_garment_classes}, "
            f"{args.class_dropout}"
        )
    check_positive(args, "num_wardrobe_samples")
    check_non_negative(args, "num_validation_examples")


def load_tryon_dataset_from_args(args: argparse.Namespace, split: str, max_samples: int | None) -> TryOnDatasetInfo:
    """:func:`load_tryon_dataset` with the script's flags."""
    return load_tryon_dataset(
        args.dataset_name,
        split,
        args.resolution,
        dataset_config_name=args.dataset_config_name,
        cache_dir=args.cache_dir,
        max_samples=max_samples,
        seed=args.seed,
        num_wardrobe_samples=args.num_wardrobe_samples if split == "train" else args.num_validation_examples,
        wardrobe_seed=args.wardrobe_seed,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataset_args(parser, default_resolution=DEFAULT_TRYON_RESOLUTION)
    add_training_args(parser, default_output_dir="tryon-model", default_num_epochs=10)
    parser.set_defaults(train_batch_size=16, adam_beta1=0.5, adam_beta2=0.999, num_sample_images=16)
    add_tryon_args(parser)
    return parse_and_validate(parser, argv, validate_tryon_args)


def main(args: argparse.Namespace) -> None:
    session = TrainingSession(args, "train_tryon")
    accelerator = session.accelerator
    with session.loading_data():
        info = load_tryon_dataset_from_args(args, args.dataset_split, args.max_train_samples)
        held_out = None
        if args.num_validation_examples:
            held_out = load_tryon_dataset_from_args(args, args.validation_split, args.num_validation_examples)

    model = session.load_pretrained(TryOnModel, must_match={"sample_size": (args.resolution, "--resolution")})
    if model is not None and args.num_garment_classes and not model.config.num_garment_classes:
        # Fine-tuning a model without classes to read them: zero weights for the new planes, the same function.
        model = model.with_garment_classes(args.num_garment_classes)
    if model is not None and args.flow_upsampling == "convex" and model.config.flow_upsampling == "bilinear":
        model = model.with_convex_flow_upsampling()
    model = model or TryOnModel(
        **unet_config_from_args(args),
        max_channel_multiplier=args.max_channel_multiplier,
        keypoint_sigma=args.keypoint_sigma,
        use_warping=args.use_warping,
        warp_downsampling=args.warp_downsampling,
        flow_upsampling=args.flow_upsampling,
        composition=args.composition,
        num_garment_classes=args.num_garment_classes,
    )
    discriminator = session.load_pretrained(
        PatchDiscriminator, "discriminator", must_match={"in_channels": (6, "try-on pairs")}, required=False
    ) or PatchDiscriminator(in_channels=6, **patch_discriminator_config_from_args(args))
    train_dataset = info.with_transform(args.resolution)
    loop = session.prepare_dataloader(train_dataset)
    model = session.add_network("model", model, args.generator_learning_rate)
    discriminator = session.add_network("discriminator", discriminator, args.discriminator_learning_rate)
    ema = session.create_ema(model)
    trainer = TryOnTrainer(
        accelerator,
        model,
        discriminator,
        loss=args.loss,
        l1_weight=args.l1_weight,
        feature_matching_weight=args.feature_matching_weight,
        warp_weight=args.warp_weight,
        flow_smoothness_weight=args.flow_smoothness_weight,
        flow_weight=args.flow_weight,
        class_dropout=args.class_dropout,
        augment=DiffAugment(args.diffaugment),
        **session.trainer_options(ema),
    )
    grid_dataset = held_out.with_transform(args.resolution) if held_out is not None else train_dataset
    sample_inputs = session.fixed_tensors(**first_examples(grid_dataset, args.num_sample_images))
    logger.info(
        f"{len(info.dataset)} training pairs ({info.source}) at {args.resolution[0]}x{args.resolution[1]}; try-on "
        f"model {model.bare.num_parameters():,} parameters "
        f"({'with' if model.bare.config.use_warping else 'without'} warping), "
        f"discriminator {discriminator.bare.num_parameters():,}"
    )
    session.start()

    for batch in loop:
        if not (loop.step_done(trainer.train_step(batch, loop.next_step)) and accelerator.is_main_process):
            continue
        if loop.is_due(args.sample_steps):
            grid = tryon_grid(averaged_copy(accelerator, model.model, ema), sample_inputs.state_dict())
            log_sample_grid(accelerator, grid, loop.global_step, args.output_dir)
    seconds = session.end_loop()
    if accelerator.is_main_process:
        final_model = averaged_copy(accelerator, model.model, ema)
        output_dir = session.save_models({"": final_model, "discriminator": discriminator.bare})
        tryon_grid(final_model, sample_inputs.state_dict()).save(output_dir / "samples.png")
        metrics = {}
        if held_out is not None:
            batches = evaluation_batches(held_out, args.resolution)
            metrics = evaluate_tryon({"model": model_predictor(final_model)}, batches)["model"]
            logger.info(f"Held-out figures: {metrics}")
        write_card(session, final_model, info, held_out, metrics, seconds)
        logger.info(f"Saved the try-on model (EMA weights) to {output_dir} and the discriminator to its subfolder")
    session.finish()


def warping_description(config) -> str:
    if not config.use_warping:
        return "none (ablation)"
    options = [f"at 1/{config.warp_downsampling} of the size"] if config.warp_downsampling > 1 else []
    if config.flow_upsampling == "convex":
        options.append("convex upsampling")
    return "appearance flow" + (f" ({', '.join(options)})" if options else "")


def write_card(session: TrainingSession, model, info, held_out, metrics, seconds: float) -> None:
    args = session.args
    weights = (
        f"{args.loss} + {args.l1_weight} x multi-scale L1 + {args.feature_matching_weight} x PatchGAN feature matching"
    )
    if model.config.use_warping:
        weights += f" + {args.warp_weight} x warp L1 + {args.flow_smoothness_weight} x flow TV"
        if args.flow_weight and "warped_cloth_flow" in info.dataset.column_names:
            weights += f" + {args.flow_weight} x distance to the renderer's flow (px)"
    recipe = {
        "warping": warping_description(model.config),
        "composition": {
            "person": "the person's own pixels outside the garment, shaded garment colours inside",
            "rendered": "free RGB rendering outside the garment",
        }[model.config.composition],
        "loss": weights,
        "learning rates (model / D)": f"{args.generator_learning_rate} / {args.discriminator_learning_rate}",
        "DiffAugment": args.diffaugment,
    }
    logs = session.loop.step_logs
    final = [name for name in logs if name.endswith(("_loss", "l1"))]
    training = training_rows(args, session.loop, seconds, recipe, logs, final)
    height, width = args.resolution
    protocol = None
    if held_out is not None:
        protocol = (
            f"On {len(held_out.dataset):,} held-out pairs (split `{args.validation_split}`), each person trying on "
            f"their own garment, against the ground truth, with the EMA weights. SSIM and L1 over whole images. "
            + FID_PROTOCOL
        )
    session.write_card(
        model,
        sample_caption="Held-out examples, one per column; rows: garment, agnostic person, warped garment, try-on "
        "result of the EMA model, ground truth.",
        metrics=format_metrics(metrics),
        metrics_protocol=protocol,
        training=training,
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
    run(main, parse_args())
