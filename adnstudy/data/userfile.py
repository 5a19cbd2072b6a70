"""Opening a user's data file: a regular file of bounded size, or a clear error.

Every file a case names — the case file itself, its defaults files, feeder
tables, profile files — is opened here, so none of them can be a device
(``/dev/zero`` would be read forever), a FIFO (opening it would wait for a
writer), a directory, or a file too large to be a case's. The check is made by
name before opening and again on the opened file (it may have been replaced in
between). Errors never quote the file's content.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from adnstudy.errors import CaseError

MB = 1_000_000
#: a case file or defaults file: cases are a few KB; data lives in CSV files
MAX_YAML_BYTES = 1 * MB
#: a feeder table or profile file: a year of 15-minute data with a hundred columns is ~50 MB
MAX_CSV_BYTES = 200 * MB

_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def size_text(n: int) -> str:
    return f"{n / MB:.0f} MB" if n >= MB else f"{n:,} bytes"


def _problem_of(st: os.stat_result, limit: int, what: str) -> str | None:
    if stat.S_ISDIR(st.st_mode):
        return "a directory, not a file"
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
        return f"not a regular file but {kind}"
    if st.st_size > limit:
        return f"the file is {size_text(st.st_size)}; {what} may be at most {size_text(limit)}"
    return None


def problem(path: Path, limit: int, what: str) -> str | None:
    """Why ``path`` cannot be read as a user's file of at most ``limit`` bytes, or None.

    ``"not found"`` when there is nothing there; otherwise a phrase that reads
    after the file's name (``/dev/zero: not a regular file but a character device``).
    Symbolic links are followed: a link to a regular file is that file.
    """
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "not found"
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        return f"cannot read file ({getattr(exc, 'strerror', None) or exc})"
    return _problem_of(st, limit, what)


def open_binary(path: Path, *, limit: int, what: str) -> BinaryIO:
    """The file opened for reading bytes, once it is known to be a regular file within ``limit``.

    Raises :class:`CaseError` naming the file otherwise. The caller must not read
    more than ``limit`` bytes of it (:func:`read_bytes` does that).
    """
    why = problem(path, limit, what)
    if why == "not found":
        raise CaseError("file not found", file=path)
    if why is not None:
        raise CaseError(why, file=path)
    try:
        # O_NONBLOCK: a FIFO put in its place since the check above does not make open() wait
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise CaseError(f"cannot read file ({exc.strerror})", file=path) from None
    why = _problem_of(os.fstat(fd), limit, what)
    if why is not None:
        os.close(fd)
        raise CaseError(why, file=path)
    return os.fdopen(fd, "rb")


def read_bytes(path: Path, *, limit: int, what: str) -> bytes:
    """The whole content of a user's file of at most ``limit`` bytes (see :func:`open_binary`)."""
    with open_binary(path, limit=limit, what=what) as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise CaseError(f"cannot read file ({exc.strerror})", file=path) from None
    if len(data) > limit:  # it grew since it was checked
        raise CaseError(f"the file is over {size_text(limit)}; {what} may be at most {size_text(limit)}", file=path)
    return data
