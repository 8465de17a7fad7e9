"""Find a checkpoint's files: in a local folder, or on the Hugging Face hub through its cache.

Models and tokenizers share this one resolver, so `revision`, `cache_dir`, `token`, `local_files_only`
and `HF_HUB_OFFLINE=1` behave the same for every file this package reads.
"""

from __future__ import annotations

import contextlib
import os
from typing import Optional, Sequence

from .errors import SettingError, UserError

HUB_KWARGS = ("revision", "cache_dir", "token", "local_files_only", "force_download", "subfolder")


# A model's weight files, in the order they are looked for.
SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
BIN_WEIGHTS = "pytorch_model.bin"
BIN_INDEX = "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFE_WEIGHTS, SAFE_INDEX, BIN_WEIGHTS, BIN_INDEX)


class CheckpointNotFoundError(UserError, OSError):
    """Raised when a folder or hub id does not hold the file(s) a loader needs."""


class CheckpointError(SettingError):
    """A checkpoint file is corrupt, incomplete or does not fit the config."""


def pop_hub_kwargs(kwargs: dict) -> dict:
    """Take the hub options (revision, cache_dir, ...) out of a from_pretrained **kwargs dict."""
    return {key: kwargs.pop(key) for key in HUB_KWARGS if key in kwargs}


def resolve_file(name_or_path: str | os.PathLike, filename: str, **hub_kwargs) -> Optional[str]:
    """Local path of `filename` in a folder or hub repo, or None when the checkpoint has no such file.

    Raises CheckpointNotFoundError when `name_or_path` is neither a folder nor a reachable hub repo.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a folder or a hub id (a str or path), got {name_or_path!r:.80}")
    name_or_path = os.fspath(name_or_path)
    subfolder = hub_kwargs.get("subfolder") or ""
    if os.path.isdir(name_or_path):
        path = os.path.join(name_or_path, subfolder, filename)
        return path if os.path.isfile(path) else None
    if os.path.exists(name_or_path):
        raise CheckpointNotFoundError(f"{name_or_path!r} is a file; from_pretrained expects a folder or a hub id")

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return hf_hub_download(
            name_or_path,
            filename,
            subfolder=subfolder or None,
            revision=hub_kwargs.get("revision"),
            cache_dir=hub_kwargs.get("cache_dir"),
            token=hub_kwargs.get("token"),
            local_files_only=bool(hub_kwargs.get("local_files_only", False)),
            force_download=bool(hub_kwargs.get("force_download", False)),
            library_name="roberta-prelayernorm",
        )
    except LocalEntryNotFoundError:
        # Offline (or unreachable) and not in the cache: the file may or may not exist upstream.
        if _repo_in_cache(name_or_path, hub_kwargs.get("cache_dir")):
            return None
        raise CheckpointNotFoundError(
            f"{name_or_path!r} is not a local folder, and the hub repo is not in the cache "
            f"({hub_kwargs.get('cache_dir') or _default_cache()}) while the hub cannot be reached "
            "(HF_HUB_OFFLINE=1, local_files_only=True or no network). Download it once online, or pass a folder."
        ) from None
    except EntryNotFoundError:  # after LocalEntryNotFoundError, its subclass
        return None
    except HFValidationError:
        raise CheckpointNotFoundError(
            f"{name_or_path!r} is neither a local folder nor a valid hub repo id ('owner/name')"
        ) from None
    except GatedRepoError as err:
        raise CheckpointNotFoundError(f"hub repo {name_or_path!r} is gated; log in or pass token=: {err}") from None
    except RepositoryNotFoundError:
        raise CheckpointNotFoundError(
            f"{name_or_path!r} is not a local folder and no hub repo of that name exists (or it is private: "
            "pass token=)"
        ) from None
    except RevisionNotFoundError:
        raise CheckpointNotFoundError(
            f"hub repo {name_or_path!r} has no revision {hub_kwargs.get('revision')!r}"
        ) from None


def resolve_first(name_or_path, filenames: Sequence[str], **hub_kwargs) -> tuple[Optional[str], Optional[str]]:
    """The first of `filenames` the checkpoint has, as (filename, local path); (None, None) when none."""
    for filename in filenames:
        path = resolve_file(name_or_path, filename, **hub_kwargs)
        if path is not None:
            return filename, path
    return None, None


def read_one_save(name_or_path, hub_kwargs: dict, read, attempts: int = 100):
    """read(source, hub_kwargs) of a checkpoint as one save, although another process may be saving into it.

    A local folder is opened once and read through that handle (/proc/self/fd/N where there is one): a save that
    swaps a new folder in (files.atomic_folder) leaves what is being read as it was, and removes the old folder once
    the read is done; a read of a folder whose removal began before the read took its lock is repeated on the new
    one. A read during a save that moves files into the folder itself (a mount point, a user's folder: an entry's
    inode changes, or a staged `.new-*` is there) is repeated too. Hub snapshots never change and are read as they
    are.
    """
    import time

    if not isinstance(name_or_path, (str, os.PathLike)) or not os.path.isdir(name_or_path):
        return read(name_or_path, hub_kwargs)
    folder = os.fspath(name_or_path)
    if hub_kwargs.get("subfolder"):
        folder = os.path.join(folder, hub_kwargs["subfolder"])
    local = {key: value for key, value in hub_kwargs.items() if key != "subfolder"}
    for attempt in range(attempts):
        try:
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except FileNotFoundError:  # between a swap's two renames: the new folder arrives at once
            time.sleep(0.01 * (attempt + 1))
            continue
        handle = f"/proc/self/fd/{fd}" if os.path.isdir(f"/proc/self/fd/{fd}") else folder
        try:
            with save_lock(fd, shared=True):  # a save moving files into this folder waits for the read
                before = _snapshot(fd)
                if _swapped(folder, fd):  # swapped out before the snapshot: its removal may have begun, retry
                    continue
                try:
                    result = read(handle, local)
                except (OSError, ValueError) as err:
                    if attempt + 1 < attempts and _changed(folder, fd, before):
                        continue
                    raise _renamed(err, handle, folder) from err.__cause__
                if not _changed(folder, fd, before, read_through_fd=handle != folder):
                    return result
        finally:
            os.close(fd)
        time.sleep(min(0.01 * attempt, 0.05))
    raise CheckpointError(f"{folder} was being written by another process during each of {attempts} reads; "
                          "load it once that save is done")


@contextlib.contextmanager
def save_lock(folder, shared: bool = False):
    """The lock between the reads of a folder and the saves that change it: readers hold it shared; a save that
    moves files into the folder in place (a mount point, the user's folder: files.atomic_folder) holds it
    exclusively, and so does the removal of a folder a save swapped out (files.remove_swapped_out), so a read sees
    one save however slow it is. It is the folder's own flock (no file is added to the folder); `folder` is a path
    or the descriptor of the open folder (left open)."""
    import fcntl

    fd = folder if isinstance(folder, int) else os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        if isinstance(folder, int):
            fcntl.flock(fd, fcntl.LOCK_UN)
        else:
            os.close(fd)  # releases the lock


def _snapshot(fd: int) -> tuple:
    """What a save changes in the folder opened as `fd`: each entry's name, inode, size and times, leaving out a
    save's staging folder (`.tmp-*`, not yet visible). Every writer here puts a file in place by renaming a new
    one over it, so a save changes an entry's inode whatever the clock's resolution (the folder's mtime alone
    can stay within one clock tick)."""
    entries = []
    for name in sorted(os.listdir(fd)):
        if name.startswith(".tmp-"):
            continue
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            entries.append((name, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        except FileNotFoundError:  # removed while listed: a save at work
            entries.append((name, None))
    return tuple(entries)


def _changed(folder: str, fd: int, before: tuple, read_through_fd: bool = False) -> bool:
    """Whether a read of the folder opened as `fd`, whose `_snapshot` was `before`, may have mixed saves or missed
    a file: the folder was written into since (an entry's inode changed), or is being written into (a staged
    `.new-*`); or it is no longer the one at `folder` (a save swapped a new one in) and the read went through the
    path, or went through `fd` while the old folder's removal took an entry away (a file that is optional, such
    as a tokenizer's special_tokens_map.json, would be missed without an error). A swapped-out folder is never
    written into, only removed, so a read through `fd` that lost no entry is of one save."""
    after = _snapshot(fd)
    if _swapped(folder, fd):
        return not read_through_fd or after != before
    return after != before or any(entry[0].startswith(".new-") for entry in before + after)


def _swapped(folder: str, fd: int) -> bool:
    """Whether the folder opened as `fd` is no longer the one at `folder` (a save swapped a new one in)."""
    now = os.fstat(fd)
    try:
        at_path = os.stat(folder)
    except FileNotFoundError:
        return True
    return (at_path.st_dev, at_path.st_ino) != (now.st_dev, now.st_ino)


def _renamed(err: Exception, handle: str, folder: str) -> Exception:
    """`err` naming `folder` where it names the handle it was read through."""
    if handle == folder or handle not in str(err):
        return err
    try:
        return type(err)(str(err).replace(handle, folder))
    except Exception:  # noqa: BLE001 - an error type that cannot be rebuilt from its message
        return err


def _default_cache() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return HF_HUB_CACHE


def _repo_in_cache(repo_id: str, cache_dir) -> bool:
    folder = "models--" + repo_id.replace("/", "--")
    return os.path.isdir(os.path.join(os.fspath(cache_dir or _default_cache()), folder))


def upload_folder(folder: str, repo_id: str, commit_message: Optional[str] = None, private: Optional[bool] = None,
                  token=None, create_pr: bool = False, revision: Optional[str] = None):
    """Create the hub repo `repo_id` if needed and upload the folder's files in one commit; returns its info."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    return api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message or "Upload model",
                             revision=revision, create_pr=create_pr)
