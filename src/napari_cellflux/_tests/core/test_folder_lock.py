"""One writer per output folder: a second writer is refused with the holder's name, and a
holder that dies (even by ``kill -9``) frees the folder at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from napari_cellflux.core.formats.folder_lock import (
    LAUNCHER_ENV,
    LOCK_NAME,
    FolderInUseError,
    FolderLock,
    command_line,
    holder,
)

HOLD = """
import sys, time
from napari_cellflux.core.formats.folder_lock import FolderLock
FolderLock(sys.argv[1], "python -m training.run --out " + sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def _hold_in_another_process(folder) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_is_told_who_holds_the_folder(tmp_path):
    folder = tmp_path / "run"
    proc = _hold_in_another_process(folder)
    try:
        who = holder(folder)
        assert who is not None and who.pid == proc.pid
        assert who.command == f"python -m training.run --out {folder}"
        with pytest.raises(FolderInUseError) as err:
            FolderLock(folder, "python -m training.prepare").acquire()
        message = str(err.value)
        assert f"process {proc.pid} (python -m training.run --out {folder})" in message
        assert "running since 20" in message and f"kill {proc.pid}" in message
        assert "Wait for it to finish" in message
    finally:
        proc.kill()
        proc.wait()


def test_a_dead_holder_blocks_nothing(tmp_path):
    folder = tmp_path / "run"
    proc = _hold_in_another_process(folder)
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up at all: its lock file stays behind
    proc.wait()
    assert (folder / LOCK_NAME).is_file()
    assert holder(folder) is None
    with FolderLock(folder, "python -m training.run --resume") as lock:
        assert lock.held and holder(folder).command == "python -m training.run --resume"
        assert holder(folder).pid == os.getpid()
    assert holder(folder) is None and not (folder / LOCK_NAME).exists()


def test_a_second_lock_in_the_same_process_is_refused_too(tmp_path):
    """In-process callers (tests, a widget and a command in one interpreter) are no
    exception: the lock belongs to the open file, not to the process."""
    with FolderLock(tmp_path, "first"):
        with pytest.raises(FolderInUseError, match=rf"process {os.getpid()} \(first\)"):
            FolderLock(tmp_path, "second").acquire()
    with FolderLock(tmp_path, "second"):  # free again once the first is released
        pass


def test_release_leaves_the_folder_as_it_was(tmp_path):
    new = tmp_path / "new" / "run"
    with FolderLock(new, "x"):
        assert (new / LOCK_NAME).is_file()
    assert not new.exists()  # created for the lock and left empty: removed again
    kept = tmp_path / "kept"
    with FolderLock(kept, "x"):
        (kept / "model.safetensors").write_bytes(b"w")
    assert [p.name for p in kept.iterdir()] == ["model.safetensors"]


def test_the_command_names_who_launched_it(monkeypatch):
    monkeypatch.delenv(LAUNCHER_ENV, raising=False)
    assert command_line("python -m training.run", ["--out", "a b"]) == (
        "python -m training.run --out 'a b'"
    )
    monkeypatch.setenv(LAUNCHER_ENV, "the CellFlux trainer in napari (process 7)")
    assert command_line("python -m training.run", []).endswith(
        "(started by the CellFlux trainer in napari (process 7))"
    )


def test_a_holder_still_writing_its_name_is_described(tmp_path):
    fcntl = pytest.importorskip("fcntl")

    path = tmp_path / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # locked, record not written yet
    try:
        start = time.monotonic()
        with pytest.raises(FolderInUseError, match="has not written its name yet"):
            FolderLock(tmp_path, "x").acquire()
        assert time.monotonic() - start < 5
    finally:
        os.close(fd)
