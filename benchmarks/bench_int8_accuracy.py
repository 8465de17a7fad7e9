"""What int8 dynamic quantization and bf16 inference change on a trained classifier: logits, predictions,
accuracy.

    roberta-prelayernorm demo --output /tmp/demo
    python benchmarks/bench_int8_accuracy.py --model /tmp/demo/sequence-classification/best \
        --data src/roberta_prelayernorm/data/sentiment_validation.jsonl

--data is JSON Lines of {"text": ..., "label": class name or index}, as `train` reads it.
"""

from __future__ import annotations

import argparse
import json

import torch

import roberta_prelayernorm as rp
from common import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a trained sequence-classification folder")
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    with open(args.data, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    tokenizer = rp.AutoTokenizer.from_pretrained(args.model)
    fp32 = rp.AutoModelForSequenceClassification.from_pretrained(args.model)
    int8 = rp.AutoModelForSequenceClassification.from_pretrained(args.model, quantize="int8")
    bf16 = rp.AutoModelForSequenceClassification.from_pretrained(args.model, torch_dtype=torch.bfloat16)
    labels = torch.tensor([r["label"] if isinstance(r["label"], int) else fp32.config.label2id[r["label"]]
                           for r in records])
    logits = {}
    with torch.inference_mode():
        for name, model in (("fp32", fp32), ("int8", int8), ("bf16", bf16)):
            parts = []
            for start in range(0, len(records), 32):
                batch = tokenizer([r["text"] for r in records[start:start + 32]], padding=True, truncation=True,
                                  return_tensors="pt")
                parts.append(model(**batch).logits.float())
            logits[name] = torch.cat(parts)
    accuracy = {name: (value.argmax(-1) == labels).float().mean().item() for name, value in logits.items()}
    agree = {name: (logits["fp32"].argmax(-1) == value.argmax(-1)).float().mean().item()
             for name, value in logits.items()}
    row = {
        "examples": len(records), "logit_scale": round(logits["fp32"].abs().max().item(), 3),
        **{f"accuracy_{name}": round(value, 4) for name, value in accuracy.items()},
        **{f"prediction_agreement_{name}": round(agree[name], 4) for name in ("int8", "bf16")},
        **{f"max_abs_logit_change_{name}": round((logits["fp32"] - logits[name]).abs().max().item(), 4)
           for name in ("int8", "bf16")},
    }
    print(json.dumps(row))
    write_results("bench_int8_accuracy", [row], vars(args))


if __name__ == "__main__":
    main()
