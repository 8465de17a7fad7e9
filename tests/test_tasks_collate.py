"""tasks/collate.py: padding batches to their longest, masked-LM masking and its static capacity."""

import pytest
import torch

from roberta_prelayernorm.tasks.collate import capacity, collate, mask_tokens


def test_collate_pads_each_batch_to_its_longest():
    features = [{"input_ids": [0, 5, 2], "attention_mask": [1, 1, 1], "labels": [-100, 3, -100]},
                {"input_ids": [0, 2], "attention_mask": [1, 1], "labels": [-100, -100]}]
    batch = collate(features, pad_token_id=1, padded=("input_ids", "attention_mask", "labels"))
    assert batch["input_ids"].tolist() == [[0, 5, 2], [0, 2, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, 3, -100], [-100, -100, -100]]
    choices = [{"input_ids": [[0, 2], [0, 7, 8, 2]], "labels": 1}]
    batch = collate(choices, 1, padded=("input_ids",), stacked=("labels",))
    assert batch["input_ids"].shape == (1, 2, 4) and batch["labels"].tolist() == [1]


@pytest.mark.parametrize("mode", ["80-10-10", "mask"])
def test_masking_rate_and_split(mode):
    ids = torch.randint(10, 1000, (64, 256))
    special = torch.zeros_like(ids)
    special[:, 0] = special[:, -1] = 1
    inputs, labels = mask_tokens(ids, special, 0.4, mode, mask_token_id=3, vocab_size=1000,
                                 generator=torch.Generator().manual_seed(0))
    chosen = labels != -100
    assert not chosen[:, 0].any() and not chosen[:, -1].any()
    assert chosen.float().mean().item() == pytest.approx(0.4 * 254 / 256, abs=0.01)
    assert torch.equal(labels[chosen], ids[chosen])
    masked = (inputs == 3) & chosen
    kept = (inputs == ids) & chosen
    share = masked.sum().item() / chosen.sum().item()
    if mode == "mask":
        assert share == 1.0
    else:
        assert share == pytest.approx(0.8, abs=0.02)
        assert kept.sum().item() / chosen.sum().item() == pytest.approx(0.1, abs=0.02)  # ~0.1 + 0.1/1000 random hits
    assert torch.equal(inputs[~chosen], ids[~chosen])


@pytest.mark.usefixtures("one_thread")
def test_a_masked_lm_batch_always_has_a_masked_token():
    from roberta_prelayernorm.tasks.collate import mask_tokens

    ids = torch.tensor([[0, 5, 6, 2]])
    special = torch.tensor([[1, 0, 0, 1]])
    for seed in range(20):
        _, labels = mask_tokens(ids, special, 0.01, "mask", 9, 10, torch.Generator().manual_seed(seed))
        assert (labels != -100).sum() >= 1
        assert (labels[special.bool()] == -100).all()


@pytest.mark.usefixtures("one_thread")
def test_masking_counts_fit_the_static_capacity():
    g = torch.Generator().manual_seed(0)
    for rate in (0.15, 0.3, 0.4, 0.8):
        for width in (7, 64, 128):
            ids = torch.randint(5, 1000, (32, width), generator=g)
            special = torch.zeros_like(ids)
            special[:, 0] = 1
            special[::3, width // 2:] = 1  # shorter rows (padding counts as special)
            _, labels = mask_tokens(ids, special, rate, "mask", 4, 1000, g)
            counts, maskable = (labels != -100).sum(1), (special == 0).sum(1)
            assert (counts <= capacity(rate, width)).all()
            assert ((counts >= (rate * maskable).floor()) & (counts <= (rate * maskable).ceil())).all(), (rate, width)
            assert (labels[special.bool()] == -100).all()
