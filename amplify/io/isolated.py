"""Run a function in a child process with a time limit, so a hung or crashing decoder cannot stall
or kill the worker that called it.

One child per calling process is kept warm (imports paid once) and replaced after a timeout or a
crash. Library code, no Ray: the pipeline calls it from inside its stages.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

_pool: ProcessPoolExecutor | None = None
_pool_pid: int | None = None  # the process that owns _pool (a forked child must not reuse it)


class Timeout(Exception):
    """The call ran past its limit; the child was killed."""


class Crashed(Exception):
    """The child died (segfault, out of memory) while running the call."""


def _exit_with_parent(parent: int) -> None:
    """In the child: exit as soon as `parent` is gone (re-parented). A worker killed with -9 (or
    its whole node) cannot shut the pool down, and the child would otherwise wait for work
    forever, keeping its resource tracker alive too."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _get_pool() -> ProcessPoolExecutor:
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        # spawn, not fork: the caller may be a threaded Ray worker.
        _pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=mp.get_context("spawn"),
            initializer=_exit_with_parent,
            initargs=(os.getpid(),),
        )
        _pool_pid = os.getpid()
    return _pool


def _kill_pool() -> None:
    global _pool
    if _pool is None:
        return
    for proc in list(getattr(_pool, "_processes", {}).values()):
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, AttributeError):
            pass
    _pool.shutdown(wait=False, cancel_futures=True)
    _pool = None


def call_isolated(fn: Callable[..., Any], *args: Any, timeout: float, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)` in the warm child; raises `Timeout` or `Crashed`, or what `fn` raised."""
    future = _get_pool().submit(fn, *args, **kwargs)
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        _kill_pool()
        raise Timeout(f"no result after {timeout:g} s") from None
    except BrokenProcessPool:
        _kill_pool()
        raise Crashed("the decoder process died") from None
