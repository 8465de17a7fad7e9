"""int8 dynamic quantization for CPU inference.

Linear layers keep int8 weights (per output channel) and quantize their inputs on the fly; everything else
(embeddings, LayerNorms, attention softmax, the tied masked-LM decoder) stays in floating point. Module names
do not change, so the quantized model's structure still matches the checkpoint's. The int8 GEMM library
(torch's quantized engines: fbgemm, x86, oneDNN) is the one a one-time measurement finds fastest here; oneDNN
where it takes full-range inputs (below) unless another engine is more than 10% faster.

On CPUs with VNNI or AMX, oneDNN's layers quantize their inputs to the full 8 bits (FullRangeLinear): torch's
dynamic Linear keeps inputs to 7 bits (reduce_range) so that older kernels' 16-bit intermediate sums cannot
saturate, which VNNI/AMX kernels do not have; the full range halves the quantization error, and with AMX
oneDNN's int8 GEMM runs faster than the x86/fbgemm engines. The switch of the fast CPU path
(ROBERTA_PRELAYERNORM_CPU_LINEAR=0, or cpu_linear.set_fast_path(False)) keeps torch's stock layers.
"""

from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager
from functools import lru_cache
from typing import Optional

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

from .cpu_linear import best_times
from .errors import SettingError


def quantize_int8(model: nn.Module, inplace: bool = False) -> nn.Module:
    """A copy of `model` (or the model itself with inplace=True) with int8 dynamic-quantized Linear layers.

    For CPU inference only: quantized layers have no gradients and run on the CPU.
    """
    if model.training:
        raise SettingError("quantize_int8 is for inference: call model.eval() first")
    if model.device.type != "cpu":
        raise SettingError(f"quantize_int8 runs on the CPU; the model is on {model.device}")
    if model.dtype != torch.float32:
        raise SettingError(f"quantize_int8 needs a float32 model (its int8 layers take float32 inputs); this one is "
                           f"{model.dtype}: drop torch_dtype, or cast with model.float() first")
    model = model if inplace else copy.deepcopy(model)
    tied = model.get_output_embeddings()  # shares its weight with the embeddings: left in float
    names = [name for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and module is not tied]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, quantize_linear(getattr(parent, child)))
    model.register_forward_pre_hook(_check_float32)
    return model


def _check_float32(model: nn.Module, args) -> None:
    """A quantized model cast to another dtype (model.to(torch.bfloat16)) fails inside torch's int8 kernels
    with a bare dtype message; say what happened instead."""
    if model.dtype != torch.float32:
        raise SettingError(f"this model has int8 layers, which take float32, but it was cast to {model.dtype}; "
                           "use model.float(), or quantize a model kept in float32")


def full_range_available() -> bool:
    """oneDNN's int8 kernels here take full-range 8-bit inputs exactly (VNNI or AMX) and the fast CPU path is on."""
    from . import cpu_linear

    return (cpu_linear._setting_now() != "0" and cpu_linear.ops_available()
            and (getattr(torch.cpu, "_is_vnni_supported", lambda: False)()
                 or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()))


class FullRangeLinear(DynamicQuantizedLinear):
    """torch's dynamic quantized Linear with its inputs quantized to 8 bits, not 7 (see the module doc)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params,
                                                  reduce_range=False).to(x.dtype)


def quantize_linear(linear: nn.Linear) -> nn.Module:
    """`linear` as the int8 dynamic quantized Linear that quantize_int8 makes: the fastest engine's, per output
    channel where the engine has it, full-range on oneDNN where full_range_available()."""
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    engine = fastest_int8_engine()
    qconfig = per_channel_dynamic_qconfig if engine in ("fbgemm", "x86", "onednn") else default_dynamic_qconfig
    with quantized_engine(engine):  # weights are packed for the engine current at conversion
        return quantized_linear(linear, qconfig, full_range=engine == "onednn" and full_range_available())


def quantized_linear(linear: nn.Linear, qconfig, full_range: bool = False) -> nn.Module:
    """`linear` as torch's dynamic quantized Linear (FullRangeLinear with `full_range`), packed for the current
    quantized engine."""
    plain = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
    plain.weight, plain.bias = linear.weight, linear.bias  # from_float takes plain nn.Linear only
    plain.qconfig = qconfig
    with warnings.catch_warnings():  # torch marks its quantized tensor types deprecated; they still work
        warnings.simplefilter("ignore")
        return (FullRangeLinear if full_range else DynamicQuantizedLinear).from_float(plain)


@contextmanager
def quantized_engine(engine: str):
    """torch.backends.quantized.engine set to `engine` inside the block."""
    saved = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = saved


def fastest_int8_engine() -> str:
    """The quantized engine whose dynamic int8 Linear (as quantize_int8 makes it) is fastest on this machine,
    measured once per process and setting of the fast-path switch."""
    return _fastest_engine(full_range_available())


@lru_cache(maxsize=None)
def _fastest_engine(full_range: bool, tokens: int = 256, features: int = 768, repeats: int = 10) -> str:
    """Best of `repeats` interleaved runs of each engine's layer on a (tokens x features) @
    (features x 4 features) product, with a new input each run (oneDNN is measured full-range with `full_range`)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig

    candidates = [e for e in ("x86", "fbgemm", "onednn") if e in torch.backends.quantized.supported_engines]
    if len(candidates) < 2:
        return candidates[0] if candidates else torch.backends.quantized.engine
    g = torch.Generator().manual_seed(0)
    linear = nn.Linear(features, 4 * features)
    inputs = torch.randn(repeats, tokens, features, generator=g)  # a new input each run, as in use
    layers = {}
    for engine in candidates:
        with quantized_engine(engine):
            layers[engine] = quantized_linear(linear, per_channel_dynamic_qconfig,
                                              full_range=full_range and engine == "onednn")
    best = best_times(layers, list(inputs), warmups=2)
    return pick_engine(best, preferred="onednn" if full_range else None)


def pick_engine(best: dict, preferred: Optional[str] = None, margin: float = 1.1) -> str:
    """The engine of `best` (engine -> best seconds) with the least time, but `preferred` unless another is more than
    `margin` times faster. oneDNN with full-range inputs is preferred where it has them: it halves the quantization
    error, and a one-time measurement on a busy machine should not trade that for noise (engines within a few
    percent of each other swapped places from run to run)."""
    fastest = min(best, key=best.get)
    if preferred in best and best[preferred] <= margin * best[fastest]:
        return preferred
    return fastest
