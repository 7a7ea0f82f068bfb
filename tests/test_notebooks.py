"""Repository-level checks on the notebooks and the book's sources (no execution here;
nbval executes the notebooks)."""
import json
import re
from pathlib import Path

import pytest

from utils import colab

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found under notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    for i, cell in enumerate(_load(path)["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {i} has outputs: run `make strip`"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count: run `make strip`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_installs_from_the_configured_repository(path):
    cell = colab.first_code_cell(_load(path))
    assert cell is not None, f"{path.name} has no code cell"
    src = _source(cell)
    assert src == colab.setup_source(colab.repository_url()), (
        f"{path.name}: the first code cell must be the standard set-up cell for the URL in _config.yml "
        "(run `make sync-setup` after changing the URL)"
    )
    assert "hide-input" in cell.get("metadata", {}).get("tags", []), f"{path.name}: tag the set-up cell hide-input"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_uses_the_python3_kernel(path):
    assert _load(path)["metadata"]["kernelspec"]["name"] == "python3"


def test_every_notebook_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"file:\s*notebooks/(\S+)", toc))
    assert {p.stem for p in NOTEBOOKS} == listed


def test_every_cited_key_is_in_the_bibliography():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    sources = [p.read_text(encoding="utf-8") for p in NOTEBOOKS + sorted((ROOT / "book").glob("*.md"))]
    cited = set()
    for text in sources:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            cited.update(k.strip() for k in group.split(","))
    missing = cited - keys
    assert not missing, f"cited but not in book/references.bib: {sorted(missing)}"


def test_repository_url_is_read_from_config(tmp_path):
    cfg = tmp_path / "_config.yml"
    cfg.write_text("title: x\nrepository:\n  branch: main\n  url: https://example.org/a/b\n")
    assert colab.repository_url(cfg) == "https://example.org/a/b"
    cfg.write_text("title: x\n")
    with pytest.raises(ValueError, match="repository: url"):
        colab.repository_url(cfg)


def test_sync_makes_the_first_code_cell_the_setup_cell(tmp_path):
    nb = {"cells": [{"cell_type": "code", "source": colab.setup_source("https://old.example/x"),
                     "metadata": {}, "outputs": [], "execution_count": None}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    assert colab.sync([path], "https://new.example/y") == [path]
    assert _source(_load(path)["cells"][0]) == colab.setup_source("https://new.example/y")
    assert colab.sync([path], "https://new.example/y") == []
