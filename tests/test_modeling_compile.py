"""modeling.py under torch.compile: static shapes, no graph breaks, bounded recompiles, no device reads.

Sparse prediction at a fixed number of slots (prediction_positions), packing decided from a host mask, forwards
that never wait on the device.
"""

from __future__ import annotations

import math

import pytest
import torch

import roberta_prelayernorm as rp
from parity import padded_batch
from roberta_prelayernorm.modeling import positions_where
from roberta_prelayernorm.tasks.collate import capacity, collate, mask_tokens

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=66, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
HEADS = ("ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
         "ForMultipleChoice", "Model")


def model(head: str, seed: int = 0, **config):
    torch.manual_seed(seed)
    return getattr(rp, "RobertaPreLayerNorm" + head)(rp.RobertaPreLayerNormConfig(**{**TINY, **config}))


class CountingBackend:
    """A torch.compile backend that runs the captured graph as is and counts the graphs it was given."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, graph_module, example_inputs):
        self.graphs += 1
        return graph_module.forward


def masked_batch(rows=4, width=16, rate=0.4, seed=0, padding=False):
    """A masked-LM batch as the masked-LM task makes it: the paper's per-row count, positions at capacity."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 100, (rows, width), generator=g)
    mask = torch.ones(rows, width, dtype=torch.long)
    if padding:
        for row, n in enumerate(torch.randint(3, width, (rows,), generator=g).tolist()):
            mask[row, n:] = 0
    inputs, labels = mask_tokens(ids, 1 - mask, rate, "80-10-10", 4, 100, g)
    return dict(input_ids=inputs, attention_mask=mask, labels=labels,
                prediction_positions=positions_where(labels != -100, capacity(rate, width)))


@pytest.mark.parametrize("padding", [False, True])
def test_prediction_positions_give_the_dense_loss_gradients_and_logits(padding):
    dense, sparse = model("ForMaskedLM"), model("ForMaskedLM")
    batch = masked_batch(padding=padding)
    positions = batch["prediction_positions"]
    assert positions.shape == (4, math.ceil(0.4 * 16)) and (positions == -1).any()  # empty slots to ignore
    out = sparse(**batch)
    expected = dense(**{k: v for k, v in batch.items() if k != "prediction_positions"})
    torch.testing.assert_close(out.loss, expected.loss, atol=1e-6, rtol=0)
    valid = positions >= 0
    rows = torch.arange(4)[:, None].expand_as(positions)
    torch.testing.assert_close(out.logits[valid], expected.logits[rows[valid], positions[valid]], atol=1e-5, rtol=0)
    out.loss.backward(), expected.loss.backward()
    grads = dict(dense.named_parameters())
    for name, p in sparse.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, atol=1e-6, rtol=0, msg=name)


def test_bad_prediction_positions_are_named():
    m, batch = model("ForMaskedLM"), masked_batch()
    for positions, message in ((batch["prediction_positions"].float(), "must hold integers"),
                               (batch["prediction_positions"][:2], r"must have shape \(batch=4, K\)"),
                               (batch["prediction_positions"] + 16, r"values must be in \[0, 16\) or -1")):
        with pytest.raises(ValueError, match=f"prediction_positions.*{message}"):
            m(**{**batch, "prediction_positions": positions})


def test_forwards_never_read_device_values():
    """On the meta device every value read (.item(), bool(), nonzero) fails: training steps with a ragged host
    mask (packed) or with prediction positions, and the padded path with a device mask, run without one."""
    with torch.device("meta"):
        heads = {head: model(head) for head in ("ForMaskedLM", "ForSequenceClassification", "ForQuestionAnswering")}
    batch = masked_batch(padding=True)
    on_meta = {k: v.to("meta") for k, v in batch.items() if k != "attention_mask"}
    for mask in (batch["attention_mask"], batch["attention_mask"].to("meta")):  # host: packed; device: padded
        heads["ForMaskedLM"](**on_meta, attention_mask=mask).loss.backward()
        ids = on_meta["input_ids"]
        heads["ForSequenceClassification"](ids, mask, labels=torch.zeros(4, dtype=torch.long, device="meta")
                                           ).loss.backward()
        positions = torch.ones(4, dtype=torch.long, device="meta")
        heads["ForQuestionAnswering"](ids, mask, start_positions=positions, end_positions=positions).loss.backward()


@pytest.mark.slow
@pytest.mark.parametrize("head", HEADS)
def test_every_head_compiles_without_graph_breaks(head):
    """fullgraph=True raises at the first graph break: training (with labels) and inference, with padding."""
    m = model(head, problem_type="single_label_classification")
    backend = CountingBackend()
    compiled = torch.compile(m, backend=backend, fullgraph=True)
    ids = torch.randint(3, 100, (3, 2, 12) if head == "ForMultipleChoice" else (3, 12))
    mask = torch.ones_like(ids)
    mask[..., 1, 8:] = 0
    labels = {"ForMaskedLM": {"labels": ids.masked_fill(mask == 0, -100)}, "ForSequenceClassification":
              {"labels": torch.tensor([0, 1, 0])}, "ForTokenClassification": {"labels": torch.zeros_like(ids)},
              "ForQuestionAnswering": {"start_positions": torch.tensor([1, 2, 3]),
                                       "end_positions": torch.tensor([2, 3, 4])},
              "ForMultipleChoice": {"labels": torch.tensor([0, 1, 0])}, "Model": {}}[head]
    out = compiled(input_ids=ids, attention_mask=mask, **labels)
    if labels:
        out.loss.backward()
    m.eval()
    with torch.no_grad():  # the eager model packs; outputs at padding are not part of the contract
        got, expected = (f(input_ids=ids, attention_mask=mask)[0] for f in (compiled, m))
        real = mask.bool() if got.shape[:mask.dim()] == mask.shape else slice(None)
        torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=0)
    assert backend.graphs == 2  # train and eval mode, each once


def test_masked_lm_steps_compile_once_and_padded_widths_bound_the_shapes():
    m = model("ForMaskedLM")
    backend = CountingBackend()
    compiled = torch.compile(m, backend=backend, fullgraph=True)
    for seed in range(12):  # other masks, other counts per row: one shape, one graph
        batch = masked_batch(rows=4, width=16, seed=seed)
        del batch["attention_mask"]  # full blocks: no mask
        compiled(**batch).loss.backward()
    assert backend.graphs == 1
    classifier = model("ForSequenceClassification", problem_type="single_label_classification")
    backend = CountingBackend()
    compiled = torch.compile(classifier, backend=backend, fullgraph=True)
    g = torch.Generator().manual_seed(0)
    widths = set()
    for _ in range(12):  # ragged batches of lengths 3..64, widths rounded up to multiples of 16
        features = [{"input_ids": [0] + [7] * (n - 2) + [2], "attention_mask": [1] * n, "labels": 1}
                    for n in torch.randint(3, 65, (4,), generator=g).tolist()]
        batch = collate(features, 1, ("input_ids", "attention_mask"), ("labels",), multiple=16, limit=64)
        widths.add(batch["input_ids"].size(1))
        compiled(**batch).loss.backward()
    assert widths <= {16, 32, 48, 64} and 1 <= backend.graphs <= len(widths)  # dynamo may go dynamic sooner


def test_whole_model_compiles_without_graph_breaks():
    torch.manual_seed(0)
    model = rp.RobertaPreLayerNormForSequenceClassification(rp.RobertaPreLayerNormConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=40)).eval()
    input_ids, attention_mask, _ = padded_batch(99)
    explanation = torch._dynamo.explain(model)(input_ids, attention_mask, labels=torch.tensor([0, 1, 1]))
    assert explanation.graph_break_count == 0, [str(b.reason) for b in explanation.break_reasons]
    assert explanation.graph_count == 1
