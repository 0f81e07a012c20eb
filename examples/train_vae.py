"""Train a variational autoencoder (`VAE`) or a plain `AutoEncoder` on images.

Runs anywhere Accelerate does, from a laptop CPU to many GPUs on several machines:

    accelerate launch examples/train_vae.py --dataset_name fashion_mnist/train.npz \
        --validation_dataset_name fashion_mnist/test.npz --output_dir vae-fashion-mnist --mixed_precision bf16

`--dataset_name` (and `--validation_dataset_name`) take a Hub dataset id, a folder of images, a `.npz` file with
`images`, or a folder written by `save_to_disk`. The VAE minimises the negative ELBO, -log p(x|z) + beta * KL, with a
Bernoulli, Gaussian or Laplace pixel likelihood (`--likelihood`) and an optional linear KL warm-up; the autoencoder
(`--model_type autoencoder`) the mean squared error. The sample grids show held-out images next to their
reconstructions and, for the VAE, samples from the prior; the ELBO terms are logged at every step and the held-out
negative ELBO at every grid. `--resume_from_checkpoint latest` continues an interrupted run exactly. The output folder
loads with `VAE.from_pretrained(output_dir)` (or `AutoEncoder`), or with diffusers alone:
`AutoModel.from_pretrained(output_dir, trust_remote_code=True)`; it also holds a model card with the held-out
figures, the sample grids (`samples/`), the TensorBoard logs (`logs/`) and the checkpoints.
"""

import argparse

from accelerate.logging import get_logger

from hf_vaegan import VAE, AutoEncoder
from hf_vaegan.training import TrainingSession, averaged_copy
from hf_vaegan.training.args import add_training_args, parse_and_validate
from hf_vaegan.training.dataset_args import add_dataset_args
from hf_vaegan.training.evaluation import add_evaluation_args, validate_evaluation_args
from hf_vaegan.training.model_args import add_vae_args, validate_vae_args
from hf_vaegan.training.session import run
from hf_vaegan.training.vae import HeldOutEvaluation, VAEObjective, VAETrainer, load_with_held_out

logger = get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataset_args(parser, default_resolution=28)
    add_training_args(parser, default_output_dir="vae-model", default_num_epochs=20, default_ema_decay=0.0)
    parser.set_defaults(train_batch_size=128, adam_beta1=0.9, adam_beta2=0.999)
    parser.add_argument(
        "--model_type",
        type=str,
        choices=("vae", "autoencoder"),
        default="vae",
        help="'vae' (default): a variational autoencoder; 'autoencoder': a deterministic one trained on the MSE "
        "(the VAE flags --likelihood, --beta and --kl_warmup_steps do not apply).",
    )
    add_vae_args(parser)
    add_evaluation_args(parser, reference_flags=False)
    return parse_and_validate(parser, argv, validate_vae_args, validate_evaluation_args, _validate_model_type)


def _validate_model_type(args: argparse.Namespace) -> None:
    if args.eval_steps and args.model_type != "vae":
        raise ValueError("--eval_steps measures samples from the prior: it needs --model_type vae")


def main(args: argparse.Namespace) -> None:
    session = TrainingSession(args, "train_vae")
    accelerator = session.accelerator
    with session.loading_data():
        info, held_out = load_with_held_out(args)

    shared = {
        "resolution": args.resolution,
        "in_channels": info.num_channels,
        "latent_dim": args.latent_dim,
        "base_channels": args.base_channels,
        "norm_type": args.norm_type,
    }
    model_class = VAE if args.model_type == "vae" else AutoEncoder
    model = session.load_pretrained(
        model_class,
        must_match={
            "resolution": (args.resolution, "--resolution"),
            "in_channels": (info.num_channels, "the dataset's channel count"),
        },
    )
    if model is None:
        options = {"likelihood": args.likelihood, "beta": args.beta} if args.model_type == "vae" else {}
        model = model_class(**shared, **options)
    transform = {"random_flip": args.random_flip, "center_crop": args.center_crop}
    loop = session.prepare_dataloader(info.with_image_transform(args.resolution, **transform))
    objective = session.add_network(args.model_type, VAEObjective(model), args.learning_rate)
    ema = session.create_ema(objective)
    trainer = VAETrainer(
        accelerator,
        objective,
        beta=args.beta,
        kl_warmup_steps=args.kl_warmup_steps,
        **session.trainer_options(ema),
    )
    prior_dim = model.config.latent_dim if args.model_type == "vae" else 0
    evaluation = HeldOutEvaluation(session, info, held_out, prior_dim)
    logger.info(
        f"{len(info.dataset)} training and {len(held_out)} held-out images, {info.num_channels} channel(s); "
        f"{type(model).__name__} with {model.num_parameters():,} parameters"
    )
    session.start()

    for batch in loop:
        if not (loop.step_done(trainer.train_step(batch, loop.next_step)) and accelerator.is_main_process):
            continue
        if loop.is_due(args.sample_steps):
            evaluation.log_reconstructions(averaged_copy(accelerator, objective.model, ema).model, loop.global_step)
        if args.eval_steps and loop.is_due(args.eval_steps):
            evaluation.log_sample_quality(averaged_copy(accelerator, objective.model, ema).model, loop.global_step)
    seconds = session.end_loop()
    if accelerator.is_main_process:
        final_model = averaged_copy(accelerator, objective.model, ema).model
        output_dir = session.save_models({"": final_model})
        evaluation.write_card(
            final_model,
            seconds,
            training={"KL warm-up steps": args.kl_warmup_steps} if args.model_type == "vae" else {},
        )
        logger.info(f"Saved the {type(final_model).__name__} to {output_dir}")
    session.finish()


if __name__ == "__main__":
    run(main, parse_args())
