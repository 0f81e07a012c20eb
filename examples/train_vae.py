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
import sys
from pathlib import Path

from accelerate.logging import get_logger

from hf_vaegan import VAE, AutoEncoder
from hf_vaegan.training import (
    TrainingError,
    TrainingLoop,
    add_dataset_args,
    add_training_args,
    apply_channels_last,
    assert_finite_parameters,
    averaged_copy,
    create_accelerator,
    create_ema,
    create_lr_scheduler,
    create_optimizer,
    create_training_rng,
    load_image_dataset_from_args,
    make_dataloader,
    push_output_dir,
    start_trackers,
    validate_training_args,
)
from hf_vaegan.training.evaluation import (
    EvaluationReference,
    add_evaluation_args,
    evaluation_card_sections,
    log_evaluation,
    validate_evaluation_args,
)
from hf_vaegan.training.vae import (
    VAEObjective,
    VAETrainer,
    add_vae_args,
    create_vae_sample_inputs,
    evaluate_held_out,
    log_reconstructions,
    split_held_out,
    validate_vae_args,
    write_vae_card,
)

logger = get_logger(__name__)

SAMPLE_QUALITY_METRICS = ("fid", "kid_mean", "kid_std", "precision", "recall", "num_samples")


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
    args = parser.parse_args(argv)
    try:
        validate_training_args(args)
        validate_vae_args(args)
        validate_evaluation_args(args)
        if args.eval_steps and args.model_type != "vae":
            raise ValueError("--eval_steps measures samples from the prior: it needs --model_type vae")
    except ValueError as error:
        parser.error(str(error))
    return args


def main(args: argparse.Namespace) -> None:
    accelerator = create_accelerator(args)
    with accelerator.main_process_first():
        try:
            info, held_out = split_held_out(args, load_image_dataset_from_args(args))
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
    dataloader = make_dataloader(
        info.with_image_transform(args.resolution, random_flip=args.random_flip, center_crop=args.center_crop),
        args.train_batch_size,
        seed=args.seed,
        num_workers=args.dataloader_num_workers,
    )

    shared = {
        "resolution": args.resolution,
        "in_channels": info.num_channels,
        "latent_dim": args.latent_dim,
        "base_channels": args.base_channels,
        "norm_type": args.norm_type,
    }
    if args.model_type == "vae":
        model = VAE(likelihood=args.likelihood, beta=args.beta, **shared)
    else:
        model = AutoEncoder(**shared)
    if args.channels_last:
        apply_channels_last(model)
    optimizer = create_optimizer(model.parameters(), args.learning_rate, args)
    objective, optimizer, dataloader = accelerator.prepare(VAEObjective(model), optimizer, dataloader)
    loop = TrainingLoop(accelerator, dataloader, args, models={args.model_type: objective})
    lr_scheduler = accelerator.prepare(
        create_lr_scheduler(optimizer, args, loop.max_train_steps, accelerator.num_processes)
    )
    # Checkpointed in this order; keep it stable so old checkpoints stay loadable.
    ema = create_ema(accelerator, objective, args.ema_decay)
    rng = create_training_rng(accelerator, args.seed)
    prior_dim = args.latent_dim if args.model_type == "vae" else 0
    sample_inputs = create_vae_sample_inputs(accelerator, held_out, args.num_sample_images, prior_dim, args.seed)
    trainer = VAETrainer(
        accelerator,
        objective,
        optimizer,
        lr_scheduler,
        beta=args.beta,
        kl_warmup_steps=args.kl_warmup_steps,
        max_grad_norm=args.max_grad_norm,
        ema=ema,
        rng=rng,
        channels_last=args.channels_last,
    )

    start_trackers(accelerator, "train_vae", args)
    logger.info(
        f"{len(info.dataset)} training and {len(held_out)} held-out images, {info.num_channels} channel(s); "
        f"{type(model).__name__} with {sum(p.numel() for p in model.parameters()):,} parameters"
    )
    reference = None
    if args.eval_steps and accelerator.is_main_process:
        # The held-out images are the reference of the sample-quality figures too.
        reference = EvaluationReference.from_images(
            held_out,
            args.validation_dataset_name or args.dataset_name,
            args.validation_split if args.validation_dataset_name else args.dataset_split,
        )
    loop.resume()
    logs: dict[str, float] = {}
    sample_metrics: dict[str, float] | None = None
    for batch in loop:
        step_logs = trainer.train_step(batch, loop.next_step)
        if not loop.step_done(step_logs):
            continue
        logs = step_logs
        if loop.is_due(args.sample_steps) and accelerator.is_main_process:
            averaged = averaged_copy(accelerator, objective, ema).model
            log_reconstructions(accelerator, averaged, sample_inputs, held_out, loop.global_step, args)
        if args.eval_steps and loop.is_due(args.eval_steps) and accelerator.is_main_process:
            # Likelihoods on the first 1,000 reference images (evaluate_model's default), K as at the end.
            figures = log_evaluation(
                accelerator,
                averaged_copy(accelerator, objective, ema).model,
                reference,
                loop.global_step,
                args.eval_num_samples,
                seed=args.seed,
                num_importance_samples=args.num_importance_samples,
            )
            # The card takes the likelihoods from the final held-out evaluation.
            sample_metrics = {name: figures[name] for name in SAMPLE_QUALITY_METRICS}
    seconds = loop.end()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final_model = averaged_copy(accelerator, objective, ema).model
        assert_finite_parameters(**{args.model_type: final_model})
        final_model.save_pretrained(args.output_dir)
        metrics = evaluate_held_out(final_model, held_out, args.seed, args.num_importance_samples)
        logger.info(f"Held-out figures: {metrics}")
        write_vae_card(
            args,
            final_model,
            sample_inputs,
            info,
            len(held_out),
            metrics,
            loop,
            seconds,
            logs,
            evaluation=evaluation_card_sections(sample_metrics, reference),
            script="examples/train_vae.py",
            training={"KL warm-up steps": args.kl_warmup_steps} if args.model_type == "vae" else {},
        )
        logger.info(f"Saved the {type(final_model).__name__} to {Path(args.output_dir)}")
        if args.push_to_hub:
            logger.info(f"Pushed to {push_output_dir(args)}")
    accelerator.end_training()


if __name__ == "__main__":
    try:
        main(parse_args())
    except TrainingError as error:
        sys.exit(f"error: {error}")
