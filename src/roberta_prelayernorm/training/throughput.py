"""Training throughput: tokens per second and model FLOPs utilisation (MFU).

Model FLOPs of a training step are 3x the forward's (backward is twice the forward), counting the matrix
products a masked-LM step needs: per token and layer 24·C² (projections and feed-forward with the usual 4·C
intermediate: 2·(4C² + 2·C·I)) plus 4·T·C for attention scores and context; the LM head (C² + C·V) only at the
predicted fraction of tokens (all of them without sparse prediction). Embeddings and norms are left out.
"""

from __future__ import annotations

from typing import Optional

# Dense bf16 tensor-core peak FLOP/s (no sparsity), by a substring of torch.cuda.get_device_name(); other
# GPUs: pass peak_flops (--peak-flops).
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100 80GB HBM3": 989e12,  # SXM
    "H100 SXM": 989e12,
    "H100 NVL": 835e12,
    "H100": 756e12,  # PCIe, and any other H100: the lowest
    "A100": 312e12,
    "L40S": 362e12,
}


def peak_flops(device_name: str) -> Optional[float]:
    """The bf16 peak of a GPU named like torch.cuda.get_device_name() gives, or None when not in the table."""
    for key, value in PEAK_BF16_FLOPS.items():  # the more specific names come first
        if key in device_name:
            return value
    return None


def train_flops_per_token(config, seq_len: int, predicted_fraction: float = 1.0) -> float:
    """Model FLOPs of one training step per input token (forward + backward) for a masked-LM model."""
    C, I, L, V = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    layer = 2 * (4 * C * C + 2 * C * I) + 4 * seq_len * C
    head = 2 * (C * C + C * V) * predicted_fraction
    return 3 * (L * layer + head)


class Throughput:
    """Tokens and seconds of training steps between reports (this process's); evaluation and saving are not
    counted."""

    def __init__(self, flops_per_token: float, peak: Optional[float]):
        self.flops_per_token, self.peak = flops_per_token, peak
        self.tokens, self.seconds = 0, 0.0

    def add(self, tokens: int, seconds: float) -> None:
        self.tokens += tokens
        self.seconds += seconds

    def report(self) -> dict:
        """{"tokens_per_s": ..., "mfu": ... (when the peak is known)} since the last report; then resets."""
        rate = self.tokens / max(self.seconds, 1e-9)
        out = {"tokens_per_s": rate}
        if self.peak:
            out["mfu"] = rate * self.flops_per_token / self.peak
        self.tokens, self.seconds = 0, 0.0
        return out


def run_throughput(config, model_config, task_name: str, device) -> Throughput:
    """The Throughput of a training run: `config` is its TrainingConfig; the MFU is reported where the GPU's
    peak FLOP/s is known (or given as config.peak_flops)."""
    import torch

    from ..tasks import TASKS

    task = TASKS[task_name]
    predicted = task.predicted_share(config)  # the share of tokens through the LM head
    peak = config.peak_flops
    if peak is None and device.type == "cuda":
        peak = peak_flops(torch.cuda.get_device_name(device))
    return Throughput(train_flops_per_token(model_config, config.max_length, predicted), peak)
