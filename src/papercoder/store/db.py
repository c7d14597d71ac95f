"""SQLite store (WAL mode). Thread-safe through one lock; calls are short."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from papercoder.errors import ConfigError
from papercoder.store.migrations import migrate


def cache_key(model: str, messages: Sequence[Mapping[str, Any]], **params: Any) -> str:
    """Hash of everything that determines an answer: model, messages, schema, sampling."""
    payload = json.dumps(
        {"model": model, "messages": list(messages), "params": params},
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def escape_surrogates(text: str | None) -> str | None:
    """``text`` as SQLite can store it: lone surrogates (which UTF-8 cannot encode) are kept
    visibly as ``\\udXXX`` escapes instead of failing the write."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _dumps(value: Any) -> str:
    return escape_surrogates(json.dumps(value, ensure_ascii=False, default=str)) or ""


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


@dataclass
class RunRecord:
    id: str
    created: float
    command: str
    paper: str | None
    model: str | None
    out_dir: str | None
    status: str
    settings: dict[str, Any]
    process: dict[str, Any] | None = None
    """The process that runs it (pid, host, start time), kept apart from the settings."""


@dataclass
class Exchange:
    id: int
    run_id: str | None
    created: float
    stage: str | None
    file: str | None
    model: str
    request: Any
    response: str | None
    parsed: Any
    prompt_tokens: int
    cached_prompt_tokens: int
    cache_write_tokens: int
    completion_tokens: int
    cost: float | None
    latency: float | None
    finish_reason: str | None
    status: str
    error: str | None
    cached_from: int | None
    outcome: str | None = None
    """What became of the answer: ``ok``, ``cut off`` (then continued), ``rejected: <why>``
    (sent back to the model), ``failed`` (no answer). None in stores from before it existed."""

    @property
    def shown_status(self) -> str:
        """The status ``papercoder logs`` shows: the outcome, else the stored status."""
        return self.outcome or self.status


STAGES = ("ingest", "summarize", "requirements", "plan", "architecture", "logic", "config",
          "analysis", "coding", "refine", "audit", "repair", "verify", "eval", "prompt")
"""The stages papercoder logs exchanges under."""


def exchange_json(x: Exchange) -> str:
    """One exchange as one line of JSON (for JSON Lines output)."""
    return json.dumps({**x.__dict__, "status": x.shown_status, "stored_status": x.status},
                      default=str, ensure_ascii=True)


PROCESS_KEY = "_process"
"""Where a run's settings say which process runs it (to tell a dead run from a live one)."""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell reused pids."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _this_process() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_time(os.getpid())}


def _still_running(proc: Any) -> bool:
    """Whether the process a run record names is alive; True when it cannot be told (no
    record, another host)."""
    if not isinstance(proc, dict) or not isinstance(proc.get("pid"), int):
        return True
    if proc.get("host") != socket.gethostname():
        return True
    pid = proc["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # alive, someone else's
    started = _start_time(pid)
    return started is None or proc.get("start") in (None, started)


def _default_outcome(status: str, finish_reason: str | None) -> str:
    if status == "error":
        return "failed"
    if status == "malformed":
        return "rejected: the answer had the wrong shape"
    word = "cut off" if finish_reason in ("length", "max_tokens") else "ok"
    return f"{word} (cached)" if status == "cached" else word


def _wal(conn: sqlite3.Connection, wait: float = 30.0) -> None:
    """Switch to WAL. Another process creating the same fresh store may hold the lock this
    needs, and SQLite may then answer "locked" without waiting: try again until ``wait``."""
    deadline = time.monotonic() + wait
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            busy = "locked" in str(e) or "busy" in str(e)
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            if self.path.is_file() and self.path.stat().st_size and \
                    not self.path.open("rb").read(16).startswith(b"SQLite format 3"):
                # SQLite would silently overwrite a small file that is not a database
                raise sqlite3.DatabaseError("file is not a database")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA busy_timeout = 30000")
            _wal(self._conn)
            self._conn.execute("PRAGMA synchronous=NORMAL")
            migrate(self._conn)
        except (sqlite3.DatabaseError, OSError) as e:
            raise ConfigError(
                f"The run store {self.path} could not be opened ({e}); "
                "move it aside or set PAPERCODER_DB to another path."
            ) from None
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- runs ---------------------------------------------------------------------------
    def create_run(
        self,
        command: str,
        *,
        paper: str | None = None,
        model: str | None = None,
        out_dir: str | None = None,
        settings: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> str:
        rid = run_id or new_run_id()
        settings = {**dict(settings or {}), PROCESS_KEY: _this_process()}
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO runs(id, created, command, paper, model, out_dir, status, settings)"
                " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET status='running',"
                " model=excluded.model, settings=excluded.settings",
                (rid, time.time(), command, escape_surrogates(paper), escape_surrogates(model),
                 escape_surrogates(out_dir), "running", _dumps(settings)),
            )
        return rid

    def set_run_status(self, run_id: str, status: str) -> None:
        with self._lock, self._conn:
            self._conn.execute("UPDATE runs SET status=? WHERE id=?", (status, run_id))

    def runs(self, limit: int = 50) -> list[RunRecord]:
        """The newest runs. A run still marked ``running`` whose process is gone (killed,
        or interrupted before it could say so) is ``interrupted``, here and from now on."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM runs ORDER BY created DESC LIMIT ?", (limit,)
            ).fetchall()
        records = [self._run(r) for r in rows]
        for r in records:
            if r.status == "running" and not _still_running(r.process):
                r.status = "interrupted"
                with self._lock, self._conn:
                    self._conn.execute("UPDATE runs SET status='interrupted' WHERE id=? AND "
                                       "status='running'", (r.id,))
        return records

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                row = self._conn.execute(
                    "SELECT * FROM runs WHERE id LIKE ? ORDER BY created DESC LIMIT 1",
                    (run_id + "%",),
                ).fetchone()
        return self._run(row) if row else None

    @staticmethod
    def _run(r: sqlite3.Row) -> RunRecord:
        settings = json.loads(r["settings"] or "{}")
        process = settings.pop(PROCESS_KEY, None) if isinstance(settings, dict) else None
        return RunRecord(
            r["id"], r["created"], r["command"], r["paper"], r["model"], r["out_dir"],
            r["status"], settings, process if isinstance(process, dict) else None,
        )

    # -- exchanges ----------------------------------------------------------------------
    def lookup(self, key: str) -> Exchange | None:
        """The newest answer that arrived for this cache key, if any: a successful one, or a
        malformed one (status 'malformed', stored as it came so it is not paid for twice)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM exchanges WHERE cache_key=? AND status IN ('ok', 'malformed')"
                " ORDER BY id DESC LIMIT 1",
                (key,),
            ).fetchone()
        return self._exchange(row) if row else None

    def log(
        self,
        *,
        run_id: str | None,
        stage: str | None,
        file: str | None,
        model: str,
        key: str,
        request: Any,
        response: str | None = None,
        parsed: Any = None,
        usage: Mapping[str, int] | None = None,
        cost: float | None = None,
        latency: float | None = None,
        finish_reason: str | None = None,
        status: str = "ok",
        error: str | None = None,
        cached_from: int | None = None,
        outcome: str | None = None,
    ) -> int:
        u = {k: v for k, v in dict(usage or {}).items() if isinstance(v, int) and v >= 0}
        with self._lock, self._conn:
            cur = self._conn.execute(
                "INSERT INTO exchanges(run_id, created, stage, file, model, cache_key, request,"
                " response, parsed, prompt_tokens, cached_prompt_tokens, cache_write_tokens,"
                " completion_tokens, cost, latency, finish_reason, status, error, cached_from,"
                " outcome) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id, time.time(), escape_surrogates(stage), escape_surrogates(file),
                    escape_surrogates(model), key,
                    _dumps(request),
                    escape_surrogates(response),
                    None if parsed is None else _dumps(parsed),
                    u.get("prompt_tokens", 0), u.get("cached_prompt_tokens", 0),
                    u.get("cache_write_tokens", 0), u.get("completion_tokens", 0),
                    cost, latency, escape_surrogates(finish_reason), status,
                    escape_surrogates(error),
                    cached_from,
                    escape_surrogates(outcome or _default_outcome(status, finish_reason)),
                ),
            )
            return int(cur.lastrowid or 0)

    def set_outcome(self, exchange_ids: list[int], outcome: str) -> None:
        """Record what became of answers already logged (e.g. rejected by a check)."""
        if not exchange_ids:
            return
        with self._lock, self._conn:
            self._conn.executemany("UPDATE exchanges SET outcome=? WHERE id=?",
                                   [(escape_surrogates(outcome[:500]), i)
                                    for i in exchange_ids])

    def exchanges(
        self,
        run_id: str | None = None,
        *,
        stage: str | None = None,
        file: str | None = None,
        limit: int | None = None,
    ) -> list[Exchange]:
        sql, args = "SELECT * FROM exchanges WHERE 1=1", []
        for col, val in (("run_id", run_id), ("stage", stage), ("file", file)):
            if val is not None:
                sql += f" AND {col}=?"
                args.append(val)
        sql += " ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [self._exchange(r) for r in rows]

    def check_stage(self, run_id: str | None, stage: str) -> None:
        """ConfigError (one sentence, exit 2) for a stage name no exchange can have."""
        with self._lock:
            used = {r[0] for r in self._conn.execute(
                "SELECT DISTINCT stage FROM exchanges WHERE run_id IS ? AND stage IS NOT NULL",
                (run_id,)).fetchall()}
        valid = [*STAGES, *sorted(used - set(STAGES))]
        if stage not in valid:
            raise ConfigError(f"--stage {stage!r} is not a stage; give one of: "
                              f"{', '.join(valid)}.")

    def cost_summary(self, run_id: str) -> list[dict[str, Any]]:
        """Per stage and model: calls, tokens and dollars (None where a price was unknown)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT stage, model, COUNT(*) AS calls,"
                " SUM(status='cached') AS cache_hits,"
                " SUM(prompt_tokens) AS prompt_tokens,"
                " SUM(cached_prompt_tokens) AS cached_prompt_tokens,"
                " SUM(cache_write_tokens) AS cache_write_tokens,"
                " SUM(completion_tokens) AS completion_tokens,"
                " SUM(cost) AS cost, SUM(cost IS NULL AND status='ok') AS unpriced"
                " FROM exchanges WHERE run_id=? GROUP BY stage, model ORDER BY MIN(id)",
                (run_id,),
            ).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            if d.pop("unpriced"):
                d["cost"] = None
            out.append(d)
        return out

    def run_cost(self, run_id: str) -> float:
        with self._lock:
            row = self._conn.execute(
                "SELECT COALESCE(SUM(cost), 0) FROM exchanges WHERE run_id=?", (run_id,)
            ).fetchone()
        return float(row[0])

    @staticmethod
    def _exchange(r: sqlite3.Row) -> Exchange:
        return Exchange(
            r["id"], r["run_id"], r["created"], r["stage"], r["file"], r["model"],
            json.loads(r["request"]), r["response"],
            json.loads(r["parsed"]) if r["parsed"] else None,
            r["prompt_tokens"], r["cached_prompt_tokens"], r["cache_write_tokens"],
            r["completion_tokens"], r["cost"], r["latency"], r["finish_reason"], r["status"],
            r["error"], r["cached_from"], r["outcome"],
        )
