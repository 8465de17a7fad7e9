"""The special-token registry of the tokenizer: the seven RoBERTa special tokens and the additional ones,
their ids, and where the post-processor puts them."""

from __future__ import annotations

from typing import Optional, Sequence

from tokenizers import AddedToken

from ..errors import SettingError
from .formats import ROBERTA_SPECIAL_TOKENS, SPECIAL_TOKENS_ATTRIBUTES, as_added_token, as_special_token


def _special_token_property(attribute: str):
    def get(self) -> Optional[str]:
        return self._special_tokens.get(attribute)

    def set(self, value) -> None:
        self._special_tokens[attribute] = None if value is None else str(value)

    return property(get, set, doc=f"The {attribute.replace('_', ' ')} (a string), or None.")


def _special_token_id_property(attribute: str):
    def get(self) -> Optional[int]:
        token = self._special_tokens.get(attribute)
        return None if token is None else self.convert_tokens_to_ids(token)

    return property(get, doc=f"The id of the {attribute.replace('_', ' ')}, or None.")


class SpecialTokensMixin:
    """bos_token ... mask_token (strings) and their ids, additional_special_tokens, and their registration in
    the vocabulary. The tokenizer class provides `_tokenizer` (the backend), `add_tokens` and
    `convert_tokens_to_ids`."""

    bos_token = _special_token_property("bos_token")
    eos_token = _special_token_property("eos_token")
    unk_token = _special_token_property("unk_token")
    sep_token = _special_token_property("sep_token")
    pad_token = _special_token_property("pad_token")
    cls_token = _special_token_property("cls_token")
    mask_token = _special_token_property("mask_token")
    bos_token_id = _special_token_id_property("bos_token")
    eos_token_id = _special_token_id_property("eos_token")
    unk_token_id = _special_token_id_property("unk_token")
    sep_token_id = _special_token_id_property("sep_token")
    pad_token_id = _special_token_id_property("pad_token")
    cls_token_id = _special_token_id_property("cls_token")
    mask_token_id = _special_token_id_property("mask_token")
    pad_token_type_id = 0

    @staticmethod
    def _check_special_tokens(special_tokens: dict) -> None:
        unknown = set(special_tokens) - set(SPECIAL_TOKENS_ATTRIBUTES)
        if unknown:
            raise TypeError(
                f"unexpected argument(s) {sorted(unknown)}; special tokens are {list(SPECIAL_TOKENS_ATTRIBUTES)}"
            )

    def _init_special_tokens(self, special_tokens: dict, additional_special_tokens, added_tokens_decoder) -> None:
        # Register the tokens the files list (in id order, so new ones get their saved ids), then any special
        # token not registered yet: transformers registers every special token, so "<s>" in a text is one token.
        saved = sorted((added_tokens_decoder or {}).items(), key=lambda item: int(item[0]))
        self._register([as_added_token(token) for _, token in saved])
        self._special_tokens = {}
        extended = []
        for attribute in SPECIAL_TOKENS_ATTRIBUTES:
            value = special_tokens.get(attribute, ROBERTA_SPECIAL_TOKENS[attribute])
            token = None if value is None else as_special_token(value, lstrip=attribute == "mask_token")
            self._special_tokens[attribute] = None if token is None else token.content
            if token is not None:
                extended.append(token)
        additional = [as_special_token(value) for value in additional_special_tokens]
        self.additional_special_tokens = [token.content for token in additional]
        self._register(extended + additional)

    @property
    def special_tokens_map(self) -> dict:
        """Special token attributes that are set, as in transformers: {"bos_token": "<s>", ...}."""
        mapping = {attribute: token for attribute, token in self._special_tokens.items() if token is not None}
        if self.additional_special_tokens:
            mapping["additional_special_tokens"] = list(self.additional_special_tokens)
        return mapping

    @property
    def all_special_tokens(self) -> list[str]:
        tokens = [token for token in self._special_tokens.values() if token is not None]
        return list(dict.fromkeys(tokens + list(self.additional_special_tokens)))

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    def add_special_tokens(self, special_tokens_dict: dict, replace_additional_special_tokens: bool = True) -> int:
        """Set special tokens ({"pad_token": "[PAD]", "additional_special_tokens": [...]}) and add them to the
        vocabulary; returns how many tokens were new."""
        tokens = []
        for key, value in special_tokens_dict.items():
            if key == "additional_special_tokens":
                if not isinstance(value, (list, tuple)):
                    raise SettingError(f"additional_special_tokens must be a list of tokens, got {value!r}")
                new = [as_special_token(token) for token in value]
                names = [token.content for token in new]
                if replace_additional_special_tokens:
                    self.additional_special_tokens = names
                else:
                    self.additional_special_tokens += [n for n in names if n not in self.additional_special_tokens]
                tokens += new
            elif key in SPECIAL_TOKENS_ATTRIBUTES:
                if not isinstance(value, (str, AddedToken)):
                    raise SettingError(f"{key} must be a str or tokenizers.AddedToken, got {value!r}")
                token = as_special_token(value)
                self._special_tokens[key] = token.content
                tokens.append(token)
            else:
                raise SettingError(
                    f"unknown special token key {key!r}; allowed: {list(SPECIAL_TOKENS_ATTRIBUTES)} and "
                    "'additional_special_tokens'"
                )
        return self.add_tokens(tokens, special_tokens=True)

    def _register(self, tokens: Sequence[AddedToken]) -> None:
        # Re-adding a registered token would overwrite the flags its file gave it (lstrip...), so skip those.
        known = {token.content for token in self._tokenizer.get_added_tokens_decoder().values()}
        for token in tokens:
            if token.content not in known:
                known.add(token.content)
                self.add_tokens([token], special_tokens=token.special)

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: Optional[list[int]] = None):
        """<s> A </s>, or <s> A </s></s> B </s>."""
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return cls + list(token_ids_0) + sep
        return cls + list(token_ids_0) + sep + sep + list(token_ids_1) + sep

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: Optional[list[int]] = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        """1 where build_inputs_with_special_tokens puts (or, with already_has_special_tokens, where the ids hold)
        a special token."""
        if already_has_special_tokens:
            special = set(self.all_special_ids)
            return [1 if index in special else 0 for index in token_ids_0]
        if token_ids_1 is None:
            return [1] + [0] * len(token_ids_0) + [1]
        return [1] + [0] * len(token_ids_0) + [1, 1] + [0] * len(token_ids_1) + [1]
