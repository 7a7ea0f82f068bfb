import warnings

import pytest
import torch

from utils import runtime


def test_profile_defaults_to_quick_without_a_gpu(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    expected = "full" if torch.cuda.is_available() else "quick"
    assert runtime.profile() == expected


@pytest.mark.parametrize("value", ["quick", "full", " FULL "])
def test_profile_environment_variable_overrides(monkeypatch, value):
    monkeypatch.setenv("COURSE_PROFILE", value)
    assert runtime.profile() == value.strip().lower()


def test_unknown_profile_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "medium")
    with pytest.raises(ValueError, match="quick"):
        runtime.profile()


def test_pick_follows_the_profile(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    assert runtime.pick(quick=1, full=2) == 1
    monkeypatch.setenv("COURSE_PROFILE", "full")
    assert runtime.pick(quick=1, full=2) == 2


def test_device_override_and_unavailable_devices(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert runtime.pick_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert runtime.pick_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        runtime.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            runtime.pick_device("cuda")


def test_cache_dir_is_created_under_the_configured_root(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "c"))
    path = runtime.cache_dir("runs", "abc")
    assert path == tmp_path / "c" / "runs" / "abc" and path.is_dir()


def test_seed_everything_makes_torch_reproducible():
    runtime.seed_everything(3)
    a = torch.rand(4)
    runtime.seed_everything(3)
    assert torch.equal(a, torch.rand(4))


def test_report_names_device_and_profile(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    info = runtime.report()
    out = capsys.readouterr().out
    assert info["profile"] == "quick" and "profile: quick" in out and "device:" in out


def test_report_prints_no_absolute_cache_path(capsys, monkeypatch, tmp_path):
    # The website shows this output: the builder's directories must not appear on it.
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "builder" / ".cache"))
    info = runtime.report()
    out = capsys.readouterr().out
    assert "cache: $COURSE_CACHE_DIR" in out and str(tmp_path) not in out
    assert info["cache"] == str(tmp_path / "builder" / ".cache")

    monkeypatch.delenv("COURSE_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    info = runtime.report()
    out = capsys.readouterr().out
    assert "cache: ~/.cache/scaling-laws-from-scratch" in out and str(tmp_path) not in out
    assert info["cache"] == str(tmp_path / "home" / ".cache" / "scaling-laws-from-scratch")


def test_in_colab_follows_the_colab_module(monkeypatch):
    import sys
    import types

    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert runtime.in_colab() is False
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert runtime.in_colab() is True


def test_usable_cores_counts_this_process_cores():
    import os
    assert 1 <= runtime.usable_cores() <= (os.cpu_count() or 1)


def test_warnings_from_a_notebook_cell_print_without_the_cells_file(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # restored after the test
    runtime.show_cell_warnings_plainly()
    installed = warnings.formatwarning
    runtime.show_cell_warnings_plainly()  # a second set-up cell changes nothing
    assert warnings.formatwarning is installed
    message = "the fitted floor E = 1e-09 is negligible"
    for cell in ("/tmp/ipykernel_4242/1234567890.py", "<ipython-input-3-5d2c0a1b>"):
        assert warnings.formatwarning(message, RuntimeWarning, cell, 7) == f"RuntimeWarning: {message}\n"
    elsewhere = warnings.formatwarning(message, RuntimeWarning, "/home/me/analysis.py", 12)
    assert elsewhere.startswith(f"/home/me/analysis.py:12: RuntimeWarning: {message}")


def test_report_makes_cell_warnings_plain(capsys, monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    runtime.report()
    assert warnings.formatwarning("m", UserWarning, "/tmp/ipykernel_1/2.py", 1) == "UserWarning: m\n"


def test_device_error_names_the_flag_or_the_variable(monkeypatch):
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    with pytest.raises(ValueError, match="drop --device cuda"):
        runtime.pick_device("cuda")
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    with pytest.raises(ValueError, match="unset COURSE_DEVICE"):
        runtime.pick_device()


def test_tiny_profile_is_explained(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "tiny")
    with pytest.raises(ValueError, match=r"utils.sweep --profile tiny"):
        runtime.profile()


def test_unwritable_cache_names_the_variable(monkeypatch, tmp_path):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(runtime.Path, "mkdir", denied)  # root could write anywhere: simulate the refusal
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(PermissionError, match="COURSE_CACHE_DIR points where you cannot write"):
        runtime.cache_dir()
    monkeypatch.delenv("COURSE_CACHE_DIR")
    with pytest.raises(PermissionError, match="default under HOME"):
        runtime.cache_dir()
