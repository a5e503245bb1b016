"""Device selection: ``auto`` picks CUDA when present; every op also runs on CPU."""

from __future__ import annotations

import torch

from bt3d.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a config device string (``auto``, ``cpu``, ``cuda`` or ``cuda:N``) into a device.

    Raises:
        ConfigError: for an unknown name, or ``cuda`` asked for on a machine without CUDA.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r} was asked for, but PyTorch sees no CUDA device here; "
                "use device: auto or device: cpu"
            )
        return torch.device(name)
    raise ConfigError(f"unknown device {name!r}; expected one of {DEVICE_CHOICES} or 'cuda:N'")


def memory_report(device: torch.device | str = "cpu") -> str:
    """``"RSS now X MiB, peak Y MiB"`` of this process (Linux), plus the peak of CUDA
    memory allocated by torch on a CUDA ``device`` (what sizes a GPU run)."""
    import contextlib
    import resource
    from pathlib import Path

    now = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                now = str(int(line.split()[1]) // 1024)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux
    report = f"RSS now {now} MiB, peak {peak} MiB"
    if torch.device(device).type == "cuda":
        allocated = torch.cuda.max_memory_allocated(device) // 2**20
        report += f", CUDA peak allocated {allocated} MiB"
    return report
