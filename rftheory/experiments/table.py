"""The CSV export of a sweep table: one typed value per column of :data:`~rftheory.experiments.cells.COLUMNS`.

Written and read with the standard library's :mod:`csv` module: booleans as ``True``/``False``,
floats in their shortest round-trip form; a Parquet copy when pyarrow is importable.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from .cells import COLUMN_NAMES, COLUMNS, KEY_COLUMNS, LEGACY_SCHEMAS, legacy_type, upgrade_row


def _format(value) -> str:
    """A cell of the CSV: booleans as True/False, floats as their shortest round-trip repr."""
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def _parse_bool(text: str) -> bool:
    if text in ("True", "true", "1"):
        return True
    if text in ("False", "false", "0"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


_PARSERS = {bool: _parse_bool, int: int, float: float, str: str}  # the explicit type of every column


def _row_key(row: dict) -> tuple:
    return tuple(row[name] for name in KEY_COLUMNS)


def _sort_key(row: dict):
    return tuple((0, v) if not isinstance(v, str) else (1, v) for v in _row_key(row))


def _writer(fh) -> csv.DictWriter:
    return csv.DictWriter(fh, fieldnames=COLUMN_NAMES, lineterminator="\n", extrasaction="ignore")


def _formatted(row: dict) -> dict:
    return {name: _format(row[name]) for name in COLUMN_NAMES}


def is_table(path) -> bool:
    """Whether ``path`` is a CSV table this package wrote: its first line is exactly the column
    list of :data:`COLUMNS` (the header marker checked before ``--fresh`` deletes it)."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline(64 * 1024)
    except OSError:
        return False
    return first.rstrip(b"\r\n") in {",".join(names).encode() for names in (COLUMN_NAMES, *LEGACY_SCHEMAS)}


def read_table(path) -> list[dict]:
    """Rows of a sweep CSV, typed per :data:`COLUMNS` (file order).

    A truncated last line (a write cut short) is ignored.  A table of an
    earlier version (:data:`~rftheory.experiments.cells.LEGACY_SCHEMAS`: before
    the failure classes and the probe, or before the ``outputs`` column) is
    read as the current version by :func:`~rftheory.experiments.cells.upgrade_row`
    (``converged`` becomes ``loss_at_tol``; one output, no probe, true loss
    NaN).  Raises ValueError
    if the file is not UTF-8 text, if the header is not this version's column
    list, or (naming the line and column) if a cell cannot be read as its
    column's type.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a sweep table (not UTF-8 text); choose another output file") from None
    if not text.strip():
        return []
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(complete, newline=""))
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise ValueError(f"{path} is not a sweep table ({exc}); choose another output file") from None
    if header is None:
        return []
    legacy = tuple(header) in LEGACY_SCHEMAS
    if tuple(header) != COLUMN_NAMES and not legacy:
        missing = [c for c in COLUMN_NAMES if c not in header]
        extra = [c for c in header if c not in COLUMN_NAMES]
        raise ValueError(
            f"{path} is not a sweep table of this rftheory version (missing columns {missing}, "
            f"unexpected {extra}); choose another output file"
        )
    rows = []
    try:
        for record in reader:
            if None in record or None in record.values():  # DictReader's marks of too many / too few fields
                raise ValueError(f"{path}:{reader.line_num}: expected {len(header)} fields")
            row = {}
            for name in header:
                kind = legacy_type(name)
                try:
                    row[name] = _PARSERS[kind](record[name])
                except ValueError:
                    raise ValueError(f"{path}:{reader.line_num}: column {name}: cannot read {record[name]!r} "
                                     f"as {kind.__name__}") from None
            rows.append(upgrade_row(row) if legacy else row)
    except csv.Error as exc:
        raise ValueError(f"{path}:{reader.line_num}: not a valid CSV line ({exc})") from None
    return rows


def write_table(rows: Iterable[dict], path, parquet: bool | None = None) -> Path | None:
    """Write rows (sorted by configuration) to ``path`` atomically (temp file +
    rename).  With ``parquet`` (None: when pyarrow is importable) also write
    ``path.with_suffix('.parquet')`` and return its path."""
    path = Path(path)
    rows = sorted(rows, key=_sort_key)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = _writer(fh)
        writer.writeheader()
        writer.writerows(_formatted(row) for row in rows)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return _write_parquet(rows, path.with_suffix(".parquet")) if parquet is not False else None


def _write_parquet(rows, path) -> Path | None:
    try:
        import pyarrow as pa  # noqa: PLC0415
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        return None
    kinds = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    schema = pa.schema([(name, kinds[typ]) for name, typ in COLUMNS])
    table = pa.Table.from_pylist([{k: r[k] for k in COLUMN_NAMES} for r in rows], schema=schema)
    pq.write_table(table, path)
    return Path(path)


def merge_tables(paths: Iterable, out, parquet: bool | None = None) -> list[dict]:
    """Merge sweep CSVs into ``out``: the union of their rows, the first row
    of each configuration kept, sorted by configuration.  Returns the rows."""
    seen, rows = set(), []
    for path in paths:
        for row in read_table(path):
            k = _row_key(row)
            if k not in seen:
                seen.add(k)
                rows.append(row)
    write_table(rows, out, parquet=parquet)
    return sorted(rows, key=_sort_key)
