"""Which files of a repository the judge sees: selection, relevance ranking, window fitting.

Nothing is truncated silently: every file not shown is listed with the reason.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from papercoder.tokens import estimate_tokens

MAX_FILE_BYTES = 200 * 1024
"""A file larger than this is shown cut at this size (PaperBench's per-file cap)."""
MAX_SCAN_FILES = 5000
"""A repository with more candidate files than this is scanned no further (said so)."""

SKIP_DIRS = {
    ".git": "version control", ".hg": "version control", ".svn": "version control",
    "__pycache__": "cache", ".mypy_cache": "cache", ".pytest_cache": "cache",
    ".ruff_cache": "cache", ".ipynb_checkpoints": "cache", ".cache": "cache",
    ".tox": "environment", ".nox": "environment", ".venv": "environment",
    "venv": "environment", "env": "environment", ".env": "environment",
    "site-packages": "environment", "node_modules": "environment", ".eggs": "environment",
    "checkpoints": "data", "wandb": "run outputs", "mlruns": "run outputs",
    "build": "build output", "dist": "build output",
}
"""Folders never entered. Data folders (``data/``) are entered, since loaders live there
too; their data files are left out by type."""
MAX_LISTED = 40
"""Left-out files beyond this many are summarised per folder."""
SOURCE_EXT = {
    ".py", ".pyx", ".pyi", ".sh", ".bash", ".c", ".cc", ".cpp", ".cu", ".h", ".hpp", ".rs",
    ".go", ".java", ".scala", ".jl", ".r", ".m", ".js", ".ts", ".lua", ".swift", ".kt",
}
CONFIG_EXT = {".yaml", ".yml", ".toml", ".cfg", ".ini", ".json", ".conf"}
CONFIG_NAMES = {"requirements.txt", "environment.yml", "setup.py", "setup.cfg",
                "pyproject.toml", "makefile", "dockerfile", "reproduce.sh"}
DOC_NAMES = {"readme", "readme.md", "readme.txt", "readme.rst"}
DATA_EXT = {
    ".csv", ".tsv", ".npy", ".npz", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".h5",
    ".hdf5", ".bin", ".safetensors", ".parquet", ".arrow", ".zip", ".gz", ".tar", ".tgz",
    ".png", ".jpg", ".jpeg", ".gif", ".pdf", ".mp4", ".wav", ".onnx", ".so", ".o", ".pyc",
    ".jsonl", ".db", ".sqlite", ".whl", ".ttf",
}
MAX_CONFIG_BYTES = 64 * 1024
"""Config-like files larger than this (e.g. a big .json) are treated as data."""
NOTEBOOK_EXT = ".ipynb"
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
"""A Jupyter notebook larger than this (outputs, embedded images) is left out, said so; its
code cells are read from the JSON of smaller ones."""
MAX_NOTEBOOK_CELLS = 5000
"""Code cells read from one notebook."""


@dataclass
class RepoFile:
    path: str
    """Relative POSIX path inside the repository."""
    kind: str
    """source, config or readme."""
    text: str
    size: int
    truncated: bool = False

    @cached_property
    def tokens(self) -> int:
        return estimate_tokens(self.text) + estimate_tokens(self.path) + 8

    @cached_property
    def vocabulary(self) -> frozenset[str]:
        """The words of the file (its first 50,000 characters) and of its path."""
        return frozenset(terms(self.text[:50_000] + " " + self.path.replace("/", " ")
                               .replace("_", " ")))

    @property
    def lines(self) -> int:
        return self.text.count("\n") + (1 if self.text and not self.text.endswith("\n") else 0)


@dataclass
class LeftOut:
    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


def _kind(name: str, size: int) -> str | None:
    low = name.lower()
    ext = os.path.splitext(low)[1]
    if low in DOC_NAMES:
        return "readme"
    if low in CONFIG_NAMES:
        return "config"
    if ext in SOURCE_EXT or ext == NOTEBOOK_EXT:
        return "source"
    if ext in CONFIG_EXT:
        return "config" if size <= MAX_CONFIG_BYTES else None
    return None


def _cell_source(cell: object) -> str | None:
    """A notebook cell's code, or None when it is not a code cell of a known shape."""
    if not isinstance(cell, dict) or cell.get("cell_type") != "code":
        return None
    src = cell.get("source", cell.get("input"))  # nbformat 4, nbformat 3
    if isinstance(src, str):
        return src
    if isinstance(src, list):
        return "".join(x for x in src if isinstance(x, str))
    return None


def notebook_code(raw: bytes) -> str:
    """The code cells of a Jupyter notebook (its JSON as bytes), one after another under
    ``# %% [cell N]`` markers; markdown and outputs are left out. ValueError when the bytes
    are not a notebook."""
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except RecursionError:
        raise ValueError("its JSON is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("it is not a notebook (no JSON object)")
    cells: object = data.get("cells")
    sheets = data.get("worksheets")
    if cells is None and isinstance(sheets, list):  # nbformat 3
        cells = [c for w in sheets if isinstance(w, dict) and isinstance(w.get("cells"), list)
                 for c in w["cells"]]
    if not isinstance(cells, list):
        raise ValueError("it is not a notebook (no list of cells)")
    parts: list[str] = []
    for n, cell in enumerate(cells, 1):
        code = _cell_source(cell)
        if code is None or not code.strip():
            continue
        if len(parts) >= MAX_NOTEBOOK_CELLS:
            parts.append(f"# [... code cells after the first {MAX_NOTEBOOK_CELLS} left out]")
            break
        parts.append(f"# %% [cell {n}]\n{code.rstrip()}")
    return "\n\n".join(parts) + ("\n" if parts else "")


def _read_notebook(full: Path, rel: str, size: int) -> RepoFile | LeftOut:
    if size > MAX_NOTEBOOK_BYTES:
        return LeftOut(rel, f"notebook larger than {MAX_NOTEBOOK_BYTES // (1024 * 1024)} MB "
                       "(outputs); its code cells were not read")
    try:
        with open(full, "rb") as fh:
            raw = fh.read(MAX_NOTEBOOK_BYTES + 1)
        code = notebook_code(raw)
    except OSError as e:
        return LeftOut(rel, f"unreadable ({type(e).__name__})")
    except ValueError as e:
        return LeftOut(rel, f"notebook that could not be read: {e}")
    if not code:
        return LeftOut(rel, "notebook without code cells")
    head = f"# The code cells of the notebook {rel} (markdown and outputs left out)\n"
    text = head + code
    truncated = len(text) > MAX_FILE_BYTES
    return RepoFile(rel, "source", text[:MAX_FILE_BYTES], size, truncated)


def collect(repo: Path, *, exclude: Mapping[str, str] | tuple[str, ...] = ()
            ) -> tuple[list[RepoFile], list[LeftOut]]:
    """The code files of ``repo`` (source, config, shell scripts, README, the code cells of
    notebooks) and what was not taken. Symbolic links are never followed; ``exclude`` holds
    relative folder paths (with the reason each is left out, listed like any other)."""
    reasons = dict(exclude) if isinstance(exclude, Mapping) else \
        dict.fromkeys(exclude, "excluded")
    files: list[RepoFile] = []
    left: list[LeftOut] = []
    root = Path(repo)
    scanned = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        keep = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            full = Path(dirpath) / d
            if rel in reasons:
                left.append(LeftOut(rel + "/", reasons[rel]))
                continue
            if full.is_symlink():
                left.append(LeftOut(rel + "/", "symbolic link (not followed)"))
            elif d in SKIP_DIRS or d.endswith(".egg-info"):
                left.append(LeftOut(rel + "/", SKIP_DIRS.get(d, "build output")))
            elif (full / "pyvenv.cfg").exists():
                left.append(LeftOut(rel + "/", "environment"))
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            full = Path(dirpath) / name
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                left.append(LeftOut(rel, "symbolic link (not followed)"))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            ext = os.path.splitext(name.lower())[1]
            kind = _kind(name, st.st_size)
            if kind is None:
                reason = "data or binary" if ext in DATA_EXT or ext == ".json" else "not code"
                left.append(LeftOut(rel, reason))
                continue
            scanned += 1
            if scanned > MAX_SCAN_FILES:
                left.append(LeftOut(rel, f"beyond the first {MAX_SCAN_FILES} code files"))
                continue
            if ext == NOTEBOOK_EXT:
                got = _read_notebook(full, rel, st.st_size)
                if isinstance(got, RepoFile):
                    files.append(got)
                else:
                    left.append(got)
                continue
            try:
                with open(full, "rb") as fh:
                    raw = fh.read(MAX_FILE_BYTES + 1)
            except OSError as e:
                left.append(LeftOut(rel, f"unreadable ({type(e).__name__})"))
                continue
            if b"\x00" in raw[:8192]:
                left.append(LeftOut(rel, "data or binary"))
                continue
            truncated = len(raw) > MAX_FILE_BYTES
            text = raw[:MAX_FILE_BYTES].decode("utf-8", errors="replace")
            files.append(RepoFile(rel, kind, text, st.st_size, truncated))
    return files, summarise(left)


def summarise(left: list[LeftOut]) -> list[LeftOut]:
    """Keep the list readable: past MAX_LISTED entries, files left out for the same reason
    in the same top folder become one entry with a count."""
    if len(left) <= MAX_LISTED:
        return left
    groups: dict[tuple[str, str], int] = {}
    order: list[tuple[str, str]] = []
    for x in left:
        top = x.path.split("/", 1)[0] + "/" if "/" in x.path.rstrip("/") else x.path
        key = (top, x.reason)
        if key not in groups:
            order.append(key)
        groups[key] = groups.get(key, 0) + 1
    return [LeftOut(top, reason if n == 1 else f"{reason} ({n} entries)")
            for (top, reason), n in ((k, groups[k]) for k in order)]


_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]{2,}")
_STOP = set("""the and for with that this from are was were which have has not but can our
their its into than then also each such use used using these those when where been may all
one two any more most other only over both between under will would should could there""".split())
_ENTRY = ("main", "train", "model", "run", "reproduce", "experiment", "eval", "evaluate")


def terms(text: str) -> Counter[str]:
    return Counter(w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP)


def rank(files: list[RepoFile], query: str) -> list[RepoFile]:
    """Files ordered by relevance to ``query`` (the paper, or a requirement): README first,
    then by the share of the query's vocabulary the file uses, with entry points, source and
    config ahead of tests."""
    q = terms(query)
    top = {w for w, _ in q.most_common(300)}

    def score(f: RepoFile) -> tuple[float, str]:
        if f.kind == "readme" and "/" not in f.path:
            return (-1e9, f.path)
        overlap = len(f.vocabulary & top) / (len(top) or 1)
        stem = os.path.splitext(f.path.rsplit("/", 1)[-1])[0].lower()
        bonus = 0.15 if any(stem.startswith(e) for e in _ENTRY) else 0.0
        bonus += {"source": 0.1, "config": 0.05, "readme": 0.0}[f.kind]
        low = f.path.lower()
        if low.startswith(("test", "tests/")) or "/test" in low or stem.startswith("test_"):
            bonus -= 0.2
        return (-(overlap + bonus), f.path)

    return sorted(files, key=score)


def fit(files: list[RepoFile], budget: int, *, why: str = "the judge's context window"
        ) -> tuple[list[RepoFile], list[LeftOut]]:
    """Take files in the given order while they fit ``budget`` tokens; name the rest."""
    shown: list[RepoFile] = []
    left: list[LeftOut] = []
    used = 0
    for f in files:
        t = f.tokens
        if used + t <= budget:
            shown.append(f)
            used += t
        else:
            left.append(LeftOut(f.path, f"did not fit {why} (~{t} tokens; {max(budget - used, 0)}"
                                f" of {budget} left after more relevant files)"))
    return shown, left


def render(files: list[RepoFile]) -> str:
    """Files as fenced blocks with their path, for a prompt."""
    out = []
    for f in files:
        fence = "`" * max(3, _longest_backticks(f.text) + 1)
        note = " (cut at 200 kB)" if f.truncated else ""
        out.append(f"### {f.path}{note}\n{fence}\n{f.text.rstrip()}\n{fence}")
    return "\n\n".join(out)


def _longest_backticks(text: str) -> int:
    runs = re.findall(r"`+", text)
    return max((len(r) for r in runs), default=0)


def tree(files: list[RepoFile]) -> str:
    """The file tree as lines ``path (N lines)``, for a ranking prompt."""
    return "\n".join(f"{f.path} ({f.lines} lines)" for f in files)
