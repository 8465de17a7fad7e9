"""TrainState: what the training loop changes and a checkpoint keeps, passed around as one object."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def linear_schedule(warmup: int, total: int):
    """LR factor: 0 -> 1 over `warmup` steps, then linearly down to 0 at `total`."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


@dataclass
class TrainState:
    """The model, its optimizer, LR scheduler and gradient scaler, and the position in the data: `step`
    optimizer steps done, `step_in_epoch` of them in epoch `epoch`; `steps_taken` of them made an update (not
    skipped for a non-finite loss)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    steps_taken: int = 0


def fused_on(params: list) -> bool:
    """Whether the update runs as torch's fused AdamW: on CUDA, one kernel for the whole update, which can also
    skip itself on the device (`found_inf`) without the host looking. Not on CPUs: the fused CPU kernel writes
    the weights without bumping their version counters, so the CPU Linear's prepacked copies would see its
    writes only through their sample of each weight (cpu_linear); the foreach update bumps them."""
    return bool(params) and all(p.is_cuda for p in params)


def decay_groups(model: torch.nn.Module) -> tuple[list, list]:
    """(decayed, not decayed) trainable parameters, by transformers' Trainer's rule: no weight decay for the
    parameters of LayerNorm modules (whatever they are named: `lm_head.layer_norm` too) or for biases."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad and id(param) not in seen:  # a tied parameter once
                seen.add(id(param))
                (no_decay if isinstance(module, torch.nn.LayerNorm) or name == "bias" else decay).append(param)
    return decay, no_decay


def make_optimizer(model: torch.nn.Module, config, total: int):
    """AdamW (decay_groups: no decay on biases and LayerNorm weights, as in BERT and RoBERTa training) with
    linear warm-up and decay over `total` steps: (optimizer, scheduler)."""
    decay, no_decay = decay_groups(model)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.learning_rate,
                                  betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_epsilon,
                                  **({"fused": True} if fused_on(decay + no_decay) else {"foreach": True}))
    warmup = config.warmup_steps if config.warmup_steps is not None else int(config.warmup_ratio * total)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(warmup, total))
