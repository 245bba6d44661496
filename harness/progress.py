"""One progress display for everything long (generation, training): a rich bar on a terminal,
and where stderr is piped or logged, a plain line every few seconds so a log shows progress too.

The plain lines come from a small timer thread, not from `update`: a batch of long prompts can
take a minute before its first row finishes, and a log that says nothing for a minute looks hung.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

EVERY = 5.0  # seconds between plain lines


class Progress:
    """`with Progress("training", total) as bar: bar.update(done, "loss 1.23")`."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        start: int = 0,
        enabled: bool = True,
        every: float = EVERY,
        stream: Any = None,
    ):
        self.label, self.total, self.done, self.info = label, total, start, ""
        self.enabled, self.every = enabled, every
        self.stream = stream if stream is not None else sys.stderr
        self.bar: Any = None
        self.t0 = time.perf_counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._timer: threading.Thread | None = None
        self._printed = -1  # `done` at the last plain line: the same state is not printed twice

    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        if getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(
                TextColumn(self.label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(
                self.label, total=self.total, completed=self.done, info=""
            )
            return self
        self._timer = threading.Thread(target=self._tick, name="progress-lines", daemon=True)
        self._timer.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(self.every):
            self._line(repeat=True)

    def _line(self, *, repeat: bool = False) -> None:
        """Print the current state as one line; `repeat` prints it even when nothing moved,
        with the elapsed time, so that a slow first batch still shows the run is alive."""
        with self._lock:
            if self._printed == self.done and not repeat:
                return
            self._printed = self.done
            share = f" ({self.done / self.total:.0%})" if self.total else ""
            extra = f"  {self.info}" if self.info else ""
            elapsed = time.perf_counter() - self.t0
            print(
                f"{self.label} {self.done}/{self.total}{share}{extra}  [{elapsed:.0f}s]",
                file=self.stream,
                flush=True,
            )

    def update(self, done: int, info: str = "") -> None:
        self.done, self.info = done, info
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=done, info=info)
        elif done >= self.total:
            self._line()
            self._stop.set()  # finished: no more lines repeating it while the caller goes on

    def advance(self, n: int, info: str = "") -> None:
        self.update(self.done + n, info)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        if self.bar is not None:
            self.bar.stop()
