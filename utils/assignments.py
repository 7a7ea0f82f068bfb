"""Graded assignments built from the chapter notebooks with nbgrader (the instructor's page explains it).

The chapter notebooks are the only source. Inside them:

* a **graded item** is a code cell with nbgrader metadata ``grade: true`` and its ``points``
  (tagged ``remove-cell`` so the website does not show it), whose visible checks the student
  sees and whose checks between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` only
  the autograder runs;
* its **solution** is a code cell with nbgrader metadata ``solution: true`` (tagged
  ``hide-input``, so the website shows it in a drop-down); the lines between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION`` are replaced by a stub in the student's copy.
  Solutions sit inside function bodies, so a blank copy still runs: only the tests fail;
* any other cell the assignment needs (the imports, loading the corpus, the exercise's prose)
  carries the tag ``assignment``. The title and the set-up cell are always included.

``python -m utils.assignments build`` (``make assignments``) writes an nbgrader course directory,
``_build/assignments/``: ``source/<id>/`` (the instructor's version, with solutions and hidden
tests), ``release/<id>/`` (the student notebook), ``gradebook.db`` and ``nbgrader_config.py``.
``build`` refuses to delete a course directory that holds students' work (``--keep`` regenerates into it,
``--discard-grades`` deletes it); ``check`` grades the reference and blank answers in a temporary copy.
``python -m utils.assignments student-site`` writes a copy of the book without solutions, for
``make book-student``. The graded test cells use :mod:`utils.grading`; nothing here is imported by the chapters.

(About 520 lines, a little over the course's 500: building, checking and the student site share the
notebook-reading helpers at the top, and none of it is read by learners of the chapters.)
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
DEFAULT_OUT = ROOT / "_build" / "assignments"
ASSIGNMENT_TAG = "assignment"
# Jupyter Book display tags: meaningless in a student's notebook, so the assignment drops them.
BOOK_TAGS = {"hide-input", "hide-output", "hide-cell", "remove-input", "remove-output", "remove-cell"}
COURSE_ID = "scaling-laws-from-scratch"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
CELL_TIMEOUT_S = 600
# Autograde removes every stderr output that matches this (anything), before it scores the test cells.
STDERR_PATTERN = r"[\s\S]"
# What a course directory holds once a term has started: build refuses to delete it unless told to.
GRADING_DATA = ("submitted", "autograded", "feedback", "grades.csv")

NBGRADER_CONFIG = f'''# nbgrader configuration of the course "Scaling Laws from Scratch" (written by utils/assignments.py).
c = get_config()  # noqa: F821 (provided by nbgrader)
c.CourseDirectory.course_id = "{COURSE_ID}"
# Each answer sits inside a function body, so the stub below makes only that item's checks fail.
c.ClearSolutions.code_stub = {{"python": {CODE_STUB!r}}}
# Seconds per cell when nbgrader executes a notebook (autograde, validate).
c.Execute.timeout = {CELL_TIMEOUT_S}
# nbgrader scores a test cell that wrote anything to stderr as failed, so a correct answer that prints a
# warning or a progress bar would score zero. Autograde drops stderr output before scoring: an item fails
# only when its test cell raises an error (a failed check, an error in the answer, a timeout).
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = {STDERR_PATTERN!r}

# On a JupyterHub: the exchange that release_assignment, fetch, submit and collect share. Students read
# this setting too, so put it in a configuration every user reads (e.g. /etc/jupyter/nbgrader_config.py in
# the hub's image), and create the folder beforehand on storage every user's server mounts:
#   mkdir -p /srv/nbgrader/exchange && chmod 1777 /srv/nbgrader/exchange
# c.Exchange.root = "/srv/nbgrader/exchange"

# Feedback (generate_feedback) shows each test cell whole, hidden tests included. To leave the hidden
# tests out of the students' reports (a failing hidden check's error message still names its line):
# c.GenerateFeedback.preprocessors = ["nbgrader.preprocessors.GetGrades", "nbgrader.preprocessors.ClearHiddenTests",
#                                     "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"]
'''


def assignment_id(path: Path | str) -> str:
    """``notebooks/04a_building_a_gpt.ipynb`` -> ``ch04a``: the chapter number before the first underscore."""
    stem = Path(path).stem
    number = stem.split("_", 1)[0]
    if not re.fullmatch(r"\d+[a-z]?", number):
        raise ValueError(f"cannot read a chapter number from {Path(path).name!r}; name chapters like 01_title.ipynb.")
    return f"ch{number}"


def chapters(folder: Path | None = None) -> list[Path]:
    """The chapter notebooks of ``folder`` (default: the course's ``notebooks/``), in order."""
    return sorted(Path(folder or NOTEBOOKS).glob("[0-9]*.ipynb"))


def resolve_chapters(names, folder: Path | None = None) -> list[Path]:
    """Chapter notebooks named by paths (``notebooks/01_language_models.ipynb``), assignment ids
    (``ch01``) or chapter numbers (``01``, ``4a``), in the order given; default: every chapter.
    Raises ``ValueError`` naming the chapters that exist when a name matches none."""
    known = {assignment_id(p): p for p in chapters(folder)}
    found = []
    for name in map(str, names or []):
        path = Path(name)
        if path.suffix == ".ipynb":
            if not path.exists():
                raise ValueError(f"no notebook {name}; give a chapter notebook's path or an id such as ch01.")
            found.append(path)
            continue
        aid = "ch" + name.lower().removeprefix("ch").zfill(2 if name[-1].isdigit() else 3)
        if aid not in known:
            raise ValueError(f"there is no chapter {name!r}; the chapters are {', '.join(known)} "
                             "(or give a notebook's path, e.g. notebooks/01_language_models.ipynb).")
        found.append(known[aid])
    return found or list(known.values())


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _nbgrader(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def is_graded(cell: dict) -> bool:
    """A cell that nbgrader gives points to (a graded test cell)."""
    return bool(_nbgrader(cell).get("grade"))


def is_solution(cell: dict) -> bool:
    """A cell whose answer nbgrader removes from the student's copy."""
    return bool(_nbgrader(cell).get("solution"))


def graded_items(nb: dict) -> list[dict]:
    """``[{"grade_id", "points"}]`` for every graded cell of a notebook, in order."""
    return [{"grade_id": _nbgrader(c)["grade_id"], "points": float(_nbgrader(c)["points"])}
            for c in nb["cells"] if is_graded(c)]


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _write(path: Path, nb: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _header(aid: str, chapter: Path, items: list[dict]) -> str:
    if not items:
        return (f"**Assignment {aid}** is generated from the chapter notebook `notebooks/{chapter.name}`. "
                "This chapter has no graded exercises yet (its assignment is pending): the notebook holds "
                "only the chapter's title and set-up.")
    rows = "\n".join(f"| `{it['grade_id']}` | {it['points']:g} |" for it in items)
    total = sum(it["points"] for it in items)
    return (
        f"**Assignment {aid}** is generated from the chapter notebook `notebooks/{chapter.name}`; the chapter "
        "explains everything used here. Run the notebook from the top. In every cell that says "
        "`YOUR CODE HERE`, replace the line `raise NotImplementedError()` with your answer, then run the "
        "test cell under it: if it runs without an error, your answer passes the checks you can see. "
        "The grader also runs checks you cannot see, so make the function right, not just the visible checks.\n\n"
        "**What fails an item:** only an error in its test cell: a check that does not hold, an error raised "
        "by your function, a cell that runs longer than the grader's time limit, or a call to a function the "
        "exercise says not to use (each exercise says what you may use). Warnings and progress bars do not "
        "fail an item (`nbgrader validate` still lists them; the grader ignores them). Save this notebook in a "
        "folder of its own, not in the course's `notebooks/` folder, where the chapter with its solutions has "
        "the same file name.\n\n"
        f"| graded item | points |\n| --- | --- |\n{rows}\n| total | {total:g} |"
    )


def assignment_notebook(chapter: Path) -> dict:
    """The nbgrader source notebook of one chapter: the cells the assignment needs, with solutions.

    Kept: the first cell (the title), the set-up cell (the first code cell), every cell tagged
    ``assignment`` and every nbgrader cell, in the chapter's order; a generated header follows the
    title. Outputs are dropped and Jupyter Book's display tags removed.
    """
    nb = load(chapter)
    aid = assignment_id(chapter)
    first_code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
    keep = []
    for i, cell in enumerate(nb["cells"]):
        if i in (0, first_code) or ASSIGNMENT_TAG in _tags(cell) or _nbgrader(cell):
            cell = copy.deepcopy(cell)
            tags = [t for t in _tags(cell) if t not in BOOK_TAGS and t != ASSIGNMENT_TAG]
            if tags:
                cell["metadata"]["tags"] = tags
            else:
                cell.get("metadata", {}).pop("tags", None)
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
            keep.append(cell)
    header = {"cell_type": "markdown", "id": f"{aid}-header", "metadata": {},
              "source": _header(aid, chapter, graded_items(nb))}
    out = copy.deepcopy(nb)
    out["cells"] = keep[:1] + [header] + keep[1:]
    return out


def _run(args: list[str], cwd: Path, log: Path | None = None) -> None:
    env = dict(os.environ, JUPYTER_PREFER_ENV_PATH="1", PYDEVD_DISABLE_FILE_VALIDATION="1")
    # nbgrader runs the `alembic` command of its environment: put that environment's scripts first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("COURSE_PROGRESS", "0")
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if log is not None:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"$ nbgrader {' '.join(args)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed (exit {proc.returncode}) in {cwd}:\n"
                           f"{proc.stdout[-4000:]}{proc.stderr[-4000:]}")


def grading_data(out: Path) -> list[str]:
    """What in the course directory ``out`` would be lost by deleting it: ``submitted/``, ``autograded/``,
    ``feedback/``, ``grades.csv`` (where present and not empty) and a gradebook with students."""
    out = Path(out)
    found = [name + ("/" if (out / name).is_dir() else "") for name in GRADING_DATA
             if (out / name).exists() and (not (out / name).is_dir() or any((out / name).iterdir()))]
    db = out / "gradebook.db"
    if db.exists():
        import sqlite3

        with sqlite3.connect(db) as con:
            try:
                students = con.execute("SELECT count(*) FROM student").fetchone()[0]
            except sqlite3.DatabaseError:
                students = 0
        if students:
            found.append(f"gradebook.db ({students} students)")
    return found


def build(out: Path = DEFAULT_OUT, notebooks: list[Path] | None = None, clean: bool = True,
          discard_grades: bool = False) -> dict:
    """Write the nbgrader course directory ``out`` for ``notebooks`` (default: every chapter).

    With ``clean`` (the default) ``out`` is deleted first, but a directory that holds submissions or
    grades (:func:`grading_data`) is refused with a ``ValueError`` unless ``discard_grades``; without
    ``clean``, submissions, grades and an existing ``nbgrader_config.py`` are kept and the assignments
    are regenerated in place.

    Returns the summary also written to ``out/assignments.json``: for each assignment its chapter,
    graded items with points, and whether it is pending (no graded items yet).
    """
    out = Path(out).resolve()
    notebooks = [Path(p) for p in (notebooks or chapters())]
    if clean and out.exists():
        data = grading_data(out)
        if data and not discard_grades:
            raise ValueError(f"{out} holds students' work: {', '.join(data)}. Rebuilding it from scratch would "
                             "delete that. Use --keep to regenerate the assignments and keep it, or "
                             "--discard-grades to delete it.")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    config = out / "nbgrader_config.py"
    if not config.exists():  # kept: an instructor may have added to it (a hub's exchange)
        config.write_text(NBGRADER_CONFIG, encoding="utf-8")
    elif "IgnorePattern" not in config.read_text(encoding="utf-8"):
        print(f"warning: {config} (kept) does not set IgnorePattern: correct answers that print a warning score "
              "zero. Add these lines:\nc.IgnorePattern.enabled = True\n"
              f"c.IgnorePattern.pattern = {STDERR_PATTERN!r}", file=sys.stderr)
    summary = {}
    for chapter in notebooks:
        aid = assignment_id(chapter)
        nb = assignment_notebook(chapter)
        _write(out / "source" / aid / chapter.name, nb)
        items = graded_items(nb)
        summary[aid] = {"chapter": f"notebooks/{chapter.name}", "notebook": chapter.stem,
                        "items": items, "points": sum(it["points"] for it in items), "pending": not items}
    # One nbgrader run for all: its argument is a glob over the assignment folders under source/.
    _run(["generate_assignment", next(iter(summary)) if len(summary) == 1 else "*", "--force"],
         cwd=out, log=out / "nbgrader.log")
    (out / "assignments.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_course_readme(summary), encoding="utf-8")
    return summary


def _course_readme(summary: dict) -> str:
    lines = ["# Graded assignments (generated by `make assignments`; do not edit, edit the chapters)", "",
             "An nbgrader course directory. `release/<id>/` holds the student notebooks to hand out;",
             "`source/<id>/` the instructor's versions with solutions and hidden tests; `gradebook.db` the",
             "graded items and, after grading, the scores. See the book's page \"For instructors\".", "",
             "| assignment | chapter | graded items | points |", "| --- | --- | --- | --- |"]
    for aid, s in summary.items():
        items = ", ".join(f"{it['grade_id']} ({it['points']:g})" for it in s["items"]) or "pending: no graded items yet"
        lines.append(f"| {aid} | `{s['chapter']}` | {items} | {s['points']:g} |")
    return "\n".join(lines) + "\n"


def _notebook_path(out: Path, kind: str, aid: str, student: str | None = None) -> Path:
    folder = out / kind / (student or "") / aid if student else out / kind / aid
    found = sorted(folder.glob("*.ipynb"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one notebook in {folder}, found {len(found)}; run `make assignments` first.")
    return found[0]


def solutions(out: Path, aid: str) -> dict[str, str]:
    """``{grade_id: source}`` of the solution cells of the instructor's version of ``aid``."""
    nb = load(_notebook_path(Path(out), "source", aid))
    return {_nbgrader(c)["grade_id"]: _source(c) for c in nb["cells"] if is_solution(c)}


def submit(out: Path, aid: str, student: str, answers: dict[str, str] | None = None) -> Path:
    """Write a submission of ``student``: the student notebook with the given solution cells filled in.

    ``answers`` maps solution grade ids to cell sources (``solutions(out, aid)`` gives the reference
    answers); cells not named stay blank, as handed out.
    """
    out = Path(out)
    release = _notebook_path(out, "release", aid)
    nb = load(release)
    answers = dict(answers or {})
    for cell in nb["cells"]:
        gid = _nbgrader(cell).get("grade_id")
        if is_solution(cell) and gid in answers:
            cell["source"] = answers.pop(gid)
    if answers:
        raise KeyError(f"{aid} has no solution cells named {sorted(answers)}")
    path = out / "submitted" / student / aid / release.name
    if path.parent.exists():
        shutil.rmtree(path.parent)
    _write(path, nb)
    return path


def autograde(out: Path, aid: str) -> None:
    """Grade every submission of ``aid`` (nbgrader autograde: restore the tests, hidden ones too, and run)."""
    _run(["autograde", aid, "--force"], cwd=Path(out), log=Path(out) / "nbgrader.log")


def scores(out: Path, aid: str) -> dict[str, dict[str, tuple[float, float]]]:
    """``{student: {grade_id: (score, max_score)}}`` of the graded items of ``aid`` from the gradebook."""
    from nbgrader.api import Gradebook

    out = Path(out)
    notebook = Path(_notebook_path(out, "release", aid)).stem
    result = {}
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(aid):
            nb = gb.find_submission_notebook(notebook, aid, sub.student.id)
            result[sub.student.id] = {g.name: (float(g.score), float(g.max_score)) for g in nb.grades}
    return result


def errors_outside_items(out: Path, aid: str, student: str) -> list[str]:
    """Cells of the graded notebook, other than graded items and their solutions, that raised an error."""
    nb = load(_notebook_path(Path(out), "autograded", aid, student))
    bad = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or _nbgrader(cell).get("grade") or _nbgrader(cell).get("solution"):
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                bad.append(f"cell {i}: {o.get('ename')}: {o.get('evalue')}")
    return bad


def check(out: Path, ids: list[str] | None = None) -> dict[str, dict]:
    """Grade the reference answers and the blank notebook of the built assignments ``ids`` (default: all).

    Grading happens in a temporary copy of the course directory ``out`` (without its submissions), so the
    students "reference" and "blank" never enter a real course's gradebook. Returns ``{aid: {"reference":
    score, "blank": score, "total": points, "seconds": time}}``; raises ``ValueError`` for an unknown id.
    """
    import tempfile

    out = Path(out)
    summary_path = out / "assignments.json"
    if not summary_path.exists():
        raise FileNotFoundError(f"{out} is not a built course directory (no assignments.json); run "
                                "`make assignments` or `python -m utils.assignments build --out DIR` first.")
    built = json.loads(summary_path.read_text(encoding="utf-8"))
    chapters_ = [assignment_id(p) for p in chapters()]
    for aid in ids or []:
        if aid not in built and aid not in chapters_:
            raise ValueError(f"there is no chapter {aid!r}; the chapters are {', '.join(chapters_)}.")
        if aid not in built:
            raise ValueError(f"{aid} is not built in {out} (it holds {', '.join(built)}); build it first: "
                             f"python -m utils.assignments build --keep --out {out} {aid}")
    result = {}
    with tempfile.TemporaryDirectory(prefix="sls-check-") as tmp:
        copy_ = Path(tmp) / "course"
        shutil.copytree(out, copy_, ignore=shutil.ignore_patterns(*GRADING_DATA, "nbgrader.log"))
        for aid in ids or list(built):
            t0 = time.perf_counter()
            submit(copy_, aid, "reference", solutions(copy_, aid))
            submit(copy_, aid, "blank")
            autograde(copy_, aid)
            got = scores(copy_, aid)
            result[aid] = {"reference": sum(s_ for s_, _ in got["reference"].values()),
                           "blank": sum(s_ for s_, _ in got["blank"].values()),
                           "total": sum(m for _, m in got["reference"].values()),
                           "seconds": time.perf_counter() - t0}
    return result


# --- the student website -------------------------------------------------------------------------

_SOLUTION_BLOCK = re.compile(r"\n*^(`{3,}|:{3,})\{admonition\}\s*Solution[^\n]*\n.*?^\1[ \t]*$\n?", re.M | re.S)


def strip_solutions(nb: dict) -> dict:
    """A copy of a chapter without solutions: drop-down "Solution" blocks leave the prose, and the
    code cells of the exercises' solutions (``hide-input`` cells after the "Exercises" heading, and
    nbgrader solution cells) and the graded test cells go. Prose, prompts and everything before the
    exercises stay as they are."""
    nb = copy.deepcopy(nb)
    cells, in_exercises = [], False
    for cell in nb["cells"]:
        src = _source(cell)
        if cell["cell_type"] == "markdown":
            if re.search(r"^#{2,3}\s+(Graded e|E)xercises\b", src, re.M):
                in_exercises = True
            new = _SOLUTION_BLOCK.sub("\n", src).rstrip() + "\n" if "{admonition}" in src else src
            if new.strip():
                cell["source"] = new
                cells.append(cell)
            continue
        if cell["cell_type"] == "code":
            if is_solution(cell) or is_graded(cell) or (in_exercises and "hide-input" in _tags(cell)):
                continue
        cells.append(cell)
    nb["cells"] = cells
    return nb


def student_site(dest: Path, executed: Path | None = None) -> list[str]:
    """Write a copy of the book without solutions to ``dest`` (for ``jupyter-book build dest``).

    Where ``executed`` (default ``_build/jupyter_execute``, left by ``make book``) holds an executed
    chapter whose code matches the source, its outputs are reused and that chapter is not executed
    again; the others execute as in the full build. Returns the chapters whose outputs were reused.
    """
    dest = Path(dest).resolve()
    executed = Path(executed) if executed else ROOT / "_build" / "jupyter_execute"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in ("_toc.yml", "book"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    shutil.rmtree(dest / "book" / "_ext" / "__pycache__", ignore_errors=True)
    reused = []
    for chapter in chapters():
        nb = load(chapter)
        done = executed / "notebooks" / chapter.name
        if done.exists():
            ran = load(done)
            ran_code = [(c.get("id"), _source(c)) for c in ran["cells"] if c["cell_type"] == "code"]
            src_code = [(c.get("id"), _source(c)) for c in nb["cells"] if c["cell_type"] == "code"]
            if ran_code == src_code:
                outputs = {c.get("id"): c for c in ran["cells"] if c["cell_type"] == "code"}
                for cell in nb["cells"]:
                    if cell["cell_type"] == "code":
                        cell["outputs"] = outputs[cell.get("id")].get("outputs", [])
                        cell["execution_count"] = outputs[cell.get("id")].get("execution_count")
                reused.append(f"notebooks/{chapter.name}")
        _write(dest / "notebooks" / chapter.name, strip_solutions(nb))
    config = (ROOT / "_config.yml").read_text(encoding="utf-8")
    config = re.sub(r"^title:\s*(.*)$", lambda m: f"title: {m.group(1)} (student edition)", config, count=1, flags=re.M)
    # Launch buttons open the repository's notebooks, which hold the solutions: none on this site.
    config = re.sub(r"^(\s+)(colab_url|binderhub_url|jupyterhub_url):.*$", r'\1\2: ""', config, flags=re.M)
    if reused:
        patterns = ", ".join(json.dumps(p) for p in reused)
        config = re.sub(r"^execute:\s*\n", f"execute:\n  exclude_patterns: [{patterns}]  # outputs reused\n",
                        config, count=1, flags=re.M)
    (dest / "_config.yml").write_text(config, encoding="utf-8")
    return reused


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.assignments", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the nbgrader course directory (student notebooks, instructor's material)")
    b.add_argument("--out", type=Path, default=DEFAULT_OUT)
    b.add_argument("--keep", action="store_true",
                   help="regenerate into an existing course directory, keeping submissions and the gradebook")
    b.add_argument("--discard-grades", action="store_true",
                   help="without --keep: delete a course directory even if it holds submissions or grades")
    b.add_argument("--notebooks", type=Path, default=None, help="folder of the chapter notebooks (default: notebooks/)")
    b.add_argument("chapters", nargs="*", help="chapters: ids (ch01, 4a) or notebook paths (default: all)")
    g = sub.add_parser("check", help="grade the reference answers and the blank notebook of built assignments "
                                     "(in a temporary copy: the course directory is not changed)")
    g.add_argument("--out", type=Path, default=DEFAULT_OUT)
    g.add_argument("ids", nargs="*", help="assignment ids, e.g. ch01 (default: all)")
    s = sub.add_parser("student-site", help="write a copy of the book without solutions")
    s.add_argument("--out", type=Path, default=ROOT / "_build" / "student-src")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            t0 = time.perf_counter()
            notebooks = resolve_chapters(args.chapters, args.notebooks)
            summary = build(args.out, notebooks, clean=not args.keep, discard_grades=args.discard_grades)
            for aid, s_ in summary.items():
                if s_["pending"]:
                    print(f"{aid}: {s_['chapter']}: pending (no graded items yet)")
                    continue
                items = ", ".join(f"{it['grade_id']} {it['points']:g}" for it in s_["items"])
                print(f"{aid}: {s_['chapter']}: {s_['points']:g} points ({items})")
            print(f"student notebooks in {args.out / 'release'}, instructor's material in {args.out} "
                  f"({time.perf_counter() - t0:.0f} s)")
        elif args.command == "check":
            ids = ["ch" + a.lower().removeprefix("ch") for a in args.ids]
            for aid, r in check(args.out, ids or None).items():
                print(f"{aid}: reference {r['reference']:g}/{r['total']:g}, blank {r['blank']:g}/{r['total']:g} "
                      f"({r['seconds']:.0f} s)")
        else:
            reused = student_site(args.out)
            print(f"book without solutions in {args.out}; outputs reused for {len(reused)} chapters")
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
