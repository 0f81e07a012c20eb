"""What this CPU offers torch's kernels: for the defaults that depend on it and for the line every benchmark prints.

Torch's own checks (`torch.cpu._is_amx_tile_supported()` and friends) read the CPU's feature flags, not what the
kernels may use: with ``ATEN_CPU_CAPABILITY=avx2`` and ``ONEDNN_MAX_CPU_ISA=AVX2`` (the way to reproduce an
AVX2-only CPU on a bigger one) they still report AMX. :func:`cpu_info` combines both, so a capped run chooses and
reports as the smaller CPU would.
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from functools import cache

import torch


@dataclass(frozen=True)
class CPUInfo:
    """The CPU and the instruction sets torch's CPU kernels may use on it.

    Attributes:
        name: model name, e.g. ``"AMD EPYC"`` or ``"Intel(R) Xeon(R) Platinum 8488C"``.
        cores: logical CPUs this process may run on.
        kernels: ATen's vectorisation level after ``ATEN_CPU_CAPABILITY`` (``"AVX512"``, ``"AVX2"``, ``"DEFAULT"``).
        onednn_max_isa: the cap set with ``ONEDNN_MAX_CPU_ISA`` (convolutions and matmuls), or ``None``.
        avx2 / avx512 / avx512_bf16 / amx: the CPU has the feature and the caps let the kernels use it.
    """

    name: str
    cores: int
    kernels: str
    onednn_max_isa: str | None
    avx2: bool
    avx512: bool
    avx512_bf16: bool
    amx: bool

    @property
    def native_bf16(self) -> bool:
        """Whether the kernels have bf16 instructions (AMX or AVX-512 BF16): then bf16 autocast beats fp32."""
        return self.amx or self.avx512_bf16

    def describe(self) -> str:
        """One line such as ``AMD EPYC, 2 cores: AVX2, AVX-512 (bf16), no AMX; torch kernels AVX512``."""
        avx512 = ("AVX-512 (bf16)" if self.avx512_bf16 else "AVX-512") if self.avx512 else "no AVX-512"
        features = f"{'AVX2' if self.avx2 else 'no AVX2'}, {avx512}, {'AMX' if self.amx else 'no AMX'}"
        caps = f"torch kernels {self.kernels}" + (
            f", oneDNN max ISA {self.onednn_max_isa}" if self.onednn_max_isa else ""
        )
        return f"{self.name}, {self.cores} cores: {features}; {caps}"


def _onednn_allows(isa_cap: str | None, feature: str) -> bool:
    """Whether oneDNN capped at ``isa_cap`` may use ``feature`` (``"AVX2"``, ``"AVX512"``, ``"BF16"``, ``"AMX"``).

    oneDNN's ISA names build on each other (``AVX2`` < ``AVX512_CORE`` < ``AVX512_CORE_BF16`` <
    ``AVX512_CORE_AMX``), so a cap allows a feature when its name contains it or names a level above it.
    """
    if isa_cap is None or isa_cap.upper() in ("", "ALL", "DEFAULT"):
        return True
    cap = isa_cap.upper()
    if feature == "AMX":
        return "AMX" in cap
    if feature == "BF16":
        return "AMX" in cap or "BF16" in cap or "FP16" in cap or cap.startswith("AVX10")
    if feature == "AVX512":
        return cap.startswith(("AVX512", "AVX10"))
    return cap not in ("SSE41", "AVX")  # AVX2


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _flag(name: str) -> bool:
    check = getattr(torch.cpu, f"_is_{name}_supported", None)  # private; absent on some builds and non-x86 CPUs
    return bool(check()) if check is not None else False


@cache
def cpu_info() -> CPUInfo:
    """This process's :class:`CPUInfo` (read once)."""
    kernels = torch.backends.cpu.get_cpu_capability()
    isa_cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or None
    aten_avx512 = kernels.startswith("AVX512")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return CPUInfo(
        name=_cpu_name(),
        cores=cores,
        kernels=kernels,
        onednn_max_isa=isa_cap,
        avx2=_flag("avx2") and kernels != "DEFAULT" and _onednn_allows(isa_cap, "AVX2"),
        avx512=_flag("avx512") and aten_avx512 and _onednn_allows(isa_cap, "AVX512"),
        avx512_bf16=_flag("avx512_bf16") and aten_avx512 and _onednn_allows(isa_cap, "BF16"),
        amx=_flag("amx_tile") and aten_avx512 and _onednn_allows(isa_cap, "AMX"),
    )


def bf16_is_fast(device: torch.device | str) -> bool:
    """Whether bf16 autocast runs faster than fp32 on `device`: a CUDA GPU with bf16 support, or a CPU whose kernels
    have bf16 instructions (:attr:`CPUInfo.native_bf16`). Without them bf16 is emulated: 0.11x the fp32 rate for the
    GAN's training step and 0.04x for sampling on an AVX2 CPU. Training's ``--mixed_precision auto`` and sampling
    (:func:`fast_precision`) both follow this rule."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_info().native_bf16


def fast_precision(device: torch.device | str, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """bf16 autocast for a float32 model on a device where :func:`bf16_is_fast`, else nothing: what inference runs
    under by default."""
    device = torch.device(device)
    if dtype == torch.float32 and bf16_is_fast(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
