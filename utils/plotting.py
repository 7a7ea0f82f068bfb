"""One figure style for the whole course: sizes, colours, log axes, and the "fit ± band" look."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, NullFormatter

#: Colour cycle used by every chapter (colour-blind safe, Okabe & Ito palette).
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

_STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.prop_cycle": plt.cycler(color=COLORS),
}


def use_style() -> None:
    """Apply the course style to matplotlib (call once in a notebook's set-up cell)."""
    plt.rcParams.update(_STYLE)


def new_axes(ncols: int = 1, nrows: int = 1, width: float = 6.4, height: float = 4.0, **kw):
    """``fig, ax`` (or an array of axes) in the course style, sized per panel."""
    use_style()
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=True,
                        constrained_layout=True, **kw)


def loglog(ax, xlabel: str, ylabel: str, title: str | None = None) -> None:
    """Make ``ax`` log–log with labelled axes; the title, if any, says the axes are logarithmic."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(f"{title} (log–log)")


def plain_log_labels(ax, y_format: str = "{:g}", hide_x_minor: bool = False) -> None:
    """Label a logarithmic y axis with plain numbers (2, 2.5, 3) instead of powers of ten.

    Loss axes span less than a decade, where matplotlib's default labels read 2×10⁰.
    ``y_format`` formats each tick (e.g. ``"{:.3g}"``); ``hide_x_minor`` drops the x axis's
    minor labels, so a log x axis shows labelled decades only. Used in Chapters 5 and 6.
    """
    fmt = FuncFormatter(lambda v, _: y_format.format(v))
    ax.yaxis.set_major_formatter(fmt)
    ax.yaxis.set_minor_formatter(fmt)
    if hide_x_minor:
        ax.xaxis.set_minor_formatter(NullFormatter())


def fit_band(ax, x, y, lo=None, hi=None, label: str | None = None, color=None, **kw):
    """Draw a fitted curve ``y(x)`` as a line and, if given, its band ``[lo, hi]`` shaded.

    Returns the line. ``lo`` and ``hi`` come together (e.g. ``*fit.band(x)``); every array must
    have the length of ``x``. Chapters 5 and 6 draw every fit this way.
    """
    if (lo is None) != (hi is None):
        raise ValueError("fit_band needs both edges of the band, lo and hi, or neither; got only one.")
    x = np.asarray(x)
    arrays = {"y": y} if lo is None else {"y": y, "lo": lo, "hi": hi}
    for name, arr in arrays.items():
        if np.shape(arr) != x.shape:
            raise ValueError(f"fit_band: {name} has shape {np.shape(arr)} but x has shape {x.shape}; "
                             "evaluate the fit and its band on the same x.")
    (line,) = ax.plot(x, y, label=label, color=color, lw=2, **kw)
    if lo is not None:
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    return line


def points(ax, x, y, label: str | None = None, color=None, **kw):
    """Draw measured data as markers (the counterpart of :func:`fit_band`); returns the collection."""
    kw.setdefault("s", 28)
    kw.setdefault("zorder", 3)
    return ax.scatter(x, y, label=label, color=color, edgecolor="white", linewidth=0.6, **kw)
