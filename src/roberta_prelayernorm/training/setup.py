"""Setting up a run: this process's place in a torchrun job, its device, the precision's autocast, and the
seeded random streams data order and masking draw from."""

from __future__ import annotations

import contextlib
import math
import os
import threading
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist

from ..errors import SettingError


@dataclass
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def setup_distributed() -> Distributed:
    """Join the process group torchrun describes in the environment (NCCL on GPUs, gloo on CPUs)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def choose_device(device: Optional[str] = None, local_rank: Optional[int] = None) -> torch.device:
    """`device` if given (checked: devices.as_device), else the GPU when CUDA is available, else the CPU;
    a GPU without an index ("cuda") is this process's: cuda:LOCAL_RANK under torchrun, cuda:0 alone."""
    from ..devices import as_device

    chosen = as_device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if chosen.type == "cuda" and chosen.index is None:
        chosen = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if local_rank is None else local_rank)
    return chosen


def training_device(device: Optional[str], local_rank: int, precision: str) -> torch.device:
    """choose_device, made this process's current CUDA device (NCCL collectives, all_gather_object too, use
    it); bf16 on a GPU without it is refused."""
    device = choose_device(device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise SettingError(f"precision='bf16' is not supported by {torch.cuda.get_device_name(device)}; "
                               "use 'fp16' or 'fp32'")
    return device


def compile_modules(train_module: torch.nn.Module, model: torch.nn.Module):
    """torch.compile'd (training module, evaluation module): the training one may be the DDP wrapper of `model`
    (DDP's optimizer splits the graph at its buckets). Batches come in few shapes (collate's padded_width, the
    masked-LM capacity), each compiled once; the recompile limit is raised to hold them all."""
    import torch._dynamo

    limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
    setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), 64))
    compiled = torch.compile(model)
    return (compiled if train_module is model else torch.compile(train_module)), compiled


def autocast(precision: str, device: torch.device):
    """A function giving the context that runs forward passes at `precision` ("fp32": no autocast)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def seed_for(*parts: int) -> int:
    """A 63-bit seed mixed from integers (seed, epoch, step, ...): the same parts, the same stream."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (part + 0x9E3779B97F4A7C15 + (value << 6) + (value >> 2))) & (2**63 - 1)
    return value


def generator(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed_for(*parts))


class EpochPlan:
    """The steps of one epoch for one process, each a list of grad_accum micro-batches of feature indices.

    A global batch is batch_size * world_size consecutive indices of the epoch's shuffle; rank r takes the
    r-th slice, so N processes see together exactly what one process with N times the batch sees. The
    shuffle is one int64 tensor and each step's indices are made when asked for, so a corpus of many millions
    of blocks costs 8 bytes per block, not Python lists.
    """

    def __init__(self, count: int, shuffle: torch.Generator, batch_size: int, grad_accum: int, process: Distributed):
        world = process.world_size
        self.total, self.count = count, count - count % world  # every rank gets equal shares (drops < world)
        self.shuffle, self.order = shuffle, None
        self.lock = threading.Lock()  # the shuffle is drawn once, whichever thread (the prefetcher's) asks first
        self.size, self.grad_accum, self.rank, self.world = batch_size * world, grad_accum, process.rank, world
        self.batches = math.ceil(self.count / self.size)

    def __len__(self) -> int:
        return math.ceil(self.batches / self.grad_accum)

    def __getitem__(self, k: int) -> list[list[int]]:
        if not 0 <= k < len(self):
            raise IndexError(k)
        with self.lock:
            if self.order is None:
                self.order = torch.randperm(self.total, generator=self.shuffle)[:self.count]
        step = []
        for b in range(k * self.grad_accum, min((k + 1) * self.grad_accum, self.batches)):
            batch = self.order[b * self.size:(b + 1) * self.size]
            share = len(batch) // self.world
            step.append(batch[self.rank * share:(self.rank + 1) * share].tolist())
        return step
