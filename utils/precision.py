"""Mixed precision: which number format a run computes in, and the autocast region that applies it (Chapter 4b).

On GPUs the matrix products run in 16-bit floats {cite}`micikevicius2018mixed`: bfloat16 where the
GPU has it in hardware, otherwise float16 with a gradient scaler (the loss is multiplied up before
the backward pass so small gradients do not round to zero, and divided out before the step).
CPUs train in float32.
"""
from __future__ import annotations

import torch

__all__ = ["native_bf16", "choose_precision", "autocast", "grad_scaler"]


def native_bf16(device: torch.device) -> bool:
    """Whether a CUDA device does bfloat16 arithmetic in hardware (compute capability 8.0 on, or ROCm).

    ``torch.cuda.is_bf16_supported()`` also says yes on older GPUs such as the T4, where bfloat16
    only runs emulated and slowly; those should train in float16 with a gradient scaler.
    """
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


def choose_precision(device: torch.device, dtype: str):
    """``(autocast dtype or None, its name, whether it needs a gradient scaler)`` for a device and the
    requested ``dtype`` (``"auto"``, ``"float32"``, ``"bfloat16"`` or ``"float16"``)."""
    if dtype == "auto":
        if device.type == "cuda":
            dtype = "bfloat16" if native_bf16(device) else "float16"
        else:
            dtype = "float32"
    if dtype == "float32":
        return None, "float32", False
    if dtype == "float16" and device.type == "cpu":
        raise ValueError("dtype='float16' is not supported on the CPU; use 'float32' or 'bfloat16'.")
    return getattr(torch, dtype), dtype, dtype == "float16"


def autocast(device: torch.device, amp_dtype):
    """The region where forward passes compute in ``amp_dtype`` (a no-op context when it is ``None``)."""
    return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)


def grad_scaler(device: torch.device, needed: bool):
    """A :class:`torch.amp.GradScaler` for float16 training when ``needed``, else ``None``."""
    return torch.amp.GradScaler(device.type) if needed else None
