"""curves.png: the training loss, the validation loss and the validation metric of a run, by step."""

from __future__ import annotations

import math

from ..files import atomic_write


def plot_curves(history: list[dict], task_name: str, metric: str, path: str) -> bool:
    """Draw the curves of `history` (metrics.jsonl's entries) into `path`; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    # A step's NaN loss is NaN in memory, null in metrics.jsonl (strict JSON), read back by a resumed run.
    train = [e for e in history if e["split"] == "train" and e["loss"] is not None and not math.isnan(e["loss"])]
    valid = [e for e in history if e["split"] == "validation"]
    panels = 2 if valid and metric != "loss" else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    ax = axes[0][0]
    ax.plot([e["step"] for e in train], [e["loss"] for e in train], label="training loss")
    if valid:
        ax.plot([e["step"] for e in valid], [e["loss"] for e in valid], "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"{task_name}: loss")
    ax.legend()
    if panels == 2:
        ax = axes[0][1]
        ax.plot([e["step"] for e in valid], [e.get(metric) for e in valid], "o-", color="C2")
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.set_title(f"validation {metric}")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return True
