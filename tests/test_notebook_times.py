"""tests/notebook_times.py: per-notebook seconds from nbval's JUnit XML."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import notebook_times  # noqa: E402

XML = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="notebooks.01_language_models.ipynb" name="Cell 0" time="1.5" />
<testcase classname="notebooks.01_language_models.ipynb" name="Cell 1" time="2.25" />
<testcase classname="notebooks.06_scaling_laws.ipynb" name="Cell 0" time="10.0" />
</testsuite></testsuites>"""


def test_seconds_are_summed_per_notebook(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(XML)
    assert notebook_times.notebook_seconds(str(path)) == {"01_language_models.ipynb": 3.75,
                                                          "06_scaling_laws.ipynb": 10.0}


def test_a_report_without_cases_is_refused(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text('<testsuites><testsuite name="pytest"/></testsuites>')
    with pytest.raises(ValueError, match="no test cases"):
        notebook_times.notebook_seconds(str(path))


def _executed_cache(tmp_path, seconds):
    """A jupyter-cache directory holding one executed notebook, as the book build leaves it."""
    import nbformat
    from jupyter_cache import get_cache

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    path = tmp_path / "one.ipynb"
    nbformat.write(nb, path)
    cache = get_cache(tmp_path / "cache")

    from jupyter_cache.base import CacheBundleIn
    executed = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1", outputs=[], execution_count=1)])
    cache.cache_notebook_bundle(CacheBundleIn(executed, str(path), data={"execution_seconds": seconds}),
                                check_validity=False)
    return tmp_path / "cache", path


def test_seconds_come_from_the_book_builds_execution_cache(tmp_path, capsys):
    cache, path = _executed_cache(tmp_path, 12.5)
    times = notebook_times.cached_seconds(str(cache), [path])
    assert list(times) == ["one.ipynb"] and times["one.ipynb"][0] == 12.5


def test_a_notebook_the_build_did_not_execute_is_named(tmp_path):
    cache, path = _executed_cache(tmp_path, 1.0)
    import nbformat
    other = tmp_path / "two.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("2 + 2")]), other)
    with pytest.raises(ValueError, match="two.ipynb"):
        notebook_times.cached_seconds(str(cache), [path, other])
    with pytest.raises(ValueError, match="not a jupyter-cache directory"):
        notebook_times.cached_seconds(str(tmp_path / "nothing"), [path])
