"""int8 dynamic quantization for CPU inference.

Linear layers keep int8 weights (per output channel) and quantize their inputs on the fly; everything else
(embeddings, LayerNorms, attention softmax, the tied masked-LM decoder) stays in floating point. Module names
do not change, so the quantized model's structure still matches the checkpoint's.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn


def quantize_int8(model: nn.Module, inplace: bool = False) -> nn.Module:
    """A copy of `model` (or the model itself with inplace=True) with int8 dynamic-quantized Linear layers.

    For CPU inference only: quantized layers have no gradients and run on the CPU.
    """
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
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
    engine = torch.backends.quantized.engine
    qconfig = per_channel_dynamic_qconfig if engine in ("fbgemm", "x86") else default_dynamic_qconfig
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        linear = getattr(parent, child)
        linear.qconfig = qconfig
        with warnings.catch_warnings():  # torch marks its quantized tensor types deprecated; they still work
            warnings.simplefilter("ignore")
            setattr(parent, child, DynamicQuantizedLinear.from_float(linear))
    model.register_forward_pre_hook(_check_float32)
    return model


def _check_float32(model: nn.Module, args) -> None:
    """A quantized model cast to another dtype (model.to(torch.bfloat16)) fails inside torch's int8 kernels
    with a bare dtype message; say what happened instead."""
    if model.dtype != torch.float32:
        raise ValueError(f"this model has int8 layers, which take float32, but it was cast to {model.dtype}; "
                         "use model.float(), or quantize a model kept in float32")
