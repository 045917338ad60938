"""The CPU kernels every process of the project computes with: AVX2's, on any x86-64 machine.

PyTorch (ATen), oneDNN and MKL each pick their kernels by the processor's instruction set, and
those kernels round differently: the same code, params and inputs trained the default's baseA
to other weights on an AVX-512 machine than on an AVX2 one, and to others again with ATen,
oneDNN or MKL pushed below AVX2. Pinned to AVX2 (which x86-64 servers have had since 2013)
before the first computation, a run's bytes are one instruction set's wherever it runs; on an
AVX2 machine the pins change nothing. A variable the user set is kept (a faster instruction
set then gives other bytes). Standard library only: it runs before torch is imported.
"""

from __future__ import annotations

import os
import platform

AVX2_PINS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def has_avx2() -> bool:
    """Whether this is an x86-64 processor with AVX2 (Linux's /proc/cpuinfo; elsewhere: not known, no)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return "avx2" in line.split()
    except OSError:
        pass
    return False


def pin_cpu_kernels() -> None:
    """Set the AVX2 pins in this process's environment (and its children's), unless set already."""
    if has_avx2():
        for variable, value in AVX2_PINS.items():
            os.environ.setdefault(variable, value)
