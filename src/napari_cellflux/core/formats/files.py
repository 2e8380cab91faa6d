"""Files written whole or not at all, and the digest that identifies a file's bytes.

Every file the project writes that a user may keep (weights, checkpoints, metrics, datasets,
caches) goes through :func:`atomic_path`: the bytes go to a hidden temporary file beside the
target, are flushed to disk, and only then renamed over it. A crash, a full disk or a
``kill -9`` therefore leaves either the previous file or the new one, never half of one.
:func:`write_checked` does the same for exports and turns an OS error into an
:class:`ExportError` whose message says what to do (permission, full disk, a folder);
:func:`check_writable` asks the folder first, so that an export into a read-only folder is
refused before any work, in those words (not as an encoder or disk error).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "ExportError",
    "atomic_path",
    "check_writable",
    "export_error",
    "file_sha256",
    "write_checked",
]


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (best effort: not every system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; renamed over ``path`` on success.

    Use as ``with atomic_path(target) as tmp: write(tmp)``. The parent folder is created.
    If the block raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        _fsync_file(tmp)  # the rename must not reach the disk before the data
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes, read in chunks (identifies the exact weights or data used)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class ExportError(OSError):
    """An export could not be written; the message says why and what to do."""


def export_error(target: Path, exc: BaseException) -> ExportError:
    """An :class:`ExportError` for a failed write that says what happened and what to do."""
    where = f"Could not write {target}"
    if isinstance(exc, PermissionError):
        why = "permission denied. Choose a folder you can write to (e.g. your home folder)."
    elif isinstance(exc, IsADirectoryError):
        why = "a folder of that name exists. Choose another file name."
    elif isinstance(exc, (NotADirectoryError, FileExistsError)):
        why = "part of the path is a file, not a folder. Choose another folder."
    elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk is full. Free some space or choose another disk; nothing was written."
    else:
        reason = getattr(exc, "strerror", None) or str(exc)
        why = (
            f"{reason}. Check that the disk is connected and has space, or choose another folder."
        )
    return ExportError(f"{where}: {why}")


def check_writable(target: str | os.PathLike) -> Path:
    """Refuse, before any work, a ``target`` whose folder cannot take a new file.

    The folder (or, when it does not exist yet, the nearest existing folder above it, where
    :func:`atomic_path` will create it) is asked by creating and removing an empty hidden
    file, which also answers correctly for root, ACLs and read-only disks. Returns
    ``target`` as a Path.

    Raises
    ------
    ExportError
        Naming the folder and what to do: read-only (permission or a read-only disk), a
        file where a folder should be, a folder where the file should be.
    """
    target = Path(target)
    if target.is_dir():
        raise export_error(target, IsADirectoryError(errno.EISDIR, "Is a directory"))
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise export_error(target, NotADirectoryError(errno.ENOTDIR, "Not a directory"))
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
            disk = " (it is on a read-only disk)" if exc.errno == errno.EROFS else ""
            raise ExportError(
                f"Could not write {target}: the folder {folder} is not writable{disk}. "
                "Choose a folder you can write to (e.g. your home folder); nothing was written."
            ) from exc
        raise export_error(target, exc) from exc
    os.close(fd)
    os.unlink(probe)
    return target


def write_checked(target: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Run ``write(tmp_path)`` inside :func:`atomic_path`; OS errors become
    :class:`ExportError` and never leave a partial file under ``target``. The folder is
    checked first (:func:`check_writable`)."""
    target = check_writable(target)
    try:
        with atomic_path(target) as tmp:
            write(tmp)
    except ExportError:
        raise
    except OSError as exc:
        raise export_error(target, exc) from exc
    return target
