"""Load time of a large (24 x 1024, the efficient_mlm size) checkpoint, and import time.

    python benchmarks/bench_load.py [--pairs 3]

The checkpoint is written once (model.safetensors, about 1.4 GB) to a temporary folder; each library's
from_pretrained loads it in turn, interleaved. Import time is measured in fresh interpreters.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from common import EFFICIENT_MLM, LARGE, interleaved, machine, write_results


def import_seconds(statement: str, runs: int = 5) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    return statistics.median(
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(runs)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    import transformers

    import roberta_prelayernorm as rp

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as folder:
        config = transformers.RobertaPreLayerNormConfig(**EFFICIENT_MLM, **LARGE)
        with torch.device("meta"):
            skeleton = transformers.RobertaPreLayerNormForMaskedLM(config)
        model = skeleton.to_empty(device="cpu")
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.02)
        model.save_pretrained(folder)
        del model, skeleton
        result = interleaved(
            lambda: transformers.RobertaPreLayerNormForMaskedLM.from_pretrained(folder),
            lambda: rp.RobertaPreLayerNormForMaskedLM.from_pretrained(folder),
            args.pairs,
        )
    rows = [{"workload": "load-large-safetensors", "params_m": 355,
             **{k: round(v, 3) for k, v in result.items()},
             "load_time_ratio_ours_over_theirs": round(1 / result["speedup_wall"], 3)}]
    print(json.dumps(rows[-1]))
    started = time.perf_counter()
    rows.append({
        "workload": "import",
        "import roberta_prelayernorm_s": round(import_seconds("import roberta_prelayernorm"), 3),
        "import model class (loads torch)_s": round(
            import_seconds("from roberta_prelayernorm import RobertaPreLayerNormModel"), 3),
        "import transformers model class_s": round(
            import_seconds("from transformers import RobertaPreLayerNormModel"), 3),
        "measured_in_s": round(time.perf_counter() - started, 1),
    })
    print(json.dumps(rows[-1]))
    write_results("bench_load", rows, vars(args))


if __name__ == "__main__":
    main()
