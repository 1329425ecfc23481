"""PR curves and latency histograms as one PNG. matplotlib is an optional extra (`pip install -e ".[eval]"`)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path

from guardproxy.evaluation.metrics import threshold_curve

INSTALL_HINT = 'pip install -e ".[eval]"'


def plotting_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_plot(
    path: Path,
    curves: Mapping[str, tuple[Sequence[float], Sequence[bool], tuple[float, float] | None]],
    latencies_ms: Mapping[str, Sequence[float]],
    title: str,
) -> None:
    """`curves`: view name -> (scores, truth, configured operating point as (recall, precision) or None)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window, never need a display
    import matplotlib.pyplot as plt

    figure, (pr_axes, latency_axes) = plt.subplots(1, 2, figsize=(12, 5))
    try:
        for name, (scores, truth, operating_point) in curves.items():
            points = threshold_curve(scores, truth) if any(truth) else []
            if not points:
                continue
            recall = [0.0, *(p.recall for p in points)]
            precision = [points[0].precision, *(p.precision for p in points)]
            (line,) = pr_axes.step(recall, precision, where="pre", label=name)
            if operating_point is not None:
                pr_axes.plot(*operating_point, marker="o", color=line.get_color())
        pr_axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02))
        pr_axes.set_title("Precision-recall (dot: configured threshold)")
        if pr_axes.get_legend_handles_labels()[0]:
            pr_axes.legend(loc="lower left")
        bins = _log_bins([v for values in latencies_ms.values() for v in values])
        for name, values in latencies_ms.items():
            if values and bins:
                latency_axes.hist(values, bins=bins, histtype="step", label=name)
        # Detector latencies span orders of magnitude (a regex vs. a model): a log axis shows both.
        latency_axes.set(xlabel="ms per detect call (log scale)", ylabel="records", xscale="log")
        latency_axes.set_title("Latency")
        if latency_axes.get_legend_handles_labels()[0]:
            latency_axes.legend()
        figure.suptitle(title)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)


def _log_bins(values: Sequence[float], count: int = 40) -> list[float]:
    positive = [v for v in values if v > 0]
    if not positive:
        return []
    low, high = min(positive), max(positive)
    if high <= low * 1.01:
        low, high = low / 1.1, high * 1.1
    return [low * (high / low) ** (i / count) for i in range(count + 1)]
