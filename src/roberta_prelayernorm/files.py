"""Atomic writes of files and folders: readers see the old one or the new one, never half of one, even after
a kill -9."""

from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
import tempfile

# The files a saved tokenizer may consist of (copied whole by convert and export).
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                   "special_tokens_map.json", "added_tokens.json")


def copy_tokenizer(source, folder: str) -> list[str]:
    """Copy the tokenizer files `source` (folder or hub id) has into `folder`; their names."""
    from .hub import resolve_file

    copied = []
    for name in TOKENIZER_FILES:
        try:
            path = resolve_file(source, name)
        except OSError:
            return copied
        if path is not None:
            shutil.copyfile(path, os.path.join(folder, name))
            copied.append(name)
    return copied


def atomic_write(path: str, write) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, flush it to disk, then rename it to `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        plain_mode(tmp, 0o666)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def plain_mode(path: str, mode: int) -> None:
    """mkstemp and mkdtemp make 0600 files and 0700 folders: give `path` the mode a plain open() or mkdir()
    would (`mode` less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def atomic_write_text(path: str, text: str) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)


# Folders being written by atomic_folder in this thread: writes inside them need no folder of their own.
_OPEN_FOLDERS: contextvars.ContextVar = contextvars.ContextVar("atomic_folders", default=())


@contextlib.contextmanager
def atomic_folder(path: str):
    """Write a whole folder at once: yields a temporary folder beside `path` to write into, then swaps it in.

    The temporary folder starts with hard links to the files already in `path` (kept, as a plain write into
    the folder keeps them; every writer here replaces files by renaming, never writes into them), so readers
    see the previous folder intact until the swap, then the new one. The swap moves the old folder aside
    (`.old-NAME-*`), renames the new one into place and removes the old one. An exception (or a kill) before
    the swap leaves `path` untouched. Nested calls for a path inside a folder being written write in place.
    """
    path = os.path.realpath(path)  # through a symlink: the folder it points at is the one replaced
    if any(path == open_ or path.startswith(open_ + os.sep) for open_ in _OPEN_FOLDERS.get()):
        yield path
        return
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=parent)
    plain_mode(tmp, 0o777)  # a folder that existed keeps its own mode (copytree copies it below)
    token = _OPEN_FOLDERS.set(_OPEN_FOLDERS.get() + (tmp,))
    try:
        if os.path.isdir(path):
            shutil.copytree(path, tmp, copy_function=link_or_copy, dirs_exist_ok=True)
        yield tmp
        _OPEN_FOLDERS.reset(token)
        token = None
        replace_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if token is not None:
            _OPEN_FOLDERS.reset(token)


def replace_folder(tmp: str, target: str) -> None:
    """Move a fully written folder `tmp` to `target`, replacing what is there. The old folder is moved aside
    first and removed last, so a crash leaves the old or the new folder (or both), never a partial one."""
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(prefix=f".old-{os.path.basename(target)}-", dir=os.path.dirname(target))
        os.rmdir(old)
        os.rename(target, old)
    os.rename(tmp, target)
    fsync_folder(os.path.dirname(target))
    if old:
        shutil.rmtree(old, ignore_errors=True)


def fsync_folder(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def link_or_copy(source: str, target: str) -> None:
    """A hard link (files here are replaced by renaming, never written into, so links stay safe), else a copy."""
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copy2(source, target)


class FolderInUseError(OSError):
    """Another process holds the folder's lock (see exclusive_lock)."""


@contextlib.contextmanager
def exclusive_lock(folder: str, name: str = ".lock"):
    """Hold an exclusive lock on `folder` (an flock on folder/name) until the block ends; fail at once with
    FolderInUseError when another process holds it. The kernel drops the lock when the process dies, so a
    killed run never leaves a stale lock behind."""
    import fcntl

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise FolderInUseError(f"{folder} is in use by {holder} (lock {path}); wait for it to end or choose "
                                   "another folder") from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def check_new_folder(path: str, name: str = "--output") -> None:
    """Refuse to write a new folder over anything but nothing or an empty folder."""
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise FileExistsError(f"{name} {path} already exists and is not an empty folder; choose a new one")


def check_output(path: str, name: str, folder: bool = False) -> None:
    """Raise ValueError naming option `name` unless `path` can be written: a file's folder must exist, a
    folder's nearest existing ancestor must be a folder; either must be writable. Run before the work starts."""
    path = os.path.abspath(path)
    if folder:
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"{name} {path}: exists and is not a folder")
        existing = path
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
    else:
        if os.path.isdir(path):
            raise ValueError(f"{name} {path}: is a folder; give a file name")
        existing = os.path.dirname(path)
        if not os.path.isdir(existing):
            raise ValueError(f"{name} {path}: the folder {existing} does not exist")
    if not os.path.isdir(existing):
        raise ValueError(f"{name} {path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {path}: {existing} is not writable")
