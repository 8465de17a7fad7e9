"""The masked-LM pre-training step (forward, backward, AdamW) against transformers on the same weights.

    python benchmarks/bench_pretraining.py [--size base|large] [--rates 0.15 0.4] [--pairs 5] [--threads N]
    python benchmarks/bench_pretraining.py --device cuda      # bf16: tokens/s and MFU of this package

Batches of packed 128-token blocks (no padding), a `rate` of the tokens replaced by <mask> and labelled.
This package runs with sparse prediction (the LM head and the last layer's queries and feed-forward at the
masked positions only); transformers computes every position. Reports the median speed-up (CPU and wall
seconds, interleaved pairs), checks both give the same loss (eval mode, to 1e-5), and the bytes of
activations each keeps for the backward pass (saved tensors, counted once per storage).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bench_training import saved_activation_bytes
from common import BASE, LARGE, full_batch, interleaved, machine, same_weights

MASK_ID = 50264


def masked_batch(rate: float, batch_size: int, length: int, seed: int = 0):
    input_ids, attention_mask = full_batch(batch_size, length, seed)
    g = torch.Generator().manual_seed(seed + 1)
    chosen = torch.rand(input_ids.shape, generator=g) < rate
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    return input_ids.masked_fill(chosen, MASK_ID), attention_mask, labels


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
    ours.config.sparse_prediction = True
    print(f"machine: {machine()}\nmodel: {args.size} {size}, fp32")
    batches, losses = {}, {}
    for rate in args.rates:  # the same loss on the same weights, before training changes them
        input_ids, attention_mask, labels = masked_batch(rate, args.batch_size, args.length)
        batches[rate] = dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        with torch.no_grad():
            losses[rate] = theirs.eval()(**batches[rate]).loss.item(), ours.eval()(**batches[rate]).loss.item()
        assert abs(losses[rate][0] - losses[rate][1]) <= 1e-5, f"rate {rate}: losses differ: {losses[rate]}"
    theirs.train(), ours.train()
    for rate, batch in batches.items():
        input_ids, labels = batch["input_ids"], batch["labels"]
        loss_theirs, loss_ours = losses[rate]
        steps = {"theirs": train_step(theirs, batch), "ours": train_step(ours, batch)}
        result = interleaved(steps["theirs"], steps["ours"], args.pairs)
        memory = {name: saved_activation_bytes(step) for name, step in steps.items()}
        print(json.dumps({
            "workload": "mlm-train-step", "shape": list(input_ids.shape), "rate": rate,
            "masked": int((labels != -100).sum()), "loss": round(loss_ours, 6),
            "loss_diff": abs(loss_theirs - loss_ours),
            **{k: round(v, 3) for k, v in result.items()},
            "theirs_saved_activations_mb": round(memory["theirs"] / 2**20, 1),
            "ours_saved_activations_mb": round(memory["ours"] / 2**20, 1),
        }))


def throughput_gpu(args, size) -> None:
    import roberta_prelayernorm as rp
    from common import EFFICIENT_MLM
    from roberta_prelayernorm.training.throughput import peak_flops, train_flops_per_token

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else machine()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    config = rp.RobertaPreLayerNormConfig(**EFFICIENT_MLM, **size, sparse_prediction=True)
    model = rp.RobertaPreLayerNormForMaskedLM(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=cuda)
    peak = args.peak_flops or peak_flops(name)
    print(f"device: {name}, torch {torch.__version__}\nmodel: {args.size} {size}, bf16 autocast, sparse prediction")
    for rate in args.rates:
        input_ids, attention_mask, labels = masked_batch(rate, args.batch_size, args.length)
        batch = {k: v.to(device) for k, v in
                 dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels).items()}

        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        for _ in range(3):
            step()
        sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync()
        seconds = (time.perf_counter() - start) / args.steps
        tokens = input_ids.numel() / seconds
        flops = train_flops_per_token(config, args.length, rate)
        print(json.dumps({"workload": f"mlm-train-step-{device.type}-bf16", "shape": list(input_ids.shape), "rate": rate,
                          "step_s": round(seconds, 4), "tokens_per_s": round(tokens),
                          "mfu": round(tokens * flops / peak, 3) if peak else None, "peak_flops": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("base", "large"), default="base")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.15, 0.4])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 8 on CPU, 128 on CUDA")
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="timed steps on CUDA")
    parser.add_argument("--peak-flops", type=float, default=None, help="the GPU's bf16 peak FLOP/s for MFU")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: torch's); 1 gives steadier CPU seconds on a shared machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.batch_size = args.batch_size or (128 if args.device == "cuda" else 8)
    size = BASE if args.size == "base" else LARGE
    (throughput_gpu if args.device == "cuda" else compare_cpu)(args, size)


if __name__ == "__main__":
    main()
