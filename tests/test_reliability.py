"""Reliability properties: a save killed mid-write loses nothing; outputs of a sequence do not depend on its batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import roberta_prelayernorm as rp
from parity import assert_close, tiny_config_dict

KILLED_SAVE = textwrap.dedent("""
    import sys, time, torch, safetensors.torch
    import roberta_prelayernorm as rp
    from parity import tiny_config_dict

    folder, marker = sys.argv[1], sys.argv[2]
    real_save = safetensors.torch.save_file

    def slow_save(tensors, path, metadata=None):
        real_save(tensors, path, metadata=metadata)
        with open(path, "r+b") as f:  # half-written on purpose: truncate, tell the parent, wait to be killed
            f.truncate(100)
        open(marker, "w").close()
        time.sleep(60)

    safetensors.torch.save_file = slow_save
    torch.manual_seed(1)
    rp.RobertaPreLayerNormForMaskedLM(rp.RobertaPreLayerNormConfig(**tiny_config_dict())).save_pretrained(folder)
""")


def test_save_killed_mid_write_leaves_the_previous_checkpoint_intact(tmp_path):
    torch.manual_seed(0)
    model = rp.RobertaPreLayerNormForMaskedLM(rp.RobertaPreLayerNormConfig(**tiny_config_dict()))
    model.save_pretrained(tmp_path / "ckpt")
    before = {f: (tmp_path / "ckpt" / f).read_bytes() for f in os.listdir(tmp_path / "ckpt")}
    marker = tmp_path / "writing"
    tests_dir = os.path.dirname(__file__)
    process = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(tmp_path / "ckpt"), str(marker)],
                               env={**os.environ, "PYTHONPATH": tests_dir})
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert process.poll() is None and time.monotonic() < deadline, "the saving process never got mid-write"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    after = {f: (tmp_path / "ckpt" / f).read_bytes() for f in before}
    assert after == before  # model.safetensors and config.json untouched
    leftovers = set(os.listdir(tmp_path / "ckpt")) - set(before)
    assert all(name.startswith(".model.safetensors.") and name.endswith(".tmp") for name in leftovers)
    reloaded = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path / "ckpt")
    for key, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key


_MODEL = None


def shared_model():
    global _MODEL
    if _MODEL is None:
        torch.manual_seed(0)
        _MODEL = rp.RobertaPreLayerNormForTokenClassification(
            rp.RobertaPreLayerNormConfig(**tiny_config_dict(hidden_dropout_prob=0.0))).eval()
    return _MODEL


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=5),
    extra_padding=st.integers(0, 6),
    seed=st.integers(0, 2**16),
    side=st.sampled_from(["right", "left"]),
)
def test_outputs_do_not_depend_on_batch_mates_or_padding(lengths, extra_padding, seed, side):
    model = shared_model()
    g = torch.Generator().manual_seed(seed)
    sequences = [torch.randint(3, 99, (n,), generator=g) for n in lengths]
    T = max(lengths) + extra_padding
    input_ids = torch.ones((len(lengths), T), dtype=torch.long)
    attention_mask = torch.zeros((len(lengths), T), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(0, len(seq)) if side == "right" else slice(T - len(seq), T)
        input_ids[row, span], attention_mask[row, span] = seq, 1
    with torch.no_grad():
        batched = model(input_ids, attention_mask).logits
        for row, seq in enumerate(sequences):
            alone = model(seq[None]).logits[0]
            assert_close(batched[row][attention_mask[row].bool()], alone, f"row {row} of {lengths}")


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_the_same_seed_gives_the_same_weights_and_metrics(tmp_path_factory, seed):
    from roberta_prelayernorm.training import Trainer, TrainingConfig
    from training_utils import data, head, make_tiny_model

    folder = tmp_path_factory.mktemp("same-seed")
    model = make_tiny_model(str(folder / "model"))
    train = head(data("sentiment_train.jsonl"), 24, folder / "train.jsonl")
    runs = []
    for name in ("a", "b"):
        trainer = Trainer(TrainingConfig(
            task="sequence-classification", model=model, train=str(train), validation=str(train),
            output_dir=str(folder / name), max_steps=4, batch_size=8, learning_rate=1e-2, max_length=32,
            seed=seed, progress=False, eval_every=4, save_every=4))
        runs.append((trainer.train(), trainer.model.state_dict()))
    (metrics_a, weights_a), (metrics_b, weights_b) = runs
    assert metrics_a == metrics_b
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key


def test_saved_files_get_the_usual_permissions(tmp_path):
    """Atomic writes go through temporary files, which are private (0600); the final files are not."""
    umask = os.umask(0o022)
    try:
        torch.manual_seed(0)
        rp.RobertaPreLayerNormModel(rp.RobertaPreLayerNormConfig(**tiny_config_dict())).save_pretrained(tmp_path)
    finally:
        os.umask(umask)
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
