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


def _notebook_in_another_format(path, url):
    """A one-cell notebook written as json.dumps writes it (keys unsorted, sources as one string)."""
    nb = {"cells": [{"cell_type": "code", "id": "setup", "source": colab.setup_source(url),
                     "metadata": {"tags": ["hide-input"]}, "outputs": [], "execution_count": None},
                    {"cell_type": "markdown", "id": "prose", "metadata": {}, "source": "# A title\n\nTwo lines."}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def test_sync_makes_the_first_code_cell_the_setup_cell(tmp_path):
    path = tmp_path / "n.ipynb"
    _notebook_in_another_format(path, "https://old.example/x")
    assert colab.sync([path], "https://new.example/y") == [path]
    assert _source(_load(path)["cells"][0]) == colab.setup_source("https://new.example/y")
    assert colab.sync([path], "https://new.example/y") == []


def test_sync_writes_the_notebook_as_nbformat_does(tmp_path):
    import nbformat

    path = tmp_path / "n.ipynb"
    _notebook_in_another_format(path, "https://old.example/x")
    colab.sync([path], "https://new.example/y")
    written = path.read_text(encoding="utf-8")
    assert written == nbformat.writes(nbformat.read(path, as_version=4)) + "\n"
    assert '"source": [' in written and written.index('"cell_type"') < written.index('"id"')  # lines; sorted keys


def _clear_output(path):
    """What `make strip` (jupyter nbconvert --clear-output --inplace) writes for the notebook at ``path``."""
    from nbconvert.exporters import NotebookExporter
    from traitlets.config import Config

    exporter = NotebookExporter(config=Config({"ClearOutputPreprocessor": {"enabled": True}}))
    return exporter.from_filename(str(path))[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_written_as_make_strip_and_make_sync_setup_write_it(path, tmp_path):
    committed = path.read_text(encoding="utf-8")
    stripped = _clear_output(path)
    first = next((i for i, (a, b) in enumerate(zip(stripped.splitlines(), committed.splitlines()), 1) if a != b), None)
    assert stripped == committed, (f"{path.name} is not in nbformat's JSON format (the one Jupyter and `make strip` "
                                   f"write; first difference at line {first}): run `make strip`")
    copy = tmp_path / path.name
    copy.write_text(committed, encoding="utf-8")
    url = colab.repository_url()
    assert colab.sync([copy], url + "-elsewhere") == [copy] and colab.sync([copy], url) == [copy]
    assert copy.read_text(encoding="utf-8") == committed, f"`make sync-setup` would reformat {path.name}"


FOOTER = ('<a href="https://github.com/old-owner/course/blob/main/LICENSE">MIT licence</a>; '
          '<a href="https://creativecommons.org/licenses/by/4.0/">CC BY 4.0</a>')


def test_sync_points_the_licence_link_of_the_footer_and_its_translation_at_the_repository(tmp_path):
    config, catalog = tmp_path / "_config.yml", tmp_path / "site.po"
    config.write_text(f"html:\n  extra_footer: >-\n    <p>Code under the {FOOTER}.</p>\n", encoding="utf-8")
    escaped = FOOTER.replace('"', '\\"')
    catalog.write_text(f'msgid "<p>Code under the {escaped}.</p>"\nmsgstr "<p>代码 {escaped}。</p>"\n', encoding="utf-8")
    new = "https://github.com/new-owner/fork.git"
    assert colab.sync_licence_links([config, catalog], new, "trunk") == [config, catalog]
    link = "https://github.com/new-owner/fork/blob/trunk/LICENSE"
    assert f'href="{link}"' in config.read_text() and "old-owner" not in config.read_text()
    po = catalog.read_text(encoding="utf-8")
    assert po.count(f'href=\\"{link}\\"') == 2 and "old-owner" not in po  # message and translation alike
    assert "creativecommons.org/licenses/by/4.0/" in po  # other links stay
    assert colab.sync_licence_links([config, catalog], new, "trunk") == []


def test_footer_licence_link_names_the_configured_repository():
    link = colab.licence_url(colab.repository_url(), colab.repository_branch())
    for path in [ROOT / "_config.yml", *sorted((ROOT / "locales").glob("*/LC_MESSAGES/site.po"))]:
        found = colab.LICENCE_LINK.findall(path.read_text(encoding="utf-8"))
        assert found and set(found) == {link}, f"{path.name} links the licence at {found}, not {link}: run `make sync-setup`"


def test_sync_points_the_citation_at_the_repository(tmp_path):
    citation = tmp_path / "CITATION.cff"
    citation.write_text('cff-version: 1.2.0\nrepository-code: "https://github.com/old/course"\nversion: "1"\n')
    assert colab.sync_citation(citation, "https://github.com/new/fork")
    assert citation.read_text().splitlines()[1] == 'repository-code: "https://github.com/new/fork"'
    assert not colab.sync_citation(citation, "https://github.com/new/fork")
