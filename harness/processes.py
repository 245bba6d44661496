"""Processes tuneval starts and must not leave behind: a child that dies with its parent (the
kernel's parent-death signal), and a process group stopped whole (a server and its workers). Used
by `--nproc` workers under torchrun, the report server and the vLLM server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable


def die_with_parent() -> None:
    """Under torchrun: be killed when the launcher is, instead of training on as an orphan."""
    if "LOCAL_RANK" in os.environ:
        child_dies_with_parent(os.getppid())()


def child_dies_with_parent(parent: int | None = None, sig: int | None = None) -> Callable[[], None]:
    """A function that asks the kernel to kill the calling process when its parent dies
    (PR_SET_PDEATHSIG; Linux only, elsewhere it does nothing). Made in the parent, so that as a
    `preexec_fn` the child runs no import or library lookup between fork and exec; given the
    parent's pid, it also exits at once if the parent is already gone. `sig` is the signal sent
    (SIGKILL; SIGTERM lets a server that has children of its own stop them first)."""
    if not sys.platform.startswith("linux"):
        return lambda: None
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return lambda: None

    def request() -> None:
        prctl(1, signal.SIGKILL if sig is None else sig)  # PR_SET_PDEATHSIG
        if os.getppid() == 1 or (parent is not None and os.getppid() != parent):
            os._exit(1)  # orphaned before the request took effect

    return request


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the process group `proc` leads, SIGKILL if it has not gone within `grace`
    seconds (then 5 more)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
