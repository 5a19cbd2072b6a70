"""Users' CSV tables, read the same way everywhere, each row keeping its line in the file.

Feeder tables and profile files are UTF-8 (with or without the byte-order mark
spreadsheet programs write), separated by ``,`` or ``;`` — whichever the header
line holds more of — with blank lines skipped and, for feeder tables, ``#``
starting a comment. The rows of the returned table are indexed by their line in
the file (``line``, 1-based), so a message names the line a user sees in an
editor, also after blank or comment lines.
"""

from __future__ import annotations

import io
import re
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from adnstudy.data import userfile
from adnstudy.errors import CaseError

#: the index name of a table read here: each row's line in the file
LINE = "line"
#: bounds on a CSV table (docs/case.md, "Limits on input files"); the file size is userfile.MAX_CSV_BYTES
MAX_LINE_BYTES = userfile.MB
MAX_COLUMNS = 10_000
WHAT = "a feeder table or profile file"
_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20


def open_file(path: Path) -> BinaryIO:
    """A feeder table or profile file opened for reading bytes (see :func:`userfile.open_binary`)."""
    return userfile.open_binary(path, limit=userfile.MAX_CSV_BYTES, what=WHAT)


def problem(path: Path, label: str) -> str | None:
    """Why the table a case names cannot be read, said about the case's field (``label``: "profile file"); None if it can."""
    why = userfile.problem(path, userfile.MAX_CSV_BYTES, WHAT)
    if why is None:
        return None
    return f"{label} not found: {path}" if why == "not found" else f"{label} {path}: {why}"


def _lines(fh: BinaryIO, path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes without the line ending) of each line; lines end in ``\n``, ``\r\n`` or ``\r``.

    Read in chunks, so memory stays bounded by a chunk and one line: a line longer
    than MAX_LINE_BYTES is an error as soon as it is seen. Each line is checked to
    be UTF-8; a byte-order mark at the start is dropped.
    """
    n = 0
    rest = b""
    first = True
    while True:
        try:
            chunk = fh.read(min(_CHUNK, userfile.MAX_CSV_BYTES + 1))
        except OSError as exc:
            raise CaseError(f"cannot read file ({exc.strerror})", file=path) from None
        buf = rest + chunk
        if first:
            buf, first = buf.removeprefix(_BOM), False
        parts = buf.splitlines(keepends=True)
        # the last part may go on in the next chunk (a "\r" too: it may be the first half of "\r\n")
        rest = parts.pop() if chunk and parts and not parts[-1].endswith(b"\n") else b""
        if len(rest) > MAX_LINE_BYTES:
            raise _too_long(path, n + len(parts) + 1)
        for part in parts:
            n += 1
            if len(part) > MAX_LINE_BYTES:
                raise _too_long(path, n)
            line = part.rstrip(b"\r\n")
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CaseError(f"cannot read file (not UTF-8 text: 'utf-8' codec can't decode byte "
                                f"0x{line[exc.start]:02x} in column {exc.start + 1}; save it as UTF-8)",
                                file=path, line=n) from None
            yield n, line
        if not chunk:
            return


def _too_long(path: Path, line: int) -> CaseError:
    return CaseError(f"the line is over {MAX_LINE_BYTES // userfile.MB} MB long; a table's lines are short "
                     "(is this a CSV file?)", file=path, line=line)


def separator(header: str) -> str:
    """``;`` when the header line holds more semicolons than commas, else ``,``."""
    return ";" if header.count(";") > header.count(",") else ","


def header_line(path: Path, comment: str | None = None) -> str:
    """The first line that is not blank (or a comment): the header of the table."""
    mark = comment.encode() if comment else None
    with open_file(path) as fh:
        for _, line in _lines(fh, path):
            body = line.split(mark, 1)[0] if mark else line
            if body.strip():
                return body.decode("utf-8")
    return ""


def header(path: Path, comment: str | None = None) -> list[str]:
    """The column names of the header line, stripped."""
    line = header_line(path, comment)
    return [c.strip() for c in line.split(separator(line))]


def read_table(
    path: Path, *, comment: str | None = None, usecols: Callable[[str], bool] | None = None
) -> pd.DataFrame:
    """The table of a CSV file, indexed by file line; column names stripped of blanks.

    Blank lines (and, with ``comment``, comment lines and trailing comments) are
    dropped before pandas reads the rest, so each row's line is known exactly.
    The file is streamed into that filtered copy: memory is about twice the file's
    size plus the table, and limits (userfile.MAX_CSV_BYTES, MAX_LINE_BYTES,
    MAX_COLUMNS) are errors before anything large is built.
    """
    mark = comment.encode() if comment else None
    kept = io.BytesIO()
    numbers = array("q")
    sep = b","
    with open_file(path) as fh:
        for n, line in _lines(fh, path):
            body = line.split(mark, 1)[0] if mark else line
            if not body.strip():
                continue
            if not numbers:  # the header
                sep = separator(body.decode("utf-8")).encode()
            if body.count(sep) >= MAX_COLUMNS:  # pandas is slow on very wide rows (an index of many levels)
                raise CaseError(f"the line has {body.count(sep) + 1:,} fields; a table may have at most "
                                f"{MAX_COLUMNS:,} columns", file=path, line=n)
            kept.write(body)
            kept.write(b"\n")
            numbers.append(n)
    if not numbers:
        raise CaseError("the file is empty; a table needs a header line and rows", file=path)
    kept.seek(0)
    try:
        frame = pd.read_csv(
            kept,
            sep=sep.decode(),
            skipinitialspace=True,
            encoding="utf-8",
            usecols=(lambda c: usecols(str(c).strip())) if usecols is not None else None,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = str(exc).strip()
        # pandas counts the lines it was given; name the file's line instead
        m = re.search(r"\bline (\d+)\b", reason)
        line = numbers[int(m[1]) - 1] if m and int(m[1]) <= len(numbers) else None
        if m and line is not None:
            reason = reason[: m.start(1)] + str(line) + reason[m.end(1) :]
        raise CaseError(f"not a readable CSV table ({reason})", file=path, line=line) from None
    finally:
        kept.close()
    frame.columns = [str(c).strip() for c in frame.columns]
    frame.index = pd.Index(np.frombuffer(numbers, dtype=np.int64)[1:].copy(), name=LINE)
    return frame


def lines_of(frame: pd.DataFrame) -> pd.Index:
    """Each row's line in its file: the index of a table read here, else header + position."""
    if frame.index.name == LINE:
        return frame.index
    return pd.RangeIndex(2, len(frame) + 2)
