"""Checks that the graded assignments' tests use, and a scan of submissions (the instructors' page explains both).

The hidden tests of a graded item (``utils/assignments.py`` builds the assignments) check the student's
*answer*, not its agreement with a course function the student could simply call:

* :func:`forbid` makes named course functions (and PyTorch's ready-made ones) raise while the student's
  function runs, wherever the student's code can reach them;
* :func:`check_int` checks an exact count by type and value, so a number that only pretends to be equal
  does not pass.

``python -m utils.grading scan DIR`` lists cells of submitted notebooks that tamper with the kernel the
grader runs in (input transformers, ``sys.modules``, the grading helpers themselves). Nothing here is
imported by the chapters' own code; only their graded test cells use it.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import numbers
import re
import sys
from pathlib import Path

import numpy as np


_INHERITED = object()


class ForbiddenHelperError(AssertionError):
    """Raised when an answer calls a function its exercise asks the student to write without."""


class Forbidden:
    """The context manager :func:`forbid` returns; ``calls`` lists the forbidden calls made inside it."""

    def __init__(self, names, namespace: dict, allow_if: dict):
        self.names, self.namespace, self.allow_if = list(names), namespace, dict(allow_if)
        unknown = set(self.allow_if) - set(self.names)
        if unknown:
            raise ValueError(f"allow_if names {sorted(unknown)}, which are not among the forbidden names {self.names}.")
        self.calls: list[str] = []
        self.allowed_calls: dict[str, int] = {name: 0 for name in self.names}
        self._undo: list[tuple[object, str, object]] = []

    def _guard(self, name: str, original):
        condition = self.allow_if.get(name)
        try:
            signature = inspect.signature(original)
        except (TypeError, ValueError):
            signature = None

        def guarded(*args, **kwargs):
            if condition is not None:
                bound = signature.bind(*args, **kwargs) if signature else None
                if bound is not None:
                    bound.apply_defaults()
                if condition(bound.arguments if bound is not None else kwargs):
                    self.allowed_calls[name] += 1
                    return original(*args, **kwargs)
            self.calls.append(name)
            raise ForbiddenHelperError(f"this answer calls {name}, which the exercise asks you to do without: "
                                       "write the computation yourself (the exercise says what you may use).")

        return guarded

    def _patch(self, owner, attribute: str, value) -> None:
        # A class keeps what its own __dict__ held (_INHERITED: nothing, the method came from a base class).
        before = owner.__dict__.get(attribute, _INHERITED) if isinstance(owner, type) else getattr(owner, attribute)
        self._undo.append((owner, attribute, before))
        setattr(owner, attribute, value)

    def __enter__(self) -> "Forbidden":
        targets = [(name, *_resolve(name)) for name in self.names]  # all looked up before anything changes
        try:
            for name, owner, attribute, original in targets:
                guarded = self._guard(name, original)
                self._patch(owner, attribute, guarded)
                if isinstance(owner, type):
                    continue  # a method: patched on its class, which every instance shares
                # The same object under other names: the notebook's own, and other modules' imports of it.
                top = owner.__name__.split(".")[0]
                places = [m for key, m in list(sys.modules.items())
                          if m is not None and key.split(".")[0] in (top, "utils") and m is not owner]
                for place in places:
                    for key, value in list(vars(place).items()):
                        if value is original:
                            self._patch(place, key, guarded)
                for key, value in list(self.namespace.items()):
                    if value is original:
                        self._undo.append((self.namespace, key, value))
                        self.namespace[key] = guarded
        except BaseException:
            self._restore()
            raise
        return self

    def _restore(self) -> None:
        for owner, attribute, value in reversed(self._undo):
            if isinstance(owner, dict):
                owner[attribute] = value
            elif value is _INHERITED:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, value)
        self._undo.clear()

    def __exit__(self, kind, error, traceback) -> bool:
        self._restore()
        if self.calls and kind is None:  # the answer caught the error and carried on: still a forbidden call
            raise ForbiddenHelperError(f"this answer called {', '.join(sorted(set(self.calls)))}, which the "
                                       "exercise asks you to do without.")
        return False


def _resolve(name: str):
    """``(owner, attribute, object)`` for a dotted name: a module attribute or a method of a class."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:-1]:
            owner = getattr(owner, part)
        if not hasattr(owner, parts[-1]):
            break
        return owner, parts[-1], getattr(owner, parts[-1])
    raise ValueError(f"cannot find {name!r}: give a dotted name such as 'utils.scaling.fit_power_law' or "
                     "'utils.model.Block.forward'.")


def forbid(*names: str, allow_if: dict | None = None, namespace: dict | None = None) -> Forbidden:
    """A context manager in which calling any of ``names`` raises :class:`ForbiddenHelperError`.

    Each name is dotted: a module's function (``"utils.scaling.fit_power_law"``), a class
    (``"utils.bpe.BPETokenizer"``) or a method (``"utils.model.Block.forward"``, patched on the class, so on
    every instance). A module function is replaced in its module, in every course module that imported it
    by name, and in ``namespace`` (by default the caller's globals: in a notebook, its variables, so
    ``from utils.train import lr_at`` is covered). ``allow_if`` maps a name to a test of its arguments
    (``{name: value}``, defaults filled in) that lets a call through, e.g. ``fit_saturating_power_law``
    only with ``n_bootstrap=0``; ``Forbidden.allowed_calls`` counts those. If the answer catches the
    error and carries on, leaving the block raises it again. Everything is restored on leaving.
    Used by the graded tests of every chapter (the instructors' page explains why).
    """
    if not names:
        raise ValueError("forbid() needs at least one dotted name, e.g. forbid('utils.scaling.fit_power_law').")
    if namespace is None:
        namespace = sys._getframe(1).f_globals
    return Forbidden(names, namespace, allow_if or {})


_EXACT_INTS = (int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)


def check_int(value, expected: int, what: str = "the answer") -> None:
    """Raise ``AssertionError`` unless ``value`` is exactly an integer equal to ``expected``.

    Exactly: Python's ``int`` or a NumPy integer type, not a subclass (a subclass can make ``==`` always
    true) and not a float. Returns ``None``. Used by the counting exercises of Chapters 3, 4a and 6.
    """
    if not isinstance(expected, numbers.Integral):
        raise TypeError(f"expected must be an integer, got {type(expected).__name__} {expected!r}.")
    if type(value) not in _EXACT_INTS:
        raise AssertionError(f"{what} should be an integer (int), got {type(value).__name__} {value!r}.")
    if int.__eq__(int(value), int(expected)) is not True:
        raise AssertionError(f"{what} is {int(value):,}; expected {int(expected):,}.")


# --- the scan of submissions -----------------------------------------------------------------------

# What an answer never needs, and what changes how the grader's later cells run or are checked.
SUSPICIOUS = {
    r"input_transformers|ast_transformers|register_transformer": "rewrites the code of later cells before they run",
    r"get_ipython\s*\(\s*\)\s*\.": "changes the kernel through IPython's shell object",
    r"\bsys\.modules\b": "tampers with loaded modules",
    r"set_custom_exc|sys\.excepthook|sys\.settrace|sys\.setprofile": "changes how errors or calls are handled",
    r"\bgrading\b": "touches the grader's helpers (utils.grading)",
    r"\bbuiltins\b|__builtins__": "replaces built-in functions",
    r"\bsetattr\s*\(|\b(utils|scaling|bpe|ngram|attention|model|reference|train|sweep|torch|F|A|np)\.[A-Za-z_]\w*(\.\w+)*\s*=(?!=)":
        "replaces a function of a library or of the course package",
}


def _sources(nb: dict) -> list[str]:
    return ["".join(c.get("source", "")) if isinstance(c.get("source"), list) else c.get("source", "")
            for c in nb.get("cells", [])]


def _handed_out(path: Path) -> set[str]:
    """The lines of the notebook as it was released, when ``path`` lies in a course directory as
    ``<course>/submitted/<student>/<assignment>/<notebook>`` (or ``autograded/``); else none."""
    path = Path(path).resolve()
    if len(path.parents) < 4 or path.parents[2].name not in ("submitted", "autograded"):
        return set()
    release = path.parents[3] / "release" / path.parent.name / path.name
    if not release.exists():
        return set()
    return {line for src in _sources(json.loads(release.read_text(encoding="utf-8"))) for line in src.splitlines()}


def scan_notebook(path: Path) -> list[str]:
    """``["<path> cell <i>: <what it does>: <line>"]`` for every suspicious line in a notebook's code cells
    that the student could have written: lines of the released notebook (found beside ``submitted/`` when
    ``path`` lies in a course directory) are left out; elsewhere every line is read."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    shipped = _handed_out(path)
    found = []
    for i, (cell, source) in enumerate(zip(nb.get("cells", []), _sources(nb))):
        if cell.get("cell_type") != "code":
            continue
        for line in source.splitlines():
            if line in shipped:
                continue
            for pattern, why in SUSPICIOUS.items():
                if re.search(pattern, line):
                    found.append(f"{path} cell {i}: {why}: {line.strip()}")
                    break
    return found


def scan(paths) -> list[str]:
    """Findings of :func:`scan_notebook` for notebooks and every ``*.ipynb`` under directories in ``paths``."""
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; give submitted notebooks or a folder such as "
                                    "<course>/submitted.")
        notebooks = sorted(path.rglob("*.ipynb")) if path.is_dir() else [path]
        for notebook in notebooks:
            if ".ipynb_checkpoints" not in notebook.parts:
                found.extend(scan_notebook(notebook))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.grading", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scan", help="list cells of submitted notebooks that tamper with the grader's kernel")
    s.add_argument("paths", nargs="+", type=Path, help="notebooks or folders (e.g. <course>/submitted)")
    args = parser.parse_args(argv)
    found = scan(args.paths)
    for line in found:
        print(line)
    print(f"{len(found)} suspicious line(s); read those cells before trusting their scores." if found else
          "nothing suspicious found.")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
