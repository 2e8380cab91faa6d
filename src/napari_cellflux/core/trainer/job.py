"""A training run in its own process, watched from the viewer: start, progress, cancel.

:class:`TrainingJob` starts ``python -m training.run`` (see :mod:`.recipe`) as a child
process whose output goes to ``<out>/trainer.log``, and reads its progress from the run's
machine-readable log ``<out>/metrics.jsonl`` (one JSON object per logged step, and a last
``{"event": "done"}``). Nothing here blocks: the trainer widget polls :meth:`progress` and
:meth:`poll` from a timer. A run that dies (killed, out of memory, a bad dataset) is reported
with the end of its log; the checkpoint it kept stays for ``--resume``.

The child process holds the output folder's lock itself (:mod:`.folder_lock`, taken by
``training.run``), so a run started here and one started from a terminal refuse each other;
:func:`check_output_folder` asks the lock before anything is launched. A run the widget stops
watching (:meth:`TrainingJob.detach`) stays findable through that lock and its log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..formats.folder_lock import LAUNCHER_ENV, LOCK_NAME, holder

__all__ = ["Progress", "TrainingJob", "check_output_folder", "free_space_problem"]

LOG_FILE = "trainer.log"
CHECKPOINT_FILE = "checkpoint.safetensors"
MODEL_FILE = "model.safetensors"
_DETACHED: list[TrainingJob] = []


@dataclass
class Progress:
    """What the run has logged so far: ``losses`` is [(step, smoothed loss)]."""

    total: int
    step: int = 0
    losses: list[tuple[int, float]] = field(default_factory=list)
    images_per_s: float = 0.0
    elapsed_s: float = 0.0
    done: bool = False

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (None before the first logged step)."""
        if self.step <= 0 or self.elapsed_s <= 0 or self.done:
            return None if not self.done else 0.0
        return self.elapsed_s / self.step * max(self.total - self.step, 0)


def check_output_folder(out: str | Path) -> str | None:
    """Why ``out`` cannot take a new run now (another process writes there: a training run
    of a trainer or of a terminal, or ``training.prepare``; or it is a file), or None."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        return f"{out} is a file; choose a folder for the run."
    who = holder(out)
    if who is not None:
        stop = f"end process {who.pid}" if who.pid else "end that process"
        return (
            f"{out} is in use by another run: {who.describe()}. Wait for it, stop it "
            f"(Cancel in the trainer that started it, or {stop}), or choose another "
            "output folder."
        )
    return None


def free_space_problem(folder: str | Path, need_bytes: int) -> str | None:
    """A message when the disk holding ``folder`` has less than ``need_bytes`` free."""
    folder = Path(folder).expanduser()
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need_bytes:
        return (
            f"Only {free / 1e6:.0f} MB free on the disk of {folder}; this run needs about "
            f"{need_bytes / 1e6:.0f} MB (dataset, checkpoints, weights). Free some space or "
            "choose an output folder on another disk."
        )
    return None


class TrainingJob:
    """One ``python -m training.run`` child process writing to ``out``."""

    def __init__(self, command: list[str], out: str | Path, total_steps: int, cwd: Path) -> None:
        self.command = list(command)
        self.out = Path(out)
        self.cwd = Path(cwd)
        self.total = int(total_steps)
        self.process: subprocess.Popen[bytes] | None = None
        self.cancelled = False
        self._offset = 0
        self._progress = Progress(self.total)

    def start(self) -> None:
        """Start the process (its output to ``out/trainer.log``); it locks ``out`` itself."""
        self.out.mkdir(parents=True, exist_ok=True)
        metrics = self.out / "metrics.jsonl"
        self._offset = metrics.stat().st_size if metrics.is_file() else 0
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env[LAUNCHER_ENV] = f"the CellFlux trainer in napari, process {os.getpid()}"
        with open(self.out / LOG_FILE, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the terminal of napari does not hit it
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def poll(self) -> int | None:
        """The exit code once the process has ended (its lock went with it), else None."""
        if self.process is None:
            return None
        return self.process.poll()

    def progress(self) -> Progress:
        """Progress so far, reading only what ``metrics.jsonl`` gained since the last call."""
        path = self.out / "metrics.jsonl"
        if not path.is_file():
            return self._progress
        with open(path, "rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next call
        self._offset += end
        p = self._progress
        for line in chunk[:end].decode("utf-8", "replace").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("event") == "done":
                p.done, p.step = True, int(rec.get("step", p.step))
                continue
            if "step" in rec and "loss_smooth" in rec:
                p.step = int(rec["step"])
                p.losses.append((p.step, float(rec["loss_smooth"])))
                p.images_per_s = float(rec.get("images_per_s", 0.0))
                p.elapsed_s = float(rec.get("elapsed_s", 0.0))
        return p

    def cancel(self, timeout: float = 10.0) -> None:
        """Stop the process (terminate, then kill); the last checkpoint stays on disk."""
        self.cancelled = True
        if not self.running:
            return
        assert self.process is not None
        try:
            if hasattr(os, "killpg"):
                os.killpg(self.process.pid, signal.SIGTERM)  # with any worker processes
            else:  # Windows
                self.process.terminate()
        except (ProcessLookupError, PermissionError):
            self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
        self.poll()

    def detach(self) -> str:
        """Stop watching a running process and let it train on alone; returns what the user
        needs to find it again (its pid, log, lock and the weights it will write)."""
        _DETACHED.append(self)  # kept, so the ended process is reaped and never warned about
        pid = self.process.pid if self.process is not None else 0
        return (
            f"Training goes on without the trainer, in process {pid}. Its output goes to "
            f"{self.out / LOG_FILE} and its progress to {self.out / 'metrics.jsonl'}; "
            f"{self.out / LOCK_NAME} names it while it runs (a trainer or training.run "
            f"pointed at {self.out} says so), and {self.out / MODEL_FILE} appears when it is "
            f"done. To stop it: kill {pid} (its last checkpoint is kept for Resume)."
        )

    def log_tail(self, lines: int = 6) -> str:
        """The last lines of the run's output (the reason a run failed is usually there)."""
        path = self.out / LOG_FILE
        if not path.is_file():
            return ""
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])
