"""The output folder: artifacts on disk, the run manifest, and what a rerun can reuse."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from papercoder.errors import OutputFolderError
from papercoder.outdir.paths import (
    create_root,
    mkdir_inside,
    open_inside,
    read_inside,
    remove_inside,
    resolve_inside,
    write_inside,
)
from papercoder.outdir.record import Manifest, read_record

STAGES = ("planning", "analysis", "coding")
PLANNING_STEPS = ("plan", "architecture", "logic", "config")


def artifact_name(file: str) -> str:
    """A flat, safe artifact file name for a repository path, one-to-one: ``%`` becomes
    ``%25`` and ``/`` becomes ``%2F``, so ``pkg/util.py`` and ``pkg__util.py`` (or
    ``pkg%2Futil.py``) never share an artifact."""
    return file.replace("%", "%25").replace("/", "%2F")


def artifact_file(name: str) -> str:
    """The repository path an :func:`artifact_name` stands for (its inverse)."""
    return re.sub(r"%(25|2F)", lambda m: "%" if m[1] == "25" else "/", name)


@dataclass
class Workspace:
    """OUT and everything in it. Every access goes through :mod:`papercoder.outdir.paths`
    with OUT as the trusted root, so no link below OUT is ever followed."""

    out: Path

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if (self.out.exists() or self.out.is_symlink()) and not self.out.is_dir():
            raise OutputFolderError(f"The output path {self.out} is not a folder; give a "
                                    "folder with -o.")
        self.repo = self.out / "repo"
        self.artifacts = self.out / "artifacts"
        self.manifest_path = self.out / "run.json"
        self.record_notes: list[str] = []

    def ensure(self) -> None:
        create_root(self.out)
        for d in ("repo", "artifacts", "artifacts/analysis", "artifacts/coding"):
            mkdir_inside(self.out, d)
        for f in ("run.json", "papercoder.log"):  # a link there is refused before any work
            resolve_inside(self.out, f)

    # artifacts are written atomically under OUT/artifacts
    def write_artifact(self, rel: str, content: str) -> Path:
        return write_inside(self.out, f"artifacts/{rel}", content)

    def read_artifact(self, rel: str) -> str | None:
        return read_inside(self.out, f"artifacts/{rel}")

    def remove_artifact(self, rel: str) -> None:
        remove_inside(self.out, f"artifacts/{rel}")

    def write_repo_file(self, rel: str, content: str) -> Path:
        return write_inside(self.out, f"repo/{rel}", content)

    def read_repo_file(self, rel: str) -> str | None:
        return read_inside(self.out, f"repo/{rel}")

    def open_log(self) -> IO[str]:
        """OUT/papercoder.log, opened for appending without following a link."""
        return open_inside(self.out, "papercoder.log", "a")

    def load_manifest(self) -> Manifest | None:
        """run.json, read tolerantly: what was ignored is in :attr:`record_notes`."""
        m, self.record_notes = read_record(self.out)
        return m

    def save_manifest(self, m: Manifest) -> None:
        m.updated = time.time()
        write_inside(self.out, "run.json", json.dumps(m.to_dict(), indent=2, default=str) + "\n")
