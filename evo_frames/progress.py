"""Progress of long operations (``run``, ``transform``, ``synth``), reported once per batch.

The engine talks to a :class:`Progress`: ``start`` an entity with what is known of the total,
``advance`` it after each batch with what that batch did, ``finish`` it. The base class shows
nothing (``--quiet``, the Python API by default); the CLI picks a display with :func:`display`:

- on a terminal, :class:`LiveProgress`: a rich live display, one line per entity;
- elsewhere (cron, CI, a pipe), :class:`LineProgress`: one plain line per batch, no control codes.

Both show the same figures (:class:`Figures`): files and records done out of the total,
records/s, rejects so far and the time left. A load does not know its record total before it
reads the files, so it is estimated from the bytes read so far (shown as ``~N``).

>>> import io
>>> out = io.StringIO()
>>> with display(quiet=False, stream=out) as progress:
...     progress.start("entries", files=4, bytes=400)
...     progress.advance("entries", files=1, records=1000, rejects=2, bytes=100)
>>> line = out.getvalue()
>>> line.startswith("progress entries: files 1/4, records 1,000/~4,000, "), "2 rejects, eta" in line
(True, True)
>>> "\x1b" in line
False
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # rich is imported when a live display is made
    from rich.progress import TaskID


@dataclass
class Figures:
    """What an entity has done so far, and what is known of its total."""

    entity: str
    files: int = 0
    files_total: int | None = None
    records: int = 0
    records_total: int | None = None
    rejects: int = 0
    bytes: int = 0
    bytes_total: int | None = None
    started: float = 0.0

    @property
    def seconds(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    @property
    def rate(self) -> float:
        """Records per second since the start."""
        return self.records / self.seconds

    @property
    def fraction(self) -> float | None:
        """Share done: by records where their total is known, else by bytes."""
        if self.records_total:
            return min(self.records / self.records_total, 1.0)
        if self.bytes_total:
            return min(self.bytes / self.bytes_total, 1.0)
        return None

    @property
    def eta(self) -> float | None:
        """Seconds left at the pace so far, once something is done."""
        fraction = self.fraction
        if not fraction:
            return None
        return self.seconds * (1 - fraction) / fraction

    def text(self) -> str:
        """The figures as one line: ``files 3/10, records 3,000/~10,000, 512 records/s, 0 rejects, eta 0:00:14``."""
        parts = []
        if self.files_total is not None:
            parts.append(f"files {self.files}/{self.files_total}")
        if self.records_total is not None:
            total = f"{self.records_total:,}"
        elif self.bytes_total and self.bytes:
            total = f"~{round(self.records * self.bytes_total / self.bytes):,}"
        else:
            total = "?"
        parts += [f"records {self.records:,}/{total}", f"{self.rate:,.0f} records/s", f"{self.rejects:,} rejects"]
        eta = self.eta
        parts.append(f"eta {dt.timedelta(seconds=round(eta))}" if eta is not None else "eta ?")
        return ", ".join(parts)


class Progress:
    """Receives progress; this base class shows nothing. Displays override :meth:`show`.

    Use it as a context manager around the operation, so that a live display is closed before
    the summary is printed.
    """

    def __init__(self) -> None:
        self.entities: dict[str, Figures] = {}

    def start(
        self, entity: str, *, files: int | None = None, records: int | None = None, bytes: int | None = None
    ) -> None:
        """Begin ``entity``: its totals where known (files, records, compressed bytes)."""
        self.entities[entity] = Figures(
            entity, files_total=files, records_total=records, bytes_total=bytes, started=time.monotonic()
        )
        self.show(self.entities[entity])

    def advance(self, entity: str, *, files: int = 0, records: int = 0, rejects: int = 0, bytes: int = 0) -> None:
        """Add what one batch of ``entity`` did."""
        f = self.entities.get(entity) or Figures(entity, started=time.monotonic())
        self.entities[entity] = f
        f.files += files
        f.records += records
        f.rejects += rejects
        f.bytes += bytes
        self.show(f, batch=True)

    def finish(self, entity: str) -> None:
        """``entity`` is done (or stopped)."""

    def show(self, figures: Figures, batch: bool = False) -> None:
        """Display ``figures``; ``batch`` is true after a batch, false at the start."""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class LineProgress(Progress):
    """One plain line per batch on ``stream``, no control codes (logs, CI, pipes)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def show(self, figures: Figures, batch: bool = False) -> None:
        if batch:
            self.stream.write(f"progress {figures.entity}: {figures.text()}\n")
            self.stream.flush()


class LiveProgress(Progress):
    """A rich live display on a terminal: one line per entity with a bar, redrawn after each batch
    and twice a second in between (so that the time left keeps moving)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn
        from rich.progress import Progress as RichProgress

        self._rich = RichProgress(
            TextColumn("{task.description:<10}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[figures]}"),
            console=Console(file=stream),
            refresh_per_second=2,
        )
        self._tasks: dict[str, TaskID] = {}

    def show(self, figures: Figures, batch: bool = False) -> None:
        fraction = figures.fraction
        done = None if fraction is None else round(fraction * 1000)
        if figures.entity not in self._tasks:
            self._tasks[figures.entity] = self._rich.add_task(figures.entity, total=None, figures="")
        self._rich.update(
            self._tasks[figures.entity],
            total=None if done is None else 1000,
            completed=done or 0,
            figures=figures.text(),
            refresh=batch,
        )

    def finish(self, entity: str) -> None:
        if entity in self._tasks:
            self.show(self.entities[entity], batch=True)

    def __enter__(self) -> Progress:
        self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._rich.stop()


def display(quiet: bool, stream: TextIO | None = None) -> Progress:
    """The display for ``stream`` (default stderr): nothing when ``quiet``, live on a terminal,
    else one line per batch."""
    stream = stream if stream is not None else sys.stderr
    if quiet:
        return Progress()
    if stream.isatty():
        return LiveProgress(stream)
    return LineProgress(stream)
