"""Atomic output files: written to a temporary name beside the target, then renamed.

An interrupted stage therefore never leaves a half-written file under the final name, and one that runs out of
disk, or finds its output folder read-only, keeps the previous complete output and stops with an
:class:`OutputError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from liser.logs import UserError

__all__ = [
    "OutputError",
    "atomic_path",
    "atomic_directory",
    "PLACEHOLDER",
    "folder_manifest",
    "parquet_batches",
    "parquet_described",
    "write_placeholders",
    "read_json",
    "write_bytes",
    "write_csv",
    "write_json",
    "write_npy",
    "write_parquet",
    "write_text",
]


# what the disk or the folder refuses, as opposed to a bug: the user frees space or fixes the permissions
DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


class OutputError(UserError, OSError):
    """An output that could not be written (disk full, file too large, read-only or forbidden folder)."""


@contextlib.contextmanager
def _refused_as_output_error(target: Path) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        if error.errno not in DISK_ERRORS or isinstance(error, OutputError):
            raise
        raise OutputError(
            error.errno, f"{target}: could not be written ({error.strerror}); an earlier {target.name} is kept"
        ) from error


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; rename it onto ``target`` on success."""
    target = Path(target)
    with _refused_as_output_error(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            # mkstemp makes it private, and some writers (safetensors) replace the file: outputs are ordinary files
            tmp_path.chmod(0o644)
            os.replace(tmp_path, target)
        finally:
            tmp_path.unlink(missing_ok=True)


def remove_leftovers(target: str | Path) -> None:
    """Remove what a writer of ``target`` killed outright (SIGKILL, power loss) left beside it: its temporary file
    or staging folder; an earlier folder set aside for the new one is put back if the new one never arrived.  For
    a stage's outputs, not per item: it lists the folder."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    name = re.escape(target.name)
    # the names tempfile gives (8 characters of [a-z0-9_]) with the prefixes atomic_path and _staged use
    staged = re.compile(rf"\.{name}\.[a-z0-9_]{{8}}(\.tmp)?")
    set_aside = re.compile(rf"\.{name}\.earlier\.[a-z0-9_]{{8}}")
    for path in sorted(target.parent.iterdir()):
        if set_aside.fullmatch(path.name) and path.is_dir() and not target.exists():
            path.rename(target)
        elif staged.fullmatch(path.name) or set_aside.fullmatch(path.name):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target`` whole, with ordinary
    permissions (folders 0755, files 0644)."""
    target = Path(target)
    with _refused_as_output_error(target), _staged(target) as staging:
        yield staging


@contextlib.contextmanager
def _staged(target: Path) -> Iterator[Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        for path in staging.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        staging.chmod(0o755)  # mkdtemp makes it private
        if not target.exists():
            staging.rename(target)
            return
        earlier = Path(tempfile.mkdtemp(prefix=f".{target.name}.earlier.", dir=target.parent))
        earlier.rmdir()
        target.rename(earlier)  # the earlier output stays whole until the new one is in place
        try:
            staging.rename(target)
        except BaseException:
            earlier.rename(target)
            raise
        shutil.rmtree(earlier)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


PLACEHOLDER = "NOT-USED.txt"


def write_placeholders(target: str | Path, reason: str, folders: tuple[str, ...] = ("",)) -> None:
    """Replace the folder ``target`` by one whose ``folders`` hold only a note saying why they are empty: the
    declared output of a stage that has nothing to do in this profile."""
    with atomic_directory(target) as staging:
        for folder in folders:
            (staging / folder).mkdir(parents=True, exist_ok=True)
            (staging / folder / PLACEHOLDER).write_text(reason.rstrip() + "\n")


def folder_manifest(folder: str | Path) -> str:
    """One line per file under ``folder``, in path order: its path relative to ``folder``, its size and SHA-256.

    A small text that changes exactly when the folder's content does, for a stage to depend on instead of a
    folder of many files."""
    folder = Path(folder)
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{path.relative_to(folder).as_posix()}\t{path.stat().st_size}\t{digest}\n")
    return "".join(lines)


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_json(target: str | Path, data: Any) -> None:
    write_text(target, json.dumps(data, indent=2, default=_plain) + "\n")


def read_json(source: str | Path) -> Any:
    return json.loads(Path(source).read_text())


def write_parquet(target: str | Path, table: pd.DataFrame, described: dict[bytes, Any] | None = None) -> None:
    """``table`` without its index; ``described``: values stored as JSON under their keys in the file's metadata
    (what a table is, for its reader to check)."""
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if described:
        extra = {key: json.dumps(value, sort_keys=True).encode() for key, value in described.items()}
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **extra})
    with atomic_path(target) as tmp:
        pq.write_table(arrow, tmp)


def parquet_batches(source: str | Path, rows: int = 65_536, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """A Parquet file ``rows`` rows at a time (fewer at the end of each row group), one row group in memory at a
    time.  (pyarrow's own ``iter_batches`` kept every row group it had read in its memory pool: 175 MB after 4 M
    rows of a 9-column table, pyarrow 26.)"""
    parquet = pq.ParquetFile(source)
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group, columns=columns)
        for start in range(0, table.num_rows, rows):
            yield table.slice(start, rows).to_pandas()
        del table


def parquet_described(source: str | Path, key: bytes) -> Any:
    """The value :func:`write_parquet` stored under ``key`` (None when there is none); ``OSError`` or
    ``pyarrow.ArrowException`` when ``source`` is not a readable Parquet file."""
    metadata = pq.read_schema(source).metadata or {}
    return json.loads(metadata[key]) if key in metadata else None


def write_npy(target: str | Path, array: np.ndarray) -> None:
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            # through write(), not numpy's tofile (a C write that reports a full disk without its errno)
            np.save(_Chunks(handle), array)


class _Chunks:
    def __init__(self, handle):
        self.write = handle.write


def write_csv(target: str | Path, table: pd.DataFrame) -> None:
    with atomic_path(target) as tmp:
        table.to_csv(tmp, index=False)
