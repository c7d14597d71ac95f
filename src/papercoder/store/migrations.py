"""Numbered schema migrations. Append; never edit one that has shipped."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: runs and exchanges
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        created REAL NOT NULL,
        command TEXT NOT NULL,
        paper TEXT,
        model TEXT,
        out_dir TEXT,
        status TEXT NOT NULL,
        settings TEXT
    );
    CREATE TABLE exchanges (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT,
        created REAL NOT NULL,
        stage TEXT,
        file TEXT,
        model TEXT NOT NULL,
        cache_key TEXT NOT NULL,
        request TEXT NOT NULL,
        response TEXT,
        parsed TEXT,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        cached_prompt_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        cost REAL,
        latency REAL,
        finish_reason TEXT,
        status TEXT NOT NULL,
        error TEXT,
        cached_from INTEGER
    );
    CREATE INDEX exchanges_cache ON exchanges(cache_key, status);
    CREATE INDEX exchanges_run ON exchanges(run_id, stage);
    """,
    # 2: what became of each exchange: ok, cut off, rejected: <reason>, failed
    """
    ALTER TABLE exchanges ADD COLUMN outcome TEXT;
    """,
]


def statements(script: str) -> list[str]:
    """The complete SQL statements of a script, in order."""
    out, buf = [], ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \t\r\n;"):
                out.append(buf.strip())
            buf = ""
    return out


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date. Safe when several processes open a fresh store at once:
    the version is read again inside a write transaction (BEGIN IMMEDIATE waits for the
    others), so each migration runs exactly once."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for stmt in statements(script):
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {i}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
