"""Seconds each notebook took under nbval, from the JUnit XML that `make nbval` writes.

`make nbval` (and so `make test`) prints this table after the run: the per-chapter run times that the
instructors' page quotes are read from it. Usage: python tests/notebook_times.py _build/nbval-junit.xml
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import defaultdict


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


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
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
