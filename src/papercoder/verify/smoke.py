"""The smoke run: every smoke command in a fresh work copy, on two seeds.

Success means every command exits 0 and writes its expected outputs (existing, non-empty),
on both seeds. An exit code alone proves nothing: a ``main.py`` that prints its help and exits
0 without writing ``results/metrics.json`` fails.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from papercoder.errors import UnsafePathError
from papercoder.outdir.paths import clean_path
from papercoder.verify.sandbox import RunResult, Sandbox

SEEDS = (1, 2)
DEFAULT_OUTPUT = "results/metrics.json"
MAX_COMMANDS = 10
_SHELL = re.compile(r"[;&|<>$`(){}*?~\\\n]")


@dataclass
class SmokeCommand:
    command: str
    outputs: list[str] = field(default_factory=list)


@dataclass
class Failure:
    """What went wrong first, as the model and the user are told."""

    command: str
    output: str
    kind: str  # "exit" | "timeout" | "outputs" | "install" | "start"
    exit: int | None = None
    missing: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class SmokeResult:
    passed: bool
    commands: list[dict[str, Any]]
    failure: Failure | None
    copies: list[Path]


def smoke_commands(logic_json: str | None, code: dict[str, str]) -> list[SmokeCommand]:
    """The plan's smoke commands, or a default: ``bash reproduce.sh --smoke`` when the
    repository has one, else the entry point with ``--smoke``."""
    out: list[SmokeCommand] = []
    if logic_json:
        try:
            data = json.loads(logic_json)
        except (ValueError, RecursionError):
            data = {}
        for item in (data.get("smoke_commands") or []) if isinstance(data, dict) else []:
            if isinstance(item, str):
                item = {"command": item}
            if not isinstance(item, dict) or not str(item.get("command", "")).strip():
                continue
            outs = item.get("outputs") or []
            outs = [outs] if isinstance(outs, str) else [str(x) for x in outs]
            out.append(SmokeCommand(str(item["command"]).strip()[:500], outs[:20]))
            if len(out) == MAX_COMMANDS:
                break
    if out:
        return out
    if "reproduce.sh" in code:
        return [SmokeCommand("bash reproduce.sh --smoke", [DEFAULT_OUTPUT])]
    for entry in ("main.py", "run.py", "train.py"):
        if entry in code:
            return [SmokeCommand(f"python {entry} --smoke", [DEFAULT_OUTPUT])]
    return []


def argv_for(command: str, seed: int, python: Path) -> list[str]:
    """The argv for a command: run directly when it is a plain word list (``python`` mapped to
    the environment's interpreter), else through ``bash -c``."""
    cmd = command.replace("{seed}", str(seed))
    if not _SHELL.search(cmd):
        try:
            argv = shlex.split(cmd)
        except ValueError:
            argv = []
        if argv:
            if argv[0] in ("python", "python3"):
                argv[0] = str(python)
            elif argv[0].endswith(".sh"):
                argv.insert(0, "bash")  # files written by edits are not executable
            return argv
    return ["bash", "-c", cmd]


def outputs_missing(work: Path, outputs: list[str]) -> list[str]:
    missing = []
    for rel in outputs:
        try:
            p = work / clean_path(rel)
        except UnsafePathError:
            missing.append(rel)
            continue
        if p.is_symlink() or not p.is_file() or p.stat().st_size == 0:
            missing.append(rel)
    return missing


def next_run_dir(vdir: Path) -> Path:
    nums = [int(m.group(1)) for p in vdir.glob("run-*") if (m := re.fullmatch(
        r"run-(\d+)", p.name))]
    return vdir / f"run-{max(nums, default=0) + 1:02d}"


def run_smoke(sandbox: Sandbox, repo: Path, vdir: Path, out: Path, python: Path,
              commands: list[SmokeCommand], *, timeout: float,
              seeds: tuple[int, ...] = SEEDS) -> SmokeResult:
    records: list[dict[str, Any]] = []
    copies: list[Path] = []
    if not commands:
        return SmokeResult(False, [], Failure("(none)", "The repository has no smoke command: no "
                                              "reproduce.sh and no main.py.", "start"), [])
    for seed in seeds:
        work = sandbox.prepare_copy(repo, next_run_dir(vdir))
        copies.append(work)
        logs = vdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for k, sc in enumerate(commands, 1):
            env = {"SEED": str(seed), "PAPERCODER_SEED": str(seed), "PYTHONHASHSEED": str(seed),
                   "PAPERCODER_SMOKE": "1"}
            r: RunResult = sandbox.run(argv_for(sc.command, seed, python), work,
                                       timeout=timeout, python_bin=python, env=env)
            log = logs / f"{work.name}-{k}.log"
            log.write_text(f"$ {sc.command}  (seed {seed})\n{r.output}\n[exit {r.exit}"
                           f"{', timed out' if r.timed_out else ''}, {r.seconds:.1f}s]\n",
                           encoding="utf-8")
            missing = outputs_missing(work, sc.outputs) if r.exit == 0 else []
            ok = r.exit == 0 and not missing
            records.append({"cmd": sc.command, "exit": r.exit, "seconds": round(r.seconds, 2),
                            "timed_out": r.timed_out, "outputs_ok": r.exit == 0 and not missing,
                            "seed": seed, "log": log.relative_to(out).as_posix()})
            if not ok:
                if r.timed_out:
                    kind = "timeout"
                    text = r.output + f"\n[killed: no exit within {timeout:.0f} seconds]"
                elif r.exit != 0:
                    kind, text = "exit", r.output + f"\n[exit status {r.exit}]"
                else:
                    kind = "outputs"
                    text = r.output + ("\n[exit status 0, but these expected output files are "
                                       "missing or empty: " + ", ".join(missing) + "]")
                return SmokeResult(False, records, Failure(sc.command, text, kind, r.exit,
                                                           missing, seed), copies)
    return SmokeResult(True, records, None, copies)
