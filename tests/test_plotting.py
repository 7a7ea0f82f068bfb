import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from utils import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_use_style_sets_the_course_colours():
    plotting.use_style()
    cycle = [c["color"] for c in plt.rcParams["axes.prop_cycle"]]
    assert cycle == plotting.COLORS


def test_new_axes_sizes_each_panel():
    fig, axes = plotting.new_axes(ncols=2, width=4.0, height=3.0)
    assert len(axes) == 2
    assert tuple(fig.get_size_inches()) == pytest.approx((8.0, 3.0))


def test_loglog_sets_log_axes_labels_and_says_so_in_the_title():
    fig, ax = plotting.new_axes()
    plotting.loglog(ax, "parameters N", "loss (nats)", "L(N)")
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_xlabel() == "parameters N" and ax.get_ylabel() == "loss (nats)"
    assert "log–log" in ax.get_title()


def test_fit_band_draws_the_line_and_its_band():
    fig, ax = plotting.new_axes()
    x = np.linspace(1, 10, 20)
    line = plotting.fit_band(ax, x, 2 * x, 1.5 * x, 2.5 * x, label="fit")
    assert np.array_equal(line.get_ydata(), 2 * x) and line.get_label() == "fit"
    assert len(ax.collections) == 1  # the shaded band
    plotting.fit_band(ax, x, 3 * x)  # no band
    assert len(ax.collections) == 1


def test_fit_band_refuses_half_a_band_or_mismatched_arrays():
    fig, ax = plotting.new_axes()
    x = np.arange(5.0)
    with pytest.raises(ValueError, match="both edges"):
        plotting.fit_band(ax, x, x, lo=x)
    with pytest.raises(ValueError, match="shape"):
        plotting.fit_band(ax, x, x[:4])
    with pytest.raises(ValueError, match="hi has shape"):
        plotting.fit_band(ax, x, x, x, x[:3])


def test_points_draws_one_marker_per_measurement():
    fig, ax = plotting.new_axes()
    coll = plotting.points(ax, [1, 2, 3], [3, 2, 1], label="runs")
    assert coll.get_offsets().shape == (3, 2) and coll.get_label() == "runs"


def test_plain_log_labels_writes_plain_numbers_and_can_hide_x_minor_labels():
    fig, ax = plotting.new_axes()
    ax.set_xscale("log")
    ax.set_yscale("log")
    plotting.plain_log_labels(ax, "{:.3g}", hide_x_minor=True)
    assert ax.yaxis.get_major_formatter()(2.4567, 0) == "2.46"
    assert ax.yaxis.get_minor_formatter()(3.0, 0) == "3"
    assert ax.xaxis.get_minor_formatter()(20.0, 0) == ""
    plotting.plain_log_labels(ax)
    assert ax.yaxis.get_major_formatter()(2.5, 0) == "2.5"
