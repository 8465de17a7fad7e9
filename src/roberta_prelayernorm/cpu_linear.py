"""A faster CPU Linear: oneDNN's GEMM on prepacked weights where it beats PyTorch's default.

PyTorch's fp32 `nn.Linear` runs MKL's sgemm; on AMD CPUs MKL keeps to its AVX2 kernels, while oneDNN (shipped
inside PyTorch) uses AVX-512 and runs the same GEMM faster (README, Speed: the GEMM roofline table). `Linear`
is an `nn.Linear` (same parameters, state-dict keys, `isinstance` checks, PEFT/LoRA targeting) whose CPU inference
(calls under `torch.no_grad()` or `torch.inference_mode()`, as the pipelines and evaluation make them) runs through
oneDNN with the weight reordered once into oneDNN's blocked layout and cached.

Training (any call that autograd records) keeps the default GEMM: the optimizer changes every weight every
step, so each step would reorder every weight again (and its transpose for grad_input), and a fine-tuning
step measured slower that way than with the default GEMM. oneDNN's fused bias + GELU epilogue is not used
either: its gain on a GEMM was small, and a Linear that applied the activation itself would break tools that
wrap it, such as LoRA, which adds its update to the layer's output.

When it runs: fp32 on CPUs where a one-time measurement (once per process, a few milliseconds) shows oneDNN
faster than the default GEMM, and bf16 wherever oneDNN has bf16 kernels (AVX512_BF16 / AMX). Everywhere else
(CUDA and other devices, builds without oneDNN, autocast, torch.compile / torch.export / ONNX tracing,
functorch transforms, other dtypes) the plain `F.linear` runs, unchanged.

Switch: the environment variable ROBERTA_PRELAYERNORM_CPU_LINEAR=auto (default) | 1 (use it wherever the ops
exist, no measurement) | 0 (never), or `set_fast_path(True | False | None)` at run time.

The cache is checked on every call, three ways. The weight's version counter catches in-place changes that
autograd sees (optimizer steps, `load_state_dict`, `copy_` and `init.*` under no_grad). Its storage, held by a
weak reference (so a freed storage's address reused by another weight is never taken for it), with offset,
strides, dtype, device and shape, catches `to()`, `half()`, replaced parameters and `weight.data = ...`. A
sample of the weight's values, at least one element in every row and every column, compared bit for bit with
the values the copy was packed from, catches writes no counter sees: in-place writes through `weight.data` (PEFT's
`merge_and_unload`, transformers-style `_init_weights`, re-initialisation), numpy views, fused optimizers.
Such a write is seen when it changes a whole row, a whole column or every element, which every re-initialiser,
merge and optimizer step does; one that changes a few scattered elements through `.data` and none sampled is
not: call `clear_cache()` after it. The sample costs a gather of max(rows, columns) elements and a compare per
call: several times the counters' cost, which shows in a forward pass only at the smallest inputs (a sentence
or two), and not at all at batch sizes.
"""

from __future__ import annotations

import functools
import os
import platform
import time
import weakref
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.weak import WeakIdKeyDictionary

from .errors import SettingError


ENV = "ROBERTA_PRELAYERNORM_CPU_LINEAR"
_override: Optional[bool] = None  # set_fast_path
_measured: Optional[bool] = None  # the one-time fp32 measurement
_packed = WeakIdKeyDictionary()  # weight -> (key, packed W)


def set_fast_path(enabled: Optional[bool]) -> None:
    """True: use oneDNN wherever its ops exist; False: never; None: back to the environment variable / auto."""
    global _override
    _override = enabled


def clear_cache() -> None:
    """Forget every prepacked weight (needed only after `.data` writes to scattered elements: see the module doc)."""
    _packed.clear()


def _setting() -> str:
    value = os.environ.get(ENV, "auto").strip().lower()
    if value not in ("auto", "1", "0"):
        raise SettingError(f"{ENV}={value!r} is not one of 'auto', '1', '0'")
    return value


def _setting_now() -> str:
    """The switch in force: set_fast_path's override, else the environment variable."""
    return "1" if _override is True else "0" if _override is False else _setting()


@functools.cache  # facts of the process, asked on every Linear call
def ops_available() -> bool:
    """oneDNN's prepacked linear is in this build, on an x86 CPU."""
    return (platform.machine().lower() in ("x86_64", "amd64", "x86", "i686")
            and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise") and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))


def fast_path_enabled(dtype: torch.dtype = torch.float32) -> bool:
    """Whether CPU Linear layers of this dtype take the oneDNN path (decided once per process)."""
    global _measured
    setting = _setting_now()
    if setting == "0" or not ops_available():
        return False
    if dtype == torch.bfloat16:
        return _bf16_supported()
    if dtype != torch.float32:
        return False
    if setting == "1":
        return True
    if _measured is None:
        _measured = measure_speedup() > 1.05
    return _measured


@functools.cache
def _bf16_supported() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def measure_speedup(tokens: int = 256, features: int = 768, repeats: int = 5) -> float:
    """Default GEMM time / oneDNN time on one (tokens x features) @ (features x 4 features) product: best of
    `repeats` interleaved runs each, with the threads torch uses."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, features, generator=g)
    w = torch.randn(4 * features, features, generator=g)
    b = torch.zeros(4 * features)
    packed = torch.ops.mkldnn._reorder_linear_weight(w, None)
    best = best_times({"default": lambda x: F.linear(x, w, b),
                       "onednn": lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")},
                      [x] * repeats)
    return best["default"] / best["onednn"]


def best_times(runs: dict, inputs: list, warmups: int = 1) -> dict:
    """The best wall time of each run(x) over `inputs`, the runs interleaved on each input, after `warmups`
    untimed calls each (first calls create kernels). Serves every one-time measurement of a CPU path."""
    best = dict.fromkeys(runs, float("inf"))
    with torch.no_grad():
        for run in runs.values():
            for x in inputs[:warmups]:
                run(x)
        for x in inputs:
            for name, run in runs.items():
                start = time.perf_counter()
                run(x)
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def _sample_index(rows: int, columns: int) -> torch.Tensor:
    """Flat (row-major) indices of max(rows, columns) elements of a (rows, columns) matrix, at least one in every
    row and every column (wrapped diagonals)."""
    i = torch.arange(max(rows, columns))
    return (i % rows) * columns + i % columns


def _prepacked(weight: torch.Tensor) -> torch.Tensor:
    """oneDNN's blocked copy of `weight` (out, in); cached until the weight changes (see the module doc)."""
    key = (weight._version, weight.storage_offset(), weight.stride(), weight.dtype, weight.device,
           tuple(weight.shape))
    storage = weight.untyped_storage()
    entry = _packed.get(weight)
    if (entry is not None and entry[0] == key and entry[1]() is storage
            and torch.equal(_bits(weight.take(entry[2])), entry[3])):  # no autograd here: see _usable
        return entry[4]
    # Plain tensors even when called under inference_mode, so later calls outside it may use them.
    with torch.inference_mode(False), torch.no_grad():
        index = _sample_index(*weight.shape)
        sample = _bits(weight.detach().take(index))
        entry = _packed[weight] = (key, weakref.ref(storage), index, sample,
                                   torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None))
    return entry[4]


def _bits(values: torch.Tensor) -> torch.Tensor:
    """The values' bit patterns, so a NaN compares equal to itself."""
    return values.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[values.element_size()])


def _onednn_linear(x, packed, bias):
    return torch.ops.mkldnn._linear_pointwise(x if x.is_contiguous() else x.contiguous(), packed, bias, "none", [], "")


def tracing() -> bool:
    """A compiler, tracer or exporter is recording the call: it must see plain, input-independent code."""
    return (torch.compiler.is_compiling() or torch.jit.is_tracing()
            or (hasattr(torch.compiler, "is_exporting") and torch.compiler.is_exporting())
            or torch.onnx.is_in_onnx_export())


def _usable(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> bool:
    """The oneDNN path serves this call: CPU, matching float dtypes, no autocast, tracing, functorch or
    autograd (training keeps the default GEMM: see the module doc)."""
    return (x.device.type == "cpu" and weight.device.type == "cpu"  # first: the cheapest test, off for CUDA
            and not tracing()  # compilers and exporters see the plain F.linear only
            and x.dim() >= 2 and x.numel() > 0
            and x.dtype == weight.dtype and (bias is None or bias.dtype == weight.dtype)
            and not weight.is_mkldnn and not x.is_mkldnn and weight.layout == torch.strided
            and not weight.is_inference()  # no version counter to key the cache on
            and not torch.is_autocast_enabled("cpu")
            and not torch._C._are_functorch_transforms_active()
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                                  or (bias is not None and bias.requires_grad)))
            and fast_path_enabled(x.dtype))


class Linear(nn.Linear):
    """`nn.Linear` whose CPU inference (under no_grad / inference_mode) uses oneDNN's GEMM where that is faster."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _usable(x, self.weight, self.bias):
            return F.linear(x, self.weight, self.bias)
        return _onednn_linear(x, _prepacked(self.weight), self.bias)
