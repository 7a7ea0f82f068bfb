"""The Colab path, rehearsed offline: `make colab-check` (run by `make test`).

A reader in Colab opens one notebook on its own: no checkout beside it, Colab's own libraries
already installed, and the notebook's set-up cell installing the course package from the
repository's git URL. This script reproduces that:

1. a clean virtual environment with only the kind of libraries Colab preinstalls (torch, numpy,
   scipy, matplotlib, sympy, tqdm, ipykernel; at the versions requirements.txt pins, so pip's
   cache and the local torch file serve them) and a stand-in ``google.colab`` module that every
   kernel imports at start-up, as Colab's kernels do;
2. each chosen notebook copied alone into an empty folder outside the repository, its set-up cell
   rewritten by ``utils.colab.setup_source`` with the repository URL replaced by this checkout's
   committed state (``git+file://localhost/...``): the same requirement string as the public cell,
   so a wrong string, a dependency range that does not resolve, or a package that lacks a module
   fails here;
3. the notebook executed top to bottom in that environment, with an empty course cache and no
   ``COURSE_*`` settings, and failed on the first cell that raises, or on a ``%pip`` that fails
   (IPython's ``%pip`` does not raise, so the check reads its output).

The package comes from the last commit (git clones it): commit before running this locally.
``--chapters all`` executes every chapter (Chapter 4b and 6 train for minutes on a CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from utils import colab  # noqa: E402

# The libraries Colab preinstalls that the course uses (Colab's own torch is never touched by the set-up cell).
COLAB_PREINSTALLED = ("torch", "numpy", "scipy", "matplotlib", "sympy", "tqdm", "ipykernel")
DEFAULT_CHAPTERS = ("01", "05")
STANDIN = '"""Stand-in for Colab\'s google.colab module (tests/colab_check.py)."""\n'
PIP_FAILURE = re.compile(r"^(ERROR:|error:)", re.M)
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # pip colours its errors when %pip runs it in a terminal


def pins(names, requirements: Path = ROOT / "requirements.txt") -> list[str]:
    """The requirements.txt lines that pin ``names`` (``name==version``), in that order."""
    found = {}
    for line in requirements.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if m:
            found[m.group(1).lower()] = line.strip()
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"requirements.txt pins none of {missing}; the Colab check installs them at those pins.")
    return [found[n] for n in names]


def chapter_notebooks(chapters) -> list[Path]:
    """The notebooks for chapter ids like ``01`` or ``04b`` (``all``: every notebook)."""
    every = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if list(chapters) == ["all"]:
        return every
    chosen = []
    for ch in chapters:
        match = [p for p in every if p.name.split("_", 1)[0] == ch]
        if not match:
            names = ", ".join(p.name.split("_", 1)[0] for p in every)
            raise ValueError(f"no chapter {ch!r}; choose from {names} or 'all'.")
        chosen += match
    return chosen


def colab_notebook(src: Path, dest_dir: Path, url: str) -> Path:
    """Copy notebook ``src`` alone into ``dest_dir`` with its set-up cell pointed at ``url``.

    Fails if the notebook's set-up cell is not the standard one for the configured repository, so
    the string that is tested is the string that ships.
    """
    nb = json.loads(src.read_text(encoding="utf-8"))
    cell = colab.first_code_cell(nb)
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    public = colab.setup_source(colab.repository_url())
    if source != public:
        raise ValueError(f"{src.name}'s set-up cell is not the one utils.colab generates; run `make sync-setup`.")
    cell["source"] = colab.setup_source(url)
    dest = dest_dir / src.name
    dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return dest


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def make_env(work: Path) -> tuple[Path, dict]:
    """A clean venv with Colab's kind of libraries, a stand-in google.colab and a kernel named colab."""
    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([str(py), "-m", "pip", "install", "-q", *pins(COLAB_PREINSTALLED)])
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "google" / "colab").mkdir(parents=True)
    (site / "google" / "colab" / "__init__.py").write_text(STANDIN)
    ipython_dir = work / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # as Colab's kernels do\n")
    kernels = work / "jupyter"
    run([str(py), "-m", "ipykernel", "install", "--prefix", str(kernels), "--name", "colab",
         "--display-name", "Colab stand-in"], stdout=subprocess.DEVNULL)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSE_", "VIRTUAL_ENV", "JUPYTER", "PYTHON"))}
    env.update(IPYTHONDIR=str(ipython_dir), JUPYTER_PATH=str(kernels / "share" / "jupyter"),
               COURSE_CACHE_DIR=str(work / "cache"), MPLBACKEND="agg")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return venv, env


def execute(notebook: Path, env: dict, timeout: int) -> float:
    """Execute ``notebook`` in place with the colab kernel; return seconds; raise on any failure."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    start = time.perf_counter()
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, kernel_name="colab", timeout=timeout,
                       resources={"metadata": {"path": str(notebook.parent)}}).execute()
    except CellExecutionError as error:
        pip_failed(notebook, nb, error)  # a failed install, not the import after it, is the cause to name
        raise RuntimeError(f"{notebook.name} failed alone in an empty folder, as in Colab:\n{error}") from None
    finally:
        os.environ.clear()
        os.environ.update(old)
    pip_failed(notebook, nb)
    return time.perf_counter() - start


def pip_failed(notebook: Path, nb, cause: Exception | None = None) -> None:
    """Raise ``RuntimeError`` naming pip's errors if the set-up cell's ``%pip`` printed any."""
    setup = colab.first_code_cell(nb)
    text = "".join(o.get("text", "") for o in setup.get("outputs", []) if o.get("output_type") == "stream")
    text = ANSI_COLOUR.sub("", text)
    errors = [ln for ln in text.splitlines() if PIP_FAILURE.match(ln)]
    if errors:
        raise RuntimeError(f"{notebook.name}: the set-up cell's %pip failed:\n" + "\n".join(errors)) from cause


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapters", nargs="+", default=list(DEFAULT_CHAPTERS),
                        help="chapter ids (01 02 03 04a 04b 05 06 07) or 'all' (default: 01 05)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds a cell may run (default 1800)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args(argv)
    notebooks = chapter_notebooks(args.chapters)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "utils", "pyproject.toml"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        print("colab-check: note: utils/ or pyproject.toml has uncommitted changes; the package is installed "
              "from the last commit, as Colab would install it from the pushed one.")
    work = Path(tempfile.mkdtemp(prefix="colab-check-"))
    try:
        url = f"file://localhost{ROOT}"
        prepared = []  # set-up cells checked before the minutes the environment takes
        for src in notebooks:
            folder = work / "reader" / src.stem
            folder.mkdir(parents=True)
            prepared.append(colab_notebook(src, folder, url))
        t0 = time.perf_counter()
        _, env = make_env(work)
        print(f"colab-check: environment ready in {time.perf_counter() - t0:.0f} s")
        for src, nb in zip(notebooks, prepared):
            seconds = execute(nb, env, args.timeout)
            print(f"colab-check: {src.name} ran top to bottom alone in {seconds:.0f} s")
        print(f"colab-check: all {len(notebooks)} notebook(s) ran in a Colab-like environment")
        return 0
    finally:
        if args.keep:
            print(f"colab-check: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
