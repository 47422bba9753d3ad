"""What a benchmark ran on, recorded beside its numbers."""

from __future__ import annotations

import importlib
import os
import platform
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(**extra: Any) -> dict[str, Any]:
    """Cores, CPU, accelerator and library versions of this machine (``extra`` added)."""
    info: dict[str, Any] = {"cores": os.cpu_count(), "cpu": cpu_model(),
                            "python": platform.python_version(), "device": "cpu"}
    for name in ("torch", "faiss", "numpy"):
        try:
            info[name] = importlib.import_module(name).__version__
        except ImportError:
            info[name] = None
    try:
        import torch

        if torch.cuda.is_available():
            info["device"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    info.update(extra)
    return info
