"""The hardware a run trains on: peak FLOP/s for MFU, and how many CPU threads to train with (Chapter 4b).

MFU (model FLOPs utilisation, {cite}`chowdhery2022palm`) divides the FLOP/s a run achieves by the
device's peak. :func:`peak_flops` gives that peak: a GPU's datasheet figure from
:data:`GPU_PEAK_FLOPS` (:func:`gpu_peak_flops`), or on a CPU what one large float32 matrix product
reaches on this machine (:func:`cpu_peak_flops`). :func:`cpu_threads` picks the CPU thread count
:func:`utils.train.train` uses when ``num_threads`` is not given. Nothing here trains.
"""
from __future__ import annotations

import functools
import os
import time

import torch

from . import runtime

__all__ = ["GPU_PEAK_FLOPS", "peak_flops", "gpu_peak_flops", "cpu_peak_flops", "cpu_threads"]

# Dense (no sparsity) bf16/fp16 tensor-core peaks in FLOP/s, by the exact name CUDA reports
# (torch.cuda.get_device_name). Exact names, not substrings: "NVIDIA L40" is not an L4, and an
# H100 NVL is not an H100 SXM. A GPU that is not listed gets no MFU rather than a wrong one.
# Sources: NVIDIA's product datasheets (sparse figures halved); AWS's documentation for the A10G.
_H100_SXM, _H100_PCIE, _HOPPER_NVL = 989e12, 756e12, 835e12   # 1,979 / 1,513 / 1,671 TFLOPS with sparsity
_A100, _V100_SXM2, _V100_PCIE = 312e12, 125e12, 112e12
GPU_PEAK_FLOPS: dict[str, float] = {
    "NVIDIA H100 80GB HBM3": _H100_SXM,    # H100 SXM5
    "NVIDIA H100 PCIe": _H100_PCIE,
    "NVIDIA H100 NVL": _HOPPER_NVL,
    "NVIDIA H200": _H100_SXM,              # H200 SXM: the same tensor cores as the H100 SXM
    "NVIDIA H200 NVL": _HOPPER_NVL,
    "NVIDIA A100-SXM4-40GB": _A100,
    "NVIDIA A100-SXM4-80GB": _A100,
    "NVIDIA A100-PCIE-40GB": _A100,
    "NVIDIA A100 80GB PCIe": _A100,
    "NVIDIA L40S": 362e12,                 # 733 TFLOPS with sparsity
    "NVIDIA L40": 181e12,                  # 362 TFLOPS with sparsity
    "NVIDIA L4": 121e12,                   # 242 TFLOPS with sparsity
    "NVIDIA A10G": 70e12,                  # AWS G5 documentation
    "NVIDIA A10": 125e12,
    "Tesla V100-SXM2-16GB": _V100_SXM2,
    "Tesla V100-SXM2-32GB": _V100_SXM2,
    "Tesla V100-PCIE-16GB": _V100_PCIE,
    "Tesla V100-PCIE-32GB": _V100_PCIE,
    "Tesla T4": 65e12,                     # mixed precision (FP16/FP32)
}


@functools.lru_cache(maxsize=None)
def _cpu_peak(threads: int, n: int) -> float:
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.mm(a, b)  # warm up the kernels
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(3):
            torch.mm(a, b)
        best = max(best, 3 * 2 * n**3 / (time.perf_counter() - t))
    return best


def cpu_peak_flops(n: int = 768, *, fresh: bool = False) -> float:
    """FLOP/s of a float32 ``n x n`` matrix multiply on this CPU, measured once per process.

    This is the "peak" that CPU MFU is measured against: the best a large, simple matmul
    reaches here, with torch's current thread count. On a loaded machine it is lower too.
    The first measurement per thread count is kept for the rest of the process;
    ``fresh=True`` measures again instead (and keeps nothing), which Chapter 4b uses to
    compare the machine's speed now with the speed a run's MFU was divided by.
    """
    if fresh:
        return _cpu_peak.__wrapped__(torch.get_num_threads(), n)
    return _cpu_peak(torch.get_num_threads(), n)


def _idle_cores(window_s: float = 0.2) -> float | None:
    """Idle cores over a short window, from ``/proc/stat`` (Linux); ``None`` where unavailable."""
    def sample():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return values[3] + values[4], sum(values[:8])  # idle + iowait, total (without guest time)
    try:
        idle0, total0 = sample()
        time.sleep(window_s)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (idle1 - idle0) / (total1 - total0) * (os.cpu_count() or 1)


def cpu_threads() -> int:
    """How many threads to train with on the CPU: the cores this process may use that are idle.

    The threads of one matrix multiply wait for each other at every operation; when other
    programs keep the cores busy, a second thread mostly waits, and one thread trains
    several times faster. So we look at how idle the cores are right now (Linux
    ``/proc/stat``; elsewhere all cores) and use that many, at least one.
    """
    cores = min(runtime.usable_cores(), torch.get_num_threads())
    idle = _idle_cores()
    if idle is None:  # pragma: no cover - not Linux
        return cores
    return max(1, min(cores, int(idle + 0.5)))


def peak_flops(device) -> float | None:
    """Peak FLOP/s of ``device`` for MFU: GPU table (bf16/fp16 dense), measured on CPU, else ``None``."""
    device = torch.device(device)
    if device.type == "cpu":
        return cpu_peak_flops()
    if device.type == "cuda":
        return gpu_peak_flops(torch.cuda.get_device_name(device))
    return None


def gpu_peak_flops(name: str) -> float | None:
    """Dense bf16/fp16 peak FLOP/s of the GPU that CUDA calls ``name`` (exact match), or ``None``."""
    return GPU_PEAK_FLOPS.get(str(name).strip())
