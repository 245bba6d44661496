"""`tuneval train --nproc N`: the same command again under torchrun, one process per GPU (or N CPU
processes with gloo). The launcher replaces itself with torchrun, so stopping it (even `kill -9`)
stops the training: each worker asks the kernel to kill it when its parent dies."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

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
    cmd = [sys.executable, "-c", "from harness.training.launch import torchrun; torchrun()"]
    if not any(a.lstrip("-").startswith(("nnodes", "rdzv", "master")) for a in extra):
        cmd.append("--standalone")  # one machine: a free port, no rendezvous server
    cmd += [f"--nproc-per-node={nproc}", *extra, "-m", "harness.cli", *worker_argv(argv)]
    return cmd


MAX_NPROC_VAR = "TUNEVAL_MAX_NPROC"
# torchrun options that change what it runs, or that tuneval sets itself
_NOT_PASSED = ("-m", "--module", "--no-python", "--no_python", "--run-path", "--run_path",
               "--nproc-per-node", "--nproc_per_node")  # fmt: skip


def max_nproc() -> int:
    """Processes one machine can take: its GPUs, else its CPUs (TUNEVAL_MAX_NPROC overrides)."""
    try:
        return max(1, int(os.environ[MAX_NPROC_VAR]))
    except (KeyError, ValueError):
        pass
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return gpus or os.cpu_count() or 1


def check_launch(nproc: int, extra: Sequence[str]) -> None:
    """Refuse, before any work, more processes than the machine has, and --torchrun values that
    are not torchrun options (`--torchrun=hello.py` would make hello.py torchrun's script)."""
    from harness.errors import UserError

    limit = max_nproc()
    if nproc > limit:
        raise UserError(
            f"--nproc {nproc}: this machine takes at most {limit} (its GPUs, else its CPUs); "
            f"set {MAX_NPROC_VAR} to allow more"
        )
    for value in extra:
        name = value.split("=", 1)[0]
        if not value.startswith("--") or len(name) < 3 or any(c.isspace() for c in name):
            raise UserError(f"--torchrun {value!r}: not a torchrun option (--name or --name=value)")
        if name in _NOT_PASSED:
            raise UserError(f"--torchrun {value!r}: tuneval sets what torchrun runs itself")


def relaunch(nproc: int, extra: Sequence[str]) -> None:
    """Replace this process with torchrun running the same command on `nproc` processes."""
    cmd = torchrun_command(nproc, extra, sys.argv[1:])
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, cmd, env)


USER_ERROR = 2  # the exit status of a worker that printed a user mistake


def torchrun() -> None:
    """torchrun's agent in this process, except that a worker that stopped on a user mistake (it
    printed its one line and exited 2) ends the launch with status 2 and nothing more, rather
    than torchrun's failure report and traceback. Any other failure keeps torchrun's report."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main

    def not_user_error(record: logging.LogRecord) -> bool:  # "failed (exitcode: %s) ..."
        return not (isinstance(record.args, tuple) and record.args[:1] == (USER_ERROR,))

    logging.getLogger("torch.distributed.elastic.multiprocessing.api").addFilter(not_user_error)
    try:
        main(sys.argv[1:])
    except ChildFailedError as e:
        if e.get_first_failure()[1].exitcode == USER_ERROR:
            sys.exit(USER_ERROR)
        raise
