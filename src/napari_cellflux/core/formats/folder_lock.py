"""One writer per output folder: a lock the kernel releases when its holder dies.

Every command that writes a run or dataset folder (``python -m training.run``, ``python -m
training.prepare``, and so the trainer widget's training process) holds an exclusive lock on
``FOLDER/.cellflux.lock`` while it works: ``fcntl.flock`` (``msvcrt.locking`` on Windows).
The file holds the holder's pid, command, host and start time, for the message a second
writer gets *before* it touches anything. The lock belongs to the open file, not to the
file's existence: a holder that dies in any way (``kill -9``, out of memory) frees the folder
at once, and a stale file left behind blocks nothing. A pid file alone could not tell a live
holder from a dead one whose pid was reused, nor two writers that start in the same second.

Forked children (worker pools) share the lock with their parent, so they must die with it
(see :mod:`training.prepare.build`).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

__all__ = [
    "LAUNCHER_ENV",
    "LOCK_NAME",
    "FolderInUseError",
    "FolderLock",
    "Holder",
    "command_line",
    "holder",
    "in_use_message",
]

LOCK_NAME = ".cellflux.lock"
#: Set by a program that starts a writer (the trainer widget), named in the lock.
LAUNCHER_ENV = "NAPARI_CELLFLUX_LAUNCHED_BY"
_PATIENCE_S = 0.2  # a lock that is being released or probed right now: try again briefly
_WINDOWS_BYTE = 1 << 20  # Windows locks are mandatory: lock a byte past the holder's record


@dataclass(frozen=True)
class Holder:
    """Who holds a folder's lock, as written in its lock file."""

    pid: int
    command: str
    started: str
    host: str = ""

    def describe(self) -> str:
        """``process 123 (python -m training.run ...), running since 2026-01-02 10:00:00``."""
        if not self.pid:
            return "another process (which has not written its name yet)"
        where = f" on {self.host}" if self.host and self.host != socket.gethostname() else ""
        since = f", running since {self.started}" if self.started else ""
        return f"process {self.pid}{where} ({self.command}){since}"


class FolderInUseError(ValueError):
    """Another live process writes the folder; the message names it and says what to do."""

    def __init__(self, message: str, holder: Holder) -> None:
        super().__init__(message)
        self.holder = holder


def command_line(program: str, argv: list[str]) -> str:
    """How a holder names itself: ``program`` and its arguments, and who launched it."""
    text = f"{program} {shlex.join(argv)}".strip()
    launcher = os.environ.get(LAUNCHER_ENV)
    return f"{text} (started by {launcher})" if launcher else text


def _try_lock(fd: int, shared: bool = False) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _read_holder(path: Path) -> Holder:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return Holder(
            int(record["pid"]),
            str(record.get("command", "")),
            str(record.get("started", "")),
            str(record.get("host", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):  # being written this very moment
        return Holder(0, "", "")


def holder(folder: str | Path) -> Holder | None:
    """Who holds ``folder``'s lock now, or None when no live process does."""
    path = Path(folder).expanduser() / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file (or no folder): nobody writes there
        return None
    try:
        if _try_lock(fd, shared=True):  # free: a dead holder's file is only a leftover
            _unlock(fd)
            return None
    finally:
        os.close(fd)
    return _read_holder(path)


def in_use_message(folder: Path, who: Holder) -> str:
    """What a second writer is told: who holds the folder, and what to do."""
    stop = f"stop that process (kill {who.pid})" if who.pid else "stop that process"
    return (
        f"{folder} is in use by {who.describe()}, which writes there; two writers would "
        f"overwrite each other. Wait for it to finish, or {stop} and run this again; "
        "or choose another output folder"
    )


class FolderLock:
    """The lock of one output folder, held from :meth:`acquire` (or ``with``) to
    :meth:`release` or the end of the process.

    Parameters
    ----------
    folder
        The output folder; created when missing (and removed again on release when the
        holder left it empty, e.g. a run refused for bad input).
    command
        How the holder is named to a second writer (see :func:`command_line`).
    """

    def __init__(self, folder: str | Path, command: str) -> None:
        self.folder = Path(folder).expanduser()
        self.path = self.folder / LOCK_NAME
        self.command = command
        self._fd: int | None = None
        self._created = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FolderLock:
        """Take the lock, or raise :class:`FolderInUseError` naming its live holder."""
        if self._fd is not None:
            return self
        self._created = not self.folder.exists()
        deadline = time.monotonic() + _PATIENCE_S
        while True:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if _try_lock(fd):
                if self._is_current(fd):
                    break
                os.close(fd)  # its holder removed it as we opened it: lock the new file
                continue
            os.close(fd)
            if time.monotonic() >= deadline:
                who = holder(self.folder) or _read_holder(self.path)
                raise FolderInUseError(in_use_message(self.folder, who), who)
            time.sleep(0.05)
        record = {
            "pid": os.getpid(),
            "command": self.command,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "host": socket.gethostname(),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode("utf-8"))
        self._fd = fd
        return self

    def _is_current(self, fd: int) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except OSError:
            return False

    def release(self) -> None:
        """Free the folder: the lock file goes (first, so nobody locks a file on its way
        out), and so does the folder when this lock created it and nothing else is there."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            self.path.unlink(missing_ok=True)
        except OSError:  # Windows: an open file cannot be deleted; try again once closed
            pass
        _unlock(fd)
        os.close(fd)
        if fcntl is None:
            try:
                self.path.unlink(missing_ok=True)
            except OSError:  # another writer has it open this moment: it takes it over
                pass
        if self._created:
            try:
                self.folder.rmdir()
            except OSError:  # not empty: the run wrote there
                pass

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
