"""Training curves as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(history: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Losses (left) and validation HR@10 / NDCG@10 (right) per epoch."""
    if not history:
        return
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name in history[-1]["losses"]:
        ax_loss.plot(epochs, [h["losses"].get(name, float("nan")) for h in history], label=name)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_yscale("log")
    ax_loss.legend(fontsize=8)
    for metric in ("HR@10", "NDCG@10"):
        ax_metric.plot(epochs, [h["valid"][metric] for h in history], label=f"valid {metric}")
    ax_metric.set_xlabel("epoch")
    ax_metric.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
