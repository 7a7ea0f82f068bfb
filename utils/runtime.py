"""Where and how big a run is: device, run profile, cache directory, seeds; and how a notebook shows warnings.

Every notebook calls :func:`report` in its set-up cell. The *profile* decides run
sizes: ``quick`` (CPU, minutes) or ``full`` (GPU). Explained in "How to use this course".
"""
from __future__ import annotations

import os
import random
import sys
import warnings
from pathlib import Path

PROFILES = ("quick", "full")
_APP = "scaling-laws-from-scratch"


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity on Linux, else all), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def progress_bars() -> bool:
    """Whether progress bars are drawn: yes unless the environment sets ``COURSE_PROGRESS=0``.

    ``make book`` and ``make test`` set it, so that bars (written to stderr) stay off the website
    while warnings, also on stderr, are shown there; a reader in Jupyter or Colab sees the bars.
    """
    return os.environ.get("COURSE_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def pick_device(override: str | None = None):
    """Return the best available ``torch.device``: CUDA, then Apple MPS, then CPU.

    ``override`` (or the environment variable ``COURSE_DEVICE``) forces one, e.g. ``"cpu"``.
    Asking for a device that is not available raises ``ValueError``.
    """
    import torch

    wanted = override or os.environ.get("COURSE_DEVICE")
    if wanted:
        kind = str(wanted).split(":")[0]
        # Say where the request came from: a --device flag (passed here as override) or the variable.
        undo = f"drop --device {wanted}" if override else "unset COURSE_DEVICE"
        if kind == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {wanted!r} was requested but CUDA is not available here; "
                             f"use 'cpu' or {undo}.")
        if kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"device {wanted!r} was requested but Apple MPS is not available here; "
                             f"use 'cpu' or {undo}.")
        if kind not in ("cpu", "cuda", "mps"):
            raise ValueError(f"unknown device {wanted!r}; expected 'cpu', 'cuda', 'cuda:N' or 'mps'.")
        return torch.device(wanted)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def profile() -> str:
    """The run profile: ``"quick"`` or ``"full"``.

    ``COURSE_PROFILE=quick|full`` overrides; otherwise ``full`` on a CUDA GPU and
    ``quick`` everywhere else (CPU, and Apple MPS, whose speed varies too much to promise
    the full runs' times).
    """
    value = os.environ.get("COURSE_PROFILE", "").strip().lower()
    if value:
        if value == "tiny":
            raise ValueError("COURSE_PROFILE='tiny' is not a notebook profile: 'tiny' is a grid of the sweep only "
                             "(python -m utils.sweep --profile tiny); COURSE_PROFILE takes 'quick' or 'full'.")
        if value not in PROFILES:
            raise ValueError(f"COURSE_PROFILE={value!r} is not a profile; use one of {PROFILES}.")
        return value
    return "full" if pick_device().type == "cuda" else "quick"


def pick(quick, full):
    """Return ``quick`` or ``full`` according to the current :func:`profile`.

    Notebooks take every size that affects run time from here, e.g.
    ``steps = pick(quick=300, full=5000)``.
    """
    return quick if profile() == "quick" else full


def cache_dir(*parts: str) -> Path:
    """The course's cache directory (created if needed), or a sub-directory of it.

    ``COURSE_CACHE_DIR`` overrides the default ``~/.cache/scaling-laws-from-scratch``.
    Long work (cleaned corpus, trained tokenizers, training runs, the scaling sweep) is
    cached here by its configuration, so a second execution reuses it.
    """
    root = os.environ.get("COURSE_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / _APP
    path = base.joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        source = "COURSE_CACHE_DIR" if root else "the default under HOME (~/.cache/scaling-laws-from-scratch)"
        raise PermissionError(f"cannot create the course cache at {path}: {source} points where you cannot "
                              "write; set COURSE_CACHE_DIR to a folder you can write to.") from None
    return path


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) with ``seed``."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _is_notebook_cell(filename: str) -> bool:
    """Whether ``filename`` names a notebook cell: Jupyter's kernel keeps each cell in a temporary
    file ``<tmp>/ipykernel_<pid>/<hash>.py`` (older IPython: ``<ipython-input-…>``)."""
    name = str(filename)
    return name.startswith("<ipython-input-") or Path(name).parent.name.startswith("ipykernel_")


def show_cell_warnings_plainly() -> None:
    """Print a warning raised in a notebook cell as ``RuntimeWarning: message``, without file and line.

    The course's warnings (a fit without a floor, a bootstrap refused, ...) name the line that called
    the course's code, which in a notebook is a cell stored in the kernel's temporary file: its name
    and line number mean nothing to a reader and would appear on the website. Warnings from any other
    file keep Python's usual format. :func:`report` calls this, so every set-up cell does; calling it
    again changes nothing.
    """
    if getattr(warnings.formatwarning, "plain_for_cells", False):
        return
    usual = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        if _is_notebook_cell(filename):
            return f"{category.__name__}: {message}\n"
        return usual(message, category, filename, lineno, line)

    formatwarning.plain_for_cells = True
    warnings.formatwarning = formatwarning


def report() -> dict:
    """Print, and return, what this session runs on: device, profile, versions, cache.

    The printed cache line never shows an absolute path, since the website prints what the
    builder's run printed: it names ``$COURSE_CACHE_DIR`` when that variable chooses the cache,
    else the default under the home directory as ``~/.cache/scaling-laws-from-scratch``. The
    returned ``info["cache"]`` is the full path. It also makes warnings raised in a notebook cell
    print without the kernel's temporary file name (:func:`show_cell_warnings_plainly`).
    """
    import torch

    show_cell_warnings_plainly()

    device = pick_device()
    info = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "profile": profile(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "cache": str(cache_dir()),
        "colab": in_colab(),
    }
    gpu = f" ({info['gpu']})" if info["gpu"] else ""
    print(f"device: {info['device']}{gpu} | profile: {info['profile']} | torch {info['torch']} | "
          f"python {info['python']}")
    if os.environ.get("COURSE_CACHE_DIR"):
        print("cache: $COURSE_CACHE_DIR (set in the environment)")
    else:
        print(f"cache: ~/.cache/{_APP}")
    if in_colab() and device.type != "cuda":
        print("Note: this Colab runtime has no GPU. For the full profile choose "
              "Runtime > Change runtime type > T4 GPU, then run the notebook again.")
    return info
