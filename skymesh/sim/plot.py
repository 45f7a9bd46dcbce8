"""Figures like the PASEOS paper's 4-7: state of charge and temperature of the fleet (median and percentile bands),
the share in eclipse and processing, and communication status, over time. matplotlib (Agg) is imported here only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skymesh.sim.engine import SimResult

__all__ = ["plot_result"]


def plot_result(result: SimResult, path: str | Path, busy_activity: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = result.times_s / 3600.0
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)

    def bands(ax: object, values: np.ndarray, label: str, color: str) -> None:
        if values.shape[1] == 0 or np.all(np.isnan(values)):
            return
        for lo, hi, alpha in ((0, 100, 0.15), (10, 90, 0.25), (25, 75, 0.4)):
            ax.fill_between(hours, np.nanpercentile(values, lo, axis=1), np.nanpercentile(values, hi, axis=1),  # type: ignore[attr-defined]
                            color=color, alpha=alpha, linewidth=0)  # fmt: skip
        ax.plot(hours, np.nanmedian(values, axis=1), color=color, label=f"{label} (median)")  # type: ignore[attr-defined]
        ax.set_ylabel(label)  # type: ignore[attr-defined]
        ax.legend(loc="upper right", fontsize=8)  # type: ignore[attr-defined]

    bands(axes[0], result.soc, "state of charge", "tab:green")
    bands(axes[1], result.temperature_k, "temperature [K]", "tab:red")
    n = max(1, result.soc.shape[1])
    axes[2].plot(hours, result.in_eclipse.sum(axis=1) / n, label="share in eclipse", color="k")
    busy = busy_activity or result.activity_names[0]
    if busy in result.activity_names:
        k = result.activity_names.index(busy)
        axes[2].plot(hours, (result.activity == k).sum(axis=1) / n, label=f"share {busy}", color="tab:blue")
    axes[2].set_ylim(-0.05, 1.05)
    axes[2].set_ylabel("share of fleet")
    axes[2].legend(loc="upper right", fontsize=8)
    gs_only = (result.in_contact & ~result.isl_contact).sum(axis=1)
    isl_only = (result.isl_contact & ~result.in_contact).sum(axis=1)
    both = (result.in_contact & result.isl_contact).sum(axis=1)
    none = n - gs_only - isl_only - both
    axes[3].stackplot(hours, none, gs_only, isl_only, both, labels=["no link", "ground only", "ISL only", "both"])
    axes[3].set_ylabel("spacecraft")
    axes[3].set_xlabel("time [h]")
    axes[3].legend(loc="upper right", fontsize=8)
    fig.suptitle(f"{n} spacecraft from {result.epoch.isoformat()}")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
