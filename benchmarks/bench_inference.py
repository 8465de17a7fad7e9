"""Inference throughput against transformers 4.57.6 on the same weights: ragged and full batches.

    python benchmarks/bench_inference.py [--size base|large] [--pairs 5] [--int8]

Reports useful (non-padding) tokens/s for both, the median speed-up over interleaved pairs in CPU seconds
and in wall seconds, and the largest logit difference on real tokens. On ragged batches also this package's
attention in length buckets against one re-padded block (ROBERTA_PRELAYERNORM_VARLEN=0), interleaved pairs too.
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from common import BASE, LARGE, full_batch, interleaved, machine, same_weights, sst2_like_batch, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("base", "large"), default="base")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--int8", action="store_true", help="also time our int8 dynamic quantization option")
    parser.add_argument("--workloads", default="ragged,full")
    args = parser.parse_args()
    size = BASE if args.size == "base" else LARGE
    theirs, ours = same_weights("RobertaPreLayerNormForSequenceClassification", size)
    quantized = None
    if args.int8:
        from roberta_prelayernorm.quantization import quantize_int8

        quantized = quantize_int8(ours)
    print(f"machine: {machine()}\nmodel: {args.size} {size}, fp32")
    workloads = {"ragged": sst2_like_batch(), "full": full_batch()}
    rows = []
    for name in args.workloads.split(","):
        input_ids, attention_mask = workloads[name]
        useful = int(attention_mask.sum())
        padding = 1 - useful / attention_mask.numel()
        with torch.inference_mode():
            diff = (ours(input_ids, attention_mask).logits - theirs(input_ids, attention_mask).logits).abs().max()
            result = interleaved(lambda: theirs(input_ids, attention_mask), lambda: ours(input_ids, attention_mask),
                                 args.pairs)
            row = {
                "workload": name, "shape": list(input_ids.shape), "padding": round(padding, 3),
                "theirs_tok_s": round(useful / result["theirs_wall_s"], 1),
                "ours_tok_s": round(useful / result["ours_wall_s"], 1),
                **{k: round(v, 3) for k, v in result.items()}, "max_logit_diff": float(diff),
            }
            if quantized is not None:
                q = interleaved(lambda: theirs(input_ids, attention_mask),
                                lambda: quantized(input_ids, attention_mask), args.pairs)
                qdiff = (quantized(input_ids, attention_mask).logits - theirs(input_ids, attention_mask).logits)
                row.update({"int8_speedup_cpu": round(q["speedup_cpu"], 3), "int8_speedup_wall": round(
                    q["speedup_wall"], 3), "int8_max_logit_diff": float(qdiff.abs().max())})
            if padding:
                for label, model in (("fp32", ours), ("int8", quantized)):
                    if model is not None:
                        b = interleaved(lambda: one_block(model, input_ids, attention_mask),
                                        lambda: model(input_ids, attention_mask), args.pairs)
                        row.update({f"buckets_speedup_{label}_cpu": round(b["speedup_cpu"], 3),
                                    f"buckets_speedup_{label}_wall": round(b["speedup_wall"], 3)})
        rows.append(row)
        print(json.dumps(row))
    write_results("bench_inference", rows, vars(args), variant=args.size)


def one_block(model, input_ids, attention_mask):
    """The model's forward with attention on one re-padded block (no length buckets)."""
    from roberta_prelayernorm.modeling import VARLEN_ENV

    saved = os.environ.get(VARLEN_ENV)
    os.environ[VARLEN_ENV] = "0"
    try:
        return model(input_ids, attention_mask)
    finally:
        if saved is None:
            del os.environ[VARLEN_ENV]
        else:
            os.environ[VARLEN_ENV] = saved


if __name__ == "__main__":
    main()
