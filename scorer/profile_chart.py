"""The value profile of each group as a radar chart (PNG): the 20 categories around the circle in
the order value research draws them, each group's prevalence as a line with its 95% interval as a
band. Needs matplotlib (``pip install 'argvalues[plots]'``); importing this module without it
raises ImportError, which ``summarize`` reports."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from argvalues.contract import LABELS  # noqa: E402

#: At most this many groups share one chart (the first ones, overall included).
MAX_GROUPS = 8


def draw_profiles(summary: pd.DataFrame, path: Path) -> Path:
    """Draw every group's profile over the categories (overall first) into ``path``."""
    groups = list(dict.fromkeys(zip(summary["by"], summary["group"])))[:MAX_GROUPS]
    angles = np.linspace(0, 2 * np.pi, len(LABELS), endpoint=False)
    closed = np.append(angles, angles[:1])
    figure, axes = plt.subplots(figsize=(9, 9), subplot_kw={"projection": "polar"})
    for column, group in groups:
        rows = summary[(summary["by"] == column) & (summary["group"] == group)].set_index("value").loc[LABELS]
        name = group if not column else f"{column}={group}"
        line = np.append(rows["prevalence"].to_numpy(), rows["prevalence"].iat[0])
        low = np.append(rows["ci_low"].to_numpy(), rows["ci_low"].iat[0])
        high = np.append(rows["ci_high"].to_numpy(), rows["ci_high"].iat[0])
        plotted = axes.plot(closed, line, linewidth=1.5, label=f"{name} (n={int(rows['n'].iat[0])})")
        axes.fill_between(closed, np.nan_to_num(low), np.nan_to_num(high), alpha=0.15, color=plotted[0].get_color())
    axes.set_xticks(angles)
    axes.set_xticklabels([label.replace(": ", ":\n") for label in LABELS], fontsize=7)
    axes.set_theta_offset(np.pi / 2)
    axes.set_theta_direction(-1)
    axes.set_ylim(0, max(0.1, float(np.nanmax(summary["ci_high"].fillna(0)))) * 1.05)
    axes.set_title("Value profile: prevalence with its 95% interval", pad=24)
    axes.legend(loc="upper right", bbox_to_anchor=(1.25, 1.12), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
