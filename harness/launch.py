"""`tuneval train --nproc N`: the same command again under torchrun, one process per GPU (or N CPU
processes with gloo). The launcher replaces itself with torchrun, so stopping it (even `kill -9`)
stops the training: each worker asks the kernel to kill it when its parent dies."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

_OURS = ("--nproc", "--torchrun")


def worker_argv(argv: Sequence[str]) -> list[str]:
    """The command line without the launcher's own options."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _OURS:
            skip = True
            continue
        if arg.startswith(tuple(f"{o}=" for o in _OURS)):
            continue
        out.append(arg)
    return out


def torchrun_command(nproc: int, extra: Sequence[str], argv: Sequence[str]) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run"]
    if not any(a.lstrip("-").startswith(("nnodes", "rdzv", "master")) for a in extra):
        cmd.append("--standalone")  # one machine: a free port, no rendezvous server
    cmd += [f"--nproc-per-node={nproc}", *extra, "-m", "harness.cli", *worker_argv(argv)]
    return cmd


def relaunch(nproc: int, extra: Sequence[str]) -> None:
    """Replace this process with torchrun running the same command on `nproc` processes."""
    cmd = torchrun_command(nproc, extra, sys.argv[1:])
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, cmd, env)


def die_with_parent() -> None:
    """Under torchrun: be killed when the launcher is, instead of training on as an orphan."""
    if "LOCAL_RANK" in os.environ:
        child_dies_with_parent(os.getppid())()


def child_dies_with_parent(parent: int | None = None) -> Callable[[], None]:
    """A function that asks the kernel to kill the calling process when its parent dies
    (PR_SET_PDEATHSIG; Linux only, elsewhere it does nothing). Made in the parent, so that as a
    `preexec_fn` the child runs no import or library lookup between fork and exec; given the
    parent's pid, it also exits at once if the parent is already gone."""
    if not sys.platform.startswith("linux"):
        return lambda: None
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return lambda: None

    def request() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1 or (parent is not None and os.getppid() != parent):
            os._exit(1)  # orphaned before the request took effect

    return request
