"""Seconds each notebook took to execute: from the book build's execution cache, or from nbval's JUnit XML.

`make test` executes every notebook once, in the English book build (Jupyter Book's execution cache,
`_build/.jupyter_cache`), and prints this table after it; `make nbval` prints the same from pytest's
JUnit XML. The per-chapter run times that the instructors' page quotes are read from it.

Usage: python tests/notebook_times.py (--jupyter-cache _build/.jupyter_cache | _build/nbval-junit.xml)
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def notebook_seconds(path: str) -> dict[str, float]:
    """Total seconds of the test cases of each notebook in a pytest JUnit XML file (nbval: one case a cell)."""
    totals: dict[str, float] = defaultdict(float)
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("classname", "")  # e.g. notebooks.01_language_models.ipynb
        notebook = name.removeprefix("notebooks.")
        totals[notebook] += float(case.get("time", 0.0))
    if not totals:
        raise ValueError(f"{path} holds no test cases: did nbval run?")
    return dict(sorted(totals.items()))


def cached_seconds(cache_dir: str, notebooks=None) -> dict[str, tuple[float, str]]:
    """Seconds and time of execution of each notebook's current code in a jupyter-cache directory
    (Jupyter Book's ``_build/.jupyter_cache``). A notebook whose code has no execution there is an error:
    the build did not execute it."""
    import nbformat
    from jupyter_cache import get_cache

    if not Path(cache_dir, "global.db").is_file():
        raise ValueError(f"{cache_dir} is not a jupyter-cache directory: did the book build run?")
    cache = get_cache(cache_dir)
    out, missing = {}, []
    for path in sorted(notebooks or NOTEBOOKS.glob("*.ipynb")):
        try:
            record = cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            missing.append(path.name)
            continue
        out[path.name] = (float(record.data["execution_seconds"]), f"{record.created:%Y-%m-%d %H:%M}")
    if missing:
        raise ValueError(f"no execution of the current code of {', '.join(missing)} in {cache_dir}")
    return out


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--jupyter-cache":
        times = cached_seconds(args[1])
        print("book build, seconds per notebook (when it was executed; an unchanged notebook is not executed again):")
        for notebook, (seconds, when) in times.items():
            print(f"  {notebook:<34} {seconds:7.1f}  {when}")
        print(f"  {'all':<34} {sum(s for s, _ in times.values()):7.1f}")
        return 0
    if len(args) != 1 or args[0].startswith("-"):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    totals = notebook_seconds(args[0])
    print("nbval, seconds per notebook:")
    for notebook, seconds in totals.items():
        print(f"  {notebook:<34} {seconds:7.1f}")
    print(f"  {'all':<34} {sum(totals.values()):7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
