"""The checks the graded test cells use (utils/grading.py): forbidden helpers, exact counts, the scan."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils import grading, scaling
from utils.model import Block, GPTConfig
from utils.scaling import fit_power_law

X = np.logspace(1, 3, 6)
Y = 2.0 * X**-0.5


def test_a_forbidden_function_raises_by_module_and_by_imported_name_then_comes_back():
    with pytest.raises(grading.ForbiddenHelperError, match="utils.scaling.fit_power_law"):
        with grading.forbid("utils.scaling.fit_power_law"):
            scaling.fit_power_law(X, Y)
    with pytest.raises(grading.ForbiddenHelperError):
        with grading.forbid("utils.scaling.fit_power_law"):
            fit_power_law(X, Y)  # the name this module imported
    assert scaling.fit_power_law is fit_power_law
    assert fit_power_law(X, Y).b == pytest.approx(-0.5)


def test_a_caught_forbidden_call_still_fails_when_the_block_ends():
    def sneaky():
        try:
            return scaling.huber(np.zeros(3))
        except Exception:
            return None

    with pytest.raises(grading.ForbiddenHelperError, match="called utils.scaling.huber"):
        with grading.forbid("utils.scaling.huber"):
            sneaky()


def test_forbidden_methods_and_torch_functions_cover_every_instance():
    block = Block(GPTConfig(vocab_size=10, n_ctx=8, n_layer=1, n_head=2, n_embd=8))
    h = torch.randn(1, 3, 8)
    with pytest.raises(grading.ForbiddenHelperError):
        with grading.forbid("utils.model.Block.forward"):
            block(h)
    with pytest.raises(grading.ForbiddenHelperError):
        with grading.forbid("torch.nn.functional.scaled_dot_product_attention"):
            F.scaled_dot_product_attention(h, h, h)
    assert block(h).shape == (1, 3, 8) and F.scaled_dot_product_attention(h, h, h).shape == (1, 3, 8)
    assert "forward" in Block.__dict__


def test_allow_if_lets_some_calls_through_and_counts_them():
    one_fit = {"utils.scaling.fit_saturating_power_law": lambda args: args["n_bootstrap"] == 0}
    x = np.logspace(1, 4, 8)
    with grading.forbid("utils.scaling.fit_saturating_power_law", allow_if=one_fit) as fits:
        scaling.fit_saturating_power_law(x, 1 + x**-0.3, n_bootstrap=0)
        with pytest.raises(grading.ForbiddenHelperError):
            scaling.fit_saturating_power_law(x, 1 + x**-0.3, n_bootstrap=50)
        fits.calls.clear()  # the test caught it on purpose
    assert fits.allowed_calls["utils.scaling.fit_saturating_power_law"] == 1


def test_unknown_names_are_refused_with_a_sentence():
    with pytest.raises(ValueError, match="cannot find 'utils.scaling.no_such_function'"):
        with grading.forbid("utils.scaling.no_such_function"):
            pass
    with pytest.raises(ValueError, match="at least one"):
        grading.forbid()


def test_check_int_wants_an_exact_integer():
    class AlwaysEqual(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    grading.check_int(12, 12)
    grading.check_int(np.int64(12), 12)
    for wrong in (AlwaysEqual(0), 12.0, 13, "12"):
        with pytest.raises(AssertionError):
            grading.check_int(wrong, 12)


def _notebook(tmp_path, *sources):
    path = tmp_path / "submitted.ipynb"
    cells = [{"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None} for s in sources]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


@pytest.mark.parametrize("line", [
    "get_ipython().input_transformers_post.append(lambda lines: lines)",
    "ip = get_ipython(); ip.set_custom_exc((AssertionError,), lambda *a: None)",
    "import sys; sys.modules['utils.grading'] = None",
    "scaling.fit_power_law = lambda x, y: None",
    "import builtins; builtins.abs = lambda x: 0",
    "from utils import grading",
])
def test_scan_flags_tampering(tmp_path, line):
    found = grading.scan([_notebook(tmp_path, "import numpy as np", line)])
    assert len(found) == 1 and "cell 1" in found[0], found


def test_scan_passes_an_honest_answer(tmp_path):
    honest = "def f(x):\n    y = np.log(x)\n    if y == 0:\n        return 0\n    return float(np.exp(y))\n"
    assert grading.scan([_notebook(tmp_path, honest)]) == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        grading.scan([tmp_path / "missing"])
