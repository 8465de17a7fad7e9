"""RoBERTa-PreLayerNorm in PyTorch: embeddings -> attention -> layer -> encoder -> model -> heads.

Pre-LayerNorm: each sub-layer normalises its input (x + f(LN(x))) and one final LayerNorm follows the last
layer. Module and parameter names equal transformers' state-dict keys, so checkpoints load without a key map.

Shapes: B batch, T query length, S key length (past + T), C hidden size, H heads, D head size (C / H).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint
from .config import RobertaPreLayerNormConfig, max_sequence_length
from .cpu_linear import Linear, tracing
from .errors import SettingError
from .outputs import (
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    GenerateDecoderOnlyOutput,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from .validation import InputError, check_inputs, check_labels, check_positions

ACT_FNS = {
    "gelu": F.gelu,
    "gelu_python": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
}


def create_position_ids_from_input_ids(input_ids: torch.Tensor, padding_idx: int, past_length: int = 0):
    """RoBERTa positions: count real tokens from padding_idx + 1; pads keep position padding_idx."""
    mask = input_ids.ne(padding_idx).int()
    return ((torch.cumsum(mask, dim=1).type_as(mask) + past_length) * mask).long() + padding_idx


class Packing:
    """Where the real tokens of a padded (B, T) batch sit, so position-wise work runs on them alone.

    Built on the host from an attention mask the caller kept there (the collator knows the lengths), so
    deciding to pack never waits on the device; the index tensors are then copied to `device` without blocking.
    The padding-free path: embeddings, LayerNorms, projections and feed-forward layers see the N real tokens
    packed as one (1, N, C) sequence; attention runs on them as variable-length sequences (`cu_seqlens`)
    where a varlen kernel serves; on the CPU, in blocks of rows of like lengths, each padded to its own longest
    (`buckets`), where that saves; else it re-pads them to (B, T, C) blocks for SDPA with the padding mask.
    """

    def __init__(self, attention_mask: torch.Tensor, device: torch.device, varlen: bool = False):
        self.B, self.T = attention_mask.shape
        self.varlen = varlen and varlen_kernel() is not None  # the caller's call: an encoder, on a GPU
        self.off = os.environ.get(VARLEN_ENV, "1") == "0"  # read once a forward, not once a layer
        self.real, self.device = attention_mask.reshape(-1).bool(), device  # (B * T,) on the host
        self.lengths = lengths = self.real.view(self.B, self.T).sum(1)
        self.max_length = int(lengths.max())
        self.starts = torch.zeros(self.B + 1, dtype=torch.int32)  # (B + 1,) each row's first packed token, and N
        self.starts[1:] = lengths.cumsum(0)
        self.index, self.cu_seqlens = self.to_device(self.real.nonzero().squeeze(1), self.starts)
        self.rows, self.cols = self.index // self.T, self.index % self.T  # (N,) each

    def to_device(self, *tensors: torch.Tensor) -> tuple:
        if self.device.type == "cuda":  # page-locked, so the copies do not block the host
            tensors = tuple(t.pin_memory() for t in tensors)
        return tuple(t.to(self.device, non_blocking=True) for t in tensors)

    @functools.cached_property
    def where(self) -> torch.Tensor:  # (B * T,) place of each position among the packed tokens (-1 before any)
        return self.to_device(self.real.cumsum(0) - 1)[0]

    def unpad(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, ...) -> (1, N, ...); x may be a strided view
        return x[self.rows, self.cols].unsqueeze(0)

    def pad(self, x: torch.Tensor) -> torch.Tensor:  # (1, N, ...) -> (B, T, ...), zeros at padding
        x = x.squeeze(0)
        out = x.new_zeros(self.B * self.T, *x.shape[1:]).index_copy(0, self.index, x)
        return out.view(self.B, self.T, *x.shape[1:])

    def attention(self, x: torch.Tensor, dropout_p: float):
        """How self-attention over `x` (or its projections) runs on the packed tokens: attend_varlen,
        attend_in_buckets, or None (re-padded to (B, T) with the padding mask; always with attention dropout,
        which neither has, or with ROBERTA_PRELAYERNORM_VARLEN=0)."""
        if dropout_p != 0.0 or self.off:
            return None
        dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else x.dtype
        if self.varlen and dtype in (torch.float16, torch.bfloat16):
            return self.attend_varlen
        return self.attend_in_buckets if self.buckets is not None else None

    def attend_varlen(self, q, k, v, heads: int) -> torch.Tensor:  # (1, N, C) each -> (1, N, C)
        N, C = q.shape[1:]
        q, k, v = (t.view(N, heads, C // heads) for t in (q, k, v))  # (N, H, D)
        context = varlen_kernel()(q, k, v, self.cu_seqlens, self.cu_seqlens, self.max_length, self.max_length)
        return context.reshape(1, N, C)

    @functools.cached_property
    def buckets(self) -> Optional[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
        """On the CPU, where grouping the rows by length saves a tenth of the attention's work or more (see
        length_buckets): per group, the packed places of its tokens (n_tokens,), their places in the group's
        padded (rows * longest) layout (n_tokens,), and which keys each row may see (rows, longest). Else None."""
        if self.device.type != "cpu" or self.B < 2:
            return None
        lengths = self.lengths.tolist()
        groups, cost = length_buckets(lengths, BUCKET_OVERHEAD)
        if cost > 0.9 * (len(lengths) * self.max_length ** 2 + BUCKET_OVERHEAD):
            return None
        buckets = []
        for rows in groups:
            rows = torch.tensor(rows)
            n, longest = self.lengths[rows], int(self.lengths[rows].max())
            within = torch.arange(int(n.sum())) - torch.repeat_interleave(n.cumsum(0) - n, n)  # each token's column
            packed = torch.repeat_interleave(self.starts[rows].long(), n) + within
            local = torch.repeat_interleave(torch.arange(len(rows)) * longest, n) + within
            buckets.append((packed, local, torch.arange(longest) < n[:, None]))
        return buckets

    def attend_in_buckets(self, q, k, v, heads: int) -> torch.Tensor:  # (1, N, C) each -> (1, N, C)
        C = q.shape[-1]
        out = q.new_empty(q.shape[1:])  # (N, C)
        for packed, local, allowed in self.buckets:
            rows, longest = allowed.shape

            def block(x):  # (1, N, C) -> (rows, H, longest, D), zeros at padding
                x = x.new_zeros(rows * longest, C).index_copy_(0, local, x[0, packed])
                return x.view(rows, longest, heads, C // heads).transpose(1, 2)

            context = F.scaled_dot_product_attention(block(q), block(k), block(v),
                                                     attn_mask=additive_mask(allowed[:, None, None, :], q.dtype))
            out[packed] = context.transpose(1, 2).reshape(rows * longest, C)[local]
        return out.unsqueeze(0)


# One more attention call (its padding, copies and dispatch, about 60 us on a CPU core) in (query, key) pairs'
# worth of work (CPU SDPA: about 50 ns a pair at base size): what a length bucket must save to pay for itself.
BUCKET_OVERHEAD = 1200
BUCKET_ROWS = 64  # the most rows a bucket takes, which bounds the search (a bigger one would save next to nothing)


def length_buckets(lengths: list[int], overhead: int) -> tuple[list[list[int]], int]:
    """Rows grouped so that attention, each group padded to its longest row, costs least: the sum over groups of
    rows x longest² + `overhead`. The groups are runs of the rows sorted by length (an optimal grouping has that
    form) of at most BUCKET_ROWS rows, found by dynamic programming; rows of length 0 have no tokens and join no
    group. Returns the groups (row indices) and their cost."""
    order = sorted((r for r in range(len(lengths)) if lengths[r]), key=lambda r: -lengths[r])
    L = [lengths[r] for r in order]
    best, cut = [0] + [math.inf] * len(L), [0] * (len(L) + 1)  # best[j]: the cost of grouping the j longest
    for j in range(1, len(L) + 1):
        for i in range(max(0, j - BUCKET_ROWS), j):  # the last group: rows i..j-1, padded to L[i]
            cost = best[i] + (j - i) * L[i] ** 2 + overhead
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], len(L)
    while j:
        groups.append(order[cut[j]:j])
        j = cut[j]
    return groups[::-1], best[-1]


VARLEN_ENV = "ROBERTA_PRELAYERNORM_VARLEN"


@functools.cache
def varlen_kernel():
    """torch's variable-length attention (FlashAttention-based, torch 2.10+), or None."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def positions_where(keep: torch.Tensor, capacity: Optional[int] = None) -> torch.Tensor:
    """The columns where `keep` (B, T) is true, per row in ascending order, as a (B, K) long tensor padded with
    -1; K is `capacity` (at most T, and at least every row's count) or, by default, the largest count of a row."""
    T = keep.size(1)
    K = int(keep.sum(1).max()) if capacity is None else capacity
    columns = torch.where(keep, torch.arange(T, device=keep.device), T).sort(dim=1).values[:, :K]  # kept first
    return columns.masked_fill(columns == T, -1)


class Selection:
    """The positions to predict, (B, K) columns with -1 at empty slots: sparse prediction computes the LM head,
    and the last layer's queries, attention output and feed-forward block, at these B x K slots only.

    K is static where the caller gives a capacity (the masked-LM collator does), so compiled models see one
    shape per batch shape. Hidden states are (B, T, C), or the (1, N, C) real tokens when `packing` is given;
    the selected rows come out as (B, K, C), the layout the queries need (each row attends over its own keys).
    Empty slots compute a real position's values; their labels are ignored.
    """

    def __init__(self, positions: torch.Tensor, T: int, packing: Optional[Packing] = None):
        rows = torch.arange(positions.size(0), device=positions.device)[:, None]
        flat = rows * T + positions.clamp(min=0)  # (B, K) into the flattened (B * T) positions
        self.flat = flat if packing is None else packing.where[flat].clamp(min=0)  # the packed rows keep order

    def take(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, ...) or (1, N, ...) -> (B, K, ...)
        return x.flatten(0, 1)[self.flat]


class RobertaPreLayerNormEmbeddings(nn.Module):
    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(
            config.max_position_embeddings, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.padding_idx = config.pad_token_id

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, past_length=0):
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)  # (B, T, C)
        B, T = inputs_embeds.shape[:2]
        if position_ids is None:
            if input_ids is not None:
                position_ids = create_position_ids_from_input_ids(input_ids, self.padding_idx, past_length)
            else:  # embeddings give no way to see padding: number every position
                first = self.padding_idx + 1 + past_length
                position_ids = torch.arange(first, first + T, device=inputs_embeds.device).expand(B, T)
        if token_type_ids is None:
            token_type_ids = torch.zeros((B, T), dtype=torch.long, device=inputs_embeds.device)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids) + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


def attend(q, k, v, *, dropout_p: float, attention_mask=None, head_mask=None, output_attentions: bool = False):
    """Scaled dot-product attention over (B, H, T, D) queries and (B, H, S, D) keys/values.

    `attention_mask` is boolean (True: may attend), broadcastable to (B, H, T, S); `head_mask` (H,) scales each
    head's output. Runs SDPA (fused kernels) unless the attention weights are asked for.
    Returns the context (B, H, T, D) and the weights (B, H, T, S) or None.
    """
    mask = None
    if attention_mask is not None:  # in the queries' dtype, which autocast may have changed
        mask = additive_mask(attention_mask, q.dtype)
    if not output_attentions:
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        if head_mask is not None:  # scaling the weights of a head scales its output alike
            context = context * head_mask.view(1, -1, 1, 1).to(context.dtype)
        return context, None
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.size(-1))  # (B, H, T, S)
    if mask is not None:
        scores = scores + mask
    weights = F.softmax(scores, dim=-1)
    weights = F.dropout(weights, p=dropout_p)
    if head_mask is not None:
        weights = weights * head_mask.view(1, -1, 1, 1).to(weights.dtype)
    return torch.matmul(weights, v), weights


class RobertaPreLayerNormSelfAttention(nn.Module):
    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.query = Linear(config.hidden_size, config.hidden_size)
        self.key = Linear(config.hidden_size, config.hidden_size)
        self.value = Linear(config.hidden_size, config.hidden_size)
        self.dropout_prob = config.attention_probs_dropout_prob

    def split_heads(self, x):  # (B, T, C) -> (B, H, T, D)
        B, T, _ = x.shape
        return x.view(B, T, self.num_attention_heads, self.attention_head_size).transpose(1, 2)

    def forward(self, hidden_states, *, attention_mask=None, head_mask=None, encoder_hidden_states=None,
                past_key_value=None, output_attentions=False, packing: Optional[Packing] = None,
                selection: Optional[Selection] = None):
        """Self-attention, or cross-attention over `encoder_hidden_states` when given.

        `past_key_value` is this layer's cached (key, value): prepended for self-attention, reused as is for
        cross-attention. With `packing`, hidden_states are the packed real tokens (1, N, C). With `selection`,
        queries are taken at its B x K slots only and the context is (B, K, C).
        Returns context (like hidden_states), weights or None, and the (key, value) to cache.
        """
        p = self.dropout_prob if self.training else 0.0
        packed = (packing.attention(hidden_states, p) if packing is not None and selection is None
                  and encoder_hidden_states is None and head_mask is None and not output_attentions else None)
        if packed is not None:
            q, k, v = (proj(hidden_states) for proj in (self.query, self.key, self.value))  # (1, N, C) each
            return packed(q, k, v, self.num_attention_heads), None, None
        pad = packing.pad if packing is not None else (lambda x: x)
        if selection is not None:  # (B, H, K, D)
            q = self.split_heads(self.query(selection.take(hidden_states)))
        else:
            q = self.split_heads(pad(self.query(hidden_states)))  # (B, H, T, D)
        past = past_key_value
        if encoder_hidden_states is not None and past is not None:
            k, v = past
        elif encoder_hidden_states is not None:
            kv = encoder_hidden_states
            k, v = self.split_heads(self.key(kv)), self.split_heads(self.value(kv))
        else:
            k, v = self.split_heads(pad(self.key(hidden_states))), self.split_heads(pad(self.value(hidden_states)))
            if past is not None:
                k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        context, weights = attend(q, k, v, dropout_p=p, attention_mask=attention_mask, head_mask=head_mask,
                                  output_attentions=output_attentions)
        context = context.transpose(1, 2)  # (B, T, H, D)
        if packing is not None and selection is None:  # the real tokens straight from the strided view: (1, N, C)
            return packing.unpad(context).flatten(2), weights, (k, v)
        return context.flatten(2), weights, (k, v)


class RobertaPreLayerNormOutput(nn.Module):
    """residual + dropout(dense(x)): closes the attention block (from hidden_size) and the feed-forward block
    (from intermediate_size)."""

    def __init__(self, config: RobertaPreLayerNormConfig, in_features: int):
        super().__init__()
        self.dense = Linear(in_features, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, residual):
        return residual + self.dropout(self.dense(hidden_states))


class RobertaPreLayerNormAttention(nn.Module):
    """x + Attention(LN(x))."""

    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__()
        self.self = RobertaPreLayerNormSelfAttention(config)
        self.output = RobertaPreLayerNormOutput(config, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states, *, selection=None, **attention_inputs):
        """`attention_inputs`: the keywords of RobertaPreLayerNormSelfAttention.forward."""
        context, weights, present = self.self(self.LayerNorm(hidden_states), selection=selection, **attention_inputs)
        residual = selection.take(hidden_states) if selection is not None else hidden_states
        return self.output(context, residual), weights, present


class RobertaPreLayerNormIntermediate(nn.Module):
    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dense = Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT_FNS[config.hidden_act]

    def forward(self, hidden_states):
        return self.intermediate_act_fn(self.dense(self.LayerNorm(hidden_states)))


class RobertaPreLayerNormLayer(nn.Module):
    """Self-attention, cross-attention (decoders with add_cross_attention), then the feed-forward block."""

    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__()
        self.attention = RobertaPreLayerNormAttention(config)
        if config.add_cross_attention:
            self.crossattention = RobertaPreLayerNormAttention(config)
        self.intermediate = RobertaPreLayerNormIntermediate(config)
        self.output = RobertaPreLayerNormOutput(config, config.intermediate_size)

    def forward(self, hidden_states, *, attention_mask=None, head_mask=None, encoder_hidden_states=None,
                encoder_attention_mask=None, past_key_value=None, output_attentions=False, packing=None,
                selection=None):
        """Returns the new hidden states, (self weights, cross weights) and the cache entry of this layer.

        With `selection` (encoders only), the output holds its slots only: (B, K, C).
        """
        past = past_key_value
        shared = {"head_mask": head_mask, "output_attentions": output_attentions, "packing": packing}
        hidden_states, self_weights, present = self.attention(
            hidden_states, attention_mask=attention_mask, past_key_value=past[:2] if past is not None else None,
            selection=selection, **shared
        )
        cross_weights = None
        if encoder_hidden_states is not None:
            if not hasattr(self, "crossattention"):
                raise SettingError(
                    "encoder_hidden_states was given, but the model has no cross-attention layers: build it with "
                    "config.is_decoder=True and config.add_cross_attention=True"
                )
            cross_past = past[2:] if past is not None and len(past) == 4 else None
            hidden_states, cross_weights, cross_present = self.crossattention(
                hidden_states, attention_mask=encoder_attention_mask, encoder_hidden_states=encoder_hidden_states,
                past_key_value=cross_past, **shared
            )
            present = present + cross_present
        hidden_states = self.output(self.intermediate(hidden_states), hidden_states)
        return hidden_states, (self_weights, cross_weights), present


class RobertaPreLayerNormEncoder(nn.Module):
    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__()
        self.layer = nn.ModuleList([RobertaPreLayerNormLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(self, hidden_states, *, attention_mask=None, head_mask=None, encoder_hidden_states=None,
                encoder_attention_mask=None, past_key_values=None, use_cache=False, output_attentions=False,
                output_hidden_states=False, packing=None, selection=None):
        """`selection`: the last layer works at its slots only and returns them, (B, K, C)."""
        all_hidden, all_self, all_cross, cache = [], [], [], []
        for i, layer in enumerate(self.layer):
            if output_hidden_states:
                all_hidden.append(hidden_states)
            inputs = {
                "attention_mask": attention_mask,
                "head_mask": None if head_mask is None else head_mask[i],
                "encoder_hidden_states": encoder_hidden_states,
                "encoder_attention_mask": encoder_attention_mask,
                "past_key_value": None if past_key_values is None else past_key_values[i],
                "output_attentions": output_attentions,
                "packing": packing,
                "selection": selection if i == len(self.layer) - 1 else None,
            }
            if self.gradient_checkpointing and self.training:
                from torch.utils.checkpoint import checkpoint as recompute

                hidden_states, (self_w, cross_w), present = recompute(layer, hidden_states, use_reentrant=False,
                                                                      **inputs)
            else:
                hidden_states, (self_w, cross_w), present = layer(hidden_states, **inputs)
            if use_cache:
                cache.append(present)
            if output_attentions:
                all_self.append(self_w)
                if cross_w is not None:
                    all_cross.append(cross_w)
        if output_hidden_states:
            all_hidden.append(hidden_states)  # v4 semantics: the last layer's output, before the final LayerNorm
        return (
            hidden_states,
            tuple(cache) if use_cache else None,
            tuple(all_hidden) if output_hidden_states else None,
            tuple(all_self) if output_attentions else None,
            tuple(all_cross) if output_attentions and all_cross else None,
        )


class RobertaPreLayerNormPooler(nn.Module):
    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        return self.activation(self.dense(hidden_states[:, 0]))  # the <s> token


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where attending is allowed, the dtype's minimum elsewhere (finite, so fully masked rows stay finite)."""
    return torch.zeros((), dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


class RobertaPreLayerNormPreTrainedModel(checkpoint.PreTrainedMixin, nn.Module):
    """Base of all models: weight initialisation, from_pretrained/save_pretrained and the usual utilities."""

    config_class = RobertaPreLayerNormConfig
    base_model_prefix = "roberta_prelayernorm"
    supports_gradient_checkpointing = True

    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__()
        config = RobertaPreLayerNormConfig.coerce(config)
        config.validate()
        self.config = config
        self.name_or_path = getattr(config, "_name_or_path", "")  # the folder or hub id it was loaded from

    def _init_weights(self, module: nn.Module) -> None:
        """transformers' scheme: normal(0, initializer_range) weights, zero biases and pad rows, LayerNorm 1/0."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=std)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()
        elif isinstance(module, RobertaPreLayerNormLMHead):
            module.bias.data.zero_()

    def backbone(self) -> "RobertaPreLayerNormModel":
        return getattr(self, self.base_model_prefix, self)

    def run_backbone(self, input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                     output_attentions, output_hidden_states, **kwargs) -> BaseModelOutputWithPoolingAndCrossAttentions:
        return self.backbone()(
            input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True, **kwargs
        )

    def finish(self, output_cls, return_dict, base, loss, **fields):
        """Build the head's output: its type, or with return_dict=False the tuple transformers returns."""
        if return_dict is None:
            return_dict = self.config.use_return_dict
        if return_dict:
            extra = {key: getattr(base, key) for key in ("past_key_values", "cross_attentions")
                     if key in output_cls.__dataclass_fields__}  # only the decoder outputs carry these
            return output_cls(loss=loss, **fields, hidden_states=base.hidden_states, attentions=base.attentions,
                              **extra)
        rest = tuple(v for v in (base.past_key_values, base.hidden_states, base.attentions, base.cross_attentions)
                     if v is not None)
        out = tuple(fields.values()) + rest
        return ((loss,) + out) if loss is not None else out


class RobertaPreLayerNormModel(RobertaPreLayerNormPreTrainedModel):
    """The bare encoder (or decoder, with config.is_decoder) with an optional pooler."""

    def __init__(self, config: RobertaPreLayerNormConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = RobertaPreLayerNormEmbeddings(config)
        self.encoder = RobertaPreLayerNormEncoder(config)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = RobertaPreLayerNormPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        head_mask=None,
        inputs_embeds=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        past_key_values=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        prediction_positions: Optional[torch.Tensor] = None,  # not keyword-only: TorchScript's ONNX exporter
    ):  # passes every argument by position
        """Run the encoder. See the README's "Forward arguments" for every argument; shapes are (B, T).

        An `attention_mask` on the CPU with the other inputs on a GPU is how a caller who built the batch on the
        host (the trainer, the pipelines) lets the model pack the real tokens: the decision is taken from the
        host copy, without waiting on the device. A mask on the GPU runs the padded path.

        `prediction_positions` (B, K) long (sparse prediction, see Selection): last_hidden_state holds these
        slots only, (B, K, C), and where exact (an encoder, no hidden states or attentions asked for, a 2D
        attention mask) the last layer computes its queries, attention output and feed-forward block there only.
        """
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.use_return_dict if return_dict is None else return_dict
        use_cache = (config.use_cache if use_cache is None else use_cache) and config.is_decoder
        past_length = past_key_values[0][0].shape[2] if past_key_values is not None else 0
        B, T = check_inputs(config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                            inputs_embeds, past_length)
        device = input_ids.device if input_ids is not None else inputs_embeds.device

        packing = None
        # Pack when a mask on the host shows padding to skip (reading it costs no device synchronisation); not
        # under torch.compile, where data-dependent shapes break graphs, nor under torch.jit.trace or an exporter,
        # which would keep this mask's decisions (no mask, the lengths) for every input. No padding: no mask,
        # SDPA's fastest kernel.
        if (attention_mask is not None and attention_mask.dim() == 2 and attention_mask.device.type == "cpu"
                and past_length == 0 and not tracing()):
            if bool(attention_mask.all()):
                attention_mask = None
            else:
                packing = Packing(attention_mask, device, varlen=device.type == "cuda" and not config.is_decoder)
        if attention_mask is not None:
            attention_mask = attention_mask.to(device, non_blocking=True)
        if packing is not None:
            if input_ids is not None and position_ids is None:  # RoBERTa positions need the padded layout
                position_ids = create_position_ids_from_input_ids(input_ids, self.embeddings.padding_idx)
            elif position_ids is None:
                position_ids = torch.arange(T, device=device).expand(B, T) + self.embeddings.padding_idx + 1
            input_ids, inputs_embeds, token_type_ids, position_ids = (
                None if t is None else packing.unpad(t.expand(B, T) if t.dim() == 2 else t)
                for t in (input_ids, inputs_embeds, token_type_ids, position_ids)
            )
        embedding_output = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, past_length)
        mask = self.self_attention_mask(attention_mask, B, T, past_length, device)
        encoder_mask = None
        if encoder_hidden_states is not None and encoder_attention_mask is not None:
            encoder_mask = encoder_attention_mask.bool()[:, None, None, :]
        if head_mask is not None:
            head_mask = head_mask.expand(config.num_hidden_layers, -1) if head_mask.dim() == 1 else head_mask
        selection = None
        if prediction_positions is not None:
            selection = Selection(prediction_positions.to(device, non_blocking=True), T, packing)
        sparse_last_layer = (selection is not None and not (output_hidden_states or output_attentions)
                             and not config.is_decoder and encoder_hidden_states is None
                             and (mask is None or mask.size(2) == 1))  # every query sees the same keys

        sequence_output, cache, hidden_states, attentions, cross_attentions = self.encoder(
            embedding_output, attention_mask=mask, head_mask=head_mask, encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_mask, past_key_values=past_key_values, use_cache=use_cache,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, packing=packing,
            selection=selection if sparse_last_layer else None,
        )
        if selection is not None and not sparse_last_layer:
            sequence_output = selection.take(sequence_output)
        sequence_output = self.LayerNorm(sequence_output)
        if packing is not None and selection is None:  # back to (B, T, C), zeros at padding
            sequence_output = packing.pad(sequence_output)
        if packing is not None and hidden_states is not None:
            hidden_states = tuple(packing.pad(h) for h in hidden_states)
        pooled_output = self.pooler(sequence_output) if self.pooler is not None and selection is None else None
        if not return_dict:
            rest = tuple(v for v in (cache, hidden_states, attentions, cross_attentions) if v is not None)
            return (sequence_output, pooled_output) + rest
        return BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=pooled_output,
            hidden_states=hidden_states,
            past_key_values=cache,
            attentions=attentions,
            cross_attentions=cross_attentions,
        )

    def self_attention_mask(self, attention_mask, B, T, past_length, device) -> Optional[torch.Tensor]:
        """Boolean (B, 1, T|1, S) mask of the keys each query may see; None when it may see all of them."""
        S = past_length + T
        allowed = None
        if attention_mask is not None:
            allowed = attention_mask.bool()
            allowed = allowed[:, None, :, :] if allowed.dim() == 3 else allowed[:, None, None, :]
        if self.config.is_decoder:
            causal = torch.ones((T, S), dtype=torch.bool, device=device).tril(diagonal=past_length)
            allowed = causal[None, None] if allowed is None else allowed & causal
        return allowed


class RobertaPreLayerNormLMHead(nn.Module):
    """dense -> gelu -> layer_norm -> decoder (tied to the word embeddings) + bias."""

    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self._tie_weights()

    def _tie_weights(self) -> None:
        """The decoder's bias is this head's `bias`, the name checkpoints store it under (tie_weights calls
        this on every module that has it)."""
        self.decoder.bias = self.bias

    def resize_vocabulary(self, num_tokens: int, keep: int, init=None) -> None:
        """Give the vocabulary axis `num_tokens` rows, the first `keep` of them kept (resize_token_embeddings
        calls this on every module that has it). The new decoder is left to tying, or, given `init`,
        initialised with it and given its old rows."""
        bias = torch.zeros(num_tokens, device=self.bias.device, dtype=self.bias.dtype)
        bias[:keep] = self.bias.data[:keep]
        self.bias = nn.Parameter(bias)
        decoder = Linear(self.decoder.in_features, num_tokens, device=bias.device, dtype=bias.dtype)
        if init is not None:
            init(decoder)
            decoder.weight.data[:keep] = self.decoder.weight.data[:keep]
        self.decoder = decoder

    def forward(self, features, keep_padding: bool = False):
        """Logits (..., V). On devices in VOCAB_PADDED_ON the vocabulary axis is computed padded to a multiple of
        VOCAB_MULTIPLE (aligned GEMMs: an odd V such as 50265 leaves cuBLAS its slower kernels), -inf in the
        padding so softmax and the loss ignore it; the logits are then a view of its first V columns, or with
        `keep_padding` the padded scores (V' columns) for the loss."""
        x = self.layer_norm(F.gelu(self.dense(features)))
        decoder, vocabulary = self.decoder, self.decoder.out_features
        extra = -vocabulary % VOCAB_MULTIPLE
        if not extra or x.device.type not in VOCAB_PADDED_ON or type(decoder) not in (Linear, nn.Linear):
            return decoder(x)  # a replaced decoder (an adapter's) is called as it is
        bias = decoder.bias if decoder.bias is not None else x.new_zeros(vocabulary)
        scores = F.linear(x, F.pad(decoder.weight, (0, 0, 0, extra)), F.pad(bias, (0, extra), value=-math.inf))
        return scores if keep_padding else scores[..., :vocabulary]


VOCAB_MULTIPLE = 64
VOCAB_PADDED_ON = ("cuda",)  # measured faster there (benchmarks/bench_gpu.py); CPUs run their own Linear path


class RobertaPreLayerNormClassificationHead(nn.Module):
    """Sentence-level head on the <s> token: dropout -> dense -> tanh -> dropout -> out_proj."""

    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(classifier_dropout(config))
        self.out_proj = Linear(config.hidden_size, config.num_labels)

    def forward(self, features):
        x = self.dropout(features[:, 0, :])
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out_proj(x)


def classifier_dropout(config: RobertaPreLayerNormConfig) -> float:
    return config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob


def ignore_padding(labels, attention_mask):
    """Labels at positions where attention_mask is 0 are ignored (-100) by every token-level loss."""
    if labels is None or attention_mask is None or attention_mask.dim() != 2 or labels.shape != attention_mask.shape:
        return labels
    return labels.masked_fill(attention_mask.to(labels.device, non_blocking=True) == 0, -100)


def labels_at(labels: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The (B, T) labels at (B, K) prediction positions: (B, K), -100 (ignored) at the empty slots."""
    return labels.gather(1, positions.clamp(min=0)).masked_fill(positions < 0, -100)


def loss_for(problem_type: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss transformers uses for each problem type (logits (..., N), labels as the type expects)."""
    if problem_type == "regression":
        if logits.size(-1) == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
        return F.mse_loss(logits, labels.to(logits.dtype))
    if problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1), ignore_index=-100)


class RobertaPreLayerNormForSequenceClassification(RobertaPreLayerNormPreTrainedModel):
    """Classification or regression on the <s> token; the loss follows config.problem_type."""

    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.roberta_prelayernorm = RobertaPreLayerNormModel(config, add_pooling_layer=False)
        self.classifier = RobertaPreLayerNormClassificationHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        base = self.run_backbone(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                                 output_attentions, output_hidden_states)
        logits = self.classifier(base.last_hidden_state)  # (B, num_labels)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            if self.config.problem_type is None:  # decided as transformers decides it, and remembered
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            check_labels(self.config.problem_type, labels, logits, "labels")
            loss = loss_for(self.config.problem_type, logits, labels)
        return self.finish(SequenceClassifierOutput, return_dict, base, loss, logits=logits)


class RobertaPreLayerNormForMultipleChoice(RobertaPreLayerNormPreTrainedModel):
    """Scores each of N choices from the pooled output; inputs are (B, N, T)."""

    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__(config)
        self.roberta_prelayernorm = RobertaPreLayerNormModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = Linear(config.hidden_size, 1)
        self.post_init()

    def forward(self, input_ids=None, token_type_ids=None, attention_mask=None, labels=None, position_ids=None,
                head_mask=None, inputs_embeds=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        source = input_ids if input_ids is not None else inputs_embeds
        if source is None or source.dim() != (3 if input_ids is not None else 4):
            raise SettingError(
                "RobertaPreLayerNormForMultipleChoice expects input_ids of shape (batch, num_choices, seq_len) "
                "or inputs_embeds of shape (batch, num_choices, seq_len, hidden); got "
                f"{None if source is None else tuple(source.shape)}"
            )
        num_choices = source.shape[1]

        def flat(t, keep=1):  # (B, N, T, ...) -> (B * N, T, ...)
            return None if t is None else t.reshape(-1, *t.shape[t.dim() - keep:])

        base = self.run_backbone(flat(input_ids), flat(attention_mask), flat(token_type_ids), flat(position_ids),
                                 head_mask, flat(inputs_embeds, keep=2), output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(base.pooler_output)).view(-1, num_choices)  # (B, N)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            check_labels("single_label_classification", labels, logits, "labels")
            loss = loss_for("single_label_classification", logits, labels)
        return self.finish(MultipleChoiceModelOutput, return_dict, base, loss, logits=logits)


class RobertaPreLayerNormForTokenClassification(RobertaPreLayerNormPreTrainedModel):
    """A label per token (NER, POS tagging)."""

    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.roberta_prelayernorm = RobertaPreLayerNormModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(classifier_dropout(config))
        self.classifier = Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        base = self.run_backbone(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                                 output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(base.last_hidden_state))  # (B, T, num_labels)
        loss = None
        if labels is not None:
            labels = ignore_padding(labels.to(logits.device), attention_mask)
            check_labels("single_label_classification", labels, logits, "labels")
            loss = loss_for("single_label_classification", logits, labels)
        return self.finish(TokenClassifierOutput, return_dict, base, loss, logits=logits)


class RobertaPreLayerNormForQuestionAnswering(RobertaPreLayerNormPreTrainedModel):
    """Extractive QA: a start and an end logit per token."""

    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__(config)
        if config.num_labels != 2:
            raise SettingError(
                f"RobertaPreLayerNormForQuestionAnswering needs config.num_labels=2 (start and end logits), got "
                f"{config.num_labels}; pass num_labels=2"
            )
        self.num_labels = config.num_labels
        self.roberta_prelayernorm = RobertaPreLayerNormModel(config, add_pooling_layer=False)
        self.qa_outputs = Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, start_positions=None, end_positions=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        base = self.run_backbone(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                                 output_attentions, output_hidden_states)
        logits = self.qa_outputs(base.last_hidden_state)  # (B, T, 2)
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        padding = None
        if attention_mask is not None and attention_mask.dim() == 2:
            # An answer never lies in padding: its logits are the dtype's minimum, outside every softmax.
            padding = attention_mask.to(logits.device, non_blocking=True) == 0
            start_logits, end_logits = (t.masked_fill(padding, torch.finfo(t.dtype).min)
                                        for t in (start_logits, end_logits))
        loss = None
        if start_positions is not None and end_positions is not None:
            # Positions outside the sequence (e.g. answers cut off by truncation) are clamped to T and ignored;
            # so are positions on padding (the padding contract: labels there are ignored by every loss).
            T = start_logits.size(1)
            losses = []
            for name, positions, position_logits in (("start_positions", start_positions, start_logits),
                                                      ("end_positions", end_positions, end_logits)):
                positions = positions.to(start_logits.device)
                positions = positions.squeeze(-1) if positions.dim() > 1 else positions
                check_labels("positions", positions, position_logits, name)
                positions = positions.clamp(0, T)
                if padding is not None:
                    on_padding = padding.gather(1, positions.clamp(max=T - 1).unsqueeze(1)).squeeze(1)
                    positions = positions.masked_fill(on_padding & (positions < T), T)
                losses.append(F.cross_entropy(position_logits, positions, ignore_index=T))
            loss = (losses[0] + losses[1]) / 2
        return self.finish(QuestionAnsweringModelOutput, return_dict, base, loss,
                           start_logits=start_logits, end_logits=end_logits)


class LMHeadMixin:
    """Shared by the masked and causal LM heads: the decoder is tied to the input embeddings."""

    _tied_weights_keys = ["lm_head.decoder.weight", "lm_head.decoder.bias"]

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head.decoder = new_embeddings


class RobertaPreLayerNormForMaskedLM(LMHeadMixin, RobertaPreLayerNormPreTrainedModel):
    """Masked language modelling (the pre-training objective of the efficient_mlm checkpoints)."""

    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__(config)
        self.roberta_prelayernorm = RobertaPreLayerNormModel(config, add_pooling_layer=False)
        self.lm_head = RobertaPreLayerNormLMHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, labels=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, prediction_positions=None):
        """Sparse prediction, two ways: `prediction_positions` (B, K) long, each row's columns to predict with -1
        at empty slots (a static K: what the masked-LM trainer passes), gives logits (B, K, V) at those slots
        (empty ones unspecified, their labels ignored); with config.sparse_prediction and labels, the positions
        are those whose label is not config.sparse_pred_ignore_index, and logits are (M, V) in row-major order.
        The loss is the dense computation's either way."""
        positions = prediction_positions
        if labels is not None:
            labels = ignore_padding(labels, attention_mask)
            source = input_ids if input_ids is not None else inputs_embeds
            sparse = positions is not None or self.config.sparse_prediction
            if sparse and source is not None and tuple(labels.shape) != tuple(source.shape[:2]):
                raise InputError(f"labels must have shape {tuple(source.shape[:2])}, got {tuple(labels.shape)}")
            if positions is None and self.config.sparse_prediction:
                keep = labels.ne(self.config.sparse_pred_ignore_index)
                if attention_mask is not None and attention_mask.dim() == 2:
                    keep &= attention_mask.bool().to(labels.device)
                positions = positions_where(keep)
        if positions is not None:
            check_positions(positions, input_ids if input_ids is not None else inputs_embeds)
        base = self.run_backbone(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                                 output_attentions, output_hidden_states, encoder_hidden_states=encoder_hidden_states,
                                 encoder_attention_mask=encoder_attention_mask, prediction_positions=positions)
        scores = self.lm_head(base.last_hidden_state, keep_padding=True)  # (B, T, V'), or (B, K, V') at positions
        if positions is not None:
            positions = positions.to(scores.device, non_blocking=True)
            valid = positions >= 0
            if labels is not None:
                labels = labels_at(labels.to(scores.device), positions)
            if prediction_positions is None:  # config.sparse_prediction: the M labelled positions, (M, V')
                scores, labels = scores[valid], (labels[valid] if labels is not None else None)
        logits, loss = scores[..., :self.lm_head.decoder.out_features], None
        if labels is not None:
            labels = labels.to(logits.device)
            check_labels("single_label_classification", labels, logits, "labels")
            loss = loss_for("single_label_classification", scores, labels)
        return self.finish(MaskedLMOutput, return_dict, base, loss, logits=logits)


# The generation settings generate() implements, with transformers' GenerationConfig() defaults (4.57).
GENERATION_DEFAULTS = {"max_length": 20, "max_new_tokens": None, "do_sample": False, "temperature": 1.0, "top_k": 50,
                       "top_p": 1.0, "eos_token_id": None, "pad_token_id": None, "return_dict_in_generate": False}
# Settings with which transformers' generate() picks other tokens and that generate() does not implement, with the
# default that leaves each off: a generation_config.json setting one is refused, not ignored.
UNSUPPORTED_GENERATION = {"num_beams": 1, "num_return_sequences": 1, "min_length": 0, "min_new_tokens": None,
                          "repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
                          "bad_words_ids": None, "sequence_bias": None, "forced_bos_token_id": None,
                          "forced_eos_token_id": None, "suppress_tokens": None, "begin_suppress_tokens": None,
                          "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "min_p": None,
                          "penalty_alpha": None, "exponential_decay_length_penalty": None, "guidance_scale": None,
                          "stop_strings": None, "max_time": None, "renormalize_logits": False}


class RobertaPreLayerNormForCausalLM(LMHeadMixin, RobertaPreLayerNormPreTrainedModel):
    """Left-to-right LM (config.is_decoder=True), with a key/value cache and optional cross-attention."""

    def __init__(self, config: RobertaPreLayerNormConfig):
        super().__init__(config)
        if not config.is_decoder:
            import warnings

            warnings.warn("RobertaPreLayerNormForCausalLM is meant to run with config.is_decoder=True", stacklevel=2)
        self.roberta_prelayernorm = RobertaPreLayerNormModel(config, add_pooling_layer=False)
        self.lm_head = RobertaPreLayerNormLMHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, labels=None,
                past_key_values=None, use_cache=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        """`past_key_values`: per layer (key, value[, cross key, cross value]), each (B, H, S, D)."""
        if labels is not None:
            use_cache = False
        base = self.run_backbone(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                                 output_attentions, output_hidden_states, encoder_hidden_states=encoder_hidden_states,
                                 encoder_attention_mask=encoder_attention_mask, past_key_values=past_key_values,
                                 use_cache=use_cache)
        scores = self.lm_head(base.last_hidden_state, keep_padding=True)  # (B, T, V')
        logits, loss = scores[..., :self.lm_head.decoder.out_features], None  # (B, T, V)
        if labels is not None:
            labels = labels.to(logits.device)
            mask = attention_mask[:, -labels.size(1):] if attention_mask is not None else None
            labels = ignore_padding(labels, mask)
            check_labels("single_label_classification", labels, logits, "labels")
            # Each position predicts the next token.
            loss = loss_for("single_label_classification", scores[:, :-1], labels[:, 1:])
        return self.finish(CausalLMOutputWithCrossAttentions, return_dict, base, loss, logits=logits)

    @classmethod
    def can_generate(cls) -> bool:
        return True

    @property
    def generation_config(self):
        """transformers' GenerationConfig of this model, made on first use (needs transformers) as transformers
        makes it: from the checkpoint's generation_config.json, else from config.json's generation fields (its
        token ids). generate() reads it where its arguments and a generation_config passed to it leave a field
        unset; save_pretrained writes it."""
        if self.__dict__.get("_generation_config") is None:
            from transformers import GenerationConfig

            self._generation_config = GenerationConfig.from_dict(self.generation_fields())
        return self._generation_config

    @generation_config.setter
    def generation_config(self, value) -> None:
        self._generation_config = value

    def generation_fields(self) -> dict:
        """The model's generation settings that differ from transformers' defaults, as generation_config.json
        holds them; without transformers too."""
        if self.__dict__.get("_generation_config") is not None:
            config = self._generation_config
            fields = config.to_diff_dict() if hasattr(config, "to_diff_dict") else dict(vars(config))
        elif self.__dict__.get("_generation_file") is not None:  # the checkpoint's generation_config.json
            fields = dict(self._generation_file)
        else:  # transformers' GenerationConfig.from_model_config: config.json's generation fields
            fields = {key: value for key, value in self.config.to_dict().items()
                      if value is not None and (key in GENERATION_DEFAULTS or key in UNSUPPORTED_GENERATION
                                                or key == "bos_token_id")}
            fields["_from_model_config"] = True
        return {key: value for key, value in fields.items() if key != "transformers_version"}

    def _generation_settings(self, generation_config, arguments: dict) -> dict:
        """Each setting generate() reads, as transformers resolves it: the argument where given, else the passed
        generation_config's field where it is not transformers' default, else the model's own generation config
        (generation_fields), else transformers' default."""
        own = self.generation_fields()
        settings = {}
        for name, default in {**GENERATION_DEFAULTS, **UNSUPPORTED_GENERATION}.items():
            value = arguments.get(name)
            if value is None and generation_config is not None:
                value = getattr(generation_config, name, None)
                value = None if value == default else value
            if value is None:
                value = own.get(name)
            settings[name] = default if value is None else value
        return settings

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, attention_mask=None, **kwargs) -> dict:
        """The forward arguments of one decoding step: with a cache, only the last token is new (PEFT's causal-LM
        wrapper calls this)."""
        if past_key_values is not None:
            input_ids = input_ids[:, -1:]
        return {"input_ids": input_ids, "attention_mask": attention_mask, "past_key_values": past_key_values,
                "use_cache": kwargs.get("use_cache")}

    @torch.no_grad()
    def generate(self, input_ids=None, attention_mask=None, max_new_tokens: Optional[int] = None,
                 do_sample: Optional[bool] = None, temperature: Optional[float] = None, top_k: Optional[int] = None,
                 top_p: Optional[float] = None, eos_token_id=None, pad_token_id: Optional[int] = None,
                 encoder_hidden_states=None, encoder_attention_mask=None, generator=None, *,
                 max_length: Optional[int] = None, generation_config=None, num_beams: Optional[int] = None,
                 num_return_sequences: Optional[int] = None, return_dict_in_generate: Optional[bool] = None):
        """Greedy (default) or sampled decoding with the key/value cache; returns prompt + new tokens (B, T + n),
        or with `return_dict_in_generate` an output whose `sequences` they are.

        Settings are resolved as transformers' generate() resolves them: an argument, else a field of the
        `generation_config` passed (transformers' GenerationConfig, or any object with its fields) that is not
        transformers' default, else the model's own `generation_config` (the checkpoint's generation_config.json
        or config.json's token ids), else transformers' defaults: greedy; sampling keeps the 50 likeliest tokens
        (top_k); 20 new tokens, fewer where the model's positions end. `max_length` counts the prompt;
        `max_new_tokens` wins over it. Rows that emit `eos_token_id` (an id or a list) are padded with
        `pad_token_id` (the first end id where none is set) afterwards. Beam search, several sequences per prompt
        and the logits processors of transformers (repetition penalties, ...) are not implemented: they are
        refused. Positions count the prompt's real tokens as the model's forward does (transformers' generate
        numbers them from 0, unlike its forward, and so picks other tokens).
        """
        if input_ids is None:
            raise SettingError("generate needs input_ids (the prompt, at least one token per row)")
        settings = self._generation_settings(generation_config, {
            "max_new_tokens": max_new_tokens, "max_length": max_length, "do_sample": do_sample,
            "temperature": temperature, "top_k": top_k, "top_p": top_p, "eos_token_id": eos_token_id,
            "pad_token_id": pad_token_id, "num_beams": num_beams, "num_return_sequences": num_return_sequences,
            "return_dict_in_generate": return_dict_in_generate})
        for name, default in UNSUPPORTED_GENERATION.items():
            if settings[name] != default:
                raise SettingError(f"generation setting {name}={settings[name]!r:.80} is not supported (only "
                                   f"{default!r}): generate() decodes one sequence per prompt, greedily or by "
                                   "sampling (transformers' RobertaPreLayerNormForCausalLM has it)")
        prompt = input_ids.size(1)
        if settings["max_new_tokens"] is not None:
            max_new_tokens = settings["max_new_tokens"]
            if max_new_tokens < 1:
                raise SettingError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        elif max_length is None and settings["max_length"] == GENERATION_DEFAULTS["max_length"]:
            # transformers' default: 20 new tokens, no more than the model's positions take.
            limit = max_sequence_length(self.config)
            max_new_tokens = min(GENERATION_DEFAULTS["max_length"], limit - prompt)
            if max_new_tokens < 1:
                raise SettingError(f"the prompt has {prompt} tokens, and the model takes at most {limit}: no room "
                                   "for new tokens; shorten the prompt")
        else:
            max_new_tokens = settings["max_length"] - prompt
            if max_new_tokens < 1:
                raise SettingError(f"max_length={settings['max_length']} counts the prompt, which has {prompt} "
                                   f"tokens: give a max_length above {prompt}, or max_new_tokens")
        eos_token_id, pad_token_id = settings["eos_token_id"], settings["pad_token_id"]
        if pad_token_id is None and eos_token_id is not None:  # as transformers: finished rows repeat the end id
            pad_token_id = eos_token_id[0] if isinstance(eos_token_id, (list, tuple)) else eos_token_id
        tokens = self._decode(input_ids, attention_mask, max_new_tokens, settings["do_sample"],
                              settings["temperature"], settings["top_k"], settings["top_p"], eos_token_id,
                              pad_token_id, encoder_hidden_states, encoder_attention_mask, generator)
        if settings["return_dict_in_generate"]:
            return GenerateDecoderOnlyOutput(sequences=tokens)
        return tokens

    def _decode(self, input_ids, attention_mask, max_new_tokens, do_sample, temperature, top_k, top_p, eos_token_id,
                pad_token_id, encoder_hidden_states, encoder_attention_mask, generator) -> torch.Tensor:
        if do_sample and not temperature > 0:
            raise SettingError(f"temperature must be > 0 when sampling, got {temperature}")
        if top_p is not None and not 0 < top_p <= 1:
            raise SettingError(f"top_p must be in (0, 1], got {top_p}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        # RoBERTa positions count real tokens, so padding in the prompt shifts the positions that follow it.
        position_ids = create_position_ids_from_input_ids(
            input_ids.masked_fill(attention_mask == 0, self.config.pad_token_id), self.config.pad_token_id
        )
        next_position = position_ids.max(dim=1, keepdim=True).values.clamp(min=self.config.pad_token_id) + 1
        tokens, past = input_ids, None
        step_ids = input_ids
        done = torch.zeros(input_ids.size(0), dtype=torch.bool, device=input_ids.device)
        for _ in range(max_new_tokens):
            out = self(step_ids, attention_mask=attention_mask, position_ids=position_ids,
                       encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask,
                       past_key_values=past, use_cache=True)
            past = out.past_key_values
            scores = out.logits[:, -1, :].float()
            if do_sample:
                next_ids = sample(scores / temperature, top_k, top_p, generator)
            else:
                next_ids = scores.argmax(dim=-1)
            if eos_token_id is not None:
                next_ids = next_ids.masked_fill(done, pad_token_id)
                done |= torch.isin(next_ids, torch.tensor(eos_token_id, device=next_ids.device))
            tokens = torch.cat([tokens, next_ids[:, None]], dim=1)
            step_ids = next_ids[:, None]
            attention_mask = torch.cat([attention_mask, torch.ones_like(step_ids)], dim=1)
            # A new token that is the padding id takes the padding position, as the embeddings give it (and as
            # transformers' generate does); the tokens after it count it.
            position_ids = next_position.masked_fill(step_ids == self.config.pad_token_id, self.config.pad_token_id)
            next_position = next_position + 1
            if eos_token_id is not None and bool(done.all()):
                break
        return tokens


def sample(scores: torch.Tensor, top_k: Optional[int], top_p: Optional[float], generator=None) -> torch.Tensor:
    """Draw one token per row from softmax(scores), keeping the top_k tokens and the top_p probability mass."""
    if top_k is not None and top_k > 0:
        kth = torch.topk(scores, min(top_k, scores.size(-1))).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative - sorted_scores.softmax(dim=-1) >= top_p  # keep the token that crosses top_p
        scores = scores.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return torch.multinomial(scores.softmax(dim=-1), 1, generator=generator).squeeze(1)

