"""The isolated decoder child: results, time limits, and no orphan when its caller is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amplify.io.isolated import Timeout, call_isolated

CALLER = """
import os, sys, time
from amplify.io.isolated import call_isolated
print(call_isolated(os.getpid, timeout=60), flush=True)
time.sleep(600)
"""


def _stat(pid: int) -> list[str] | None:
    """(state, ppid, ...) of a live process from /proc; None when gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields


def _descendants(pid: int) -> list[int]:
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (f := _stat(int(d.name))) is not None:
            parent[int(d.name)] = int(f[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def test_call_returns_and_times_out():
    assert call_isolated(sum, [1, 2, 3], timeout=60) == 6
    with pytest.raises(Timeout):
        call_isolated(time.sleep, 5, timeout=0.5)
    assert call_isolated(os.getpid, timeout=60) != os.getpid()  # a fresh child after the kill


def test_the_child_exits_when_its_caller_is_killed():
    """A Ray worker killed with -9 (or its node's raylet) cannot shut its pool down: the warm
    child must notice and exit, with its resource tracker, instead of waiting forever."""
    caller = subprocess.Popen([sys.executable, "-c", CALLER], stdout=subprocess.PIPE, text=True)
    try:
        child = int(caller.stdout.readline())
        family = sorted(set([child] + _descendants(caller.pid)))
        assert _stat(child) is not None and len(family) >= 2  # the child and its resource tracker
        os.kill(caller.pid, signal.SIGKILL)
        caller.wait(10)
        deadline = time.monotonic() + 10
        alive = family
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if _stat(p) is not None]
            time.sleep(0.1)
        assert not alive, [Path(f"/proc/{p}/cmdline").read_bytes() for p in alive]
    finally:
        if caller.poll() is None:
            caller.kill()
