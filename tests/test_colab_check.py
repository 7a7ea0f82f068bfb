"""tests/colab_check.py's own logic, without building its environment (make colab-check runs it whole)."""
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import colab_check  # noqa: E402

from utils import colab  # noqa: E402


def _notebook_whose_setup_printed(text):
    setup = nbformat.v4.new_code_cell(colab.setup_source(colab.repository_url()))
    setup.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Chapter"), setup])


def test_a_failed_install_is_named_even_in_pips_colours():
    # %pip colours its errors; the check must see them through the terminal codes
    nb = _notebook_whose_setup_printed(
        "Looking in indexes: ...\n\x1b[31mERROR: No matching distribution found for numpy>=99\x1b[0m\n")
    with pytest.raises(RuntimeError, match=r"%pip failed:\nERROR: No matching distribution found for numpy>=99$"):
        colab_check.pip_failed(Path("01_language_models.ipynb"), nb)


def test_a_clean_install_passes():
    nb = _notebook_whose_setup_printed("Successfully installed scaling-laws-from-scratch-0.1.0\n")
    colab_check.pip_failed(Path("01_language_models.ipynb"), nb)  # raises nothing


def test_a_set_up_cell_other_than_the_generated_one_is_refused_before_any_environment(tmp_path):
    src = tmp_path / "01_language_models.ipynb"
    nb = _notebook_whose_setup_printed("")
    nb.cells[1].source = nb.cells[1].source.replace("scaling-laws-from-scratch", "scaling-law-from-scratch")
    nbformat.write(nb, src)
    (tmp_path / "out").mkdir()
    with pytest.raises(ValueError, match="set-up cell is not the one utils.colab generates"):
        colab_check.colab_notebook(src, tmp_path / "out", "file://localhost/checkout")
