"""tasks/metrics.py: metric functions against scikit-learn / scipy and hand-checked cases."""

import math
import random

import pytest

from roberta_prelayernorm.tasks import metrics


def test_accuracy_and_macro_f1_match_sklearn():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = random.Random(0)
    for trial in range(20):
        n, k = rng.randint(1, 40), rng.randint(2, 5)
        y = [rng.randrange(k) for _ in range(n)]
        p = [rng.randrange(k) for _ in range(n)]
        assert metrics.accuracy(p, y) == pytest.approx(sklearn.accuracy_score(y, p))
        assert metrics.macro_f1(p, y) == pytest.approx(sklearn.f1_score(y, p, average="macro", zero_division=0))
    y = [[rng.randint(0, 1) for _ in range(4)] for _ in range(30)]
    p = [[rng.randint(0, 1) for _ in range(4)] for _ in range(30)]
    assert metrics.macro_f1(p, y) == pytest.approx(sklearn.f1_score(y, p, average="macro", zero_division=0))


def test_correlations_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(1)
    for trial in range(20):
        n = rng.randint(3, 30)
        x = [rng.choice([rng.random(), 0.5, 1.0]) for _ in range(n)]  # with ties
        y = [rng.choice([rng.random(), 0.25]) for _ in range(n)]
        assert metrics.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-9)
        assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-9)
    assert math.isnan(metrics.pearson([1, 1, 1], [1, 2, 3]))


def test_entities_as_seqeval_counts_them():
    # Hand-checked against seqeval 1.2 (default mode): an I- after O starts an entity; a type change splits one.
    assert metrics.entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    assert metrics.entities(["O", "I-PER", "I-PER", "B-PER"]) == [("PER", 1, 2), ("PER", 3, 3)]
    assert metrics.entities(["B-PER", "I-LOC", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 2)]
    references = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predictions = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    scores = metrics.entity_scores(predictions, references)
    # true: PER, LOC, ORG; predicted: PER, ORG, LOC(wrong place) -> tp 2 of 3 predicted, 2 of 3 true
    assert scores == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    assert metrics.entity_scores([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_squad_normalisation_exact_match_and_f1():
    assert metrics.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert metrics.squad_exact("the Cat", "cat.") == 1.0
    assert metrics.squad_f1("a red big cat", "the big red dog") == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    assert metrics.squad_f1("", "") == 1.0 and metrics.squad_f1("x", "") == 0.0
    # The best over the gold answers; an empty list means unanswerable (only "" is right).
    scores = metrics.squad_scores(["Paris", "", "New York"], [["London", "paris"], [], ["York"]])
    assert scores["exact_match"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 1 + 2 / 3) / 3)


def test_perplexity():
    assert metrics.perplexity(math.log(7.0)) == pytest.approx(7.0)
    assert metrics.perplexity(1e6) == float("inf")
