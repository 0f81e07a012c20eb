"""Train a VAE-GAN (Larsen et al., 2016): a VAE whose decoder also learns against a discriminator.

Runs anywhere Accelerate does, from a laptop CPU to many GPUs on several machines:

    accelerate launch examples/train_vaegan.py --dataset_name fashion_mnist/train.npz \
        --validation_dataset_name fashion_mnist/test.npz --output_dir vaegan-fashion-mnist --mixed_precision bf16

`--dataset_name` (and `--validation_dataset_name`) take a Hub dataset id, a folder of images, a `.npz` file with
`images`, or a folder written by `save_to_disk`. Each step follows Algorithm 1 of the paper: the discriminator learns
to tell real images from reconstructions and prior samples (non-saturating or hinge loss, lazy R1); the encoder
minimises beta * KL + the reconstruction term; the decoder `--feature_loss_weight` (gamma) * the reconstruction term +
the adversarial loss on reconstructions and prior samples. The reconstruction term is measured on the discriminator's
last hidden layer (`--likelihood features`, the learned similarity of the paper) or with a pixel likelihood
(`bernoulli`, `gaussian`, `laplace`). The encoder and decoder keep an EMA for the grids and the saved model.
`--resume_from_checkpoint latest` continues an interrupted run exactly. The output folder holds one model, encoder,
decoder and discriminator: `VAEGAN.from_pretrained(output_dir)`, or with diffusers alone
`AutoModel.from_pretrained(output_dir, trust_remote_code=True)`; it also holds a model card with the held-out
figures, the sample grids (`samples/`), the TensorBoard logs (`logs/`) and the checkpoints.
"""

import argparse

from accelerate.logging import get_logger

from hf_vaegan.models.vaegan import VAEGAN, VAEGAN_LIKELIHOODS
from hf_vaegan.training import TrainingSession
from hf_vaegan.training.args import add_training_args, parse_and_validate
from hf_vaegan.training.dataset_args import add_dataset_args
from hf_vaegan.training.evaluation import add_evaluation_args, validate_evaluation_args
from hf_vaegan.training.model_args import (
    add_discriminator_args,
    add_lazy_r1_args,
    add_vae_args,
    validate_discriminator_args,
    validate_lazy_r1_args,
    validate_vae_args,
)
from hf_vaegan.training.session import run
from hf_vaegan.training.vae import HeldOutEvaluation, load_with_held_out
from hf_vaegan.training.vaegan import VAEGAN_LOSSES, VAEGANObjective, VAEGANTrainer, averaged_vaegan

logger = get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataset_args(parser, default_resolution=28)
    add_training_args(parser, default_output_dir="vaegan-model", default_num_epochs=20)
    parser.set_defaults(train_batch_size=64, adam_beta1=0.5, adam_beta2=0.999)
    add_vae_args(
        parser,
        likelihoods=VAEGAN_LIKELIHOODS,
        default_likelihood="features",
        default_latent_dim=32,
        default_learning_rate=3e-4,
    )

    gan = parser.add_argument_group("GAN training")
    gan.add_argument(
        "--feature_loss_weight",
        type=float,
        default=1.0,
        help="gamma: the decoder's weight of the reconstruction term (feature or pixel) against the adversarial "
        "loss; the encoder's weight is 1. Lower it for sharper but less faithful reconstructions.",
    )
    gan.add_argument(
        "--loss",
        type=str,
        choices=VAEGAN_LOSSES,
        default="non-saturating",
        help="Adversarial loss: non-saturating logistic (default) or hinge.",
    )
    add_lazy_r1_args(gan)
    add_discriminator_args(parser, default_learning_rate=3e-4)

    add_evaluation_args(parser, reference_flags=False)
    return parse_and_validate(
        parser,
        argv,
        validate_vae_args,
        validate_discriminator_args,
        validate_lazy_r1_args,
        validate_evaluation_args,
        _validate_feature_loss_weight,
    )


def _validate_feature_loss_weight(args: argparse.Namespace) -> None:
    if not args.feature_loss_weight >= 0:
        raise ValueError(f"--feature_loss_weight must be >= 0, got {args.feature_loss_weight}")


def main(args: argparse.Namespace) -> None:
    session = TrainingSession(args, "train_vaegan")
    accelerator = session.accelerator
    with session.loading_data():
        info, held_out = load_with_held_out(args)

    vaegan = session.load_pretrained(
        VAEGAN,
        must_match={
            "resolution": (args.resolution, "--resolution"),
            "in_channels": (info.num_channels, "the dataset's channel count"),
            "likelihood": (args.likelihood, "--likelihood"),
        },
    ) or VAEGAN(
        resolution=args.resolution,
        in_channels=info.num_channels,
        latent_dim=args.latent_dim,
        base_channels=args.base_channels,
        likelihood=args.likelihood,
        beta=args.beta,
        norm_type=args.norm_type,
        discriminator_base_channels=args.discriminator_base_channels or args.base_channels,
        discriminator_spectral_norm=args.spectral_norm,
    )
    transform = {"random_flip": args.random_flip, "center_crop": args.center_crop}
    loop = session.prepare_dataloader(info.with_image_transform(args.resolution, **transform))
    objective = VAEGANObjective(vaegan.vae, pixel_likelihood=args.likelihood != "features")
    vae = session.add_network("vae", objective, args.learning_rate)
    discriminator = session.add_network("discriminator", vaegan.discriminator, args.discriminator_learning_rate)
    ema = session.create_ema(vae)
    trainer = VAEGANTrainer(
        accelerator,
        vae,
        discriminator,
        loss=args.loss,
        feature_loss_weight=args.feature_loss_weight,
        beta=args.beta,
        kl_warmup_steps=args.kl_warmup_steps,
        r1_gamma=args.r1_gamma,
        r1_interval=args.r1_interval,
        **session.trainer_options(ema),
    )
    evaluation = HeldOutEvaluation(session, info, held_out, vaegan.config.latent_dim)
    logger.info(
        f"{len(info.dataset)} training and {len(held_out)} held-out images, {info.num_channels} channel(s); "
        f"encoder and decoder {vaegan.vae.num_parameters():,} parameters, "
        f"discriminator {vaegan.discriminator.num_parameters():,}"
    )
    session.start()

    for batch in loop:
        if not (loop.step_done(trainer.train_step(batch, loop.next_step)) and accelerator.is_main_process):
            continue
        if loop.is_due(args.sample_steps):
            evaluation.log_reconstructions(averaged_vaegan(vaegan, ema), loop.global_step)
        if args.eval_steps and loop.is_due(args.eval_steps):
            evaluation.log_sample_quality(averaged_vaegan(vaegan, ema), loop.global_step)
    seconds = session.end_loop()
    if accelerator.is_main_process:
        final_model = averaged_vaegan(vaegan, ema)
        output_dir = session.save_models({"": final_model})
        evaluation.write_card(
            final_model,
            seconds,
            training={
                "KL warm-up steps": args.kl_warmup_steps,
                "feature loss weight (gamma)": args.feature_loss_weight,
                "adversarial loss": args.loss,
                "R1 gamma / interval": f"{args.r1_gamma} / {args.r1_interval}",
                "discriminator learning rate": args.discriminator_learning_rate,
                "spectral norm": vaegan.config.discriminator_spectral_norm,
            },
        )
        logger.info(f"Saved the VAEGAN (encoder and decoder with EMA weights) to {output_dir}")
    session.finish()


if __name__ == "__main__":
    run(main, parse_args())
