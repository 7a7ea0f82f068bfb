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
