"""The trainer's command line: ``python -m utils.train`` (and ``torchrun ... -m utils.train``), Chapter 4b.

:func:`main` parses the flags (the model's shape, every :class:`utils.train.TrainConfig` field, the run's
directory), refuses flags the run would ignore, joins a data-parallel process group under ``torchrun``
(:func:`utils.parallel.init_distributed`), trains with :func:`utils.train.train` and prints the results
as one JSON object, the last line of output (rank 0 only).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

import torch

from . import runtime
from .checkpoints import OutDirInUseError
from .model import GPTConfig
from .parallel import distributed, init_distributed
from .train import TrainConfig, train

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m utils.train",
                                description="Train a small GPT on the course corpus; the last line of output "
                                            "is one JSON object with the results.")
    m = p.add_argument_group("model")
    m.add_argument("--n_layer", type=int, default=4)
    m.add_argument("--n_head", type=int, default=4)
    m.add_argument("--n_embd", type=int, default=128)
    m.add_argument("--n_ctx", type=int, default=64)
    m.add_argument("--dropout", type=float, default=0.0)
    m.add_argument("--no_bias", action="store_true", help="linear layers and LayerNorms without biases")
    t = p.add_argument_group("training")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        default = getattr(defaults, f.name)
        if f.name == "compile":
            t.add_argument("--compile", action="store_true", help="use torch.compile")
        elif f.name in ("device", "dtype", "schedule"):
            t.add_argument(f"--{f.name}", type=str, default=default)
        elif isinstance(default, float):
            t.add_argument(f"--{f.name}", type=float, default=default)
        else:  # ints and optional ints
            t.add_argument(f"--{f.name}", type=int, default=default)
    p.add_argument("--out_dir", type=str, default=None, help="checkpoint directory (resumed if it exists)")
    p.add_argument("--no_resume", action="store_true",
                   help="with --out_dir or --cache: start again even if the directory holds a run")
    p.add_argument("--cache", action="store_true", help="reuse a finished identical run from the course cache")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--max_chars", type=int, default=None,
                   help="use only the first MAX_CHARS characters of the corpus (quick trials)")
    return p


def _check_args(p: argparse.ArgumentParser, args) -> None:
    """Stop with a usage error (``p.error``, exit status 2) on a flag this run would ignore, naming the flag
    it needs, before any data is loaded."""
    has_dir = args.out_dir is not None or args.cache
    if args.out_dir is not None and args.cache:
        p.error("--cache and --out_dir cannot be combined: both choose the run's directory (--cache one in the "
                "course cache, named by the configuration); give one.")
    if args.no_resume and not has_dir:
        p.error("--no_resume needs --out_dir (or --cache): it starts again in a directory that holds a run; "
                "without one, every run starts from scratch anyway.")
    if args.checkpoint_interval is not None and not has_dir:
        p.error("--checkpoint_interval needs --out_dir (or --cache): checkpoints are saved in the run's directory.")
    defaults = TrainConfig()
    if args.max_tokens is not None and args.max_iters != defaults.max_iters:
        p.error("--max_iters and --max_tokens cannot be combined: both set the run's length; give one.")
    if args.cooldown_fraction != defaults.cooldown_fraction and args.schedule != "wsd":
        p.error(f"--cooldown_fraction needs --schedule wsd: only that schedule cools down, and this run uses "
                f"--schedule {args.schedule}.")
    if args.num_threads is not None and (device := runtime.pick_device(args.device)).type != "cpu":
        p.error(f"--num_threads sets CPU threads, but this run trains on {device}; drop --num_threads, or add "
                "--device cpu.")


def main(argv=None) -> int:
    """Command-line entry point: parse arguments, train, print the results as one JSON line.

    Under ``torchrun`` every process trains its share of one data-parallel run (:func:`train`)
    and only rank 0 prints. Returns 0 (the exit status; the ``course-train`` script passes it to
    ``sys.exit``).
    """
    p = _parser()
    args = p.parse_args(argv)
    _check_args(p, args)
    joined = init_distributed(args)
    try:
        _main(args)
    except OutDirInUseError as e:  # the command line's name for resume=False
        p.error(f"--out_dir {e.run_dir} holds {e.what} of a different configuration; choose another --out_dir, "
                "or add --no_resume to start again there (it overwrites that run).")
    finally:
        if joined:
            torch.distributed.destroy_process_group()
    return 0


def _main(args) -> dict:
    from .data import CharDataset, CharTokenizer, corpus_text, load_dataset, train_val_split

    ddp = distributed()
    rank = ddp[0] if ddp is not None else 0
    if rank > 0:
        torch.distributed.barrier()  # rank 0 builds the cached corpus first; the others then read it
    if args.max_chars is None:
        dataset = load_dataset()
    else:
        if args.max_chars < 20 * (args.n_ctx + 2):
            raise ValueError(f"--max_chars {args.max_chars} is too small for n_ctx={args.n_ctx}; "
                             f"use at least {20 * (args.n_ctx + 2)}.")
        text = corpus_text()
        tok = CharTokenizer.from_text(text)  # the full vocabulary, so configs match full-corpus runs
        tr, va = train_val_split(tok.encode(text[: args.max_chars]), 0.1)
        dataset = CharDataset(text=text[: args.max_chars], tokenizer=tok, train=tr, val=va)
    if ddp is not None and rank == 0:
        torch.distributed.barrier()
    mc = GPTConfig(vocab_size=dataset.vocab_size, n_ctx=args.n_ctx, n_layer=args.n_layer, n_head=args.n_head,
                   n_embd=args.n_embd, dropout=args.dropout, bias=not args.no_bias)
    tc = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    res = train(mc, tc, dataset, out_dir=args.out_dir, resume=not args.no_resume,
                progress=not args.no_progress, cache=args.cache)
    out = {
        "model_config": res.model_config, "train_config": res.train_config,
        "n_params": res.n_params, "n_params_non_embedding": res.n_params_non_embedding,
        "tokens_seen": res.tokens_seen, "iters": res.iters,
        "final_train_loss": res.final_train_loss, "final_val_loss": res.final_val_loss,
        "final_val_bpc": res.final_val_bpc, "wall_time_s": res.wall_time_s, "tokens_per_s": res.tokens_per_s,
        "mfu": res.mfu, "flops": res.flops, "device": res.device, "dtype": res.dtype,
        "num_threads": res.num_threads, "cached": res.cached,
    }
    if ddp is not None:
        out["world_size"] = ddp[1]
    if rank == 0:
        print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
