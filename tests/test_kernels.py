"""Every process computes with one instruction set's CPU kernels (AVX2's on x86-64), unless
the user chose otherwise: a run's bytes must not depend on the processor (kernels.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from transferlab.kernels import AVX2_PINS, has_avx2

REPORT = (
    "import os, transferlab, torch; "
    "print(torch.backends.cpu.get_cpu_capability(), os.environ['ONEDNN_MAX_CPU_ISA'], os.environ['MKL_CBWR'])"
)


@pytest.mark.skipif(not has_avx2(), reason="not an x86-64 processor with AVX2")
def test_importing_the_package_pins_the_kernels_to_avx2_and_keeps_a_users_choice():
    unpinned = {k: v for k, v in os.environ.items() if k not in AVX2_PINS}

    def kernels(**chosen: str) -> list[str]:
        env = {**unpinned, **chosen}
        return subprocess.run(
            [sys.executable, "-c", REPORT], env=env, capture_output=True, text=True, check=True
        ).stdout.split()

    assert kernels() == ["AVX2", "AVX2", "AVX2"]
    assert kernels(ATEN_CPU_CAPABILITY="default", MKL_CBWR="COMPATIBLE") == ["DEFAULT", "AVX2", "COMPATIBLE"]
