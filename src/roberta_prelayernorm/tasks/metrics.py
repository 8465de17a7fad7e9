"""Evaluation metrics, implemented here (no scikit-learn, scipy, seqeval or evaluate at run time).

Each follows its reference's definition exactly; tests cross-check them against scikit-learn and scipy:
macro-F1 as sklearn's f1_score(average="macro", zero_division=0), Spearman with average ranks for ties as
scipy.stats.spearmanr, entity scores as seqeval's default (lenient IOB2) mode, EM/F1 as the official SQuAD
v2.0 evaluation script.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Sequence

from ..errors import SettingError


def accuracy(predictions: Sequence, references: Sequence) -> float:
    """Fraction of predictions equal to their reference (also multiple-choice accuracy)."""
    _same_length(predictions, references)
    return sum(p == r for p, r in zip(predictions, references)) / len(references)


def _f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts; 0 where a denominator is 0 (sklearn's zero_division=0)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def macro_f1(predictions: Sequence, references: Sequence) -> float:
    """Unweighted mean of per-class F1 over the classes seen in either sequence.

    Items may be class ids (single-label) or equal-length 0/1 vectors (multi-label: one binary F1 per column).
    """
    _same_length(predictions, references)
    if references and isinstance(references[0], (list, tuple)):
        columns = len(references[0])
        scores = []
        for c in range(columns):
            tp = sum(1 for p, r in zip(predictions, references) if p[c] and r[c])
            fp = sum(1 for p, r in zip(predictions, references) if p[c] and not r[c])
            fn = sum(1 for p, r in zip(predictions, references) if r[c] and not p[c])
            scores.append(_f1(tp, fp, fn)[2])
        return sum(scores) / columns
    classes = set(predictions) | set(references)
    scores = []
    for c in classes:
        tp = sum(1 for p, r in zip(predictions, references) if p == c and r == c)
        fp = sum(1 for p, r in zip(predictions, references) if p == c and r != c)
        fn = sum(1 for p, r in zip(predictions, references) if r == c and p != c)
        scores.append(_f1(tp, fp, fn)[2])
    return sum(scores) / len(scores)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's correlation coefficient (nan when either side is constant, as scipy gives)."""
    _same_length(x, y)
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return float("nan")
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's on the (tie-averaged) ranks."""
    return pearson(_ranks(x), _ranks(y))


# -- entities (seqeval's default mode) ------------------------------------------------------------------
def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (prev_tag in ("E", "S") or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
            or (prev_tag not in ("O", ".") and prev_type != type_))


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (tag in ("B", "S") or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
            or (tag not in ("O", ".") and prev_type != type_))


def entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first, last) of each entity in a BIO/IOB2 sequence, chunked exactly as seqeval's get_entities:
    an entity also starts at an I- after O or after another type (the lenient default mode)."""
    found = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, chunk in enumerate(list(tags) + ["O"]):
        tag, type_ = chunk[:1], chunk[1:].split("-", maxsplit=1)[-1] or "_"
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            found.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return found


def entity_scores(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> dict:
    """Micro-averaged entity-level precision, recall and F1 over sentences of tags (seqeval's numbers)."""
    _same_length(predictions, references)
    predicted, true = set(), set()
    for n, (p, r) in enumerate(zip(predictions, references)):
        if len(p) != len(r):
            raise SettingError(f"sentence {n} has {len(p)} predicted tags but {len(r)} reference tags")
        predicted |= {(n, *e) for e in entities(p)}
        true |= {(n, *e) for e in entities(r)}
    tp = len(predicted & true)
    precision, recall, f1 = _f1(tp, len(predicted) - tp, len(true) - tp)
    return {"precision": precision, "recall": recall, "f1": f1}


# -- SQuAD ----------------------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles (a, an, the), single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_exact(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def squad_f1(prediction: str, truth: str) -> float:
    """Token-overlap F1 after normalisation; an empty side (no answer) scores 1 only against empty."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict:
    """Exact match and F1 in percent, each the best over an example's gold answers ([] = unanswerable)."""
    _same_length(predictions, answers)
    em = f1 = 0.0
    for prediction, golds in zip(predictions, answers):
        golds = list(golds) or [""]
        em += max(squad_exact(prediction, g) for g in golds)
        f1 += max(squad_f1(prediction, g) for g in golds)
    return {"exact_match": 100 * em / len(predictions), "f1": 100 * f1 / len(predictions)}


# -- masked LM ------------------------------------------------------------------------------------------
def perplexity(loss: float) -> float:
    """exp(mean cross-entropy per masked token); inf past what a float holds."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")


def _same_length(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise SettingError(f"predictions and references differ in length: {len(a)} vs {len(b)}")
    if not len(a):
        raise SettingError("predictions and references are empty: a metric needs at least one example")
