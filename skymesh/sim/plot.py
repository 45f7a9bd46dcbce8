"""Figures like the PASEOS paper's 4-7: state of charge and temperature of the fleet (median and labelled percentile
bands), the share in eclipse and running the busy activity, and communication status, over time.

Panels without data are left out (no temperature panel when no spacecraft has a thermal model, no link panel
without stations or links); legends sit to the right of the axes, never on the data. With one or two spacecraft the
bands are replaced by one line per spacecraft, and eclipses are shaded. matplotlib (Agg) is imported here only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skymesh.sim.engine import SimResult

__all__ = ["plot_result"]

_BANDS = ((0, 100, 0.15, "min-max"), (10, 90, 0.25, "10-90 %"), (25, 75, 0.4, "25-75 %"))


def _legend(ax: Any) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, borderaxespad=0.0)


def _shade_eclipse(ax: Any, hours: np.ndarray, eclipsed: np.ndarray, color: str, label: str) -> None:
    edges = np.diff(np.r_[0, eclipsed.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for j, (a, b) in enumerate(zip(starts, ends, strict=True)):
        ax.axvspan(hours[int(a)], hours[min(int(b), hours.size - 1)], color=color, alpha=0.12, linewidth=0,
                   label=label if j == 0 else None)  # fmt: skip


def plot_result(result: SimResult, path: str | Path, busy_activity: str | None = None, note: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = result.times_s / 3600.0
    n = result.soc.shape[1]
    few = n <= 2
    has_temperature = n > 0 and bool(np.any(np.isfinite(result.temperature_k)))
    has_links = bool(np.any(result.in_contact) or np.any(result.isl_contact))
    panels = ["soc", *(["temperature"] if has_temperature else []), "share", *(["links"] if has_links else [])]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.4 * len(panels) + 0.8), sharex=True, squeeze=False)
    ax_of = dict(zip(panels, axes[:, 0], strict=True))

    def series(ax: Any, values: np.ndarray, label: str, unit: str, color: str) -> None:
        if few:
            for k in range(n):
                (line,) = ax.plot(hours, values[:, k], label=result.names[k], linewidth=1.0)
                _shade_eclipse(ax, hours, result.in_eclipse[:, k], line.get_color(), f"{result.names[k]} in eclipse")
        else:
            for lo, hi, alpha, band in _BANDS:
                ax.fill_between(hours, np.nanpercentile(values, lo, axis=1), np.nanpercentile(values, hi, axis=1),
                                color=color, alpha=alpha, linewidth=0, label=band)  # fmt: skip
            ax.plot(hours, np.nanmedian(values, axis=1), color=color, label="median")
        ax.set_ylabel(f"{label}{f' [{unit}]' if unit else ''}")
        _legend(ax)

    series(ax_of["soc"], result.soc, "state of charge", "", "tab:green")
    ax_of["soc"].set_ylim(-0.02, 1.02)
    if has_temperature:
        with np.errstate(all="ignore"):
            series(ax_of["temperature"], result.temperature_k, "temperature", "K", "tab:red")
    ax = ax_of["share"]
    m = max(1, n)
    ax.plot(hours, result.in_eclipse.sum(axis=1) / m, label="in eclipse", color="k")
    busy = busy_activity or result.activity_names[0]
    if busy in result.activity_names:
        k = result.activity_names.index(busy)
        ax.plot(hours, (result.activity == k).sum(axis=1) / m, label=f"running {busy}", color="tab:blue")
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("share of fleet")
    _legend(ax)
    if has_links:
        ax = ax_of["links"]
        gs_only = (result.in_contact & ~result.isl_contact).sum(axis=1)
        isl_only = (result.isl_contact & ~result.in_contact).sum(axis=1)
        both = (result.in_contact & result.isl_contact).sum(axis=1)
        none = n - gs_only - isl_only - both
        layers = [(none, "no link", "0.9"), (gs_only, "ground only", "tab:orange"),
                  (isl_only, "inter-satellite only", "tab:purple"), (both, "both", "tab:brown")]  # fmt: skip
        shown = [layer for layer in layers if np.any(layer[0] > 0)]  # no legend entry for a category never seen
        ax.stackplot(hours, *(layer[0] for layer in shown), labels=[layer[1] for layer in shown],
                     colors=[layer[2] for layer in shown])  # fmt: skip
        ax.set_ylabel("spacecraft")
        _legend(ax)
    axes[-1, 0].set_xlabel(f"hours since {result.epoch.isoformat()}")
    title = f"{n} spacecraft" + (f" ({note})" if note else "")
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
