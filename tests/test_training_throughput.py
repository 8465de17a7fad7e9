"""training/throughput.py: tokens/s (and MFU with a known peak) in metrics.jsonl; FLOPs count; peak table."""

import json

import pytest
import torch

import roberta_prelayernorm as rp
from roberta_prelayernorm.training import Trainer, TrainingConfig
from roberta_prelayernorm.training.throughput import Throughput, peak_flops, train_flops_per_token
from training_utils import data, head, make_tiny_model


def test_flops_per_token_and_peaks():
    base = rp.RobertaPreLayerNormConfig()  # 768 x 12 layers, 3072, vocabulary 50265
    layer = 24 * 768**2 + 4 * 128 * 768
    assert train_flops_per_token(base, 128, 0.0) == 3 * 12 * 2 * (4 * 768**2 + 2 * 768 * 3072) + 3 * 12 * 4 * 128 * 768
    assert train_flops_per_token(base, 128, 0.0) == 3 * 12 * layer
    assert train_flops_per_token(base, 128, 1.0) - train_flops_per_token(base, 128, 0.15) == pytest.approx(
        0.85 * 3 * 2 * (768**2 + 768 * 50265))
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12 and peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA H200") == 989e12 and peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops("Some Other GPU") is None


def test_throughput_counts_and_resets():
    meter = Throughput(flops_per_token=10.0, peak=1000.0)
    meter.add(300, 1.0)
    meter.add(100, 1.0)
    assert meter.report() == {"tokens_per_s": 200.0, "mfu": 2.0}
    meter.add(50, 0.5)
    assert meter.report()["tokens_per_s"] == 100.0
    assert Throughput(1.0, None).report() == {"tokens_per_s": 0.0}


def test_metrics_carry_tokens_per_second_and_mfu(tmp_path):
    tiny = make_tiny_model(str(tmp_path / "tiny"))
    config = TrainingConfig(task="masked-lm", model=tiny, train=head(data("corpus.jsonl"), 24, tmp_path / "t.jsonl"),
                            output_dir=str(tmp_path / "out"), max_steps=4, batch_size=4, max_length=64,
                            log_every=2, progress=False, peak_flops=1e9, device="cpu")
    torch.set_num_threads(1)
    trainer = Trainer(config)
    trainer.train()
    entries = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in entries] == [2, 4]
    flops = train_flops_per_token(trainer.model.config, 64, 0.15)  # sparse prediction: the head at 15%
    for entry in entries:
        assert entry["tokens_per_s"] > 0
        assert entry["mfu"] == pytest.approx(entry["tokens_per_s"] * flops / 1e9, rel=1e-3)
