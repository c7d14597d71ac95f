"""Progress display: stage, file i of N, tokens and dollars so far (rich; off with --quiet).

Where the display's stream is not a terminal (``make run > log 2>&1``, a pipe, CI), a live
bar would show nothing until the end: one plain line per step is printed instead.
"""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.text import Text

from papercoder.console import err_console, plain, safe


class Progress:
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._bar: RichProgress | None = None
        self._task: Any = None
        self._stage = ""
        self._info = ""
        self.lines = not quiet and not err_console.is_terminal
        """One line per step instead of a live bar (the stream is not a terminal)."""
        self._total: int | None = None
        self._done = 0
        self._started = time.monotonic()

    def _line(self, item: str) -> None:
        of = f" {self._done}/{self._total}" if self._total else ""
        what = f": {safe(item, newlines=False)}" if item else ""
        info = f" · {self._info}" if self._info else ""
        secs = int(time.monotonic() - self._started)
        err_console.print(plain(f"[{secs // 60}:{secs % 60:02d}] {self._stage}{of}{what}{info}",
                                newlines=False), soft_wrap=True)

    def __enter__(self) -> Progress:
        if not self.quiet and not self.lines:
            self._bar = RichProgress(
                TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
                MofNCompleteColumn(), TextColumn("{task.fields[current]}", markup=False),
                TextColumn("{task.fields[info]}", style="dim", markup=False),
                TimeElapsedColumn(), console=err_console, transient=False,
            )
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def say(self, message: str | Text) -> None:
        """Print a line above the display. A str is shown literally (never as markup); build
        styled lines with :func:`papercoder.console.styled`."""
        line = message if isinstance(message, Text) else plain(message)
        (self._bar.console if self._bar else err_console).print(line, soft_wrap=True)

    def stage(self, name: str, total: int | None, done: int = 0) -> None:
        self._stage = name
        self._total, self._done = total, done
        if self.lines:
            self._line("started")
        if self._bar is None:
            return
        if self._task is not None:
            self._bar.update(self._task, visible=True)
        self._task = self._bar.add_task(safe(name, newlines=False), total=total,
                                        completed=done, current="",
                                        info=self._info)

    def working(self, item: str) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, current=safe(item, newlines=False))

    def advance(self, item: str) -> None:
        self._done += 1
        if self.lines:
            self._line(item)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=1, current=safe(item, newlines=False),
                             info=self._info)

    def update_totals(self, totals: Any) -> None:
        u = totals.usage
        cost = f"${totals.cost:.4f}" + ("+?" if totals.unpriced_calls else "")
        self._info = (f"{u.prompt_tokens + u.completion_tokens:,} tokens · {cost}"
                      f" · {totals.cache_hits} cached")
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, info=self._info)
