"""The masked-LM pre-training step (forward, backward, AdamW) against transformers on the same weights.

    python benchmarks/bench_pretraining.py [--size base|large] [--rates 0.15 0.4] [--pairs 5] [--threads N]

Batches of packed 128-token blocks (no padding), masked as the trainer masks them (the paper's per-row count,
every chosen token replaced by <mask>). This package runs with sparse prediction as its trainer does (the LM
head and the last layer's queries and feed-forward at the static capacity of prediction slots, ceil(rate x
128) per row); transformers computes every position. GPUs: benchmarks/bench_gpu.py. Reports the median
speed-up (CPU and wall seconds, interleaved pairs), checks both give the same loss (eval mode, to 1e-5), and
the bytes of activations each keeps for the backward pass (saved tensors, counted once per storage).
"""

from __future__ import annotations

import argparse
import json

import torch

from bench_training import saved_activation_bytes
from common import BASE, LARGE, full_batch, interleaved, machine, same_weights, write_results

MASK_ID = 50264


def masked_batch(rate: float, batch_size: int, length: int, seed: int = 0):
    """(input_ids, attention_mask, labels, prediction_positions) of full blocks, masked as the trainer does."""
    from roberta_prelayernorm.modeling import positions_where
    from roberta_prelayernorm.tasks.collate import capacity, mask_tokens

    input_ids, attention_mask = full_batch(batch_size, length, seed)
    g = torch.Generator().manual_seed(seed + 1)
    masked, labels = mask_tokens(input_ids, torch.zeros_like(input_ids), rate, "mask", MASK_ID, 50265, g)
    return masked, attention_mask, labels, positions_where(labels != -100, capacity(rate, length))


def train_step(model, batch):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step():
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def compare_cpu(args, size) -> None:
    theirs, ours = same_weights("RobertaPreLayerNormForMaskedLM", size)
    print(f"machine: {machine()}\nmodel: {args.size} {size}, fp32")
    batches, losses = {}, {}
    for rate in args.rates:  # the same loss on the same weights, before training changes them
        input_ids, attention_mask, labels, positions = masked_batch(rate, args.batch_size, args.length)
        batches[rate] = dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        with torch.no_grad():
            losses[rate] = (theirs.eval()(**batches[rate]).loss.item(),
                            ours.eval()(**batches[rate], prediction_positions=positions).loss.item())
        assert abs(losses[rate][0] - losses[rate][1]) <= 1e-5, f"rate {rate}: losses differ: {losses[rate]}"
        batches[rate] = (batches[rate], {**batches[rate], "prediction_positions": positions})
    theirs.train(), ours.train()
    rows = []
    for rate, (batch, sparse_batch) in batches.items():
        input_ids, labels = batch["input_ids"], batch["labels"]
        loss_theirs, loss_ours = losses[rate]
        steps = {"theirs": train_step(theirs, batch), "ours": train_step(ours, sparse_batch)}
        result = interleaved(steps["theirs"], steps["ours"], args.pairs)
        memory = {name: saved_activation_bytes(step) for name, step in steps.items()}
        rows.append({
            "workload": "mlm-train-step", "shape": list(input_ids.shape), "rate": rate,
            "masked": int((labels != -100).sum()), "loss": round(loss_ours, 6),
            "loss_diff": abs(loss_theirs - loss_ours),
            **{k: round(v, 3) for k, v in result.items()},
            "theirs_saved_activations_mb": round(memory["theirs"] / 2**20, 1),
            "ours_saved_activations_mb": round(memory["ours"] / 2**20, 1),
        })
        print(json.dumps(rows[-1]))
    write_results("bench_pretraining", rows, vars(args), variant=args.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("base", "large"), default="base")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.15, 0.4])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: torch's); 1 gives steadier CPU seconds on a shared machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    compare_cpu(args, BASE if args.size == "base" else LARGE)


if __name__ == "__main__":
    main()
