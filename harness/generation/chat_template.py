"""A model's chat template, rendered within a time limit and failing in one line.

transformers renders chat templates with jinja2's ImmutableSandboxedEnvironment: a template
cannot reach Python, but it can loop (`range` nested in `range` runs for hours), call
`raise_exception`, break the sandbox's rules or not parse at all. Each of these is the model's
problem, not a crash: `apply` raises a `UserError` naming the model, and a render that runs
past `seconds()` is stopped by a timer signal (only the main thread can take one; elsewhere the
render runs unbounded, as before).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from harness.errors import UserError


def seconds() -> float:
    """How long one conversation may take to render (TUNEVAL_TEMPLATE_SECONDS, default 10)."""
    try:
        return max(0.1, float(os.environ.get("TUNEVAL_TEMPLATE_SECONDS", "10")))
    except ValueError:
        return 10.0


class _OutOfTime(BaseException):
    """Raised by the timer inside the render; a BaseException, so that no `except Exception`
    between here and Jinja swallows it."""


OutOfTime = _OutOfTime  # for other renders held to the same limit (import-time templates)


@contextmanager
def time_limit(limit: float) -> Iterator[None]:
    """Interrupt the block after `limit` seconds with `_OutOfTime` (main thread only). A timer
    someone else set (pytest-timeout, say) is put back with its remaining time."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(*_: object) -> None:
        raise _OutOfTime

    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    earlier, interval = signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if earlier:
            left = max(earlier - (time.monotonic() - start), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, interval)


def apply(tok: Any, messages: Any, model: str, **kwargs: Any) -> Any:
    """`tok.apply_chat_template(messages, **kwargs)`, bounded; every failure a UserError."""
    import jinja2

    limit = seconds()
    try:
        with time_limit(limit):
            return tok.apply_chat_template(messages, **kwargs)
    except _OutOfTime:
        raise UserError(
            f"model '{model}': its chat template took more than {limit:g}s to render one "
            "conversation (a runaway loop?); fix the template or raise TUNEVAL_TEMPLATE_SECONDS"
        ) from None
    except jinja2.TemplateError as e:  # raise_exception, a sandbox violation, a syntax error
        what = "refused" if type(e) is jinja2.TemplateError else type(e).__name__
        raise UserError(f"model '{model}': chat template {what}: {e}") from None
