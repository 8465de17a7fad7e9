"""Writes of files and folders: readers see the old one or the new one, never half of one, even after a kill -9.

The one rule for a path the user names: a symlink is followed (the link stays, its target gets the content), a
device or FIFO is written as a stream (renaming a file over it would replace it), a regular file or a new name
is written beside and renamed into place. A folder the user owns (or a mount point) is never replaced: what is
written into it is staged inside it and moved in (see atomic_folder).
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import errno
import functools
import json
import os
import shutil
import tempfile

from .errors import OutputExistsError, SettingError, UserError

# Less free space than this after a failed write: the disk was full, whatever the library's error says.
FULL_BELOW = 1 << 20

# The files a saved tokenizer may consist of (copied whole by convert and export).
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                   "special_tokens_map.json", "added_tokens.json")


def copy_tokenizer(source, folder: str) -> list[str]:
    """Copy the tokenizer files `source` (folder or hub id) has, all of one save (hub.read_one_save), into
    `folder`; their names."""
    from .hub import read_one_save, resolve_file

    def read(source, hub_kwargs):  # the files' bytes: a save into `source` between two copies cannot mix them
        contents = {}
        for name in TOKENIZER_FILES:
            try:
                path = resolve_file(source, name, **hub_kwargs)
            except OSError:
                return contents
            if path is not None:
                with open(path, "rb") as f:
                    contents[name] = f.read()
        return contents

    contents = read_one_save(source, {}, read)
    for name, content in contents.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(content)
    return list(contents)


def output_target(path: str) -> tuple[str, bool]:
    """(where to write `path`'s content, whether as a stream): the rule above."""
    target = os.path.realpath(path)
    return target, os.path.exists(target) and not os.path.isfile(target)


class WriteError(UserError, OSError):
    """A write that failed (disk full, a library's error wrapping an I/O error), naming the file."""


@contextlib.contextmanager
def writing(path: str):
    """Yield the name to write `path`'s content to, by the rule above; the content is in place when the block
    ends. A failure leaves the previous content at `path` (a stream's reader has what was written) and raises
    WriteError naming `path` and what happened."""
    target, stream = output_target(path)
    if stream:
        yield target
        return
    folder = os.path.dirname(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if os.path.exists(target):  # a file replaced keeps its permissions, as one written into would
            os.chmod(tmp, os.stat(target).st_mode & 0o7777)
        else:
            plain_mode(tmp, 0o666)
        os.replace(tmp, target)
    except BaseException as err:
        # Judged before the partial file goes: while it is there, a full disk shows as one.
        error = write_error(path, err, folder) if isinstance(err, Exception) else err
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if error is err:
            raise
        raise error from err


def write_error(path: str, err: Exception, folder: str) -> Exception:
    """WriteError naming `path` for an OSError or for any error while `folder`'s disk is full; other errors
    (bugs) as they are."""
    text = f"{type(err).__name__}: {err}"
    stats = os.statvfs(folder)
    full = (getattr(err, "errno", None) == 28 or "No space left" in text or "os error 28" in text
            or stats.f_bavail * stats.f_frsize < FULL_BELOW)
    if isinstance(err, WriteError) or not (full or isinstance(err, OSError)):
        return err
    what = "the disk is full (free space, then run again)" if full else (getattr(err, "strerror", None) or text)
    error = WriteError(f"cannot write {path}: {what}")
    error.errno = 28 if full else err.errno
    return error


def atomic_write(path: str, write) -> None:
    """Call write(name) with the name to write `path`'s content to (a temporary file beside it, then renamed
    over it; a device's or FIFO's own name); see writing()."""
    with writing(path) as name:
        write(name)


@contextlib.contextmanager
def open_output(path: str, encoding: str = "utf-8"):
    """A text file to write `path`'s content into, line by line, by the rule above (in place when it closes)."""
    with writing(path) as name, open(name, "w", encoding=encoding) as f:
        yield f


def append_text(path: str, text: str) -> None:
    """Append `text` to the file `path` (a log: the lines written so far stay), naming it when that fails."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
    except OSError as err:
        raise write_error(path, err, os.path.dirname(os.path.abspath(path))) from err


def plain_mode(path: str, mode: int) -> None:
    """mkstemp and mkdtemp make 0600 files and 0700 folders: give `path` the mode a plain open() or mkdir()
    would (`mode` less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def atomic_write_text(path: str, text: str) -> None:
    with open_output(path) as f:
        f.write(text)


# Folders being written by atomic_folder in this thread: writes inside them need no folder of their own.
_OPEN_FOLDERS: contextvars.ContextVar = contextvars.ContextVar("atomic_folders", default=())


@contextlib.contextmanager
def atomic_folder(path: str, replace: bool = True):
    """Write a whole folder at once: yields a temporary folder to write into, then puts its files in place.

    A folder this package owns (replace=True, the default: a model folder, best/, a checkpoint) is built beside
    `path`, starting with hard links to the files already there (kept, as a plain write into the folder keeps
    them; every writer here replaces files by renaming, never writes into them), and swapped in by
    replace_folder. A folder the user owns (replace=False: an --output folder that exists) or a mount point is
    never replaced: the files are staged in `path/.tmp-*`, which, once complete, is renamed `path/.new-*` and
    its files moved over the old ones; recover_folder finishes the moves of a run killed among them. An
    exception (or a kill) before the swap or the `.new-` rename leaves `path` untouched. Nested calls for a path
    inside a folder being written write in place.
    """
    path = os.path.realpath(path)  # through a symlink: the folder it points at is the one written
    if any(path == open_ or path.startswith(open_ + os.sep) for open_ in _OPEN_FOLDERS.get()):
        yield path
        return
    in_place = os.path.isdir(path) and (not replace or os.path.ismount(path))
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=path if in_place else parent)
    plain_mode(tmp, 0o777)  # a folder that existed keeps its own mode (copytree copies it below)
    token = _OPEN_FOLDERS.set(_OPEN_FOLDERS.get() + (tmp,))
    try:
        if os.path.isdir(path) and not in_place:
            shutil.copytree(path, tmp, symlinks=True, copy_function=link_or_copy, dirs_exist_ok=True)
        yield tmp
        _OPEN_FOLDERS.reset(token)
        token = None
        if in_place:
            from .hub import save_lock

            new = os.path.join(path, ".new-" + os.path.basename(tmp)[len(".tmp-"):])
            with save_lock(path):  # readers (hub.read_one_save) see the old files or the new, never a mix
                os.rename(tmp, new)  # from here on the write is complete: recover_folder rolls it forward
                fsync_folder(path)
                move_into(new, path)
        else:
            replace_folder(tmp, path)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, WriteError):  # name the file the user will look for, not the temporary one
            error = WriteError(str(err).replace(tmp, path))
            error.errno = err.errno
            raise error from err
        raise
    finally:
        if token is not None:
            _OPEN_FOLDERS.reset(token)


def move_into(new: str, folder: str) -> None:
    """Move the entries of the complete staged folder `new` over those of `folder`, config.json last (so a
    reader that sees it sees the rest), then remove `new`."""
    for name in sorted(os.listdir(new), key=lambda n: (n == "config.json", n)):
        source, target = os.path.join(new, name), os.path.join(folder, name)
        if os.path.isdir(source) and not os.path.islink(source):
            replace_folder(source, target)
        else:
            os.replace(source, target)
            if os.path.lexists(source):  # a hard link to the very file at `target`: rename() leaves both
                os.unlink(source)
    fsync_folder(folder)
    os.rmdir(new)


def recover_folder(folder: str) -> None:
    """Finish or undo what a killed writer left in `folder`: staged writes that were complete (`.new-*`) are
    moved in, incomplete ones (`.tmp-*`) removed; a folder replace_folder moved aside (`.old-NAME-*`) goes back
    to NAME when its replacement never arrived, else it is removed."""
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        if name.startswith(".new-"):
            move_into(path, folder)
        elif name.startswith(".old-") and not os.path.lexists(os.path.join(folder, name[5:].rsplit("-", 1)[0])):
            os.rename(path, os.path.join(folder, name[5:].rsplit("-", 1)[0]))
        elif name.startswith((".tmp-", ".old-")):
            shutil.rmtree(path, ignore_errors=True)


def replace_folder(tmp: str, target: str) -> None:
    """Move a fully written folder `tmp` to `target`, replacing what is there. Where the system can, the two
    are exchanged in one step (no moment without a folder at `target`, which a reader would take for a missing
    folder), and the old one, now at `tmp`, removed. Else the old folder is moved aside first and removed last,
    so a crash leaves the old or the new folder (or both; recover_folder puts the old one back when the new one
    is missing), never a partial one."""
    if os.path.isdir(target) and exchange(tmp, target):
        fsync_folder(os.path.dirname(target))
        remove_swapped_out(tmp)  # a kill before this leaves a .tmp-, which recover_folder removes
        return
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(prefix=f".old-{os.path.basename(target)}-", dir=os.path.dirname(target))
        os.rmdir(old)
        os.rename(target, old)
    os.rename(tmp, target)
    fsync_folder(os.path.dirname(target))
    if old:
        remove_swapped_out(old)


def remove_swapped_out(folder: str) -> None:
    """Remove a folder that a save has swapped out, once the reads going on through it are done (they hold its
    save_lock shared: hub.read_one_save). Such a read then never loses a file to the removal and need not be
    repeated, so that saves following each other cannot starve a reader."""
    from .hub import save_lock

    try:
        with save_lock(folder):
            shutil.rmtree(folder, ignore_errors=True)
    except (OSError, ImportError):  # no folder locks here (fcntl): remove it as it is
        shutil.rmtree(folder, ignore_errors=True)


def exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux's renameat2 with RENAME_EXCHANGE); False where the system or the file
    system cannot."""
    libc = _libc()
    if libc is None:
        return False
    if libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
        return True
    number = ctypes.get_errno()
    if number in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(number, os.strerror(number), b)


@functools.cache
def _libc():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc if hasattr(libc, "renameat2") else None
    except OSError:
        return None


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


class FolderInUseError(UserError, OSError):
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
        raise OutputExistsError(f"{name} {path} already exists and is not an empty folder; choose a new one")


def check_output(path: str, name: str, folder: bool = False) -> None:
    """Raise ValueError naming option `name` unless `path` can be written: a file's folder must exist, a
    folder's nearest existing ancestor must be a folder; either must be writable. Run before the work starts."""
    path = os.path.abspath(path)
    if folder:
        if os.path.exists(path) and not os.path.isdir(path):
            raise SettingError(f"{name} {path}: exists and is not a folder")
        existing = path
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
    else:
        target, stream = output_target(path)
        if os.path.isdir(target):
            raise SettingError(f"{name} {path}: is a folder; give a file name")
        if stream:  # a device or FIFO, written into as it is
            if not os.access(target, os.W_OK):
                raise SettingError(f"{name} {path}: {target} is not writable")
            return
        existing = os.path.dirname(target)
        if not os.path.isdir(existing):
            raise SettingError(f"{name} {path}: the folder {existing} does not exist")
    if not os.path.isdir(existing):
        raise SettingError(f"{name} {path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SettingError(f"{name} {path}: {existing} is not writable")


def read_json_object(path: str, error: type = SettingError) -> dict:
    """A file holding one JSON object, read; `error` naming the file where it is not one (or is cut short)."""
    with open(path, encoding="utf-8") as handle:
        try:
            value = json.load(handle)
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
            raise error(f"cannot read {path}: {err} (truncated or corrupt?)") from None
    if not isinstance(value, dict):
        raise error(f"{path} must hold a JSON object, got {type(value).__name__}")
    return value
