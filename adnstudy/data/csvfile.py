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
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from adnstudy.errors import CaseError

#: the index name of a table read here: each row's line in the file
LINE = "line"


def read_text(path: Path) -> str:
    """The file's text (UTF-8, an optional byte-order mark dropped); unreadable files are case errors."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CaseError("file not found", file=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError(f"cannot read file ({exc})", file=path) from None


def separator(header: str) -> str:
    """``;`` when the header line holds more semicolons than commas, else ``,``."""
    return ";" if header.count(";") > header.count(",") else ","


def header_line(path: Path, comment: str | None = None) -> str:
    """The first line that is not blank (or a comment): the header of the table."""
    try:
        with path.open(encoding="utf-8-sig") as fh:
            for line in fh:
                body = line.split(comment, 1)[0] if comment else line
                if body.strip():
                    return body.rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError(f"cannot read file ({exc})", file=path) from None
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
    """
    kept: list[str] = []
    numbers: list[int] = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        body = line.split(comment, 1)[0] if comment else line
        if body.strip():
            kept.append(body)
            numbers.append(n)
    if not kept:
        raise CaseError("the file is empty; a table needs a header line and rows", file=path)
    try:
        frame = pd.read_csv(
            io.StringIO("\n".join(kept)),
            sep=separator(kept[0]),
            skipinitialspace=True,
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
    frame.columns = [str(c).strip() for c in frame.columns]
    frame.index = pd.Index(numbers[1:], name=LINE)
    return frame


def lines_of(frame: pd.DataFrame) -> pd.Index:
    """Each row's line in its file: the index of a table read here, else header + position."""
    if frame.index.name == LINE:
        return frame.index
    return pd.RangeIndex(2, len(frame) + 2)
