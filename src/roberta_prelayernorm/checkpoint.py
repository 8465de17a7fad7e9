"""from_pretrained / save_pretrained and the model utilities users call on transformers models.

Checkpoints are read from model.safetensors, pytorch_model.bin (weights_only=True: no pickled code runs) or a
sharded *.index.json of either, in a folder or a hub repo. Models are built on the meta device and the
checkpoint's tensors assigned in, so no weight is initialised only to be overwritten. Files are written
atomically: into a temporary name beside the target, then renamed into place.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import os
import pickle
import re
import zipfile
from typing import Optional

import torch
from torch import nn

from .config import RobertaPreLayerNormConfig
from .errors import SettingError
from .files import atomic_folder, atomic_write, atomic_write_text, read_json_object
from .hub import (WEIGHT_FILES, CheckpointError, CheckpointNotFoundError, pop_hub_kwargs, read_one_save, resolve_file,
                  resolve_first)

logger = logging.getLogger("roberta_prelayernorm")
# Buffers older transformers releases saved; they are recomputed here, so they are dropped silently.
IGNORED_KEYS = ("embeddings.position_ids", "embeddings.token_type_ids")


# -- reading weights ----------------------------------------------------------------------------------
def load_weights_file(path: str) -> dict[str, torch.Tensor]:
    """All tensors of one .safetensors or .bin file (the .bin without unpickling code)."""
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path)
        # Memory-mapped where the file is torch's zip format; the legacy format (torch < 1.6) cannot be mapped.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:  # torch's message advises weights_only=False: running the code
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(err))
        raise CheckpointError(f"{path} holds pickled code{f' ({found.group(1)})' if found else ''}, which is refused: "
                              "only tensors are read from a weights file, and nothing in it was run") from None
    except Exception as err:  # corrupt or truncated: say which file
        raise CheckpointError(f"cannot read weights file {path}: {type(err).__name__}: {err}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return state


def load_checkpoint_weights(name_or_path, hub_kwargs: dict) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict of a checkpoint (single file or shards) and the file name it came from."""
    filename, path = resolve_first(name_or_path, WEIGHT_FILES, **hub_kwargs)
    if path is None:
        raise CheckpointNotFoundError(
            f"{name_or_path!r} has no weights: looked for {', '.join(WEIGHT_FILES)}"
        )
    if not filename.endswith(".index.json"):
        return load_weights_file(path), filename
    try:
        with open(path, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} is not a valid shard index ({type(err).__name__}: {err})") from None
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        if os.path.isabs(shard) or ".." in shard.replace("\\", "/").split("/"):
            raise CheckpointError(f"{path} names shard {shard!r} outside the checkpoint folder; refused")
        shard_path = resolve_file(name_or_path, shard, **hub_kwargs)
        if shard_path is None:
            raise CheckpointError(f"{path} lists shard {shard!r}, which the checkpoint does not have")
        state.update(load_weights_file(shard_path))
    missing = sorted(set(weight_map) - set(state))
    if missing:
        raise CheckpointError(f"{path} maps {missing[:5]} to shards that do not hold them")
    return state, filename


GENERATION_CONFIG = "generation_config.json"
# generation_config.json fields generate() reads, with what each must be (None is allowed for each).
GENERATION_TYPES = {
    "max_length": (lambda v: type(v) is int, "an int"),
    "max_new_tokens": (lambda v: type(v) is int, "an int"),
    "top_k": (lambda v: type(v) is int, "an int"),
    "temperature": (lambda v: type(v) in (int, float), "a number"),
    "top_p": (lambda v: type(v) in (int, float), "a number"),
    "do_sample": (lambda v: type(v) is bool, "true or false"),
    "return_dict_in_generate": (lambda v: type(v) is bool, "true or false"),
    "pad_token_id": (lambda v: type(v) is int, "a token id"),
    "eos_token_id": (lambda v: type(v) is int or isinstance(v, list) and all(type(i) is int for i in v),
                     "a token id or a list of them"),
}


def read_generation_file(name_or_path, hub_kwargs: dict) -> Optional[dict]:
    """The checkpoint's generation_config.json (transformers writes it beside a causal LM's config.json), or None;
    CheckpointError naming the file, field and value where it cannot be used."""
    path = resolve_file(name_or_path, GENERATION_CONFIG, **hub_kwargs)
    if path is None:
        return None
    fields = read_json_object(path, CheckpointError)
    for name, (ok, allowed) in GENERATION_TYPES.items():
        if fields.get(name) is not None and not ok(fields[name]):
            raise CheckpointError(f"{path}: {name} must be {allowed}, got {type(fields[name]).__name__} "
                                  f"{fields[name]!r:.80}")
    return fields


def match_prefix(state: dict[str, torch.Tensor], model: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """Adapt keys between a bare model and a model with a head (`prefix` = "roberta_prelayernorm")."""
    has_prefix = any(key.startswith(prefix + ".") for key in state)
    model_is_base = not hasattr(model, prefix)
    if model_is_base and has_prefix:
        return {key[len(prefix) + 1:]: value for key, value in state.items() if key.startswith(prefix + ".")}
    if not model_is_base and not has_prefix:
        base_keys = set(getattr(model, prefix).state_dict().keys())
        return {(f"{prefix}.{key}" if key in base_keys else key): value for key, value in state.items()}
    return state


# -- the mixin ----------------------------------------------------------------------------------------
class PreTrainedMixin:
    """Loading, saving, initialisation and utilities shared by every model class."""

    config: RobertaPreLayerNormConfig
    base_model_prefix: str
    _tied_weights_keys: list = []
    _keys_to_ignore_on_save = None  # read by transformers' Trainer when it resumes
    main_input_name = "input_ids"  # read by transformers' Trainer and pipelines

    def post_init(self) -> None:
        """Initialise weights (skipped on the meta device, where from_pretrained builds) and tie them."""
        if not any(p.is_meta for p in self.parameters()):
            self.init_weights()
        else:
            self.tie_weights()

    def init_weights(self) -> None:
        self.apply(self._init_weights)
        self.tie_weights()

    def tie_weights(self) -> None:
        """Share the LM decoder's weight with the word embeddings (config.tie_word_embeddings)."""
        output = self.get_output_embeddings()
        if output is not None and self.config.tie_word_embeddings:
            output.weight = self.get_input_embeddings().weight
        for module in self.modules():  # the ties a module declares within itself
            if module is not self and hasattr(module, "_tie_weights"):
                module._tie_weights()

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        """nn.Module's state dict, every key transformers has, with each tied key (`_tied_weights_keys`) holding
        a copy rather than the tensor another key holds: safetensors refuses aliased tensors, and transformers'
        plain Trainer saves `state_dict()` with it. The copy costs the tied tensor's memory while the dict lives
        (the word embeddings once); save_pretrained stores tied weights once and makes no copy."""
        state = super().state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        if keep_vars:  # the parameters themselves were asked for
            return state
        for key in self._tied_weights_keys:
            tensor = state.get(prefix + key)
            if tensor is not None and not tensor.is_meta and any(
                    other is not tensor and other.data_ptr() == tensor.data_ptr() for other in state.values()):
                state[prefix + key] = tensor.clone()
        return state

    @property
    def base_model(self) -> nn.Module:
        """The bare encoder under the head (the model itself for RobertaPreLayerNormModel), as in transformers."""
        return self.backbone()

    @classmethod
    def can_generate(cls) -> bool:
        """Whether generate() works: the causal LM's answer is True."""
        return False

    def enable_input_require_grads(self) -> None:
        """Make the embeddings' output require grad, so gradient checkpointing has a graph to recompute when the
        embeddings are frozen (adapters: PEFT calls this)."""
        def require_grads(module, inputs, output):
            output.requires_grad_(True)

        self._require_grads_hook = self.get_input_embeddings().register_forward_hook(require_grads)

    def disable_input_require_grads(self) -> None:
        self._require_grads_hook.remove()

    def get_memory_footprint(self, return_buffers: bool = True) -> int:
        """Bytes held by the parameters (and buffers), as transformers counts them."""
        tensors = list(self.parameters()) + (list(self.buffers()) if return_buffers else [])
        return sum(t.nelement() * t.element_size() for t in tensors)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.backbone().get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.backbone().set_input_embeddings(value)

    def get_output_embeddings(self) -> Optional[nn.Linear]:
        return None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(p.dtype for p in self.parameters() if p.dtype.is_floating_point)

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Number of (unique) parameters, as transformers counts them."""
        params = {id(p): p for p in self.parameters() if p.requires_grad or not only_trainable}
        if exclude_embeddings:
            for module in self.modules():
                if isinstance(module, nn.Embedding):
                    params.pop(id(module.weight), None)
        return sum(p.numel() for p in params.values())

    def checkpointable_modules(self) -> list[nn.Module]:
        """The modules that can recompute their activations: those declaring a `gradient_checkpointing` flag."""
        return [module for module in self.modules() if isinstance(getattr(module, "gradient_checkpointing", None),
                                                                  bool)]

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: Optional[dict] = None) -> None:
        """Recompute each layer's activations in the backward pass instead of storing them."""
        for module in self.checkpointable_modules():
            module.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        for module in self.checkpointable_modules():
            module.gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        return any(module.gradient_checkpointing for module in self.checkpointable_modules())

    def resize_token_embeddings(self, new_num_tokens: Optional[int] = None,
                                pad_to_multiple_of: Optional[int] = None) -> nn.Embedding:
        """Grow or shrink the vocabulary; new rows are initialised, old rows kept. Returns the embeddings."""
        old = self.get_input_embeddings()
        if new_num_tokens is None and pad_to_multiple_of is None:
            return old
        new_num_tokens = old.num_embeddings if new_num_tokens is None else new_num_tokens
        if pad_to_multiple_of is not None:
            new_num_tokens = -(-new_num_tokens // pad_to_multiple_of) * pad_to_multiple_of
        if new_num_tokens < 1:
            raise SettingError(f"new_num_tokens must be >= 1, got {new_num_tokens}")
        keep = min(old.num_embeddings, new_num_tokens)
        new = nn.Embedding(new_num_tokens, old.embedding_dim, padding_idx=old.padding_idx,
                           device=old.weight.device, dtype=old.weight.dtype)
        self._init_weights(new)
        new.weight.data[:keep] = old.weight.data[:keep]
        self.set_input_embeddings(new)
        for module in [m for m in self.modules() if hasattr(m, "resize_vocabulary")]:
            module.resize_vocabulary(new_num_tokens, keep,
                                     None if self.config.tie_word_embeddings else self._init_weights)
        self.config.vocab_size = new_num_tokens
        self.tie_weights()
        return new

    # -- save ---------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory, safe_serialization: bool = True, state_dict=None, *,
                        is_main_process: bool = True, max_shard_size="5GB", push_to_hub: bool = False,
                        save_function=torch.save, **hub_kwargs) -> None:
        """Write config.json and model.safetensors (or pytorch_model.bin), the folder replaced whole (a crash
        leaves the previous folder intact; files already there, such as a tokenizer's, are kept).

        Tied weights are stored once, under the name transformers keeps: a key the class lists in
        `_tied_weights_keys` is left out where it holds the very tensor another key holds; transformers loads
        the result. Weights larger than `max_shard_size` (bytes or "500MB", "5GB", "2GiB") go into shards named
        and indexed as transformers names them. `push_to_hub=True` then uploads the folder (`repo_id` defaults
        to the folder's name; see push_to_hub for the other options). `save_function(state, path)` writes the
        .bin files (safe_serialization=False), torch.save by default, as in transformers.
        """
        unknown = sorted(set(hub_kwargs) - {"repo_id", "commit_message", "private", "token", "create_pr", "revision"})
        if unknown:
            raise TypeError(f"save_pretrained got unexpected keyword argument(s) {', '.join(unknown)}")
        if not is_main_process:
            return
        state = nn.Module.state_dict(self) if state_dict is None else state_dict  # tied tensors aliased, not copied
        if any(key.endswith("_packed_params") for key in state):
            raise SettingError(
                "save_pretrained cannot save an int8-quantized model: its Linear layers hold packed int8 weights "
                "that no loader reads back. Save the float model and load it with quantize='int8' instead."
            )
        # A tied key is left out where it aliases a kept tensor, or where the model ties it (a state_dict() copy).
        parameters = dict(self.named_parameters(remove_duplicate=False))
        tied = {key for key in self._tied_weights_keys if key in parameters}
        tied_here = {key for key in tied
                     if any(p is parameters[key] for other, p in parameters.items() if other != key)}
        kept = {tensor.data_ptr() for key, tensor in state.items() if key not in tied}
        tensors = {
            key: tensor.detach().to("cpu").contiguous()
            for key, tensor in state.items()
            if not (key in tied and (key in tied_here or tensor.data_ptr() in kept))
        }
        config = copy.deepcopy(self.config)  # the saved config names the class and dtype; the model's stays as is
        config.architectures = [type(self).__name__]
        config.torch_dtype = str(self.dtype).replace("torch.", "")
        with atomic_folder(save_directory) as folder:  # weights and config.json swapped in together
            write_weights(folder, tensors, safe_serialization, parse_size(max_shard_size), save_function)
            config.save_pretrained(folder)
            if self.can_generate():  # as transformers: the generation settings beside the config
                atomic_write_text(os.path.join(folder, GENERATION_CONFIG),
                                  json.dumps(self.generation_fields(), indent=2, sort_keys=True) + "\n")
        if push_to_hub:
            from .hub import upload_folder

            repo_id = hub_kwargs.pop("repo_id", None) or os.path.basename(os.path.abspath(save_directory))
            upload_folder(save_directory, repo_id, **hub_kwargs)

    def push_to_hub(self, repo_id: str, commit_message: Optional[str] = None, private: Optional[bool] = None,
                    token=None, max_shard_size="5GB", create_pr: bool = False, safe_serialization: bool = True,
                    revision: Optional[str] = None):
        """Upload config and weights to the hub repo `repo_id` (created if missing); returns the commit info."""
        import tempfile

        from .hub import upload_folder

        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, safe_serialization=safe_serialization, max_shard_size=max_shard_size)
            return upload_folder(folder, repo_id, commit_message=commit_message or "Upload model",
                                 private=private, token=token, create_pr=create_pr, revision=revision)

    # -- load ---------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path, *model_args, config=None, torch_dtype=None, dtype=None,
                        ignore_mismatched_sizes: bool = False, output_loading_info: bool = False,
                        quantize: Optional[str] = None, **kwargs):
        """Load a model from a folder or hub id (config.json + weights).

        Keyword arguments that name config fields (num_labels=3, problem_type=...) override the config; hub
        options (revision, cache_dir, token, local_files_only, subfolder) control where files come from.
        `torch_dtype` ("auto", "float16", torch.bfloat16, ...) sets the parameters' dtype (default float32).
        `quantize="int8"` returns the model with int8 dynamic-quantized Linear layers (CPU inference).
        """
        if quantize not in (None, "int8"):
            raise SettingError(f"quantize={quantize!r} is not supported; use None or 'int8'")
        hub_kwargs = pop_hub_kwargs(kwargs)
        init_params = inspect.signature(cls.__init__).parameters
        init_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in init_params and k != "config"}
        from .layouts import roberta_layout_config, roberta_prelayernorm_state

        given = config

        def read(source, hub_kwargs):  # config and weights of one save (hub.read_one_save)
            foreign = roberta_layout_config(source, hub_kwargs)  # princeton-nlp's model_type "roberta" layout
            if given is None and foreign:
                config = RobertaPreLayerNormConfig.from_dict(foreign, **kwargs)
            elif given is None:
                config = RobertaPreLayerNormConfig.from_pretrained(source, **hub_kwargs, **kwargs)
            else:
                config = RobertaPreLayerNormConfig.coerce(given)
                config.update(kwargs)
            generation = read_generation_file(source, hub_kwargs) if cls.can_generate() else None
            return (foreign, config, generation, *load_checkpoint_weights(source, hub_kwargs))

        foreign, config, generation, state, filename = read_one_save(name_or_path, hub_kwargs, read)
        config._name_or_path = os.fspath(name_or_path)  # PEFT records it as the adapters' base model
        source = f"{name_or_path}/{filename}"
        if foreign:
            state = roberta_prelayernorm_state(state, source=source)
        dtype = resolve_dtype(dtype if dtype is not None else torch_dtype, config, state)
        model, info = cls.from_state_dict(config, state, dtype=dtype, source=source,
                                          ignore_mismatched_sizes=ignore_mismatched_sizes,
                                          model_args=model_args, init_kwargs=init_kwargs)
        if generation is not None:  # generate() and generation_config read it, as transformers' would
            model._generation_file = generation
        if quantize == "int8":
            from .quantization import quantize_int8

            quantize_int8(model, inplace=True)
        missing, mismatched = info["missing_keys"], info["mismatched_keys"]
        if missing or mismatched:
            logger.warning(
                "Some weights of %s were not in the checkpoint %s and are newly initialised: %s. "
                "Train the model on a down-stream task before using it for predictions.",
                cls.__name__, name_or_path, ", ".join(missing + [k for k, _, _ in mismatched]),
            )
        if info["unexpected_keys"]:
            logger.warning("Some weights of the checkpoint %s were not used by %s: %s",
                           name_or_path, cls.__name__, ", ".join(info["unexpected_keys"]))
        return (model, info) if output_loading_info else model

    @classmethod
    def from_state_dict(cls, config, state: dict, *, dtype: torch.dtype = torch.float32,
                        source: str = "the state dict", ignore_mismatched_sizes: bool = False, model_args=(),
                        init_kwargs=None):
        """(model in eval mode, loading info) built from a state dict under this family's keys, with or without
        the base-model prefix. Built on the meta device and the tensors assigned in (cast to `dtype`); tied
        weights tied; what the state lacks initialised. Info: missing, unexpected and mismatched keys."""
        state = {k: v for k, v in state.items() if not k.endswith(IGNORED_KEYS)}
        with torch.device("meta"):  # no memory and no real initialisation: loaded weights replace them
            model = cls(config, *model_args, **(init_kwargs or {}))
        state = match_prefix(state, model, cls.base_model_prefix)
        expected = model.state_dict()
        mismatched = [(k, tuple(v.shape), tuple(expected[k].shape)) for k, v in state.items()
                      if k in expected and v.shape != expected[k].shape]
        if mismatched and not ignore_mismatched_sizes:
            lines = "; ".join(f"{k}: checkpoint {a}, model {b}" for k, a, b in mismatched)
            raise CheckpointError(
                f"{source} does not fit the config: {lines}. Pass ignore_mismatched_sizes=True "
                "to initialise these weights anew (e.g. a classifier with another num_labels)."
            )
        for key, _, _ in mismatched:
            del state[key]
        # An integer or bool tensor in place of a weight would be assigned as it is (integer weights break the
        # first matmul with torch's words, bool ones compute nonsense): name it.
        wrong = [(k, v.dtype) for k, v in state.items()
                 if k in expected and expected[k].is_floating_point() and not v.is_floating_point()]
        if wrong:
            named = ", ".join(f"{k} is {str(d).replace('torch.', '')}" for k, d in wrong[:5])
            raise CheckpointError(f"{source}: {named}{' ...' if len(wrong) > 5 else ''}; weights must be floating "
                                  "point (float32, float16, bfloat16)")
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        result = model.load_state_dict(state, strict=False, assign=True)
        model.tie_weights()  # before materialize: a tied decoder takes the loaded embeddings
        # A key the checkpoint lacks is not missing when, tied, it is the very parameter of a loaded key (or of
        # a missing key already named).
        parameters = dict(model.named_parameters(remove_duplicate=False))
        seen = {id(p) for key, p in parameters.items() if key not in result.missing_keys}
        missing = []
        for key in result.missing_keys:
            if key not in parameters or id(parameters[key]) not in seen:
                missing.append(key)
                seen.add(id(parameters.get(key)))
        model.materialize(dtype)
        model.tie_weights()
        model.eval()
        return model, {"missing_keys": missing, "unexpected_keys": list(result.unexpected_keys),
                       "mismatched_keys": mismatched}

    def materialize(self, dtype: torch.dtype) -> None:
        """Allocate and initialise the parameters still on the meta device (those the checkpoint lacked)."""
        for module in self.modules():
            params = dict(module.named_parameters(recurse=False))
            if not any(p.is_meta for p in params.values()):
                continue
            loaded = {name: p for name, p in params.items() if not p.is_meta}
            module.to_empty(device="cpu", recurse=False)
            with torch.no_grad():
                self._init_weights(module)
            module.to(dtype)
            for name, p in loaded.items():  # keep what the checkpoint gave
                setattr(module, name, p)

# -- writing weights ----------------------------------------------------------------------------------
SIZE_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
SHARD_PATTERN = re.compile(r"^(model|pytorch_model)-\d{5}-of-\d{5}\.(safetensors|bin)$")


def parse_size(size) -> int:
    """Bytes in `size`: an int, or a string such as "500MB", "5GB", "2GiB" (transformers' units)."""
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]I?B)\s*", str(size).upper())
    if not match:
        raise SettingError(f"max_shard_size={size!r} is not a positive size: pass bytes (int) or e.g. '500MB', '5GB'")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2)])


def write_weights(folder: str, tensors: dict, safe: bool, max_bytes: int, save_function=torch.save) -> None:
    """One weights file, or shards of at most `max_bytes` (a tensor larger than that gets a shard alone) with
    their index, named as transformers names them; weight files of an earlier save that would shadow or mix
    with these are removed."""
    shards: list[dict] = [{}]
    size = 0
    for key, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    stem, ext = ("model", "safetensors") if safe else ("pytorch_model", "bin")
    names = ([f"{stem}.{ext}"] if len(shards) == 1
             else [f"{stem}-{i:05d}-of-{len(shards):05d}.{ext}" for i in range(1, len(shards) + 1)])
    for name, shard in zip(names, shards):
        if safe:
            from safetensors.torch import save_file

            atomic_write(os.path.join(folder, name),
                         lambda tmp, shard=shard: save_file({k: v.clone() for k, v in shard.items()}, tmp,
                                                            metadata={"format": "pt"}))
        else:
            atomic_write(os.path.join(folder, name), lambda tmp, shard=shard: save_function(shard, tmp))
    written = set(names)
    if len(shards) > 1:
        index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
                 "weight_map": {key: name for name, shard in zip(names, shards) for key in shard}}
        written.add(f"{stem}.{ext}.index.json")
        atomic_write_text(os.path.join(folder, f"{stem}.{ext}.index.json"), json.dumps(index, indent=2) + "\n")
    for name in os.listdir(folder):
        if (name in WEIGHT_FILES or SHARD_PATTERN.match(name)) and name not in written:
            os.unlink(os.path.join(folder, name))


def resolve_dtype(requested, config: RobertaPreLayerNormConfig, state: dict) -> torch.dtype:
    """torch_dtype argument -> torch.dtype: None means float32, "auto" the config's or the checkpoint's."""
    if requested is None:
        return torch.float32
    if requested == "auto":
        requested = config.torch_dtype or next(
            (v.dtype for v in state.values() if v.is_floating_point()), torch.float32
        )
    if isinstance(requested, torch.dtype):
        return requested
    name = str(requested).replace("torch.", "")
    if name not in ("float32", "float16", "bfloat16", "float64"):
        raise SettingError(f"torch_dtype={requested!r} is not one of 'auto', 'float32', 'float16', 'bfloat16', "
                           "'float64'")
    return getattr(torch, name)

