"""The sweep store: one SQLite database (Python's :mod:`sqlite3`) holding the rows of
:func:`rftheory.experiments.law.sweep`.

Why a database rather than appending to a CSV file: several sweeps may write
one table at once, a sweep may be killed at any instant, and both must lose
nothing.  SQLite gives each of these by construction:

* one row per cell, keyed by its configuration: the table ``cells`` has a
  PRIMARY KEY over the configuration columns (:data:`~rftheory.experiments.law.KEY_COLUMNS`),
  so a cell is stored at most once and a second writer of the same cell is
  ignored (``INSERT OR IGNORE``: both computed the same pure function of the
  configuration, timing columns aside);
* every cell is written in its own transaction, so a kill leaves every
  committed cell and no half-written row (a transaction is atomic);
* WAL journal mode lets readers run beside the single writer of the moment,
  and the busy timeout makes concurrent writers wait for each other instead
  of failing, so two sweeps into one store both keep all their rows.

A store is recognised by its table ``rftheory_store`` holding
``format = rftheory-law-store`` and the column list of the table version
(:data:`FORMAT`), so that ``--fresh`` deletes only a file this package wrote.

Schema versions: the column list in the marker is the store's schema.  A store
of an earlier version (:data:`~rftheory.experiments.cells.LEGACY_SCHEMAS`:
before the failure classes and the probe, when ``loss_at_tol`` was called
``converged``; or before the ``outputs`` column) is *migrated* when opened:
in one transaction its table is rebuilt with the current columns and key,
every old row is read as the current version by
:func:`~rftheory.experiments.cells.upgrade_row` (one output, no probe, true
loss not measured), and the marker is updated; ``migrated`` is then True.
Old rows keep their cells (their probe angles are 0), so a sweep with the
probe runs its cells anew beside them.  A store of any other column list is
refused with a message naming the missing and unexpected columns.

Values: SQLite stores Python ints as 64-bit integers, floats as IEEE doubles
(exactly) and NaN as NULL; booleans go in as 0/1.  :meth:`SweepStore.rows`
turns them back into the column types of :data:`~rftheory.experiments.law.COLUMNS`
(NULL in a float column is NaN).
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Iterable

from .cells import COLUMNS, KEY_COLUMNS, LEGACY_SCHEMAS, legacy_type, upgrade_row

__all__ = ["FORMAT", "SQLITE_MAGIC", "SweepStore", "is_store", "looks_like_sqlite", "remove_store", "STORE_SUFFIXES"]

FORMAT = "rftheory-law-store"
SQLITE_MAGIC = b"SQLite format 3\x00"
STORE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
BUSY_TIMEOUT_S = 120.0  # a writer waits this long for another's transaction (one row each: milliseconds)


SIGNATURE = ",".join(name for name, _ in COLUMNS)  # the column list, as the marker table records it
LEGACY_SIGNATURES = {",".join(names): names for names in LEGACY_SCHEMAS}  # column lists of earlier versions


def looks_like_sqlite(path) -> bool:
    """Whether ``path`` starts with the SQLite file header."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def is_store(path) -> bool:
    """Whether ``path`` is a sweep store written by this package (its marker table says so).
    The file is opened read-only and not changed."""
    path = Path(path)
    if not path.is_file() or not looks_like_sqlite(path):
        return False
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            rows = dict(con.execute("SELECT key, value FROM rftheory_store").fetchall())
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return rows.get("format") == FORMAT


def remove_store(path) -> None:
    """Delete a store and its WAL/shared-memory companions (call only after :func:`is_store`)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(f"{path}{suffix}")
        except FileNotFoundError:
            pass


_SQL_TYPES = {str: "TEXT", int: "INTEGER", float: "REAL", bool: "INTEGER"}


def _to_sql(value):
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, "item"):  # NumPy scalar
        value = value.item()
    return value


def _from_sql(value, kind):
    if kind is float:
        return float("nan") if value is None else float(value)
    if kind is bool:
        return bool(value)
    if kind is int:
        return int(value)
    return "" if value is None else str(value)


class SweepStore:
    """An open sweep store (a SQLite database file).

    Opening creates the file and its tables when they do not exist, and raises
    ValueError when ``path`` is some other file (not SQLite, or SQLite without
    this package's marker, or a marker of another table version): it is never
    changed then.
    """

    def __init__(self, path):
        self.path = Path(path)
        if self.path.exists():
            if self.path.is_dir():
                raise ValueError(f"{self.path} is a folder, not a sweep store")
            if self.path.stat().st_size > 0 and not looks_like_sqlite(self.path):
                raise ValueError(f"{self.path} is not a sweep store of rftheory (not an SQLite database); "
                                 "choose another file")
        elif self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.columns, self.key_columns = COLUMNS, KEY_COLUMNS
        self.names = tuple(name for name, _ in self.columns)
        self.migrated = False
        self.con = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            self._prepare()
        except BaseException:
            self.con.close()
            raise
        self._insert = self._insert_sql()

    @staticmethod
    def _q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def _retry(self, fn):
        """Run ``fn`` again while another connection holds a lock that the busy timeout does not
        cover (switching the journal mode, creating the schema at the same instant)."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _prepare(self):
        con = self.con
        tables = {r[0] for r in self._retry(lambda: con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall())}
        if tables and "rftheory_store" not in tables:
            raise ValueError(f"{self.path} is an SQLite database but not a sweep store of rftheory; "
                             "choose another file")
        if "rftheory_store" in tables:
            self._check_marker(allow_legacy=True)
        if "cells" not in tables:
            # The first write of a new file creates the marker and the tables in one transaction, before
            # the switch to WAL: a second sweep opening the same file meanwhile sees either an empty file
            # or a complete store, never an SQLite header without the marker (which it would refuse).
            columns = ", ".join(f"{self._q(name)} {_SQL_TYPES[kind]}" for name, kind in self.columns)
            key = ", ".join(self._q(k) for k in self.key_columns)

            def create():
                con.execute("BEGIN IMMEDIATE")
                try:
                    con.execute("CREATE TABLE IF NOT EXISTS rftheory_store (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                    con.execute("INSERT OR IGNORE INTO rftheory_store VALUES ('format', ?)", (FORMAT,))
                    con.execute("INSERT OR IGNORE INTO rftheory_store VALUES ('columns', ?)", (SIGNATURE,))
                    con.execute(f"CREATE TABLE IF NOT EXISTS cells ({columns}, PRIMARY KEY ({key}))")
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise

            self._retry(create)
        self._retry(lambda: con.execute("PRAGMA journal_mode=WAL").fetchall())
        if "rftheory_store" in tables and "cells" in tables:
            self._retry(self._migrate)
        con.execute("PRAGMA synchronous=FULL")  # a committed cell survives a power cut, not just a kill
        self._check_marker()

    def _check_marker(self, allow_legacy: bool = False):
        marker = dict(self.con.execute("SELECT key, value FROM rftheory_store").fetchall())
        if marker.get("format") != FORMAT:
            raise ValueError(f"{self.path} is not a sweep store of rftheory; choose another file")
        columns = marker.get("columns")
        if columns == SIGNATURE or (allow_legacy and columns in LEGACY_SIGNATURES):
            return
        have = (columns or "").split(",")
        missing = [n for n in self.names if n not in have]
        extra = [n for n in have if n not in self.names]
        raise ValueError(f"{self.path} is a sweep store of another rftheory version (missing columns {missing}, "
                         f"unexpected {extra}); choose another file or pass --fresh")

    def _migrate(self):
        """Rebuild a store of an earlier column list with the current columns and key, its rows read by
        :func:`~rftheory.experiments.cells.upgrade_row` (one transaction: a concurrent opener sees the
        old store or the migrated one, never half)."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            marker = dict(con.execute("SELECT key, value FROM rftheory_store").fetchall())
            legacy = LEGACY_SIGNATURES.get(marker.get("columns"))
            if legacy is None:  # current already (or migrated by another opener)
                con.execute("COMMIT")
                return
            old = [{name: _from_sql(v, legacy_type(name)) for name, v in zip(legacy, rec)}
                   for rec in con.execute(f"SELECT {', '.join(self._q(n) for n in legacy)} FROM cells").fetchall()]
            columns = ", ".join(f"{self._q(name)} {_SQL_TYPES[kind]}" for name, kind in self.columns)
            key = ", ".join(self._q(k) for k in self.key_columns)
            con.execute("DROP TABLE cells")
            con.execute(f"CREATE TABLE cells ({columns}, PRIMARY KEY ({key}))")
            con.executemany(self._insert_sql(), [tuple(_to_sql(r[n]) for n in self.names)
                                                 for r in map(upgrade_row, old)])
            con.execute("UPDATE rftheory_store SET value = ? WHERE key = 'columns'", (SIGNATURE,))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self.migrated = True

    def _insert_sql(self) -> str:
        placeholders = ", ".join("?" for _ in self.names)
        return f"INSERT OR IGNORE INTO cells ({', '.join(self._q(n) for n in self.names)}) VALUES ({placeholders})"

    def add(self, row: dict) -> bool:
        """Store one row in its own transaction; False when its cell was already stored."""
        values = tuple(_to_sql(row[name]) for name in self.names)

        def insert():
            self.con.execute("BEGIN IMMEDIATE")
            try:
                cur = self.con.execute(self._insert, values)
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            return cur.rowcount == 1

        return self._retry(insert)

    def add_many(self, rows: Iterable[dict]) -> int:
        """Store rows (e.g. imported from a CSV export) in one transaction; returns how many were new."""
        rows = [tuple(_to_sql(r[name]) for name in self.names) for r in rows]
        if not rows:
            return 0

        def insert():
            before = self.con.total_changes
            self.con.execute("BEGIN IMMEDIATE")
            try:
                self.con.executemany(self._insert, rows)
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            return self.con.total_changes - before

        return self._retry(insert)

    def rows(self) -> list[dict]:
        """Every stored row, typed per the table's columns (unordered)."""
        kinds = [kind for _, kind in self.columns]
        cur = self._retry(lambda: self.con.execute(f"SELECT {', '.join(self._q(n) for n in self.names)} FROM cells"))
        return [{name: _from_sql(v, k) for name, v, k in zip(self.names, rec, kinds)} for rec in cur.fetchall()]

    def __len__(self) -> int:
        return int(self.con.execute("SELECT COUNT(*) FROM cells").fetchone()[0])

    def close(self):
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
