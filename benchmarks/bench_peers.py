"""Inference against the peers a user would pick on a CPU: transformers (eager PyTorch) and ONNX Runtime.

    python benchmarks/bench_peers.py [--size base|large] [--rounds 7] [--workloads ragged,full] [--no-roofline]
                                     [--compile]

Same random weights everywhere: transformers' model, exported from transformers to ONNX inside this script
(dynamic batch and sequence axes, full graph optimisation; int8 by onnxruntime.quantization.quantize_dynamic),
and this package in fp32, int8 (`quantize="int8"`) and bf16 (CPUs with bf16 kernels). One process; each round
runs every system once in a rotated order; figures are medians over rounds: useful (non-padding) tokens/s,
CPU and wall seconds, and the median per-round ratio against ONNX Runtime at the same precision and against
transformers. `--compile` adds this package under torch.compile (inductor, with its CPU inference setting
`freezing`: weights folded and prepacked for oneDNN; compiled once per workload, before the rounds). Then the
GEMM roofline: the GFLOP/s each backend reaches on the base model's Linear shapes.
Needs the `bench` extra (onnxruntime, onnx, onnxscript, transformers).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time

import torch

from common import BASE, LARGE, full_batch, machine, same_weights, sst2_like_batch, write_results


def ort_session(path: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def export_transformers(model, folder: str) -> dict:
    """{"ort-fp32": session, "ort-int8": session} for transformers' `model` exported with dynamic axes."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32, int8 = os.path.join(folder, "model.onnx"), os.path.join(folder, "model-int8.onnx")
    ids, mask = full_batch(2, 16)
    model.config.return_dict = False
    with torch.no_grad():
        torch.onnx.export(model, (ids, mask), fp32, input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask")})
    model.config.return_dict = True
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
    return {"ort-fp32": ort_session(fp32), "ort-int8": ort_session(int8)}


def rounds_of(systems: dict, rounds: int) -> dict:
    """Run every system once a round, the order rotated each round; {name: [(cpu s, wall s), ...]}."""
    for fn in systems.values():  # warm-up
        fn()
    names = list(systems)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            cpu, wall = time.process_time(), time.perf_counter()
            systems[name]()
            times[name].append((time.process_time() - cpu, time.perf_counter() - wall))
    return times


def peer_table(models: dict, input_ids, attention_mask, rounds: int) -> list:
    useful = int(attention_mask.sum())
    feeds = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}

    def runner(model):
        if hasattr(model, "run"):  # an ONNX Runtime session
            return lambda: torch.from_numpy(model.run(None, feeds)[0])
        return lambda: model(input_ids, attention_mask).logits.float()

    systems = {name: runner(model) for name, model in models.items()}
    with torch.inference_mode():
        reference = systems["transformers"]()
        diffs = {name: float((fn() - reference).abs().max()) for name, fn in systems.items()}
        times = rounds_of(systems, rounds)
    rows = []
    for name, samples in times.items():
        peer = "ort-int8" if "int8" in name else "ort-fp32"
        row = {"system": name, "tok_s": round(useful / statistics.median(w for _, w in samples), 1),
               "cpu_s": round(statistics.median(c for c, _ in samples), 4),
               "wall_s": round(statistics.median(w for _, w in samples), 4), "max_logit_diff": diffs[name]}
        for label, other in (("vs_transformers", "transformers"), (f"vs_{peer}", peer)):
            if other in times and other != name:
                for kind, k in (("cpu", 0), ("wall", 1)):
                    row[f"{label}_{kind}"] = round(statistics.median(
                        o[k] / s[k] for o, s in zip(times[other], samples)), 3)
        rows.append(row)
    return rows


def roofline(size: dict, tokens: int = 1024, repeats: int = 5) -> dict:
    """GFLOP/s of each GEMM backend on the model's Linear shapes (tokens x in -> out), best of `repeats`."""
    import onnx
    import onnxruntime  # noqa: F401  (fail early without the bench extra)
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from roberta_prelayernorm.quantization import fastest_int8_engine, quantize_linear

    def onednn(x, packed):
        return torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")

    C, F = size["hidden_size"], size["intermediate_size"]
    shapes = [(C, C), (C, F), (F, C)]
    g = torch.Generator().manual_seed(0)
    results = {}
    backends = {}
    folder = tempfile.mkdtemp()
    for i, (fan_in, fan_out) in enumerate(shapes):
        x = torch.randn(tokens, fan_in, generator=g)
        w = torch.randn(fan_out, fan_in, generator=g) / fan_in ** 0.5
        xb, packed = x.bfloat16(), torch.ops.mkldnn._reorder_linear_weight(w, None)
        packed_bf16 = torch.ops.mkldnn._reorder_linear_weight(w.bfloat16(), None)
        linear = torch.nn.Linear(fan_in, fan_out, bias=False)
        linear.weight.data = w
        int8 = quantize_linear(linear)
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "gemm",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", fan_in])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", fan_out])],
                                  [numpy_helper.from_array(w.t().contiguous().numpy(), "w")])
        path = os.path.join(folder, f"gemm{i}.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
        quantize_dynamic(path, path + ".int8", weight_type=QuantType.QInt8)
        ort_fp32, ort_int8 = ort_session(path), ort_session(path + ".int8")
        feed = {"x": x.numpy()}
        backends[i] = {
            "MKL sgemm (torch.matmul)": lambda x=x, w=w: torch.matmul(x, w.t()),
            "oneDNN fp32 (prepacked)": lambda x=x, p=packed: onednn(x, p),
            "ONNX Runtime MatMul fp32": lambda s=ort_fp32, f=feed: s.run(None, f),
            "oneDNN bf16 (prepacked)": lambda x=xb, p=packed_bf16: onednn(x, p),
            f"int8 dynamic ({fastest_int8_engine()}, this package)": lambda x=x, q=int8: q(x),
            "ONNX Runtime MatMul int8 (dynamic)": lambda s=ort_int8, f=feed: s.run(None, f),
        }
    flops = sum(2 * tokens * fan_in * fan_out for fan_in, fan_out in shapes)
    with torch.no_grad():
        for name in backends[0]:
            total = 0.0
            for i in backends:
                fn = backends[i][name]
                fn()
                best = float("inf")
                for _ in range(repeats):
                    start = time.perf_counter()
                    fn()
                    best = min(best, time.perf_counter() - start)
                total += best
            results[name] = round(flops / total / 1e9, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("base", "large"), default="base")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workloads", default="ragged,full")
    parser.add_argument("--no-roofline", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also this package under torch.compile (inductor)")
    args = parser.parse_args()
    from roberta_prelayernorm import cpu_linear
    from roberta_prelayernorm.quantization import fastest_int8_engine, quantize_int8

    size = BASE if args.size == "base" else LARGE
    theirs, ours = same_weights("RobertaPreLayerNormForSequenceClassification", size)
    models = {"transformers": theirs}
    with tempfile.TemporaryDirectory() as folder:
        models.update(export_transformers(theirs, folder))
    models["ours-fp32"] = ours
    models["ours-int8"] = quantize_int8(ours)
    if cpu_linear.fast_path_enabled(torch.bfloat16):
        models["ours-bf16"] = copy.deepcopy(ours).to(torch.bfloat16)
    if args.compile:
        from torch._inductor import config as inductor

        inductor.freezing = True
        models["ours-fp32-compiled"] = torch.compile(copy.deepcopy(ours))
    print(f"machine: {machine()}")
    print(f"model: {args.size} {size}; oneDNN fp32 Linear: {cpu_linear.fast_path_enabled()}, "
          f"bf16: {'ours-bf16' in models}, int8 engine: {fastest_int8_engine()}")
    workloads = {"ragged": sst2_like_batch(), "full": full_batch()}
    rows, extra = [], {"fast_paths": {"onednn_fp32": cpu_linear.fast_path_enabled(), "bf16": "ours-bf16" in models,
                                      "int8_engine": fastest_int8_engine()}}
    for name in args.workloads.split(","):
        input_ids, attention_mask = workloads[name]
        padding = round(1 - int(attention_mask.sum()) / attention_mask.numel(), 3)
        for row in peer_table(models, input_ids, attention_mask, args.rounds):
            rows.append({"workload": name, "shape": list(input_ids.shape), "padding": padding, **row})
            print(json.dumps(rows[-1]))
    if not args.no_roofline:
        extra["roofline_gflop_s"] = roofline(BASE)
        extra["roofline_shapes"] = "1024 tokens x (768->768, 768->3072, 3072->768), base size, best of 5"
        print(json.dumps({"roofline_gflop_s": extra["roofline_gflop_s"]}))
    write_results("bench_peers", rows, vars(args), variant=args.size, **extra)


if __name__ == "__main__":
    main()
