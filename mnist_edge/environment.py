"""What machine and which library versions produced a number: stated next to every benchmark."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("mnist-edge", "numpy", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert")


#: CPU features that bound what the engines' kernels can do, as /proc/cpuinfo spells them (x86, Arm).
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp", "i8mm")
#: int8 dot-product instructions: without one of these, an int8 matrix multiply does about as many
#: multiply-adds per cycle as float32 FMA (x86: VPMADDUBSW/VPMADDWD pairs), so int8 models gain
#: from smaller weights and memory traffic, not from arithmetic.
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def _cpuinfo() -> str:
    """/proc/cpuinfo, or "" where there is none (macOS, Windows)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def simd_features(cpuinfo: str | None = None) -> list[str]:
    """The :data:`SIMD_FLAGS` this CPU has (empty if /proc/cpuinfo is unreadable)."""
    if cpuinfo is None:
        cpuinfo = _cpuinfo()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            present = set(value.split())
            return [flag for flag in SIMD_FLAGS if flag in present]
    return []


def cpu_model() -> str:
    for line in _cpuinfo().splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions, without importing the packages (importing TensorFlow takes seconds)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "simd": simd_features(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": package_versions(),
    }
