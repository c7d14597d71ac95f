"""Stage 4, verify: static checks, then a smoke run in a sandbox, then a bounded debug loop.

Library entry point: :func:`verify_output` (``papercoder verify`` and ``papercoder run
--execute`` call it). It reads ``OUT/repo`` and ``OUT/artifacts/logic.json``, edits
``OUT/repo`` in place, keeps the generated repository as it was in ``OUT/verify/original``,
writes ``OUT/artifacts/debug/`` and saves its results under ``"verify"`` in ``OUT/run.json``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import Field
from rich.text import Text

from papercoder.console import err_console
from papercoder.edits import unified_diff, write_files
from papercoder.errors import ConfigError, ModelOutputError
from papercoder.llm import Caller
from papercoder.models.base import Model
from papercoder.outdir.record import (
    Executability,
    GroundingRecord,
    RepairRecord,
    RoundRecord,
    SmokeRecord,
    StaticRecord,
    VerifyRecord,
)
from papercoder.outdir.workspace import Workspace
from papercoder.store import Store
from papercoder.textsafe import safe
from papercoder.verify.debug import ask_repair, build_messages, headline, signature
from papercoder.verify.env import EnvManager
from papercoder.verify.grounding import ground
from papercoder.verify.metric import executability
from papercoder.verify.sandbox import Limits, Sandbox
from papercoder.verify.smoke import SEEDS, Failure, SmokeResult, run_smoke, smoke_commands
from papercoder.verify.static import certain_findings, read_repo, run_static

__all__ = ["Limits", "Outcome", "VerifyOptions", "VerifyResult", "check_repository",
           "finding_lines", "verify_output"]


@dataclass
class VerifyOptions:
    execute: bool = False
    """Run the smoke commands and the debug loop (static checks always run)."""
    debug_rounds: int = 4
    """Repair rounds at most, counted over resumed runs too."""
    python: Path | None = None
    """An interpreter the user prepared; nothing is installed into it."""
    install: bool = True
    """Create OUT/verify/venv and install requirements (False: the current interpreter)."""
    allow_network: bool = False
    timeout: float = 300.0
    """Wall-clock seconds per smoke command."""
    static_repair: bool = True
    limits: Limits = field(default_factory=Limits)
    pip_args: list[str] = field(default_factory=list)
    """Extra pip arguments, e.g. ["--no-index", "--find-links", DIR]."""
    use_bwrap: bool = True
    same_session: bool = False
    """Verify runs in the same command as the run (``run``, ``batch``): its calls are added
    to the latest session's figures in run.json, else they are a session of their own."""
    seeds: tuple[int, ...] = SEEDS
    quiet: bool = False
    prompts_dir: Path | None = None
    contract: bool = True
    """Check papercoder's own contract (reproduce.sh, --smoke); off for other repositories."""


class Outcome(Enum):
    """How verify ended: what stopped the smoke runs and the debug loop."""

    STATIC_ONLY = "static-only"
    """No smoke run was asked for (no --execute); only the static checks ran."""
    RAN = "ran"
    """The smoke run passed (at once, or after repairs)."""
    NO_MODEL = "no-model"
    """The smoke run failed and there is no model to repair with."""
    OUT_OF_ROUNDS = "out-of-rounds"
    """The smoke run failed and --debug-rounds allows no more repairs."""
    REPEATED_FAILURE = "repeated-failure"
    """The last repair did not change the error."""
    NO_EDITS = "no-edits"
    """The model's repair answer was not usable (no edit could be applied)."""


class VerifyResult(VerifyRecord):
    """What :func:`verify_output` returns: the record saved under ``"verify"`` in run.json,
    with how it ended (``outcome``, not saved; ``smoke.stopped`` says it in words)."""

    outcome: Outcome = Field(default=Outcome.STATIC_ONLY, exclude=True)
    repository: str | None = Field(default=None, exclude=True)
    """A repository papercoder did not write, checked statically in place."""
    work_folder: str | None = Field(default=None, exclude=True)
    """The temporary output folder of a repository papercoder did not write."""

    @property
    def ran(self) -> bool:
        return self.outcome is Outcome.RAN


def stop_words(outcome: Outcome, options: VerifyOptions, rounds: list[RoundRecord]) -> str:
    """Why the debug loop stopped, in the words saved as ``smoke.stopped`` ("" when the
    repository ran or no smoke run was asked for)."""
    if outcome is Outcome.NO_MODEL:
        return "no model to repair with"
    if outcome is Outcome.OUT_OF_ROUNDS:
        return ("--debug-rounds 0 allows no repair" if options.debug_rounds == 0
                else f"the limit of {options.debug_rounds} debug round(s) is reached")
    if outcome is Outcome.REPEATED_FAILURE:
        return f"round {rounds[-1].n} did not change the error"
    if outcome is Outcome.NO_EDITS:
        return f"round {rounds[-1].n}: {rounds[-1].model_error}"
    return ""


def _sayer(quiet: bool) -> Callable[[str], None]:
    def say(text: str) -> None:
        if not quiet:
            err_console.print(Text(safe(text)), soft_wrap=True)
    return say


def where(f: dict[str, Any]) -> str:
    return f"{f.get('file')}{':' + str(f['line']) if f.get('line') else ''}"


def say_findings(say: Callable[[str], None], findings: list[dict[str, Any]],
                 notes: list[dict[str, Any]]) -> None:
    """Certain findings (what a repair acts on), then the notes (reported, never acted on)."""
    say(f"Static checks: {len(findings)} finding(s), {len(notes)} note(s).")
    for f in findings[:20]:
        say(f"  {where(f)} [{f.get('check', f.get('kind'))}] {f.get('message')}")
    for f in notes[:20]:
        say(f"  note: {where(f)} [{f.get('check', f.get('kind'))}] {f.get('message')}")


async def _ground_and_repair(code: dict[str, str], python: Path, sandbox: Sandbox,
                             ws: Workspace, caller: Caller | None, options: VerifyOptions,
                             result: VerifyResult, previous: VerifyRecord,
                             commands: list[Any], logic_json: str | None,
                             say: Callable[[str], None]) -> dict[str, str]:
    """Check third-party names and keywords in the installed environment (inside the
    sandbox); certain findings go to one repair call before any smoke run."""
    found, summary = ground(code, python, sandbox)
    certain = certain_findings(found)
    grounding = GroundingRecord.model_validate(
        {**summary, "findings": certain, "notes": [f for f in found if f not in certain]})
    result.grounding = grounding
    say_findings(say, certain, grounding.notes)
    tried = previous.grounding.findings if previous.grounding else None
    if certain and caller is not None and options.static_repair and certain != tried:
        code, grounding.repair = await _repair_findings(
            caller, ws, code, commands, logic_json, certain, options, "grounding")
        say("API repair applied." if grounding.repair.applied
            else f"API repair failed: {grounding.repair.error}")
    return code


async def _repair_findings(caller: Caller, ws: Workspace, code: dict[str, str],
                           commands: list[Any], logic_json: str | None,
                           findings: list[dict[str, Any]], options: VerifyOptions,
                           name: str) -> tuple[dict[str, str], RepairRecord]:
    """One repair call for certain findings. Its edits land in repo/, its answer and diff
    under artifacts/debug/<name>.md and .diff; a model mistake is recorded, not raised."""
    msgs = build_messages(mode="static", code=code, commands=commands, logic_json=logic_json,
                          findings=findings, prompts_dir=options.prompts_dir)
    try:
        rep = await ask_repair(caller, msgs, code, label=name)
    except ModelOutputError as e:
        return code, RepairRecord(applied=False, error=str(e))
    before = code
    write_files(ws.repo, rep.new)
    code = read_repo(ws.repo)
    ws.write_artifact(f"debug/{name}.md", rep.answer)
    ws.write_artifact(f"debug/{name}.diff", unified_diff(before, code))
    return code, RepairRecord(applied=True, diff=f"artifacts/debug/{name}.diff",
                              md=f"artifacts/debug/{name}.md")


def _snapshot(repo: Path, dest: Path) -> None:
    shutil.copytree(repo, dest, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".*"))
    for p in [dest, *dest.rglob("*")]:
        if p.is_symlink():
            p.unlink()


def _failure_dict(f: Failure | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"command": f.command, "kind": f.kind, "exit": f.exit, "missing": f.missing,
            "seed": f.seed, "output_tail": f.output[-2000:]}


def check_repository(path: Path) -> list[dict[str, Any]]:
    """Static checks of any repository folder (papercoder's own reproduce.sh/--smoke contract
    left out); nothing is edited or executed. Certain findings and notes, in one list."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path} is not a folder; give a repository folder or an output "
                          "folder that `papercoder run` wrote.")
    code = read_repo(path)
    if not any(f.endswith(".py") for f in code):
        raise ConfigError(f"{path} has no run.json and no Python files; give a repository "
                          "folder or an output folder that `papercoder run` wrote.")
    return run_static(code, reproduce=False)


def finding_lines(findings: list[dict[str, Any]]) -> list[str]:
    """One JSON object per finding (JSON Lines): file, line, check, certain, message."""
    import json

    return [json.dumps({"file": f.get("file"), "line": f.get("line"),
                        "check": f.get("check", f.get("kind")),
                        "certain": bool(f.get("certain", True)),
                        "message": f.get("message")}, ensure_ascii=True) for f in findings]


def prepare_repository(path: Path, out: Path, smoke: list[str]) -> Path:
    """An output folder for verifying a repository papercoder did not write: a copy of it
    in ``out/repo`` (links and hidden folders left out; the original is never edited), the
    smoke commands in ``out/artifacts/logic.json`` and a run.json."""
    import json

    from papercoder.outdir.record import Manifest

    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path} is not a folder; give a repository folder.")
    ws = Workspace(Path(out))
    if ws.load_manifest() is None:
        ws.ensure()
        if ws.repo.exists():
            shutil.rmtree(ws.repo)
        _snapshot(path, ws.repo)
        py = sorted(p.relative_to(ws.repo).as_posix() for p in ws.repo.rglob("*.py"))
        ws.write_artifact("logic.json", json.dumps({
            "required_packages": [], "task_list": py, "logic_analysis": [],
            "smoke_commands": [{"command": c, "outputs": []} for c in smoke]}))
        ws.save_manifest(Manifest(run_id=f"verify-{path.name}"[:80], status="done",
                                  files={f: {"status": "written"} for f in py}, order=py))
    return Path(out)


async def verify_output(out: Path, *, model: Model | None, store: Store,
                        options: VerifyOptions, run_id: str | None = None) -> VerifyResult:
    """Verify the repository in ``out``; returns its result (also saved in run.json under
    "verify", without the outcome)."""
    out = Path(out).absolute()  # the sandbox and pip see absolute paths, whatever the cwd
    ws = Workspace(out)
    m = ws.load_manifest()
    if m is None or not ws.repo.is_dir():
        raise ConfigError(f"{out} is not a papercoder output folder (no run.json or repo/); "
                              "give the folder that `papercoder run` wrote.")
    say = _sayer(options.quiet)
    vdir = out / "verify"
    vdir.mkdir(parents=True, exist_ok=True)
    previous = m.verify
    if not (vdir / "original").is_dir():
        _snapshot(ws.repo, vdir / "original")
        previous = VerifyRecord()
    original = read_repo(vdir / "original")
    code = read_repo(ws.repo)
    logic_json = ws.read_artifact("logic.json")
    caller = Caller(model, store, run_id or m.run_id) if model is not None else None
    result = VerifyResult()
    earlier, started = m.totals, time.perf_counter()

    def save() -> None:
        fresh = ws.load_manifest() or m
        if caller is not None:
            t = caller.totals
            result.calls = {"calls": t.calls, "cache_hits": t.cache_hits,
                               "cost_usd": None if t.unpriced_calls else round(t.cost, 6)}
            # every call of the run is in its totals: the static repair's and the debug loop's
            mine = {**t.figures(), "wall_seconds": round(time.perf_counter() - started, 2)}
            fresh.totals = (earlier.extend_session(mine) if options.same_session
                            else earlier.add_session(mine))
        fresh.verify = VerifyRecord.model_validate(result.model_dump(mode="json"))
        ws.save_manifest(fresh)

    # -- static checks and their repair ----------------------------------------------------
    commands = smoke_commands(logic_json, code)
    all_findings = run_static(code, [c.command for c in commands],
                              reproduce=options.contract)
    findings = certain_findings(all_findings)  # only these drive an edit
    notes = [f for f in all_findings if f not in findings]
    static = StaticRecord(findings=findings, remaining=findings, notes=notes)
    tried = previous.static.remaining if previous.static else None
    say_findings(say, findings, notes)
    if findings and caller is not None and options.static_repair and findings != tried:
        code, static.repair = await _repair_findings(caller, ws, code, commands, logic_json,
                                                     findings, options, "static")
        if not static.repair.applied:
            say(f"Static repair failed: {static.repair.error}")
        else:
            commands = smoke_commands(logic_json, code)
            static.remaining = certain_findings(run_static(
                code, [c.command for c in commands], reproduce=options.contract))
            say(f"Static repair applied; {len(static.remaining)} finding(s) remain.")
    elif findings and tried == findings:
        static.repair = previous.static.repair if previous.static else None
    result.static = static
    result.environment = {"kind": "none", "python": "", "installed": []}
    result.isolation = {"sandbox": "none", "network": "none-isolation", "limits": {}}
    result.smoke = SmokeRecord(passed=False, commands=[], skipped=True)
    result.rounds = []
    result.executability = None
    if not options.execute:
        save()
        return result

    # -- environment and sandbox -----------------------------------------------------------
    loud = _sayer(False)  # what will be installed, and missing isolation, are always said
    envm = EnvManager(vdir / "venv", python=options.python, install=options.install,
                      use_bwrap=options.use_bwrap,
                      pip_args=options.pip_args, say=loud)
    env = envm.prepare()
    say(f"Environment: {env.kind} ({env.python}).")
    # CPU time is counted over all threads: never below what the wall-clock timeout allows.
    limits = replace(options.limits, cpu_seconds=max(
        options.limits.cpu_seconds, int(options.timeout * (os.cpu_count() or 1)) + 10))
    sandbox = Sandbox(allow_network=options.allow_network, limits=limits,
                      readonly=env.readonly, use_bwrap=options.use_bwrap)
    iso = sandbox.isolation
    result.isolation = {"sandbox": iso.sandbox, "network": iso.network, "user": iso.user,
                           "limits": iso.limits, "notes": iso.notes}
    say(f"Isolation: {sandbox.describe()}.")
    if iso.sandbox == "none":
        loud("No sandbox is available (install bubblewrap): generated code runs with only "
            "resource limits and a filtered environment" + (
                "" if iso.network == "namespace" else ", and with network access") + ".")
    for note in iso.notes:
        say(f"Note: {note}.")

    # -- API grounding: names and keywords against the installed packages ---------------
    envm.install_requirements(code.get("requirements.txt", ""))
    if not env.failure:
        code = await _ground_and_repair(code, env.python, sandbox, ws, caller, options,
                                        result, previous, commands, logic_json, say)
        commands = smoke_commands(logic_json, code)

    # -- smoke runs and the debug loop -----------------------------------------------------
    rounds: list[RoundRecord] = list(previous.rounds)
    outcome: Outcome | None = None
    smoke: SmokeResult
    while outcome is None:
        envm.install_requirements(code.get("requirements.txt", ""))
        if env.failure:
            failure = Failure("pip install -r requirements.txt", env.failure, "install")
            smoke = SmokeResult(False, [], failure, [])
            say("Installing the requirements failed.")
        else:
            say(f"Smoke run: {', '.join(c.command for c in commands) or '(no command)'} "
                f"(seeds {', '.join(map(str, options.seeds))}).")
            smoke = run_smoke(sandbox, ws.repo, vdir, out, env.python, commands,
                              timeout=options.timeout, seeds=options.seeds)
        if smoke.passed:
            outcome = Outcome.RAN
            continue
        assert smoke.failure is not None
        failure = smoke.failure
        sig = signature(failure)
        say(f"Smoke run failed: {headline(failure)}")
        if caller is None:
            outcome = Outcome.NO_MODEL
        elif len(rounds) >= options.debug_rounds:
            outcome = Outcome.OUT_OF_ROUNDS
        elif rounds and rounds[-1].signature == sig and rounds[-1].applied:
            outcome = Outcome.REPEATED_FAILURE
        else:
            n = len(rounds) + 1
            msgs = build_messages(mode="smoke", code=code, commands=commands,
                                  logic_json=logic_json, failure=failure,
                                  open_findings=certain_findings(run_static(
                                      code, [c.command for c in commands],
                                      reproduce=options.contract,
                                      installed=envm.installed_packages())),
                                  prompts_dir=options.prompts_dir)
            ws.write_artifact(f"debug/{n:02d}.log", f"$ {failure.command}\n{failure.output}\n")
            record = RoundRecord(n=n, error=failure.output[-1000:], signature=sig,
                                 diff=f"artifacts/debug/{n:02d}.diff",
                                 md=f"artifacts/debug/{n:02d}.md",
                                 log=f"artifacts/debug/{n:02d}.log",
                                 applied=False, passed=False)
            try:
                rep = await ask_repair(caller, msgs, code, label=f"round {n:02d}")
            except ModelOutputError as e:
                record.model_error = str(e)
                ws.write_artifact(f"debug/{n:02d}.md", f"(no usable answer: {e})\n")
                ws.write_artifact(f"debug/{n:02d}.diff", "")
                rounds.append(record)
                outcome = Outcome.NO_EDITS
                continue
            before = code
            write_files(ws.repo, rep.new)
            code = read_repo(ws.repo)
            commands = smoke_commands(logic_json, code)
            ws.write_artifact(f"debug/{n:02d}.md", rep.answer)
            ws.write_artifact(f"debug/{n:02d}.diff", unified_diff(before, code))
            record.applied = True
            rounds.append(record)
            result.rounds = rounds
            save()
            say(f"Debug round {n}: edited {', '.join(sorted(rep.new))}.")
    if outcome is Outcome.RAN and rounds and rounds[-1].applied:
        rounds[-1].passed = True
    # Keep the final smoke runs as evidence; earlier work copies go.
    keep = {p.name for p in smoke.copies}
    for p in vdir.glob("run-*"):
        if p.is_dir() and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
    result.outcome = outcome
    result.environment = env.to_dict()
    result.smoke = SmokeRecord(passed=smoke.passed, commands=smoke.commands,
                               failure=_failure_dict(smoke.failure),
                               work_copies=[p.relative_to(out).as_posix()
                                            for p in smoke.copies])
    stopped = stop_words(outcome, options, rounds)
    if stopped:
        result.smoke.stopped = stopped
    result.rounds = rounds
    result.executability = Executability.model_validate(executability(
        original, code, rounds=len(rounds), passed=smoke.passed))
    save()
    return result
