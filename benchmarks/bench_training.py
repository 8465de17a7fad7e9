"""One training step (forward, backward, AdamW) against transformers on the same weights.

    python benchmarks/bench_training.py [--size base|large] [--workload ragged|full] [--pairs 5] [--checkpointing]

Reports the median speed-up (CPU and wall seconds, interleaved pairs) and the bytes of activations each
library keeps for the backward pass (saved tensors, counted once per storage): the training memory that
depends on the implementation rather than on the weights and optimizer state, which are the same.
"""

from __future__ import annotations

import argparse
import json

import torch

from common import BASE, LARGE, full_batch, interleaved, machine, same_weights, sst2_like_batch, write_results


def saved_activation_bytes(step) -> int:
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(storages.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("base", "large"), default="base")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--workload", choices=("ragged", "full"), default="ragged",
                        help="32 sentences with ~60%% padding, or 8 x 128 without padding")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing in both")
    args = parser.parse_args()
    size = BASE if args.size == "base" else LARGE
    theirs, ours = same_weights("RobertaPreLayerNormForSequenceClassification", size)
    input_ids, attention_mask = sst2_like_batch() if args.workload == "ragged" else full_batch()
    labels = torch.randint(0, 2, (input_ids.shape[0],), generator=torch.Generator().manual_seed(0))
    steps = {}
    for name, model in (("theirs", theirs), ("ours", ours)):
        model.train()
        if args.checkpointing:
            model.gradient_checkpointing_enable()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

        def step(model=model, optimizer=optimizer):
            loss = model(input_ids, attention_mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        steps[name] = step
    useful = int(attention_mask.sum())
    result = interleaved(steps["theirs"], steps["ours"], args.pairs)
    memory = {name: saved_activation_bytes(step) for name, step in steps.items()}
    print(f"machine: {machine()}\nmodel: {args.size} {size}, fp32, gradient checkpointing: {args.checkpointing}")
    row = {
        "workload": f"train-step-{args.workload}", "shape": list(input_ids.shape),
        "padding": round(1 - useful / attention_mask.numel(), 3),
        **{k: round(v, 3) for k, v in result.items()},
        "theirs_saved_activations_mb": round(memory["theirs"] / 2**20, 1),
        "ours_saved_activations_mb": round(memory["ours"] / 2**20, 1),
    }
    print(json.dumps(row))
    variant = f"{args.size}-{args.workload}" + ("-checkpointing" if args.checkpointing else "")
    write_results("bench_training", [row], vars(args), variant=variant)


if __name__ == "__main__":
    main()
