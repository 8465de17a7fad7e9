"""token-classification (alias ner): a label for each token, or entities grouped from them."""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import SettingError
from .base import Pipeline, check_int
from .command import TEXT, Command

STRATEGIES = ("none", "simple", "first", "average", "max")


def tag_options(parser):
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to tag (else --input or stdin)")
    parser.add_argument("--aggregation-strategy", default="simple",
                        choices=("none", "simple", "first", "average", "max"),
                        help="none: one entry per token; simple: runs of one entity type grouped; first/average/"
                             "max: each word's tokens agree on one label first (default: simple)")
    parser.add_argument("--ignore-labels", default="O",
                        help="comma-separated labels to leave out (default: O; '' keeps all)")
    parser.add_argument("--stride", type=int,
                        help="split texts longer than the model into chunks overlapping by this many tokens "
                             "(default 0: consecutive chunks; with --aggregation-strategy none long texts are cut)")


class TokenClassificationPipeline(Pipeline):
    """`ner("text")` -> a list of entity dicts, as transformers' pipeline gives them.

    aggregation_strategy "none" gives one dict per token: entity, score, index, word, start, end (character
    offsets in the text). "simple" groups adjacent tokens of one entity type (B-/I- tags) into entity_group,
    score (mean), word, start, end; "first", "average" and "max" first make each word's tokens agree on one
    label (the first token's, the averaged scores', the most confident token's). Labels in `ignore_labels`
    (default ["O"]) are dropped. Texts longer than the model's length are cut off, or with `stride` split into
    chunks overlapping by `stride` tokens whose entities are merged (needs an aggregation strategy).
    """

    task = "token-classification"
    command = Command(
        "tag", "find entities (or a label per token) in texts", fields=TEXT, optional={},
        example='roberta-prelayernorm tag --model ./my-ner "Guido van Rossum lives in Amsterdam"\n'
                "  roberta-prelayernorm tag --model ./my-ner --input texts.jsonl --stride 64 --output entities.jsonl",
        add_options=tag_options,
        options=lambda a: {"aggregation_strategy": a.aggregation_strategy,
                           "stride": a.stride if a.stride is not None or a.aggregation_strategy == "none" else 0,
                           "ignore_labels": [label for label in a.ignore_labels.split(",") if label]},
        from_args=lambda a: [{"text": t} for t in a.texts])
    token_outputs = ("logits",)
    defaults = {"aggregation_strategy": "none", "ignore_labels": None, "stride": None}

    def check_options(self, options):
        options = super().check_options(options)
        strategy = str(options["aggregation_strategy"]).lower()
        if strategy not in STRATEGIES:
            raise SettingError(f"aggregation_strategy={options['aggregation_strategy']!r} is not one of {STRATEGIES}")
        options["aggregation_strategy"] = strategy
        stride = options["stride"]
        if stride is not None:
            check_int("stride", stride, 0)
            if stride >= self.tokenizer.model_max_length:
                raise SettingError(
                    f"stride={stride} must be less than the tokenizer's model_max_length "
                    f"({self.tokenizer.model_max_length}), less the special tokens"
                )
            if strategy == "none":
                raise SettingError(
                    "stride splits long texts into chunks whose entities are merged, which needs "
                    "aggregation_strategy 'simple', 'first', 'average' or 'max', not 'none'"
                )
        if strategy in ("first", "average", "max"):
            # transformers warns so for tokenizers without a subword prefix (byte-level BPE): words are found
            # by the characters around each token instead.
            warnings.warn("Tokenizer does not support real words, using fallback heuristic", UserWarning)
        return options

    def preprocess(self, item, options):
        if not isinstance(item, str):
            raise SettingError(f"token-classification inputs must be texts, got {type(item).__name__}: {item!r:.80}")
        split = {"return_overflowing_tokens": True, "stride": options["stride"]} if options["stride"] is not None \
            else {}
        encoding = self.tokenizer([item], truncation=True, return_special_tokens_mask=True,
                                  return_offsets_mapping=True, **split)
        return [
            {"input_ids": ids, "offsets": offsets, "special": special}
            for ids, offsets, special in zip(encoding["input_ids"], encoding["offset_mapping"],
                                             encoding["special_tokens_mask"])
        ]

    def postprocess(self, item, features, outputs, options):
        strategy = options["aggregation_strategy"]
        ignore = ["O"] if options["ignore_labels"] is None else options["ignore_labels"]
        entities = []
        for feature, output in zip(features, outputs):
            scores = output["logits"].double().softmax(-1).numpy()
            tokens = self.pre_entities(item, feature, scores)
            entities += [e for e in self.aggregate(tokens, strategy)
                         if e.get("entity") not in ignore and e.get("entity_group") not in ignore]
        if len(features) > 1:
            entities = merge_overlaps(entities)
        return entities

    def pre_entities(self, text: str, feature: dict, scores) -> list[dict]:
        """Each non-special token: its string, label scores, character span and whether it continues a word."""
        tokens = []
        for index, (token_id, (start, end), special) in enumerate(
                zip(feature["input_ids"], feature["offsets"], feature["special"])):
            if special:
                continue
            word = self.tokenizer.convert_ids_to_tokens(token_id)
            # Byte-level BPE marks word starts with a space, which offsets leave out: a token continues a word
            # when no space is next to its start (transformers' fallback heuristic).
            is_subword = start > 0 and " " not in text[start - 1:start + 1]
            if token_id == self.tokenizer.unk_token_id:
                word, is_subword = text[start:end], False
            tokens.append({"word": word, "scores": scores[index], "start": start, "end": end, "index": index,
                           "is_subword": is_subword})
        return tokens

    def aggregate(self, tokens: list[dict], strategy: str) -> list[dict]:
        id2label = self.model.config.id2label
        if strategy in ("none", "simple"):
            entities = []
            for token in tokens:
                best = int(token["scores"].argmax())
                entities.append({"entity": id2label[best], "score": float(token["scores"][best]),
                                 "index": token["index"], "word": token["word"], "start": token["start"],
                                 "end": token["end"]})
        else:
            entities = [self.aggregate_word(word, strategy) for word in words_of(tokens)]
        return entities if strategy == "none" else self.group_entities(entities)

    def aggregate_word(self, tokens: list[dict], strategy: str) -> dict:
        """One entity for one word's tokens, labelled by `strategy`."""
        if strategy == "first":
            scores = tokens[0]["scores"]
        elif strategy == "max":
            scores = max(tokens, key=lambda token: token["scores"].max())["scores"]
        else:  # average
            scores = np.nanmean(np.stack([token["scores"] for token in tokens]), axis=0)
        best = int(scores.argmax())
        return {"entity": self.model.config.id2label[best], "score": float(scores[best]),
                "word": self.tokenizer.convert_tokens_to_string([token["word"] for token in tokens]),
                "start": tokens[0]["start"], "end": tokens[-1]["end"]}

    def group_entities(self, entities: list[dict]) -> list[dict]:
        """Join runs of entities of one type: a B- tag, or another type, starts a new group."""
        groups, run = [], []
        for entity in entities:
            if run:
                bi, tag = split_tag(entity["entity"])
                _, last_tag = split_tag(run[-1]["entity"])
                if tag != last_tag or bi == "B":
                    groups.append(self.group(run))
                    run = []
            run.append(entity)
        if run:
            groups.append(self.group(run))
        return groups

    def group(self, entities: list[dict]) -> dict:
        return {"entity_group": entities[0]["entity"].split("-", 1)[-1],
                "score": float(np.nanmean([entity["score"] for entity in entities])),
                "word": self.tokenizer.convert_tokens_to_string([entity["word"] for entity in entities]),
                "start": entities[0]["start"], "end": entities[-1]["end"]}


def words_of(tokens: list[dict]) -> list[list[dict]]:
    """Tokens grouped into words: a token that is not a subword starts a new word."""
    words = []
    for token in tokens:
        if words and token["is_subword"]:
            words[-1].append(token)
        else:
            words.append([token])
    return words


def split_tag(label: str) -> tuple[str, str]:
    """("B" or "I", type) of a label; a label without B-/I- counts as inside its type."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def merge_overlaps(entities: list[dict]) -> list[dict]:
    """Entities of overlapping chunks: where two overlap, keep the longer (then the higher-scoring) one."""
    if not entities:
        return entities
    entities = sorted(entities, key=lambda entity: entity["start"])
    merged, previous = [], entities[0]
    for entity in entities:
        if previous["start"] <= entity["start"] < previous["end"]:
            length, previous_length = entity["end"] - entity["start"], previous["end"] - previous["start"]
            if length > previous_length or length == previous_length and entity["score"] > previous["score"]:
                previous = entity
        else:
            merged.append(previous)
            previous = entity
    merged.append(previous)
    return merged
