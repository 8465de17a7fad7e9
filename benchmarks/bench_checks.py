"""What the input checks cost: forward passes with the checks as shipped, and with them switched off.

    python benchmarks/bench_checks.py [--pairs 30]

Small inputs show the fixed cost best, so a base-size model runs one 16-token sentence and a 32 x 66 batch.
"""

from __future__ import annotations

import argparse
import json

import torch

import roberta_prelayernorm.modeling as modeling
from common import BASE, interleaved, machine, same_weights, sst2_like_batch, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=30)
    args = parser.parse_args()
    _, model = same_weights("RobertaPreLayerNormForSequenceClassification", BASE)
    checked = modeling.check_inputs

    def unchecked(config, input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                  past_length=0):
        shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
        return tuple(shape)

    print(f"machine: {machine()}")
    ids, mask = sst2_like_batch()
    rows = []
    for name, (input_ids, attention_mask) in {"one sentence 1 x 16": (ids[:1, :16], mask[:1, :16]),
                                              "ragged batch 32 x 66": (ids, mask)}.items():
        def run(check):
            def call():
                modeling.check_inputs = check
                model(input_ids, attention_mask)
            return call

        with torch.inference_mode():
            result = interleaved(run(unchecked), run(checked), args.pairs if "one" in name else 5)
        modeling.check_inputs = checked
        rows.append({"workload": name, "checks_overhead_cpu": round(1 / result["speedup_cpu"] - 1, 4),
                     "checks_overhead_wall": round(1 / result["speedup_wall"] - 1, 4),
                     "unchecked_wall_s": round(result["theirs_wall_s"], 4),
                     "checked_wall_s": round(result["ours_wall_s"], 4)})
        print(json.dumps(rows[-1]))
    write_results("bench_checks", rows, vars(args))


if __name__ == "__main__":
    main()
