"""training/setup.py: the epoch plan across ranks, and seeded streams (the same seed, the same run)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.mark.usefixtures("one_thread")
def test_epoch_plan_ranks_take_disjoint_blocks_and_scale():
    from roberta_prelayernorm.training.trainer import Distributed, EpochPlan, generator

    def taken(plan):
        return [i for k in range(len(plan)) for batch in plan[k] for i in batch]

    plans = [EpochPlan(100, generator(42, 3), 4, 2, Distributed(rank, 2, rank)) for rank in range(2)]
    assert not set(taken(plans[0])) & set(taken(plans[1])) and len(taken(plans[0])) == len(taken(plans[1])) == 50
    # step by step, the two ranks together see what one process with twice the batch sees
    one = EpochPlan(100, generator(42, 3), 8, 2, Distributed())
    for k in range(len(one)):
        assert [sorted(a + b) for a, b in zip(plans[0][k], plans[1][k])] == [sorted(batch) for batch in one[k]]
    # 101 blocks over 2 ranks: one is left out, so both take the same number of steps
    assert [len(taken(EpochPlan(101, generator(42, 3), 4, 2, Distributed(r, 2, r)))) for r in range(2)] == [50, 50]
    # a corpus of 10^9 blocks: the plan is made per step, the shuffle only when a step is asked for
    huge = EpochPlan(10**9, generator(42, 0), 32, 128, Distributed())
    assert len(huge) == math.ceil(10**9 / 32 / 128) and huge.order is None


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
