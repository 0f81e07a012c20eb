"""How the tests compare two model instances (a model and its saved-and-loaded copy, or its remote-code twin).

Weights are compared exactly: saving and loading must not change a bit. Outputs are compared with
`torch.testing.assert_close` at its float32 defaults (rtol 1.3e-6, atol 1e-5): tensors read from safetensors sit at
another memory alignment than freshly allocated ones, and on some CPUs (AVX2-only ones, or any CPU with its kernels
capped through ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA) the conv and linear kernels then take another SIMD path
with another summation order. The outputs of the tiny test models then differ by up to about 1.2e-6 (10 ulps near
1.0), which these tolerances cover with room to spare, while a wrong weight, layer or config moves them by far more.
Bitwise checks stay where bitwise results are promised: exact resume, and seeded sampling of one model object.
"""

from __future__ import annotations

import torch
from torch import nn


def assert_same_weights(model: nn.Module, loaded: nn.Module) -> None:
    """Both modules hold the same tensors under the same names, bit for bit."""
    expected, actual = model.state_dict(), loaded.state_dict()
    assert sorted(actual) == sorted(expected)
    different = [name for name, tensor in expected.items() if not torch.equal(actual[name], tensor)]
    assert different == [], f"weights changed by the round trip: {different}"
