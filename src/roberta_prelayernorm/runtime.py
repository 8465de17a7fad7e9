"""Process-wide CPU settings that make inference and training faster.

glibc's malloc hands every large block (activations, matmul outputs) to mmap and back to the system when it is
freed, so each forward pass page-faults its activations in again. Where page faults are expensive (VMs and
sandboxes) that costs more than the arithmetic: measured here, 2-3x on a base-size forward pass. Keeping
freed memory in the heap removes that cost. It changes the whole process, so the library does not do it on
import: the command line does, and library users opt in with `tune_cpu_allocator()`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

_tuned = False


def tune_cpu_allocator() -> bool:
    """Keep freed memory in the heap (glibc only). Returns whether the allocator was tuned."""
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = all((
        mallopt(M_MMAP_THRESHOLD, 1 << 30),  # blocks below 1 GiB come from the heap...
        mallopt(M_TRIM_THRESHOLD, 1 << 30),  # ...and stay there when freed (up to 1 GiB of slack)
        mallopt(M_TOP_PAD, 64 << 20),  # grow the heap in 64 MiB steps
    ))
    _tuned = bool(ok)
    return _tuned
