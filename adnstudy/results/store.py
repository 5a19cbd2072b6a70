"""Results store: ``DIR/<stage>/<table>.parquet`` plus ``DIR/<stage>/manifest.json``.

A stage writes into a hidden temporary folder beside its final one and swaps it
in only when the stage finished, so a failed or interrupted stage leaves the
previous results (or nothing) and never a half-written set. The manifest records
what produced the tables: package version, case hashes, inputs, solver record,
timings per phase and the objective.

**Faults and concurrent runs** (docs/results.md, "What a killed, interrupted or
concurrent run leaves behind"): a run that writes into a results folder holds
its lock (:func:`out_lock`, ``DIR/.adnstudy.lock``); a second run into the same
folder stops at once with exit 2 naming the holder. The hidden folders are
named with their owner (``.<stage>.tmp-<host>-<pid>-<hex>``); the first thing a
run does under the lock is :func:`recover`: remove those of dead owners and put
back a stage folder that a killed swap left aside. The swap itself is one atomic
``renameat2(RENAME_EXCHANGE)`` on Linux, else two renames that :func:`recover`
completes.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from adnstudy import __version__, interrupt
from adnstudy.config.load import Case
from adnstudy.config.overrides import set_flags
from adnstudy.errors import BadInputTableError, MissingInputError, ResultsBusyError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: The lock file of a results folder: held (and holding who) while a run writes there.
LOCK = ".adnstudy.lock"
#: This machine in the hidden folders' names (letters, digits and underscores).
HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40] or "host"
#: A hidden folder of a stage: ``.<folder>.tmp-<host>-<pid>-<hex>`` (older versions: ``.<folder>.tmp-<hex>``).
SCRATCH = re.compile(r"^\.(?P<folder>.+)\.(?P<kind>tmp|old)-(?:(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-)?[0-9a-f]{8}$")


def default_out(case: Case) -> Path:
    return Path("results") / case.name


class StageWriter:
    """Collects one stage's tables, figures and manifest; commits them atomically.

    Use as a context manager::

        with StageWriter(out_dir, "powerflow", case) as w:
            with w.phase("solve"):
                ...
            w.table("bus", df)
            w.record(objective=..., solver={...})
    """

    def __init__(
        self, out_dir: Path, stage: str, case: Case, inputs: dict[str, str | None] | None = None, *,
        folder: str | None = None, tables: tuple[str, ...] | None = None, optional_tables: tuple[str, ...] = (),
        figures: tuple[str, ...] | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.stage = stage
        self.case = case
        self.folder = folder or stage
        self.final = self.out_dir / self.folder
        self.tmp = self.out_dir / scratch_name(self.folder, "tmp")
        #: the tables and figures the stage declares (None: not checked)
        self.declared = (tables, optional_tables, figures)
        self.timings: dict[str, float] = {}
        self.meta: dict[str, Any] = {"inputs": inputs or {}}
        self.tables: list[str] = []
        self.figures: list[str] = []
        self._t0 = time.perf_counter()

    def __enter__(self) -> StageWriter:
        self._lock = out_lock(self.out_dir)  # already held by the command: taken again (counted)
        self._lock.__enter__()
        try:
            self.tmp.mkdir(parents=True, exist_ok=False)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                return
            try:
                self._commit()
            except BaseException:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise
        finally:
            self._lock.__exit__(None, None, None)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase (build, solve, verify, write ...) for the manifest."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t

    def table(self, name: str, df: pd.DataFrame) -> None:
        df.to_parquet(self.tmp / f"{name}.parquet", index=False)
        self.tables.append(name)

    def table_parts(self, name: str) -> TableParts:
        """A table written chunk by chunk (:class:`TableParts`); it counts as written once closed."""
        return TableParts(self, name)

    def figure(self, name: str, fig: Any) -> None:
        """Save a matplotlib figure as PNG."""
        fig.savefig(self.tmp / f"{name}.png", dpi=120, bbox_inches="tight")
        self.figures.append(name)

    def record(self, **fields: Any) -> None:
        """Add fields to the manifest (solver record, objective, verification figures ...)."""
        self.meta.update(fields)

    def _check_declared(self) -> None:
        """A stage writes exactly what it declares (stages/registry.py): a contract, not a user error."""
        tables, optional, figures = self.declared
        if tables is not None:
            missing = sorted(set(tables) - set(self.tables))
            unknown = sorted(set(self.tables) - set(tables) - set(optional))
            if missing or unknown:
                raise RuntimeError(f"stage {self.stage} wrote tables {sorted(self.tables)}, declared {list(tables)} "
                                   f"(+ optional {list(optional)}): missing {missing}, undeclared {unknown}")
        if figures is not None and sorted(self.figures) != sorted(figures):
            raise RuntimeError(f"stage {self.stage} drew figures {self.figures}, declared {list(figures)}")

    def _commit(self) -> None:
        self._check_declared()
        self.timings["total"] = time.perf_counter() - self._t0
        manifest = {
            "adnstudy_version": __version__,
            "stage": self.stage,
            "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "case": {
                "name": self.case.name,
                "file": str(self.case.path),
                "file_sha256": self.case.file_sha256,
                "config_sha256": self.case.config_sha256,
                # the fields set on top of the file (--set): with the file, what reproduces the configuration
                "overrides": [o.text() for o in self.case.overrides],
            },
            "tables": self.tables,
            # what later stages compare their inputs with (results/provenance.py)
            "table_sha256": {t: table_digest(self.tmp / f"{t}.parquet") for t in self.tables},
            "figures": self.figures,
            "timings_s": {k: round(v, 6) for k, v in self.timings.items()},
            **self.meta,
        }
        with open(self.tmp / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, default=_json_default)
        with interrupt.deferred():  # a signal waits until the swap is done
            previous = _swap(self.tmp, self.final)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)


class TableParts:
    """A stage's table written chunk by chunk into one Parquet file (one row group per chunk), so memory is
    bounded by a chunk; it reads back as the frame the chunks concatenate to, as if written whole by
    :meth:`StageWriter.table`."""

    def __init__(self, w: StageWriter, name: str) -> None:
        self.w, self.name = w, name
        self.writer: Any = None  # pyarrow.parquet.ParquetWriter, opened with the first chunk's schema

    def write(self, df: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(df, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.w.tmp / f"{self.name}.parquet", table.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is None:
            raise RuntimeError(f"table {self.name}: no chunk written")
        self.writer.close()
        self.w.tables.append(self.name)


def copy_stage(src_dir: Path, folder: str, dst_dir: Path) -> bool:
    """Put a copy of stage folder ``src_dir/folder`` in ``dst_dir`` (as a stage commits: into a hidden folder,
    then swapped in); False if ``dst_dir`` already holds the same results (same run key and tables).

    Files are hard links where the file system allows (results are never changed in
    place: a stage replaces its whole folder), else copies.
    """
    src, dst_dir = Path(src_dir) / folder, Path(dst_dir)
    mine, theirs = read_manifest(dst_dir, folder), read_manifest(src_dir, folder)
    if theirs is None:
        raise MissingInputError(f"{src} has no readable {MANIFEST}: nothing to copy")
    if mine is not None and all(mine.get(k) == theirs.get(k) for k in ("run_key", "table_sha256", "created_utc")):
        return False
    with out_lock(dst_dir), staged_folder(dst_dir, folder) as tmp:
        shutil.copytree(src, tmp, copy_function=_link_or_copy, dirs_exist_ok=True)
    return True


@contextmanager
def staged_folder(out_dir: Path, folder: str) -> Iterator[Path]:
    """A hidden folder to fill; when the block ends without error it replaces ``out_dir/folder`` in one swap,
    else it is deleted (the previous folder, or none, stays). The caller holds the folder's lock."""
    tmp = Path(out_dir) / scratch_name(folder, "tmp")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        with interrupt.deferred():  # a signal waits until the swap is done
            previous = _swap(tmp, Path(out_dir) / folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(src, dst)


def scratch_name(folder: str, kind: str) -> str:
    """A hidden folder's name beside stage folder ``folder``: ``kind`` (tmp, old), this host and process."""
    return f".{folder}.{kind}-{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _swap(new: Path, final: Path) -> Path | None:
    """Put complete folder ``new`` in place of ``final``; return where the previous results now are.

    One atomic exchange where the system has it; else ``final`` is renamed
    aside to ``.<stage>.old-…`` and ``new`` into place (a kill between the two
    renames is repaired by :func:`recover`).
    """
    if not final.exists():
        os.replace(new, final)
        return None
    if _exchange(new, final):
        return new  # it now holds the previous results
    old = final.parent / scratch_name(final.name, "old")
    os.replace(final, old)
    os.replace(new, final)
    return old


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where it is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc before 2.28, musl
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # a file system without it
        return False
    raise OSError(err, os.strerror(err), str(b))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine runs (a zombie does not; unknown counts as running)."""
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # os.kill(pid, 0) would end it there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _owner_dead(match: re.Match[str]) -> bool:
    if match["pid"] is None:  # named by a version without owners or a lock: its run is over
        return True
    return match["host"] == HOST and not _alive(int(match["pid"]))  # another machine's: not known


def recover(out_dir: Path) -> list[str]:
    """What killed runs left in ``out_dir``, cleaned (call it holding the folder's lock); returns what was done.

    Hidden ``.<stage>.tmp-*`` and ``.<stage>.old-*`` folders whose owner process
    is dead are deleted, except that when ``<stage>/`` is missing (a swap cut
    between its two renames) the newest complete ``.old-*`` (with a manifest)
    is renamed back to ``<stage>/``: the previous results, as if the killed
    stage had never run.
    """
    out_dir = Path(out_dir)
    done: list[str] = []
    olds: dict[str, list[Path]] = {}
    try:
        entries = list(out_dir.iterdir())
    except FileNotFoundError:
        return done
    for path in entries:
        match = SCRATCH.match(path.name)
        if match is None or path.is_symlink() or not path.is_dir() or not _owner_dead(match):
            continue
        if match["kind"] == "old":
            olds.setdefault(match["folder"], []).append(path)
        else:
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path.name}")
    for folder, paths in olds.items():
        final = out_dir / folder
        paths.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        if not final.exists() and (paths[0] / MANIFEST).is_file():
            os.replace(paths[0], final)
            done.append(f"restored {folder}/ from {paths[0].name}")
            paths = paths[1:]
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path.name}")
    for line in done:
        log.info("%s: %s (left by a run that was killed)", out_dir, line)
    return done


class out_lock:  # noqa: N801 - used as a function: ``with out_lock(out_dir):``
    """Exclusive use of a results folder by this process, for a whole command (module docstring).

    Taken again by the same process, it is only counted. The first taker
    creates the folder if needed, writes its pid, host, command and start time
    into ``DIR/.adnstudy.lock`` and runs :func:`recover`; the last release
    deletes the file (and the folder, if the run left it empty). Another
    process that holds the lock makes this raise :class:`ResultsBusyError`.
    The lock is a POSIX record lock (``fcntl.lockf``): the system drops it when
    its process ends, however it ends, and a forked child does not inherit it.
    """

    _held: dict[str, list[Any]] = {}  # folder's real path -> [fd, count, created the folder]

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK

    def __enter__(self) -> out_lock:
        self.key = os.path.realpath(self.out_dir)
        held = self._held.get(self.key)
        if held is not None:
            held[1] += 1
            return self
        created = not self.out_dir.exists()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        fd = _acquire(self.path, self.out_dir)
        self._held[self.key] = [fd, 1, created]
        try:
            recover(self.out_dir)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        held = self._held[self.key]
        held[1] -= 1
        if held[1]:
            return
        del self._held[self.key]
        fd, _, created = held
        try:
            os.ftruncate(fd, 0)
            os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(fd)  # releases the lock
        if created:
            try:
                self.out_dir.rmdir()  # only if the run left it empty
            except OSError:
                pass


def _acquire(path: Path, out_dir: Path) -> int:
    """The open, locked lock file; :class:`ResultsBusyError` if another process holds it."""
    for _ in range(100):  # the holder may delete the file just as we open it: open the new one
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            locked = _try_lock(fd)
            if not locked:
                raise ResultsBusyError(f"{out_dir} is in use by another adnstudy run ({_holder(fd)}): wait until "
                                       "it ends, or give another --out folder")
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            since = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            info = {"pid": os.getpid(), "host": socket.gethostname(), "since_utc": since,
                    "command": shlex.join(["adnstudy", *sys.argv[1:]])}
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(info).encode())
            return fd
        os.close(fd)
    raise ResultsBusyError(f"{out_dir}: could not take its lock {path.name} (it keeps being replaced)")


def _try_lock(fd: int) -> bool:
    if fcntl is None:
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise
    return True


def _holder(fd: int) -> str:
    """Who holds the lock, from its file: pid, host, since when, command."""
    for attempt in range(5):
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            info = json.loads(os.read(fd, 65536).decode("utf-8", errors="replace"))
            return (f"pid {info['pid']} on {info['host']}, since {info['since_utc']}: "
                    f"{str(info['command'])[:300]}")
        except (OSError, ValueError, KeyError, TypeError):
            if attempt < 4:
                time.sleep(0.05)  # the holder is writing it
    return "a process that did not say who it is"


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_manifest(out_dir: Path, stage: str) -> dict[str, Any] | None:
    """The stage's manifest, or None if there is none or it cannot be read as a JSON object (a stage whose
    manifest is unreadable is never up to date; ``results/provenance.py`` names the fault to a later stage)."""
    path = Path(out_dir) / stage / MANIFEST
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def table_path(out_dir: Path, stage: str, table: str) -> Path:
    return Path(out_dir) / stage / f"{table}.parquet"


def table_digest(path: Path) -> str | None:
    """Hash of a table file's content: what a later stage's run key holds of the tables it read.

    Tables are written deterministically, so a stage re-run with the same results
    leaves later stages up to date (a manifest's hash would not: it holds times).
    """
    path = Path(path)
    return file_sha256(path) if path.is_file() else None


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks (a year's power-flow table or a profile file is 100s of MB)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_table(out_dir: Path, stage: str, table: str, case: Case) -> pd.DataFrame:
    """Read a table an earlier stage wrote, or say which command produces it (missing, or not Parquet)."""
    import pyarrow as pa

    path = table_path(out_dir, stage, table)
    command = f"'adnstudy {' '.join([stage, str(case.path), '--out', str(out_dir), *set_flags(case.overrides)])}'"
    if not path.is_file():
        raise MissingInputError(f"{path} is missing: it is written by {command}")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:  # empty, truncated, garbage
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise BadInputTableError(
            f"{path} is not a readable Parquet table ({type(exc).__name__}: {reason}; {path.stat().st_size} bytes): "
            f"the table is written by '{stage}', re-run {command}"
        ) from None
