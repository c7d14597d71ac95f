"""What is being evaluated: the repository folder, verify's results, a reproduction log."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from papercoder.errors import ConfigError, PapercoderError
from papercoder.outdir.paths import open_fd_inside
from papercoder.outdir.record import VerifyRecord, read_record

MAX_LOG_BYTES = 200 * 1024
"""A reproduction log longer than this is shown as its head and tail."""


@dataclass
class Target:
    root: Path
    """The folder given on the command line."""
    repo: Path
    """The repository folder: ``root/repo`` for a papercoder output folder, else ``root``."""
    is_output: bool
    verify: VerifyRecord | None
    """run.json's "verify" section when present (its damaged parts left out)."""


def resolve_target(path: Path) -> Target:
    root = Path(path)
    if not root.exists():
        raise ConfigError(f"The target {root} does not exist; give an output folder or a "
                          "repository folder.")
    if not root.is_dir() or root.is_symlink():
        raise ConfigError(f"The target {root} is not a folder; give an output folder or a "
                          "repository folder.")
    repo_dir = root / "repo"
    is_output = (root / "run.json").is_file() and repo_dir.is_dir() and \
        not repo_dir.is_symlink()
    verify = read_verify(root) if is_output else None
    return Target(root, repo_dir if is_output else root, is_output, verify)


def read_verify(out: Path) -> VerifyRecord | None:
    """run.json's "verify" record, or None (absent, empty, a link, unreadable or not a
    mapping)."""
    try:
        record, _ = read_record(out)
    except OSError:
        return None
    return record.verify if record is not None and record.verify else None


def head_tail(text: str, limit: int = MAX_LOG_BYTES) -> tuple[str, str | None]:
    """``text`` cut to about ``limit`` characters (head and tail kept), and a note."""
    if len(text) <= limit:
        return text, None
    half = limit // 2
    cut = len(text) - 2 * half
    return (text[:half] + f"\n[... {cut} characters of the log left out ...]\n" +
            text[-half:], f"{cut} characters from the middle of the log were left out")


READ_CAP = 4 * 1024 * 1024
"""Bytes read from each end of a log larger than twice this (the middle is never loaded)."""


def read_capped(path: Path) -> str:
    """A text file's content; of a huge file only its head and tail are read."""
    with open(path, "rb") as fh:
        return _read_capped(fh)


def _read_capped(fh: BinaryIO) -> str:
    size = os.fstat(fh.fileno()).st_size
    if size <= 2 * READ_CAP:
        data = fh.read(2 * READ_CAP)
    else:
        head = fh.read(READ_CAP)
        fh.seek(size - READ_CAP)
        data = head + f"\n[... {size - 2 * READ_CAP} bytes not read ...]\n".encode() + \
            fh.read(READ_CAP)
    return data.decode("utf-8", errors="replace")


def _read_log_inside(root: Path, rel: str) -> str | None:
    """The log ``root/rel`` (capped as read_capped does), or None when it is absent, outside
    ``root``, reached through a link or unreadable."""
    try:
        fd = open_fd_inside(root, rel, os.O_RDONLY)
    except (PapercoderError, OSError):
        return None
    try:
        with os.fdopen(fd, "rb") as fh:
            return _read_capped(fh)
    except OSError:
        return None


def reproduction_log(target: Target, log_file: Path | None) -> tuple[str | None, str]:
    """The log Code Execution and Result Analysis leaves are judged on, and where it came
    from: ``--log FILE`` first, else verify's smoke-run logs."""
    if log_file is not None:
        try:
            return read_capped(Path(log_file)), str(log_file)
        except OSError as e:
            raise ConfigError(f"The log {log_file} could not be read ({type(e).__name__}); "
                              "check the --log path.") from None
    smoke = target.verify.smoke if target.verify else None
    if smoke is None:
        return None, "no log"
    parts = []
    for c in smoke.commands:
        if not isinstance(c, dict):
            continue
        body = _read_log_inside(target.root, str(c.get("log") or ""))
        if body is None:
            continue
        parts.append(f"$ {c.get('cmd', '')}\n{body}\n[exit {c.get('exit')}"
                     f"{', timed out' if c.get('timed_out') else ''}]")
    if not parts:
        return None, "no log"
    return "\n\n".join(parts), "verify's smoke run"


def static_findings(verify: VerifyRecord | None) -> list[str] | None:
    static = verify.static if verify else None
    if static is None:
        return None
    out = []
    for f in static.findings:
        if isinstance(f, dict):
            line = f.get("line")
            out.append(f"{f.get('file', '?')}{':' + str(line) if line else ''}: "
                       f"[{f.get('kind', '')}] {f.get('message', '')}"[:300])
    return out


def smoke_summary(verify: VerifyRecord | None) -> str | None:
    smoke = verify.smoke if verify else None
    if smoke is None:
        return None
    cmds = smoke.commands
    bits = [f"`{str(c.get('cmd', ''))[:120]}` exit {c.get('exit')}"
            + (" (timed out)" if c.get("timed_out") else "")
            + ("" if c.get("outputs_ok", True) else " (expected outputs missing)")
            for c in cmds[:10]]
    return ("passed" if smoke.passed else "FAILED") + (
        ": " + "; ".join(bits) if bits else "")


def executability(verify: VerifyRecord | None) -> dict[str, Any] | None:
    e = verify.executability if verify else None
    return e.model_dump(mode="json") if e is not None else None


def slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._")[:80] or "judge"
