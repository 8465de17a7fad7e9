"""int8 dynamic quantization for CPU inference.

Linear layers keep int8 weights (per output channel) and quantize their inputs on the fly; everything else
(embeddings, LayerNorms, attention softmax, the tied masked-LM decoder) stays in floating point. Module names
do not change, so the quantized model's structure still matches the checkpoint's. The int8 GEMM library
(torch's quantized engines: fbgemm, x86, oneDNN) is the one a one-time measurement finds fastest here.
"""

from __future__ import annotations

import copy
import time
import warnings
from contextlib import contextmanager
from functools import lru_cache

import torch
from torch import nn


def quantize_int8(model: nn.Module, inplace: bool = False) -> nn.Module:
    """A copy of `model` (or the model itself with inplace=True) with int8 dynamic-quantized Linear layers.

    For CPU inference only: quantized layers have no gradients and run on the CPU.
    """
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    if model.training:
        raise ValueError("quantize_int8 is for inference: call model.eval() first")
    if model.device.type != "cpu":
        raise ValueError(f"quantize_int8 runs on the CPU; the model is on {model.device}")
    if model.dtype != torch.float32:
        raise ValueError(f"quantize_int8 needs a float32 model (its int8 layers take float32 inputs); this one is "
                         f"{model.dtype}: drop torch_dtype, or cast with model.float() first")
    model = model if inplace else copy.deepcopy(model)
    tied = model.get_output_embeddings()  # shares its weight with the embeddings: left in float
    names = [name for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and module is not tied]
    engine = fastest_int8_engine()
    qconfig = per_channel_dynamic_qconfig if engine in ("fbgemm", "x86", "onednn") else default_dynamic_qconfig
    with quantized_engine(engine):  # weights are packed for the engine current at conversion
        for name in names:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, quantized_linear(getattr(parent, child), qconfig))
    model.register_forward_pre_hook(_check_float32)
    return model


def _check_float32(model: nn.Module, args) -> None:
    """A quantized model cast to another dtype (model.to(torch.bfloat16)) fails inside torch's int8 kernels
    with a bare dtype message; say what happened instead."""
    if model.dtype != torch.float32:
        raise ValueError(f"this model has int8 layers, which take float32, but it was cast to {model.dtype}; "
                         "use model.float(), or quantize a model kept in float32")


def quantized_linear(linear: nn.Linear, qconfig) -> nn.Module:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    plain = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
    plain.weight, plain.bias = linear.weight, linear.bias  # from_float takes plain nn.Linear only
    plain.qconfig = qconfig
    with warnings.catch_warnings():  # torch marks its quantized tensor types deprecated; they still work
        warnings.simplefilter("ignore")
        return DynamicQuantizedLinear.from_float(plain)


@contextmanager
def quantized_engine(engine: str):
    """torch.backends.quantized.engine set to `engine` inside the block."""
    saved = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = saved


@lru_cache(maxsize=None)
def fastest_int8_engine(tokens: int = 256, features: int = 768, repeats: int = 5) -> str:
    """The quantized engine whose dynamic int8 Linear is fastest on this machine (measured once per process
    on a (tokens x features) @ (features x 4 features) product, best of `repeats` interleaved runs)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig

    candidates = [e for e in ("x86", "fbgemm", "onednn") if e in torch.backends.quantized.supported_engines]
    if len(candidates) < 2:
        return candidates[0] if candidates else torch.backends.quantized.engine
    g = torch.Generator().manual_seed(0)
    linear = nn.Linear(features, 4 * features)
    x = torch.randn(tokens, features, generator=g)
    layers = {}
    for engine in candidates:
        with quantized_engine(engine):
            layers[engine] = quantized_linear(linear, per_channel_dynamic_qconfig)
    best = dict.fromkeys(candidates, float("inf"))
    with torch.no_grad():
        for layer in layers.values():  # warm-up
            layer(x)
        for _ in range(repeats):
            for engine, layer in layers.items():
                start = time.perf_counter()
                layer(x)
                best[engine] = min(best[engine], time.perf_counter() - start)
    return min(best, key=best.get)
