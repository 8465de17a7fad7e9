"""The routes' request bodies. Typed, so /docs shows them; unknown fields are refused; the shape of `inputs` is
checked first, so a wrong one gets one message naming the field, the value and what is allowed."""

from __future__ import annotations

from typing import List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import SettingError


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def texts(value, pairs: bool = False):
    """`value` if it is a non-empty text or a non-empty list of them (or, with pairs, of [text, text_pair])."""
    allowed = "a non-empty string or a non-empty list of them" + (" (or of [text, text_pair] pairs)" if pairs else "")
    items = value if isinstance(value, list) else [value]
    good = isinstance(value, (str, list)) and items and all(
        isinstance(item, str) and item or pairs and isinstance(item, list) and len(item) == 2
        and all(isinstance(text, str) and text for text in item) for item in items)
    if not good:
        raise SettingError(f"must be {allowed}, got {str(value)[:80]!r}")
    return value


def objects(value, keys: tuple):
    """`value` if it is an object with `keys`, or a non-empty list of them."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, dict) and set(item) == set(keys) for item in items):
        raise SettingError(f"must be an object with keys {list(keys)} or a non-empty list of them, "
                           f"got {str(value)[:80]!r}")
    return value


class PredictRequest(Body):
    """Sequence classification, text-embeddings-inference's /predict: every label with its score, best first."""

    inputs: Union[str, List[Union[str, List[str]]]] = Field(
        description="a text, a list of texts, or a list of [text, text_pair] pairs")
    raw_scores: bool = Field(False, description="the logits instead of softmax (sigmoid for multi-label) scores")
    truncate: Optional[bool] = Field(None, description="cut inputs longer than the model (default: the server's)")

    check = field_validator("inputs", mode="before")(lambda value: texts(value, pairs=True))


class TagRequest(Body):
    """Token classification: the entities of each text."""

    inputs: Union[str, List[str]]
    aggregation_strategy: Literal["none", "simple", "first", "average", "max"] = "simple"
    ignore_labels: Optional[List[str]] = Field(None, description='labels left out (default ["O"])')
    stride: Optional[int] = Field(None, description="overlap of the windows of a long text (default 0)")

    check = field_validator("inputs", mode="before")(texts)


class QuestionContext(Body):
    question: str
    context: str


class AnswerRequest(Body):
    """Extractive question answering: the span of the context that answers the question."""

    inputs: Union[QuestionContext, List[QuestionContext]]
    top_k: int = 1
    doc_stride: Optional[int] = None
    max_seq_len: Optional[int] = None
    max_question_len: int = 64
    max_answer_len: int = 15
    handle_impossible_answer: bool = False
    align_to_words: bool = True

    check = field_validator("inputs", mode="before")(lambda value: objects(value, ("question", "context")))


class PromptChoices(Body):
    prompt: str
    choices: List[str]


class ChooseRequest(Body):
    """Multiple choice: the choices ranked, best first."""

    inputs: Union[PromptChoices, List[PromptChoices]]
    top_k: Optional[int] = Field(None, description="keep the best N (default: all)")

    check = field_validator("inputs", mode="before")(lambda value: objects(value, ("prompt", "choices")))


class FillMaskRequest(Body):
    """Masked LM: the likeliest tokens for each <mask>."""

    inputs: Union[str, List[str]]
    top_k: int = 5
    targets: Optional[Union[str, List[str]]] = None

    check = field_validator("inputs", mode="before")(texts)


class EmbedRequest(Body):
    """Pooled hidden states, text-embeddings-inference's /embed: one vector per text."""

    inputs: Union[str, List[str]]
    pooling: Literal["cls", "mean"] = "cls"
    normalize: bool = True
    truncate: Optional[bool] = None

    check = field_validator("inputs", mode="before")(texts)


class OpenAIEmbeddingRequest(BaseModel):
    """OpenAI's embeddings request (other fields that OpenAI clients send are ignored)."""

    input: Union[str, List[str]]
    model: Optional[str] = None
    encoding_format: Literal["float", "base64"] = "float"

    check = field_validator("input", mode="before")(texts)


class TokenizeRequest(Body):
    """The tokens of each text, with their character spans."""

    inputs: Union[str, List[str]]
    add_special_tokens: bool = True

    check = field_validator("inputs", mode="before")(texts)
