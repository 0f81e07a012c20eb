"""The CPU description behind `--mixed_precision auto` and every benchmark's header line."""

import pytest

from hf_vaegan.hardware import _onednn_allows, cpu_info


@pytest.mark.parametrize(
    ("cap", "allowed"),
    [
        (None, {"AVX2", "AVX512", "BF16", "AMX"}),
        ("SSE41", set()),
        ("AVX2", {"AVX2"}),
        ("avx2_vnni", {"AVX2"}),
        ("AVX512_CORE", {"AVX2", "AVX512"}),
        ("AVX512_CORE_BF16", {"AVX2", "AVX512", "BF16"}),
        ("AVX512_CORE_AMX", {"AVX2", "AVX512", "BF16", "AMX"}),
        ("AVX10_1_512_AMX", {"AVX2", "AVX512", "BF16", "AMX"}),
    ],
)
def test_onednn_caps_allow_the_instruction_sets_below_them(cap, allowed):
    assert {feature for feature in ("AVX2", "AVX512", "BF16", "AMX") if _onednn_allows(cap, feature)} == allowed


@pytest.mark.parametrize(("capability", "isa"), [("avx2", "AVX2"), ("default", "SSE41")])
def test_capped_kernels_describe_the_smaller_cpu(run_python, capability, isa):
    script = "from hf_vaegan.hardware import cpu_info; print(cpu_info().describe())"
    line = run_python("-c", script, env={"ATEN_CPU_CAPABILITY": capability, "ONEDNN_MAX_CPU_ISA": isa}).stdout
    assert "no AVX-512" in line and "no AMX" in line and f"torch kernels {capability.upper()}" in line
    assert f"oneDNN max ISA {isa}" in line


def test_this_cpu_is_described_in_one_line():
    info = cpu_info()
    line = info.describe()
    assert info.name in line and f"{info.cores} cores" in line and "\n" not in line
    assert not (info.amx and not info.avx512)  # AMX needs the AVX-512 kernels
