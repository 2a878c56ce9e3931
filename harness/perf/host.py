"""Which CPU a bench figure came from: its model and the ISA features that change matmul speed and numerics.

Hosts of one machine kind differ (AMD EPYC with AVX512-BF16; Intel Xeon with AMX, 2-5x the bf16 matmul
rate), so a baseline records its CPU, and figures whose two sides use different kernels are gated only
against a baseline from the same CPU (see compare.py and docs/performance.md).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The flags (as /proc/cpuinfo spells them) that decide which bf16/fp32 kernels torch and vLLM pick.
ISA_FEATURES = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """The first processor's `key: value` lines of /proc/cpuinfo."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """{'model', 'vendor', 'family', 'cpu_model', 'cpus', 'isa'}; fields a platform cannot tell are ''."""
    try:
        fields = _cpuinfo_fields(cpuinfo.read_text())
    except OSError:  # not Linux: the platform module's one-word answer is all there is
        fields = {}
    flags = set(fields.get("flags", "").split())
    return {
        "model": fields.get("model name", platform.processor() or platform.machine()),
        "vendor": fields.get("vendor_id", ""),
        "family": fields.get("cpu family", ""),
        "cpu_model": fields.get("model", ""),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0,
        "isa": [feature for feature in ISA_FEATURES if feature in flags],
    }


def signature(cpu: dict | None) -> tuple | None:
    """What two hosts must share for CPU-bound ratios and exact numerics to be comparable."""
    if not cpu:
        return None
    return (cpu.get("vendor"), cpu.get("family"), cpu.get("cpu_model"), tuple(cpu.get("isa", ())))


def describe(cpu: dict | None) -> str:
    """One line, e.g. 'AMD EPYC (AuthenticAMD family 25 model 17), 2 CPUs, avx512_bf16 yes, AMX no'."""
    if not cpu:
        return "unknown CPU (the file predates CPU records)"
    isa = set(cpu.get("isa", ()))
    amx = "yes" if "amx_bf16" in isa else "no"
    bf16 = "yes" if "avx512_bf16" in isa else "no"
    flags = " ".join(cpu.get("isa", ())) or "no SIMD flags"
    return (f"{cpu.get('model')} ({cpu.get('vendor')} family {cpu.get('family')} model {cpu.get('cpu_model')}), "
            f"{cpu.get('cpus')} CPUs, avx512_bf16 {bf16}, AMX {amx} [{flags}]")
