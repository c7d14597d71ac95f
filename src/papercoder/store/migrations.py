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
]


def migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
        with conn:
            conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {i}; COMMIT;")
