"""Two plain GAN baselines, written for the equal-budget benchmark (`benchmarks/gan_equal_budget.py`).

Both follow the widely copied public examples in spirit (architectures, losses and optimizer settings as those
describe them), implemented here from their descriptions:

- :class:`DCGAN` (Radford et al., 2016), unconditional, 28x28: a transposed-convolution generator with BatchNorm and
  ReLU, a strided-convolution discriminator with LeakyReLU (BatchNorm on its hidden layer), the non-saturating
  logistic loss, Adam 2e-4, betas (0.5, 0.999);
- :class:`MLPConditionalGAN` (Mirza & Osindero, 2014, in the form of the common PyTorch example), 32x32: label
  embeddings concatenated to the noise and to the flattened image, an MLP generator 128-256-512-1024 with BatchNorm
  and LeakyReLU, an MLP discriminator 512-512-512 with dropout, the least-squares loss, Adam 2e-4, betas (0.5, 0.999).

Each model is an ``nn.Module`` with ``train_step(real, labels) -> {"d_loss", "g_loss"}`` and
``sample(n, class_labels=None, generator=None)`` returning images in [-1, 1], plus a ``config`` holding its
``num_classes`` and ``resolution``, which is what :func:`hf_vaegan.metrics.evaluate_model` needs to score it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BaselineGAN(nn.Module):
    """What both baselines share: Adam (2e-4, betas (0.5, 0.999)) for each network, sampling, the scoring config."""

    latent_dim = 100
    num_classes = 0
    resolution = 28

    def __init__(self, generator: nn.Module, discriminator: nn.Module, learning_rate: float = 2e-4):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        betas = (0.5, 0.999)
        self.g_optimizer = torch.optim.Adam(generator.parameters(), lr=learning_rate, betas=betas)
        self.d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=learning_rate, betas=betas)
        self.config = {"num_classes": self.num_classes, "resolution": self.resolution}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def generate(self, noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def discriminate(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def train_step(self, real: torch.Tensor, labels: torch.Tensor, rng: torch.Generator | None = None) -> dict:
        """One discriminator then one generator update on a batch of real images ``(B, 1, R, R)`` in [-1, 1]."""
        labels = labels if self.num_classes else None
        noise = torch.randn(len(real), self.latent_dim, generator=rng)
        fake = self.generate(noise, labels)
        d_loss = self.d_loss(self.discriminate(real, labels), self.discriminate(fake.detach(), labels))
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        g_loss = self.g_loss(self.discriminate(fake, labels))
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optimizer.step()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

    @torch.no_grad()
    def sample(
        self, num_images: int, class_labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``num_images`` images ``(N, 1, R, R)`` in [-1, 1]. The generator stays in training mode, as the public
        examples sample it: BatchNorm normalises with the statistics of the sampled batch (the evaluation draws 500
        at a time), not with running averages that lag behind a short training."""
        was_training = self.generator.training
        self.generator.train()
        try:
            noise = torch.randn(num_images, self.latent_dim, generator=generator, device=self.device)
            return self.generate(noise, class_labels if self.num_classes else None)
        finally:
            self.generator.train(was_training)


class DCGAN(BaselineGAN):
    """Unconditional DCGAN at 28x28: G 100 -> 7x7x(4w) -> 14x14x(2w) -> 28x28x1; D 28x28 -> 14x14xw -> 7x7x(2w) ->
    logit; ``width`` 64 as in the public examples."""

    def __init__(self, width: int = 64):
        generator = nn.Sequential(
            nn.ConvTranspose2d(self.latent_dim, 4 * width, 7, 1, 0, bias=False),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(True),
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(True),
            nn.ConvTranspose2d(2 * width, 1, 4, 2, 1, bias=False),
            nn.Tanh(),
        )
        discriminator = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * width, 1, 7, 1, 0, bias=False),
            nn.Flatten(0),
        )
        super().__init__(generator, discriminator)

    def generate(self, noise, labels):
        return self.generator(noise[:, :, None, None])

    def discriminate(self, images, labels):
        return self.discriminator(images)

    def d_loss(self, real_logits, fake_logits):
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits):
        return F.softplus(-fake_logits).mean()


class MLPConditionalGAN(BaselineGAN):
    """Class-conditional MLP GAN at 32x32 with the least-squares loss (10 classes)."""

    num_classes = 10
    resolution = 32

    def __init__(self):
        pixels = self.resolution**2

        def block(inputs: int, outputs: int, norm: bool = True) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Linear(inputs, outputs)]
            if norm:
                layers.append(nn.BatchNorm1d(outputs, 0.8))
            return [*layers, nn.LeakyReLU(0.2, inplace=True)]

        generator = nn.Sequential(
            *block(self.latent_dim + self.num_classes, 128, norm=False),
            *block(128, 256),
            *block(256, 512),
            *block(512, 1024),
            nn.Linear(1024, pixels),
            nn.Tanh(),
        )
        discriminator = nn.Sequential(
            nn.Linear(pixels + self.num_classes, 512),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 512),
            nn.Dropout(0.4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 512),
            nn.Dropout(0.4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 1),
            nn.Flatten(0),
        )
        super().__init__(generator, discriminator)
        self.generator_embedding = nn.Embedding(self.num_classes, self.num_classes)
        self.discriminator_embedding = nn.Embedding(self.num_classes, self.num_classes)
        self.g_optimizer.add_param_group({"params": self.generator_embedding.parameters()})
        self.d_optimizer.add_param_group({"params": self.discriminator_embedding.parameters()})

    def generate(self, noise, labels):
        inputs = torch.cat([self.generator_embedding(labels), noise], dim=1)
        return self.generator(inputs).view(-1, 1, self.resolution, self.resolution)

    def discriminate(self, images, labels):
        return self.discriminator(torch.cat([images.flatten(1), self.discriminator_embedding(labels)], dim=1))

    def d_loss(self, real_logits, fake_logits):
        return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())

    def g_loss(self, fake_logits):
        return (fake_logits - 1).pow(2).mean()


BASELINES = {"dcgan": DCGAN, "mlp-cgan": MLPConditionalGAN}
