"""NVML (nvidia-ml-py's ``pynvml``) where a driver exists; every reader returns None where it does not.

A torch CUDA device is matched to its NVML handle by UUID, so ``CUDA_VISIBLE_DEVICES`` (which renumbers devices,
as Ray does) never makes us read another GPU's counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@contextmanager
def session() -> Iterator[Any]:
    """``pynvml`` initialised for the block, or None without a driver (or without nvidia-ml-py)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        yield None
        return
    try:
        yield pynvml
    finally:
        pynvml.nvmlShutdown()


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def handle(nv: Any, device: torch.device) -> Any:
    """The NVML handle of a torch CUDA device: by UUID where torch knows it, else by index."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if uuid is not None:
        try:
            return nv.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
        except Exception:
            pass
    return nv.nvmlDeviceGetHandleByIndex(index)


def read(device: torch.device, reader: Callable[[Any, Any], T]) -> T | None:
    """``reader(pynvml, handle)`` for a CUDA device; None on a CPU, without a driver, or if NVML refuses."""
    if device.type != "cuda":
        return None
    with session() as nv:
        if nv is None:
            return None
        try:
            return reader(nv, handle(nv, device))
        except Exception:  # a counter this GPU does not have (NVML_ERROR_NOT_SUPPORTED) and the like
            return None


def used_bytes(device: torch.device) -> int | None:
    """Device memory in use, as NVML sees it (every process, the CUDA context included)."""
    return read(device, lambda nv, h: int(nv.nvmlDeviceGetMemoryInfo(h).used))


def energy_mj(device: torch.device) -> int | None:
    """The GPU's total energy counter since the driver loaded, in millijoules (Volta and newer)."""
    return read(device, lambda nv, h: int(nv.nvmlDeviceGetTotalEnergyConsumption(h)))
