"""The training losses, read from the device in batches of steps rather than after every step.

Each step leaves its micro-batches' losses and an all-finite flag on the device. They are read together, in
one wait, where something needs them: the log, an evaluation, a checkpoint, the end of the run. Meanwhile a
non-finite step skips its own update on the device (the fused AdamW's `found_inf`), so the host never stops
to look. Where the optimizer cannot skip on the device, every step is read before its update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import UserError


class NonFiniteLossError(UserError, RuntimeError):
    """The loss became NaN or infinite (training stops unless on_nonfinite="skip")."""


@dataclass
class Step:
    """One optimizer step's losses on the device: (micro-batches + 1,), the last the all-finite flag."""

    step: int
    epoch: int
    values: torch.Tensor
    indices: list  # each micro-batch's feature indices
    weights: list  # each micro-batch's share of the step's examples (on every process)


# Skipped steps warned about one by one; after these, every WARN_EVERY-th.
WARN_FIRST, WARN_EVERY = 10, 100


class StepLosses:
    """The pending steps' losses; under on_nonfinite="skip", the count of skipped steps (`skipped`, those of the
    run before a resume included), a warning for each (rate-limited), and an error once more than `max_skipped`
    steps were skipped (the run can then no longer end under its allowed share)."""

    def __init__(self, on_nonfinite: str, warn, skipped: int = 0, max_skipped: Optional[int] = None):
        self.on_nonfinite, self.warn = on_nonfinite, warn
        self.skipped, self.max_skipped = skipped, max_skipped
        self.pending: list[Step] = []
        self.running: list[float] = []  # each settled step's loss (NaN: skipped) since the last take_mean

    def add(self, step: Step) -> None:
        self.pending.append(step)

    def settle(self, state) -> bool:
        """Read the pending steps (one wait); count those that updated into state.steps_taken, raise
        NonFiniteLossError at the first non-finite one (on_nonfinite="stop") or report it as skipped. Returns
        whether the last one was finite."""
        if not self.pending:
            return True
        flat = torch.cat([s.values for s in self.pending]).tolist()  # the one wait
        finite, at = True, 0
        for s in self.pending:
            *losses, finite = flat[at:at + len(s.indices) + 1]
            at += len(s.indices) + 1
            if finite:
                state.steps_taken += 1
                self.running.append(sum(loss * w for loss, w in zip(losses, s.weights)))
                continue
            bad = next((j for j, loss in enumerate(losses) if not math.isfinite(loss)), None)
            where = (f"non-finite loss ({losses[bad]}) at step {s.step} (epoch {s.epoch}, batch {bad} of the step's "
                     f"{len(losses)}, features {s.indices[bad][:8]}{'...' if len(s.indices[bad]) > 8 else ''})"
                     if bad is not None else f"non-finite loss on another process at step {s.step} (epoch {s.epoch})")
            if self.on_nonfinite == "stop":
                self.pending = []
                raise NonFiniteLossError(where + "; lower the learning rate, use precision='fp32' or 'bf16', or pass "
                                                 "on_nonfinite='skip' to skip such steps")
            self.skipped += 1
            self.running.append(float("nan"))
            if self.max_skipped is not None and self.skipped > self.max_skipped:
                self.pending = []
                raise NonFiniteLossError(f"{self.skipped} steps skipped for a non-finite loss, more than the "
                                         f"{self.max_skipped} that max_skipped_share allows (the last: {where}); "
                                         "check the data and the settings (learning rate, precision)")
            if self.skipped <= WARN_FIRST or self.skipped % WARN_EVERY == 0:
                more = (f"; further skips are reported every {WARN_EVERY}th" if self.skipped == WARN_FIRST else "")
                self.warn(f"{where}: step skipped ({self.skipped} skipped so far{more})")
        self.pending = []
        return bool(finite)

    def take_mean(self) -> float:
        """The mean loss of the steps settled since the last call (NaN if one was skipped)."""
        mean = sum(self.running) / len(self.running) if self.running else float("nan")
        self.running = []
        return mean
