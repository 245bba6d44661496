"""One progress display for everything long (generation, training): a rich bar on a terminal,
and where stderr is piped or logged, a plain line every few seconds so a log shows progress too."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """`with Progress("training", total) as bar: bar.update(done, "loss 1.23")`."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        start: int = 0,
        enabled: bool = True,
        every: float = 10.0,
        stream: Any = None,
    ):
        self.label, self.total, self.done = label, total, start
        self.enabled, self.every = enabled, every
        self.stream = stream if stream is not None else sys.stderr
        self.bar: Any = None
        self.last = 0.0
        self.t0 = time.perf_counter()

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
        self.last = time.perf_counter()
        return self

    def update(self, done: int, info: str = "") -> None:
        self.done = done
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=done, info=info)
            return
        now = time.perf_counter()
        if now - self.last >= self.every or done >= self.total:
            self.last = now
            share = f" ({done / self.total:.0%})" if self.total else ""
            extra = f"  {info}" if info else ""
            elapsed = now - self.t0
            print(
                f"{self.label} {done}/{self.total}{share}{extra}  [{elapsed:.0f}s]",
                file=self.stream,
                flush=True,
            )

    def advance(self, n: int, info: str = "") -> None:
        self.update(self.done + n, info)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
