"""The run's folders: output_dir's rules (one run per folder, no mixing with an earlier run), the best/ and
last/ model folders and the top one, and checkpoints/step-N/ (model, tokenizer, optimizer, scheduler, scaler,
RNG states, the position in the data and the settings a resume must match). Every folder is written whole
(files.atomic_folder), so a crash never leaves half of one; output_dir itself, the user's, is written into,
never replaced."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from typing import Optional

import torch
import torch.distributed as dist

from ..errors import MissingFileError, SettingError
from ..files import (atomic_folder, atomic_write, atomic_write_text, check_output, exclusive_lock, link_or_copy,
                     recover_folder)
from ..hub import CheckpointError
from . import corpus
from .state import TrainState

STATE_FILE = "trainer_state.pt"


def check_output_dir(output_dir: str, resume=None, overwrite: bool = False) -> None:
    """Refuse, before any work, an output folder that cannot be written, is in use by another run, or holds
    an earlier run that this one would mix with (train() checks again, holding the folder's lock)."""
    check_output(output_dir, "output_dir", folder=True)
    if not os.path.isdir(output_dir):
        return
    with exclusive_lock(output_dir):
        if not resume:
            fresh_output(output_dir, overwrite, remove=False)


def fresh_output(output_dir: str, overwrite: bool, remove: bool) -> None:
    """A new run may not mix with an earlier run's files: checkpoints want --resume, a finished run
    (best/, last/ or metrics.jsonl) wants --overwrite, which removes those (when `remove`)."""
    folder = os.path.join(output_dir, "checkpoints")
    if os.path.isdir(folder) and any(n.startswith("step-") for n in os.listdir(folder)):
        raise SettingError(f"output_dir={output_dir!r} already holds checkpoints; pass resume=True (--resume) "
                           "to continue that run, or choose another output folder")
    finished = [name for name in ("best", "last", "metrics.jsonl") if os.path.exists(os.path.join(output_dir, name))]
    if finished and not overwrite:
        raise SettingError(f"output_dir={output_dir!r} holds a finished run ({', '.join(finished)}); pass "
                           "overwrite=True (--overwrite) to replace it, or choose another output folder")
    for name in finished if remove else ():
        path = os.path.join(output_dir, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)


def clean_temporaries(output_dir: str) -> None:
    """Tidy up after a killed run, before anything is read: files.recover_folder on output_dir and on its
    checkpoints/ (a half-written folder goes, a swap or a move cut short is finished or undone)."""
    for folder in (output_dir, os.path.join(output_dir, "checkpoints")):
        if os.path.isdir(folder):
            recover_folder(folder)


def file_fingerprint(path: str) -> str:
    """Size and SHA-256 of a data file (of every file in a `datasets` folder): a changed file changes it. A
    tokenize-corpus folder (which may hold billions of tokens) is known by its metadata and file sizes."""
    import hashlib

    paths = [path] if os.path.isfile(path) else sorted(
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names)
    digest, size, sizes_only = hashlib.sha256(), 0, corpus.is_corpus(path)
    for name in paths:
        if sizes_only and os.path.basename(name) != corpus.METADATA:
            if not os.path.basename(name).startswith("."):  # tokenize-corpus's lock file is no part of it
                size += os.path.getsize(name)
            continue
        with open(name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    return f"{size} bytes, sha256 {digest.hexdigest()[:16]}"


# -- model folders ----------------------------------------------------------------------------------------
def write_pretrained(model, tokenizer, folder: str) -> None:
    """Model, config and tokenizer into `folder`."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def save_model(model, tokenizer, target: str, *, card: str, results: dict) -> None:
    """model + tokenizer + config + model card (+ eval_results.json) into `target`, atomically."""
    with atomic_folder(target) as tmp:
        write_pretrained(model, tokenizer, tmp)
        atomic_write_text(os.path.join(tmp, "README.md"), card)
        if results:
            atomic_write_text(os.path.join(tmp, "eval_results.json"), json.dumps(results, indent=2))


def save_top(output_dir: str, source: str) -> None:
    """The files of the model folder `source` (best/, else last/) at the top of output_dir as well, so that
    from_pretrained(output_dir) loads it, as it loads a transformers training run's folder."""
    with atomic_folder(output_dir, replace=False) as tmp:  # the user's folder: written into, never replaced
        for name in os.listdir(source):
            if os.path.isfile(os.path.join(source, name)):
                link_or_copy(os.path.join(source, name), os.path.join(tmp, name))  # the weights once on disk


# -- checkpoints -----------------------------------------------------------------------------------------
def agreed_checkpoint(path: str, distributed) -> str:
    """find_checkpoint on every process, which must all find the same step: on machines without a shared disk
    each reads its own copy, and one missing or older copy would leave that process behind (a hang) or alone
    with the error. Every process raises the same one-line error naming the hosts and what they found."""
    if not distributed.active:
        return find_checkpoint(path)
    try:
        folder = find_checkpoint(path)
        found = os.path.basename(folder)
    except FileNotFoundError:
        folder, found = None, "no checkpoint"
    import socket

    everyone = [None] * distributed.world_size
    dist.all_gather_object(everyone, (socket.gethostname(), found))
    if len({f for _, f in everyone}) > 1 or folder is None:
        seen = "; ".join(f"rank {rank} on {host}: {f}" for rank, (host, f) in enumerate(everyone))
        raise MissingFileError(f"resume={path!r}: every process must find the same checkpoint, and they found: "
                               f"{seen}; every machine needs the same checkpoints/step-N/ (copy the output folder to "
                               "each, or use a shared disk)")
    return folder


def find_checkpoint(path: str) -> str:
    """A checkpoint folder itself, or the latest complete checkpoint under path/checkpoints."""
    if os.path.isfile(os.path.join(path, STATE_FILE)):
        return path
    folder = os.path.join(path, "checkpoints")
    steps = sorted(name for name in os.listdir(folder) if name.startswith("step-")
                   and os.path.isfile(os.path.join(folder, name, STATE_FILE))) if os.path.isdir(folder) else []
    if not steps:
        raise MissingFileError(f"resume={path!r}: no checkpoint there (looked for {STATE_FILE} in it and for "
                               f"checkpoints/step-*/ under it)")
    return os.path.join(folder, steps[-1])


def save_checkpoint(state: TrainState, *, tokenizer, config, distributed, device, best,
                    settings: Optional[dict]) -> None:
    """checkpoints/step-N/ for `state` (rank 0 writes; every process's RNG state goes in), keeping the
    config.keep_checkpoints latest. `settings` (rank 0's; None elsewhere) are compared on resume."""
    rng = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    # Every process's RNG state (dropout draws differ between processes), kept by rank 0.
    rngs = [rng]
    if distributed.active:
        rngs = [None] * distributed.world_size
        dist.all_gather_object(rngs, {k: v.cpu() for k, v in rng.items()})
    if distributed.is_main:
        step = state.step
        saved = {
            "step": step, "epoch": state.epoch, "step_in_epoch": state.step_in_epoch,
            "optimizer": state.optimizer.state_dict(), "scheduler": state.scheduler.state_dict(),
            "scaler": state.scaler.state_dict(), "rng": rngs, "best": best,
            "world_size": distributed.world_size, "batch_size": config.batch_size, "grad_accum": config.grad_accum,
            "seed": config.seed, "steps_taken": state.steps_taken, "settings": settings,
        }
        folder = os.path.join(config.output_dir, "checkpoints")
        with atomic_folder(os.path.join(folder, f"step-{step:08d}")) as tmp:
            write_pretrained(state.model, tokenizer, tmp)
            atomic_write(os.path.join(tmp, STATE_FILE), lambda path: torch.save(saved, path))
            atomic_write_text(os.path.join(tmp, "config_training.json"), json.dumps(asdict(config), indent=2))
        complete = sorted(n for n in os.listdir(folder) if n.startswith("step-"))
        for name in complete[:-config.keep_checkpoints]:
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    if distributed.active:
        dist.barrier()


def load_checkpoint(path: str, state: TrainState, *, settings: dict, distributed, device) -> tuple[str, dict]:
    """Put the checkpoint at `path` (a checkpoint or output folder) into `state` and this process's RNG, after
    checking that it was written with `settings` (the run would not continue exactly otherwise); returns the
    checkpoint folder and what it saved (best, ...)."""
    folder = agreed_checkpoint(path, distributed)
    try:
        saved = torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=True)
    except Exception as err:  # a file cut short or damaged after it was written whole
        reason = str(err).strip().split("\n")[0].split(". ")[0][:160]  # torch's first sentence, not its advice
        raise CheckpointError(f"cannot resume from {os.path.join(folder, STATE_FILE)}: the file is truncated or "
                              f"corrupt ({type(err).__name__}: {reason}); resume from an earlier "
                              "checkpoints/step-N/ (--resume FOLDER) or start a new run") from None
    # Checkpoints written before settings were stored have the four that set the data order.
    before = saved.get("settings") or {name: saved[name] for name in ("world_size", "batch_size", "grad_accum",
                                                                      "seed")}
    changed = [f"{name}={before[name]!r} then, {settings.get(name)!r} now" for name in before
               if before[name] != settings.get(name)]
    if changed:
        raise SettingError(f"cannot resume from {folder}: the run would not continue exactly, since "
                           f"{'; '.join(changed)}; resume with the same settings, or start a new run in "
                           "another output folder")
    model = state.model
    loaded = type(model).from_pretrained(folder)
    model.load_state_dict(loaded.state_dict())
    model.config = loaded.config
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.scaler.load_state_dict(saved["scaler"])
    rng = saved["rng"][distributed.rank]
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)
    state.step, state.epoch, state.step_in_epoch = saved["step"], saved["epoch"], saved["step_in_epoch"]
    state.steps_taken = saved.get("steps_taken", state.step)
    return folder, saved
