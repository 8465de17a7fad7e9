"""CUDA checks (marker `gpu`; skipped without a GPU): torch.compile matches eager, a training step never waits
on the device, compiled steps do not recompile as batches change, mixed precision matches CPU fp32, and the
pipelines give the CPU's scores.

    pytest -m gpu tests/test_gpu.py
"""

from __future__ import annotations

import contextlib
import copy
import math

import pytest
import torch

import roberta_prelayernorm as rp
from roberta_prelayernorm.modeling import positions_where
from roberta_prelayernorm.tasks.collate import capacity, mask_tokens

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SMALL = dict(vocab_size=1000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
             max_position_embeddings=130, type_vocab_size=1, layer_norm_eps=1e-5, hidden_dropout_prob=0.0,
             attention_probs_dropout_prob=0.0)
MASK_ID = SMALL["vocab_size"] - 1
RATE = 0.4


def small(cls: str, seed: int = 0, **config):
    torch.manual_seed(seed)
    return getattr(rp, cls)(rp.RobertaPreLayerNormConfig(**SMALL, **config))


def masked_batch(batch_size: int = 8, length: int = 128, seed: int = 0) -> dict:
    """Full blocks (no mask) masked as the trainer masks them: input_ids, labels and prediction_positions of
    the static capacity, on the CPU."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, MASK_ID, (batch_size, length), generator=g)
    masked, labels = mask_tokens(input_ids, torch.zeros_like(input_ids), RATE, "mask", MASK_ID, MASK_ID + 1, g)
    return dict(input_ids=masked, labels=labels,
                prediction_positions=positions_where(labels != -100, capacity(RATE, length)))


def ragged_batch(batch_size: int = 8, length: int = 96, seed: int = 0):
    """(input_ids, attention_mask) of random lengths 8..length (the first row full), padded to `length`."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, length + 1, (batch_size,), generator=g)
    lengths[0] = length
    attention_mask = (torch.arange(length) < lengths[:, None]).long()
    input_ids = torch.randint(3, MASK_ID, (batch_size, length), generator=g).masked_fill(attention_mask == 0, 1)
    return input_ids, attention_mask


def cuda(batch: dict) -> dict:
    return {k: v.cuda() for k, v in batch.items()}


def train_step(model, batch: dict, optimizer, dtype=None) -> torch.Tensor:
    """Forward (autocast to `dtype`, if given), backward and optimizer step; the loss, detached."""
    device = next(model.parameters()).device.type
    with torch.autocast(device, dtype=dtype) if dtype else contextlib.nullcontext():
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


@pytest.fixture
def exact_fp32():
    """fp32 matmuls in full fp32 (no TF32) for the test, restored after."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(before)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


# -- torch.compile ----------------------------------------------------------------------------------------
def test_compiled_logits_match_eager_bf16():
    model = small("RobertaPreLayerNormForMaskedLM").cuda().eval()
    input_ids = masked_batch()["input_ids"].cuda()
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        eager = model(input_ids=input_ids).logits.float()
        fast = compiled(input_ids=input_ids).logits.float()
    assert fast.shape == eager.shape
    assert (fast - eager).abs().max() <= 2e-2 * eager.abs().max()


def test_compiled_training_step_matches_eager_fp32(exact_fp32):
    """Sparse prediction at a static K: the loss and every gradient of a compiled step are eager's."""
    eager = small("RobertaPreLayerNormForMaskedLM").cuda().train()
    fast = copy.deepcopy(eager)
    batch = cuda(masked_batch())
    losses = []
    for model in (eager, torch.compile(fast, fullgraph=True)):
        loss = model(**batch).loss
        loss.backward()
        losses.append(loss.item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    largest = max(p.grad.abs().max() for p in eager.parameters())
    for (name, a), b in zip(eager.named_parameters(), fast.parameters()):
        assert b.grad is not None, name
        if name.endswith("key.bias"):  # no effect on the softmax: its exact gradient is 0, both are rounding
            assert max(a.grad.abs().max(), b.grad.abs().max()) <= 1e-7 * largest, name
            continue
        assert (b.grad - a.grad).abs().max() <= 1e-4 * a.grad.abs().max(), name


def test_no_recompiles_over_changing_batches():
    """50 compiled training steps on batches of one shape with different masked positions: every graph is
    compiled in the first steps."""
    graphs = []

    def counting(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    model = small("RobertaPreLayerNormForMaskedLM").cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    compiled = torch.compile(model, backend=counting, fullgraph=True)
    after_warmup = None
    for step in range(50):
        train_step(compiled, cuda(masked_batch(seed=step)), optimizer, torch.bfloat16)
        if step == 1:
            after_warmup = len(graphs)
    assert after_warmup >= 1
    assert len(graphs) == after_warmup, f"{len(graphs) - after_warmup} recompilations after step 2"


# -- no device synchronisation ------------------------------------------------------------------------------
@contextlib.contextmanager
def sync_errors():
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_masked_lm_step_never_syncs():
    model = small("RobertaPreLayerNormForMaskedLM").cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    batches = [cuda(masked_batch(seed=seed)) for seed in range(3)]
    train_step(model, batches[0], optimizer, torch.bfloat16)  # first-call set-up (optimizer state, kernels)
    torch.cuda.synchronize()
    with sync_errors():
        for batch in batches[1:]:
            train_step(model, batch, optimizer, torch.bfloat16)
    torch.cuda.synchronize()


def test_classification_step_with_host_mask_never_syncs():
    """A ragged batch whose attention_mask stays on the host (pinned) and the rest on the GPU: the model packs
    the real tokens without waiting on the device."""
    model = small("RobertaPreLayerNormForSequenceClassification", num_labels=2).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    batches = []
    for seed in range(3):
        input_ids, attention_mask = ragged_batch(seed=seed)
        labels = torch.randint(0, 2, (input_ids.size(0),), generator=torch.Generator().manual_seed(seed))
        batches.append(dict(input_ids=input_ids.cuda(), attention_mask=attention_mask.pin_memory(),
                            labels=labels.cuda()))
    train_step(model, batches[0], optimizer, torch.bfloat16)
    torch.cuda.synchronize()
    with sync_errors():
        for batch in batches[1:]:
            train_step(model, batch, optimizer, torch.bfloat16)
    torch.cuda.synchronize()


# -- precision and devices -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_mixed_precision_training_matches_cpu_fp32(dtype):
    """The loss of two training steps (the second after an AdamW update) under CUDA autocast is CPU fp32's."""
    reference = small("RobertaPreLayerNormForMaskedLM").train()
    model = copy.deepcopy(reference).cuda()
    batches = [masked_batch(seed=seed) for seed in range(2)]
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-4, fused=m is model) for m in (reference, model)]
    for batch in batches:
        expected = train_step(reference, batch, optimizers[0]).item()
        got = train_step(model, cuda(batch), optimizers[1], dtype).item()
        assert got == pytest.approx(expected, rel=2e-2)


TEXTS = ["The function returns None when the list is empty.", "x", "Use the with statement to open files.",
         "Exceptions are raised with the raise statement and caught with try; the finally clause runs anyway."]


def test_text_classification_pipeline_cuda_matches_cpu(tmp_path, exact_fp32):
    from pydoc_data.topics import topics

    from roberta_prelayernorm import pipeline
    from roberta_prelayernorm.tokenizer import train_byte_level_bpe

    tokenizer = train_byte_level_bpe(list(topics.values())[:200], vocab_size=800)
    torch.manual_seed(0)
    config = rp.RobertaPreLayerNormConfig(**dict(SMALL, vocab_size=len(tokenizer), num_hidden_layers=2),
                                          num_labels=3, initializer_range=0.2)
    rp.RobertaPreLayerNormForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    results = {device: pipeline("text-classification", model=str(tmp_path), device=device, batch_size=4)(
        TEXTS, top_k=None) for device in ("cpu", "cuda")}
    for cpu, gpu in zip(results["cpu"], results["cuda"]):  # every label's score (a near-tie may swap the order)
        scores = {r["label"]: r["score"] for r in cpu}
        assert len(gpu) == len(cpu) == 3
        assert all(abs(r["score"] - scores[r["label"]]) <= 1e-3 for r in gpu), (cpu, gpu)


def test_trainer_step_waits_on_the_device_once(tmp_path):
    """The package's own training step (prefetched, pinned batches; compiled; fused AdamW skipping a bad step on
    the device): no wait on the device at all; the losses are read when the log needs them."""
    import warnings

    from training_utils import data, head, make_tiny_model

    from roberta_prelayernorm.training import Trainer, TrainingConfig

    model = make_tiny_model(str(tmp_path / "tiny"), dropout=0.0)
    train = str(head(data("corpus.jsonl"), 32, tmp_path / "t.jsonl"))
    config = TrainingConfig(task="masked-lm", model=model, train=train, output_dir=str(tmp_path / "out"), max_steps=5,
                            batch_size=4, grad_accum=2, max_length=64, progress=False, device="cuda",
                            precision="bf16", log_every=100, compile=True)
    trainer = Trainer(config)
    waits, step = [], trainer._train_step

    def counted(*args):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                return step(*args)
            finally:
                torch.cuda.set_sync_debug_mode(0)
                waits.append(sum("synchroniz" in str(w.message) for w in caught))

    trainer._train_step = counted
    trainer.train()
    assert len(waits) == 5 and waits[2:] == [0, 0, 0], waits  # the first steps compile and set up AdamW's state
    assert trainer.history[-1]["step"] == 5 and math.isfinite(trainer.history[-1]["loss"])


def test_train_compile_resumes_exactly_on_cuda(tmp_path):
    """`train --compile` on CUDA (bf16, fused AdamW, prefetched batches): 4 steps straight equal 2 steps and 2
    resumed from the checkpoint of step 2."""
    from training_utils import data, head, make_tiny_model

    from roberta_prelayernorm.training import Trainer, TrainingConfig

    model = make_tiny_model(str(tmp_path / "tiny"), dropout=0.0)
    settings = dict(task="masked-lm", model=model, train=str(head(data("corpus.jsonl"), 32, tmp_path / "t.jsonl")),
                    max_steps=4, batch_size=4, max_length=64, progress=False, device="cuda", precision="bf16",
                    log_every=1, save_every=2, compile=True)
    straight = Trainer(TrainingConfig(**settings, output_dir=str(tmp_path / "straight")))
    straight.train()
    resumed = Trainer(TrainingConfig(**settings, output_dir=str(tmp_path / "resumed")))
    resumed.train(resume=str(tmp_path / "straight" / "checkpoints" / "step-00000002"))
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)
    losses = [[e["loss"] for e in trainer.history] for trainer in (straight, resumed)]
    assert losses[1] == pytest.approx(losses[0][2:], rel=1e-5)
