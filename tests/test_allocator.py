"""allocator.py: the server starts itself again on tcmalloc or jemalloc where the system has one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from roberta_prelayernorm import allocator
from roberta_prelayernorm.errors import SettingError

PROGRAM = ["-m", "roberta_prelayernorm", "serve", "--model", "m"]


@pytest.fixture
def system(monkeypatch):
    """A Linux process on glibc's malloc, on a system whose allocator libraries are set by the test."""
    libraries = {}
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(allocator, "in_use", lambda: "system")
    monkeypatch.setattr(allocator, "library", lambda name: libraries.get(name))
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.delenv("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", raising=False)
    return libraries


def restarts(choice, program=PROGRAM):
    """The (path, argv, env) restart_on would exec, or None when it returns."""
    calls = []
    allocator.restart_on(choice, program, execute=lambda *call: calls.append(call))
    assert len(calls) <= 1
    return calls[0] if calls else None


def test_auto_takes_tcmalloc_then_jemalloc_and_keeps_what_was_preloaded(system, monkeypatch):
    system["jemalloc"] = "libjemalloc.so.2"
    monkeypatch.setenv("LD_PRELOAD", "libmine.so")
    path, argv, env = restarts("auto")
    assert path == sys.executable and argv[0] == sys.executable and argv[-len(PROGRAM):] == PROGRAM
    assert env["LD_PRELOAD"] == "libjemalloc.so.2 libmine.so"
    system["tcmalloc"] = "libtcmalloc_minimal.so.4"
    _, _, env = restarts("auto")
    assert env["LD_PRELOAD"].split()[0] == "libtcmalloc_minimal.so.4"
    assert int(env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"]) >= 1 << 40  # no report lines in the JSON log
    assert restarts("jemalloc")[2]["LD_PRELOAD"].split()[0] == "libjemalloc.so.2"


def test_nothing_restarts_where_there_is_nothing_to_do(system, monkeypatch):
    system["tcmalloc"] = "libtcmalloc_minimal.so.4"
    assert restarts("system") is None
    assert restarts("auto", program=None) is None  # called from Python: the caller's process is not replaced
    monkeypatch.setattr(allocator, "in_use", lambda: "tcmalloc")
    assert restarts("auto") is None and restarts("tcmalloc") is None
    system["jemalloc"] = "libjemalloc.so.2"
    assert restarts("jemalloc") is not None  # another one asked for
    system.clear()
    monkeypatch.setattr(allocator, "in_use", lambda: "system")
    assert restarts("auto") is None  # none on this system: glibc's it stays


def test_an_allocator_that_cannot_be_had_is_a_one_line_error(system, monkeypatch):
    with pytest.raises(SettingError, match=r"^--allocator jemalloc: this system has no libjemalloc \(Debian and "
                                           r"Ubuntu: apt install libjemalloc2\); use auto or system$"):
        restarts("jemalloc")
    system["tcmalloc"] = "libtcmalloc_minimal.so.4"
    with pytest.raises(SettingError, match="^--allocator tcmalloc: .* called from Python; use auto or system$"):
        restarts("tcmalloc", program=None)
    # Preloaded already and still not in use: the loader refused it. Starting again would loop.
    monkeypatch.setenv("LD_PRELOAD", "libtcmalloc_minimal.so.4")
    assert restarts("auto") is None
    with pytest.raises(SettingError, match="^--allocator tcmalloc: the dynamic loader did not load it"):
        restarts("tcmalloc")
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.delenv("LD_PRELOAD")
    assert restarts("auto") is None
    with pytest.raises(SettingError, match="^--allocator tcmalloc: preloading an allocator works on Linux only"):
        restarts("tcmalloc")


@pytest.mark.parametrize("name", ["tcmalloc", "jemalloc"])
def test_in_use_sees_a_preloaded_library(name):
    path = allocator.library(name)
    if path is None:
        pytest.skip(f"no lib{name} here (apt install {allocator.PACKAGES[name]}; make test installs it)")
    code = "from roberta_prelayernorm.allocator import in_use; print(in_use())"
    plain = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}
    for env, expected in ((plain, "system"), ({**plain, "LD_PRELOAD": path}, name)):
        seen = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert seen.stdout.strip() == expected
