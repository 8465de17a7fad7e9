"""Training throughput: tokens per second and model FLOPs utilisation (MFU).

Model FLOPs of a training step are 3x the forward's (backward is twice the forward), counting the matrix
products a masked-LM step needs: per token and layer 24·C² (projections and feed-forward with the usual 4·C
intermediate: 2·(4C² + 2·C·I)) plus 4·T·C for attention scores and context; the LM head (C² + C·V) only at the
predicted fraction of tokens (all of them without sparse prediction). Embeddings and norms are left out.
"""

from __future__ import annotations

from typing import Optional

# Dense bf16 tensor-core peak FLOP/s (no sparsity), by a substring of torch.cuda.get_device_name().
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100 SXM": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 756e12,  # unknown H100 form factor: the lowest
    "A100": 312e12,
    "A10G": 70e12,
    "L40S": 362e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
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
    """Counts tokens between reports; `report()` gives tokens/s (and MFU when the peak is known)."""

    def __init__(self, flops_per_token: float, peak: Optional[float], world_size: int = 1):
        import time

        self.clock = time.perf_counter
        self.flops_per_token, self.peak, self.world_size = flops_per_token, peak, world_size
        self.tokens, self.start = 0, self.clock()

    def add(self, tokens: int) -> None:
        self.tokens += tokens

    def report(self) -> dict:
        """{"tokens_per_s": all processes together, "mfu": per device} since the last report; then resets."""
        seconds = max(self.clock() - self.start, 1e-9)
        rate = self.tokens * self.world_size / seconds
        out = {"tokens_per_s": round(rate, 1)}
        if self.peak:
            out["mfu"] = round(rate / self.world_size * self.flops_per_token / self.peak, 4)
        self.tokens, self.start = 0, self.clock()
        return out
