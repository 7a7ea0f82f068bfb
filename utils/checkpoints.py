"""Checkpoints and the run cache: save a run's whole state, resume it exactly, and name runs by a key (Chapter 4b).

A checkpoint holds everything the next step depends on: weights, optimiser moments, gradient scaler,
the step, the losses so far, and the random states (the training batches' generator, torch's for
dropout). :func:`resume_from_checkpoint` puts all of it back, so a run that was interrupted ends
exactly as one that was not. Files are written atomically (:func:`atomic_save`): a crash while saving
leaves the previous file whole. :func:`run_key` hashes the configurations and the data: it names a
cached run's directory and guards a directory against a run of another configuration
(:class:`OutDirInUseError`).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path

import numpy as np
import torch

from .parallel import gather_to_all

__all__ = ["CACHE_VERSION", "OutDirInUseError", "data_fingerprint", "run_key", "atomic_save", "atomic_write_json",
           "save_checkpoint", "resume_from_checkpoint"]

CACHE_VERSION = 2  # bump when a change to the trainer changes results, so cached runs are redone


class OutDirInUseError(ValueError):
    """``out_dir`` holds a run (finished, or a checkpoint) of another configuration. The message names
    the Python argument (``resume=False``); the command line names its flag (``--no_resume``) instead."""

    def __init__(self, run_dir: Path, what: str):
        self.run_dir, self.what = run_dir, what
        super().__init__(f"{run_dir} holds {what} of a different configuration; choose another out_dir, "
                         "or pass resume=False to start again there (it overwrites that run).")


def data_fingerprint(dataset) -> str:
    """A short hash of a dataset's training and validation ids (and vocabulary size)."""
    h = hashlib.blake2b(digest_size=12)
    for part in (dataset.train, dataset.val):
        arr = np.ascontiguousarray(np.asarray(part, dtype=np.int64))
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    h.update(str(dataset.vocab_size).encode())
    return h.hexdigest()


def run_key(model_config, train_config, dataset=None, fingerprint: str | None = None) -> str:
    """The cache key of a run: a hash of the model config, the result-relevant train config and the data.

    ``train_config`` is a :class:`utils.train.TrainConfig`; the fields it lists in ``_NOT_IN_KEY``
    (device, threads, ...) change speed, not results, and are left out."""
    tc = {k: v for k, v in train_config.to_dict().items() if k not in type(train_config)._NOT_IN_KEY}
    if tc.get("eval_seed") is None:
        tc.pop("eval_seed", None)  # the default: keys of runs cached before the field existed stay valid
    if fingerprint is None:
        fingerprint = data_fingerprint(dataset)
    blob = json.dumps({"v": CACHE_VERSION, "model": model_config.to_dict(), "train": tc, "data": fingerprint},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _temporary_name(path: Path) -> Path:
    """A file name next to ``path`` that no other process or call uses (so two writers never share it)."""
    return path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


def atomic_save(obj, path: Path) -> None:
    """``torch.save(obj)`` to ``path`` through a temporary file in the same directory, renamed into place."""
    tmp = _temporary_name(path)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left over when saving failed


def atomic_write_json(obj, path: Path) -> None:
    """Write ``obj`` as indented JSON to ``path`` through a temporary file, renamed into place."""
    tmp = _temporary_name(path)
    try:
        tmp.write_text(json.dumps(obj, indent=1))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(path: Path, run, key: str, gather: bool = True) -> None:
    """Save the state of ``run`` (a :class:`utils.train.TrainingState`) to ``path``; only rank 0 writes.

    Data-parallel, every process must call it (``gather=True``): the processes' random states are
    gathered to rank 0 so that dropout resumes exactly."""
    device = run.device
    rng = (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)
    rank_rng = gather_to_all(rng, run.ddp) if run.ddp is not None and gather else None
    if run.rank != 0:
        return
    atomic_save({
        "key": key, "model_config": run.mc.to_dict(), "train_config": run.tc.to_dict(),
        "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "step": run.step, "history": run.history, "step_losses": run.step_losses,
        "elapsed": run.elapsed + (time.perf_counter() - run.t_start),
        "batch_rng": run.batches.generator.get_state(), "torch_rng": rng[0], "cuda_rng": rng[1],
        "rank_rng": rank_rng,
    }, path)


def resume_from_checkpoint(path: Path, run, key: str, run_dir: Path) -> None:
    """Put the state saved at ``path`` back into ``run`` (a :class:`utils.train.TrainingState`): weights,
    optimiser, scaler, step, history, losses, elapsed time and random states. Raises
    :class:`OutDirInUseError` when the checkpoint belongs to another configuration (its key is not ``key``)."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if ck.get("key") != key:
        raise OutDirInUseError(run_dir, "a checkpoint")
    run.model.load_state_dict(ck["model"])
    run.optimizer.load_state_dict(ck["optimizer"])
    if run.scaler is not None and ck.get("scaler"):
        run.scaler.load_state_dict(ck["scaler"])
    run.step, run.history, run.step_losses, run.elapsed = ck["step"], ck["history"], ck["step_losses"], ck["elapsed"]
    run.batches.generator.set_state(ck["batch_rng"])
    own = ck.get("rank_rng")  # data-parallel: every process's (torch, cuda) random state
    if own is not None and len(own) == run.world:
        cpu_rng, cuda_rng = own[run.rank]
    else:  # one process; or another process count than before: rank 0 keeps rank 0's state
        cpu_rng, cuda_rng = (ck["torch_rng"], ck.get("cuda_rng")) if run.rank == 0 else (None, None)
    if cpu_rng is not None:
        torch.set_rng_state(cpu_rng)
    if run.device.type == "cuda" and cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng, run.device)
