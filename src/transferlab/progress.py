"""Progress of one training run: a rich bar on a terminal, one summary line otherwise."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def command_started_at() -> float | None:
    """Wall-clock start of this process (Linux /proc), from which a run's fixed cost counts;
    None where /proc does not say. The start is in clock ticks since boot: its age is read on
    the boot clock, not against /proc/stat's btime (whole seconds, and off by the wall clock's
    drift since boot: 0.8 s on this VM)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.time() - age


class RunProgress:
    """Epoch, loss, top-1 and images/s of a run; quiet (a final line on stderr) off a terminal."""

    def __init__(self, label: str, epochs: int, steps_per_epoch: int, start_epoch: int = 0) -> None:
        self.label, self.epochs, self.per_epoch = label, epochs, steps_per_epoch
        self.console = Console(stderr=True)
        self.interactive = self.console.is_terminal
        self.last_test: float | None = None
        self.last = (0, float("nan"), float("nan"), 0.0)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.interactive,
            transient=False,
        )
        self._task = self._progress.add_task(
            label, total=epochs * steps_per_epoch, completed=start_epoch * steps_per_epoch, stats=""
        )

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()
        if not self.interactive and exc[0] is None:
            epoch, loss, top1, ips = self.last
            test = f" test top-1 {self.last_test:.3f}" if self.last_test is not None else ""
            print(
                f"{self.label}: {epoch} epochs, loss {loss:.3f}, train top-1 {top1:.3f},{test}, {ips:.0f} img/s",
                file=sys.stderr,
            )

    def step(self, epoch: int, loss: float, top1: float, images_per_s: float) -> None:
        """After an optimiser step: running loss and top-1 of the epoch."""
        self.last = (epoch + 1, loss, top1, images_per_s)
        test = f" test {self.last_test:.3f}" if self.last_test is not None else ""
        stats = f"epoch {epoch + 1}/{self.epochs} loss {loss:.3f} top-1 {top1:.3f}{test} {images_per_s:.0f} img/s"
        self._progress.update(self._task, advance=1, stats=stats)

    def evaluated(self, test_top1: float) -> None:
        """After an evaluation on the held-out set."""
        self.last_test = test_top1


def progress_iter(items, label: str, total: int | None = None):
    """Iterate `items` (with a len, or a given total) under a rich bar on a terminal; silently otherwise."""
    from rich.progress import track

    console = Console(stderr=True)
    if not console.is_terminal:
        yield from items
        return
    yield from track(items, description=label, console=console, total=len(items) if total is None else total)
