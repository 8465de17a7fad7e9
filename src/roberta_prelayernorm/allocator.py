"""The memory allocator a long-running command runs on: tcmalloc or jemalloc where the system has one.

A process picks its malloc when it starts, so the command starts itself again with the library in LD_PRELOAD
(as torch's own launcher, `python -m torch.backends.xeon.run_cpu --enable-tcmalloc`, does). Why it matters for
the server (README, Serving, Allocator): on tcmalloc, lone base-size int8 requests ran at 1.33x the tokens/s they
ran at on glibc's malloc, and fp32 and bf16 ones at 1.05-1.09x. Linux only; elsewhere "auto" keeps the system's.
"""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from typing import Callable, Optional, Sequence

from .errors import SettingError

CHOICES = ("auto", "tcmalloc", "jemalloc", "system")
# Each allocator's library names as ctypes.util.find_library takes them (first found wins), and its Debian package.
LIBRARIES = {"tcmalloc": ("tcmalloc_minimal", "tcmalloc"), "jemalloc": ("jemalloc",)}
PACKAGES = {"tcmalloc": "libtcmalloc-minimal4", "jemalloc": "libjemalloc2"}


def in_use() -> str:
    """The allocator this process runs on: "tcmalloc", "jemalloc" or "system" (from its memory map)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            maps = f.read()
    except OSError:
        return "system"
    return next((name for name in LIBRARIES if f"/lib{name}" in maps), "system")


def library(name: str) -> Optional[str]:
    """The shared library of allocator `name` that the dynamic loader finds on this system, or None."""
    return next(filter(None, (ctypes.util.find_library(lib) for lib in LIBRARIES[name])), None)


def restart_on(choice: str, program: Optional[Sequence[str]], execute: Callable = os.execve) -> None:
    """Start this process again on allocator `choice`, running `program` (what follows the interpreter on its
    command line: a script and its arguments, or -m and a module and its arguments), unless it already runs on
    it. "auto" takes tcmalloc, else jemalloc, else stays; "system" always stays. Returns only if nothing
    restarted. `program` None (a command called from Python, not started as one) restarts nothing."""
    if choice == "system":
        return
    if not sys.platform.startswith("linux"):
        if choice == "auto":
            return
        raise SettingError(f"--allocator {choice}: preloading an allocator works on Linux only; use auto or system")
    current = in_use()
    if current != "system" and choice in ("auto", current):
        return
    names = ("tcmalloc", "jemalloc") if choice == "auto" else (choice,)
    found = next(((name, path) for name in names for path in [library(name)] if path), None)
    if found is None:
        if choice == "auto":
            return
        raise SettingError(f"--allocator {choice}: this system has no lib{LIBRARIES[choice][0]} (Debian and Ubuntu: "
                           f"apt install {PACKAGES[choice]}); use auto or system")
    preloaded = os.environ.get("LD_PRELOAD", "")
    refused = found[1] in preloaded.replace(":", " ").split()  # preloaded, yet not in use: the loader refused it
    if program is None or refused:
        if choice == "auto":
            return
        why = ("the dynamic loader did not load it from LD_PRELOAD" if refused else
               "an allocator is chosen when a process starts, and this command was called from Python")
        raise SettingError(f"--allocator {choice}: {why}; use auto or system")
    env = dict(os.environ, LD_PRELOAD=" ".join(filter(None, (found[1], preloaded))))
    # tcmalloc reports each allocation over 1 GiB on stderr, which would break --log-json's one object a line.
    env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))
    sys.stdout.flush()
    sys.stderr.flush()
    execute(sys.executable, [sys.executable, *subprocess._args_from_interpreter_flags(), *program], env)
