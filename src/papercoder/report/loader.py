"""Reading an output folder for the report: tolerant of missing, partial and hostile content.

Everything under OUT was written by the pipeline from model answers, or by hand, or by an
attacker: every value is checked for its type and clipped in size, no symbolic link is
followed, nothing outside OUT is read, and a broken part becomes a note in the report rather
than an exception.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from papercoder.errors import PapercoderError
from papercoder.outdir.paths import open_fd_inside
from papercoder.outdir.record import read_record
from papercoder.outdir.workspace import artifact_name
from papercoder.textsafe import safe

TEXT_LIMIT = 200_000
"""Characters kept of one Markdown text (plan, analysis) or code file."""
SHORT_LIMIT = 4_000
"""Characters kept of one message (error, warning, critique)."""
FILE_BYTES = 2_000_000
"""Bytes read of one file at most."""
MAX_FILES = 400
MAX_ITEMS = 2_000
MAX_EVALS = 30
MAX_TREE_NODES = 5_000
LOG_TAIL = 6_000

_UNMARKED = re.compile(r"config\.yaml has values not found in the paper and not marked "
                       r"(?:as assumed|'# assumed'):\s*(.*)$", re.S)


def text(value: Any, limit: int = SHORT_LIMIT) -> str:
    """A printable string of at most ``limit`` characters (with a marker when clipped)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        s = "yes" if value else "no"
    elif isinstance(value, (str, int, float)):
        s = str(value)
    else:
        return ""
    if len(s) > limit:
        s = s[:limit] + f"\n[… {len(s) - limit:,} more characters not shown]"
    return safe(s)


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


def integer(value: Any) -> int | None:
    n = number(value)
    return int(n) if n is not None and abs(n) < 1e15 else None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any, limit: int = MAX_ITEMS) -> list[Any]:
    return value[:limit] if isinstance(value, list) else []


def texts(value: Any, limit: int = MAX_ITEMS) -> list[str]:
    return [t for t in (text(v) for v in as_list(value, limit)) if t]


def _clean_rel(rel: str) -> list[str] | None:
    """The components of a relative path that stays inside its root, or None."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or len(rel) > 1000:
        return None
    rel = rel.replace("\\", "/")
    if rel.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", rel):
        return None
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return parts


def read_file(root: Path, rel: str, limit: int = FILE_BYTES,
              tail: bool = False) -> tuple[str | None, bool]:
    """(text, clipped) of ``root/rel``; None when absent, reached through a link (symbolic, or
    a hard link), not a regular file or outside ``root`` (``paths.open_fd_inside`` refuses
    these). ``tail`` keeps the end of a long file instead of its start."""
    try:
        fd = open_fd_inside(root, rel, os.O_RDONLY)
    except (PapercoderError, OSError):
        return None, False
    try:
        size = os.fstat(fd).st_size
        if tail and size > limit:
            os.lseek(fd, size - limit, os.SEEK_SET)
        data = b""
        while len(data) <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - len(data)))
            if not chunk:
                break
            data += chunk
    except OSError:
        return None, False
    finally:
        os.close(fd)
    clipped = len(data) > limit or size > limit
    data = data[:limit]
    s = data.decode("utf-8", "replace")
    s = safe(s.replace("\r\n", "\n"))
    return s, clipped


def _safe_dir(root: Path, rel: str) -> Path | None:
    parts = _clean_rel(rel)
    if parts is None:
        return None
    path = root
    try:
        for p in [None, *parts]:
            if p is not None:
                path = path / p
            if not stat.S_ISDIR(os.lstat(path).st_mode):  # a link is not a dir for lstat
                return None
    except OSError:
        return None
    return path


# -- the report's data -------------------------------------------------------------------
@dataclass
class Finding:
    file: str
    line: int | None
    kind: str
    message: str


@dataclass
class FileEntry:
    path: str
    status: str
    error: str = ""
    depends_on: list[str] = field(default_factory=list)
    analysis: str | None = None
    code: str | None = None
    code_clipped: bool = False
    lines: int = 0
    findings: list[Finding] = field(default_factory=list)
    diffs: list[tuple[str, str]] = field(default_factory=list)
    """(round label, diff text for this file)."""


@dataclass
class Round:
    n: int | None
    error: str
    signature: str
    diff: str
    md: str
    log: str
    applied: bool | None
    passed: bool | None


@dataclass
class Evaluation:
    name: str
    summary: dict[str, Any]
    samples: list[dict[str, Any]]
    tree: dict[str, Any] | None
    report_md: str | None
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportData:
    out: Path
    run: dict[str, Any]
    plan: str | None = None
    approach: str = ""
    unclear: list[str] = field(default_factory=list)
    class_diagram: str | None = None
    sequence_diagram: str | None = None
    packages: list[str] = field(default_factory=list)
    shared_knowledge: str = ""
    order: list[str] = field(default_factory=list)
    deps: dict[str, list[str]] = field(default_factory=dict)
    config: str | None = None
    config_source: str = ""
    unmarked: list[str] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    extra_files: list[FileEntry] = field(default_factory=list)
    verify: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)
    static_repair_diff: str = ""
    static_repair_md: str = ""
    evaluations: list[Evaluation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Problems met while reading OUT, shown in the report."""


def _json(out: Path, rel: str, notes: list[str], limit: int = 20_000_000) -> Any:
    raw, clipped = read_file(out, rel, limit)
    if raw is None:
        return None
    if clipped:
        notes.append(f"{rel} is larger than {limit:,} bytes and was not read.")
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        notes.append(f"{rel} is not valid JSON and was left out.")
        return None


def load(out: Path) -> ReportData:
    """Everything the report shows, read from the output folder ``out``."""
    out = Path(out)
    notes: list[str] = []
    record, ignored = read_record(out)
    notes.extend(ignored)
    if record is None and (out / "run.json").exists():
        notes.append("run.json could not be read; the summary is incomplete.")
    run = record.to_dict() if record is not None else {}
    data = ReportData(out=out, run=run, notes=notes)
    _load_design(data)
    _load_files(data)
    _load_verify(data)
    _attach(data)
    _load_evaluations(data)
    return data


def _load_design(d: ReportData) -> None:
    out, notes = d.out, d.notes
    plan, clipped = read_file(out, "artifacts/plan.md", TEXT_LIMIT)
    d.plan = plan
    if clipped:
        notes.append("The overall plan is long; only its start is shown.")
    arch = as_dict(_json(out, "artifacts/architecture.json", notes))
    d.approach = text(arch.get("implementation_approach"), TEXT_LIMIT)
    d.unclear = [t for t in (text(arch.get("anything_unclear"), TEXT_LIMIT),) if t]
    for attr, name, key in (("class_diagram", "class_diagram.mmd",
                             "data_structures_and_interfaces"),
                            ("sequence_diagram", "sequence_diagram.mmd", "program_call_flow")):
        src, _ = read_file(out, f"artifacts/{name}", TEXT_LIMIT)
        if src is None:
            src = text(arch.get(key), TEXT_LIMIT) or None
        setattr(d, attr, src)
    logic = as_dict(_json(out, "artifacts/logic.json", notes))
    from papercoder.filecheck import requirements

    # What requirements.txt holds: pip itself, the standard library and Python left out.
    d.packages = requirements(texts(logic.get("required_packages"), 500))[0]
    d.shared_knowledge = text(logic.get("shared_knowledge"), TEXT_LIMIT)
    u = text(logic.get("anything_unclear"), TEXT_LIMIT)
    if u:
        d.unclear.append(u)
    logic_deps: dict[str, list[str]] = {}
    for entry in as_list(logic.get("logic_analysis")):
        e = as_dict(entry)
        f = text(e.get("file"), 300)
        if f:
            logic_deps[f] = texts(e.get("depends_on"), 200)
    # config: the repository's copy (the debug loop may have changed it), else the planned one
    for rel in ("repo/config.yaml", "artifacts/config.yaml"):
        cfg, clipped = read_file(out, rel, TEXT_LIMIT)
        if cfg is not None:
            d.config, d.config_source = cfg, rel
            if clipped:
                notes.append(f"{rel} is long; only its start is shown.")
            break
    for w in texts(d.run.get("warnings")):
        m = _UNMARKED.search(w)
        if m:
            d.unmarked += [x.strip().split("=")[0] for x in m.group(1).split(",") if x.strip()]
    files = as_dict(d.run.get("files"))
    d.order = [t for t in texts(d.run.get("order"), MAX_FILES) if t]
    names = list(dict.fromkeys(d.order + [text(k, 300) for k in list(files)[:MAX_FILES]]
                               + list(logic_deps)[:MAX_FILES]))
    for f in names:
        run_deps = texts(as_dict(files.get(f)).get("depends_on"), 200)
        d.deps[f] = [x for x in (run_deps or logic_deps.get(f, [])) if x in names and x != f]


def _load_files(d: ReportData) -> None:
    out = d.out
    files = as_dict(d.run.get("files"))
    if len(files) > MAX_FILES:
        d.notes.append(f"run.json lists {len(files):,} files; the first {MAX_FILES} are shown.")
    order = [f for f in d.order if f in files] + [f for f in list(files)[:MAX_FILES]
                                                  if f not in d.order]
    if not order:
        order = list(d.deps)
    total = 0
    for f in list(dict.fromkeys(order))[:MAX_FILES]:
        info = as_dict(files.get(f))
        entry = FileEntry(path=text(f, 300), status=text(info.get("status"), 40) or "unknown",
                          error=text(info.get("error")), depends_on=d.deps.get(f, []))
        entry.analysis, clipped = read_file(out, f"artifacts/analysis/{artifact_name(f)}.md",
                                            TEXT_LIMIT)
        if clipped:
            entry.analysis = (entry.analysis or "") + "\n\n[… the rest is not shown]"
        # a report of a 30-file repository stays light: clip the code as a whole too
        limit = max(20_000, min(TEXT_LIMIT, 3_000_000 - total))
        entry.code, entry.code_clipped = read_file(out, f"repo/{f}", limit)
        if entry.code is not None:
            total += len(entry.code)
            entry.lines = entry.code.count("\n") + (not entry.code.endswith("\n"))
        d.files.append(entry)
    known = {e.path for e in d.files}
    for extra in ("README.md", "requirements.txt", "reproduce.sh"):
        if extra in known:
            continue
        code, clipped = read_file(out, f"repo/{extra}", 100_000)
        if code is not None:
            d.extra_files.append(FileEntry(path=extra, status="written", code=code,
                                           code_clipped=clipped,
                                           lines=code.count("\n") + 1))


def _load_verify(d: ReportData) -> None:
    v = as_dict(d.run.get("verify"))
    d.verify = v
    for x in as_list(as_dict(v.get("static")).get("findings")):
        x = as_dict(x)
        d.findings.append(Finding(file=text(x.get("file"), 300), line=integer(x.get("line")),
                                  kind=text(x.get("kind"), 80), message=text(x.get("message"))))
    for x in as_list(as_dict(v.get("static")).get("notes")):  # reported, never repaired
        x = as_dict(x)
        d.findings.append(Finding(file=text(x.get("file"), 300), line=integer(x.get("line")),
                                  kind=text(x.get("kind"), 70) + " (note)",
                                  message=text(x.get("message"))))
    repair = as_dict(as_dict(v.get("static")).get("repair"))
    if repair:
        applied = repair.get("applied") is True  # else a static.diff on disk may be stale
        d.static_repair_diff = _text_or_file(d, repair.get("diff"),
                                             "artifacts/debug/static.diff" if applied else "")
        d.static_repair_md = _text_or_file(d, repair.get("md"),
                                           "artifacts/debug/static.md" if applied else "")
    rounds = as_list(v.get("rounds"), 200)
    for i, r in enumerate(rounds):
        r = as_dict(r)
        n = integer(r.get("n"))
        n = n if n is not None else i + 1
        d.rounds.append(Round(
            n=n, error=text(r.get("error"), 20_000), signature=text(r.get("signature"), 500),
            diff=_text_or_file(d, r.get("diff"), f"artifacts/debug/{n:02d}.diff"),
            md=_text_or_file(d, r.get("md"), f"artifacts/debug/{n:02d}.md"),
            log=text(r.get("log"), 300),
            applied=r.get("applied") if isinstance(r.get("applied"), bool) else None,
            passed=r.get("passed") if isinstance(r.get("passed"), bool) else None))
    if not rounds:  # rounds on disk that run.json does not list (an interrupted verify)
        debug = _safe_dir(d.out, "artifacts/debug")
        if debug is not None:
            for p in sorted(debug.glob("[0-9][0-9].diff"))[:200]:
                n = int(p.stem)
                diff, _ = read_file(d.out, f"artifacts/debug/{p.name}", TEXT_LIMIT)
                md, _ = read_file(d.out, f"artifacts/debug/{n:02d}.md", TEXT_LIMIT)
                d.rounds.append(Round(n=n, error="", signature="", diff=diff or "", md=md or "",
                                      log=f"artifacts/debug/{n:02d}.log", applied=None,
                                      passed=None))


def _text_or_file(d: ReportData, value: Any, default_rel: str) -> str:
    """A round's diff/md: the text itself, or a path (relative to OUT) of the file holding it,
    or, when absent, the conventional file."""
    s = value if isinstance(value, str) else ""
    if s and "\n" not in s and len(s) < 300 and s.endswith((".diff", ".md", ".patch")):
        body, _ = read_file(d.out, s, TEXT_LIMIT)
        return body or ""
    if s:
        return text(s, TEXT_LIMIT)
    body, _ = read_file(d.out, default_rel, TEXT_LIMIT)
    return body or ""


_DIFF_FILE = re.compile(r"^(?:\+\+\+|---) (?:[ab]/)?(.+?)(?:\t.*)?$")


def split_diff(diff: str) -> dict[str, str]:
    """A unified diff cut into its per-file parts, by the path in each ---/+++/@@ header."""
    parts: dict[str, list[str]] = {}
    header: list[str] = []
    current: list[str] | None = None
    lines = diff.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git "):
            header, current = [line], None
        elif (line.startswith("--- ") and i + 2 < len(lines) and lines[i + 1].startswith("+++ ")
              and lines[i + 2].startswith("@@")):
            name = _diff_name(lines[i + 1])
            if name == "/dev/null":
                name = _diff_name(line)
            current = parts.setdefault(name, [])
            current.extend(header + [line, lines[i + 1]])
            header = []
            i += 2
            continue
        elif current is not None:
            current.append(line)
        else:
            header.append(line)
        i += 1
    return {k: "\n".join(v) + "\n" for k, v in parts.items() if k and k != "/dev/null"}


def _diff_name(line: str) -> str:
    m = _DIFF_FILE.match(line)
    return m.group(1).strip() if m else ""


def _attach(d: ReportData) -> None:
    """Static findings and debug diffs under the file they are about."""
    by_path = {e.path: e for e in d.files + d.extra_files}
    for f in d.findings:
        e = by_path.get(f.file.removeprefix("repo/").removeprefix("./"))
        if e is not None:
            e.findings.append(f)
    if d.static_repair_diff:
        for name, part in split_diff(d.static_repair_diff).items():
            e = by_path.get(name.removeprefix("repo/").removeprefix("./"))
            if e is not None:
                e.diffs.append(("static repair", part))
    for r in d.rounds:
        for name, part in split_diff(r.diff).items():
            e = by_path.get(name.removeprefix("repo/").removeprefix("./"))
            if e is not None:
                e.diffs.append((f"round {r.n}", part))


def _load_evaluations(d: ReportData) -> None:
    root = _safe_dir(d.out, "eval")
    if root is None:
        return
    try:
        dirs = sorted(p.name for p in root.iterdir() if not p.is_symlink() and p.is_dir())
    except OSError:
        return
    if len(dirs) > MAX_EVALS:
        d.notes.append(f"OUT/eval holds {len(dirs)} results; the first {MAX_EVALS} are shown.")
    for name in dirs[:MAX_EVALS]:
        notes: list[str] = []
        summary = _json(d.out, f"eval/{name}/summary.json", notes)
        if not isinstance(summary, dict):
            if summary is not None:
                notes.append(f"eval/{name}/summary.json does not hold an object.")
            summary = {}
        samples = [as_dict(s) for s in as_list(_json(d.out, f"eval/{name}/samples.json",
                                                     notes), 500)]
        tree = _json(d.out, f"eval/{name}/tree.json", notes)
        report_md, _ = read_file(d.out, f"eval/{name}/report.md", TEXT_LIMIT)
        if not summary and not samples and tree is None and report_md is None:
            continue
        d.evaluations.append(Evaluation(name=text(name, 200), summary=summary, samples=samples,
                                        tree=tree if isinstance(tree, dict) else None,
                                        report_md=report_md, notes=notes))
