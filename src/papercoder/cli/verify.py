"""`papercoder verify OUT`: the body of the command (registered in papercoder.cli)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.text import Text

from papercoder.console import console
from papercoder.errors import ConfigError, PapercoderError
from papercoder.outdir.record import SmokeRecord, StaticRecord, VerifyRecord

if TYPE_CHECKING:
    from papercoder.verify import VerifyResult


def summary(v: VerifyRecord) -> tuple[str, bool]:
    """One line saying whether the repository ran, and whether that counts as success."""
    static = v.static or StaticRecord()
    left = len(static.remaining if "remaining" in static.model_fields_set else static.findings)
    found = len(static.findings)
    head = f"static checks: {found} finding(s)" + (
        f", {left} left after repair" if static.repair and static.repair.applied else "")
    if v.grounding:
        g = v.grounding
        head += f" · API checks: {len(g.findings)} finding(s)" + (
            ", repaired" if g.repair and g.repair.applied else "")
    ex = v.executability
    if ex is None:
        return head + " · smoke run not requested (--execute runs it)", True
    smoke = v.smoke or SmokeRecord()
    ran = "the repository RAN" if smoke.passed else "the repository did NOT run"
    why = f" ({smoke.stopped})" if smoke.stopped and not smoke.passed else ""
    return (f"{ran}{why} · {ex.rounds} debug round(s) so far · {ex.lines_changed} of "
            f"{ex.total_lines} lines changed ({ex.percent}%) · {head}"), smoke.passed


def run_verify(out: Path, *, model: str | None, execute: bool, debug_rounds: int,
               python: Path | None, install: bool, allow_network: bool, timeout: float,
               quiet: bool = False, base_url: str | None = None,
               smoke: list[str] | None = None, same_session: bool = False) -> VerifyResult:
    from papercoder.cli.common import open_store
    from papercoder.models import get_model
    from papercoder.outdir.workspace import Workspace
    from papercoder.verify import VerifyOptions, verify_output

    ws = Workspace(out)
    m = ws.load_manifest()
    if m is None and ws.record_notes:
        raise ConfigError(f"{out / 'run.json'} could not be read (not JSON, a link or too "
                          "large); rerun `papercoder run` into that folder to write it again.")
    if m is None:
        return run_on_repository(out, execute=execute, model=model, smoke=smoke, quiet=quiet,
                                 debug_rounds=debug_rounds, python=python, install=install,
                                 allow_network=allow_network, timeout=timeout)
    name = model or m.settings.get("model") or m.model or None
    try:
        mdl = get_model(name, base_url=base_url or m.settings.get("base_url")) if name else None
    except PapercoderError as e:
        if model:
            raise
        from papercoder.console import warn
        from papercoder.textsafe import safe

        warn(safe(f"The run's model cannot be used for repairs ({e}); checking without "
                   "repairs. Pass -m MODEL to repair."))
        mdl = None
    opts = VerifyOptions(execute=execute, debug_rounds=debug_rounds, python=python,
                         install=install, allow_network=allow_network, timeout=timeout,
                         quiet=quiet, same_session=same_session)
    return asyncio.run(verify_output(out, model=mdl, store=open_store(), options=opts,
                                     run_id=m.run_id))


def run_on_repository(path: Path, *, execute: bool, model: str | None,
                      smoke: list[str] | None = None, quiet: bool = False,
                      **kw: Any) -> VerifyResult:
    """A folder `papercoder run` did not write: its static checks; with --execute (and
    --smoke) a copy is checked against the installed APIs and run in the sandbox, repaired
    only with -m. The folder itself is never edited."""
    from papercoder.verify import check_repository

    if execute or model:
        import tempfile

        from papercoder.cli.common import open_store
        from papercoder.models import get_model
        from papercoder.verify import VerifyOptions, prepare_repository, verify_output

        if execute and not smoke:
            raise ConfigError("--execute on a repository papercoder did not write needs the "
                              "command to run: add --smoke 'python train.py --epochs 1'.")
        check_repository(path)  # refuses a folder without Python files
        out = prepare_repository(path, Path(tempfile.mkdtemp(prefix="papercoder-verify-")),
                                 smoke or [])
        mdl = get_model(model) if model else None
        opts = VerifyOptions(execute=execute, quiet=quiet, contract=False,
                             static_repair=mdl is not None, **kw)
        v = asyncio.run(verify_output(out, model=mdl, store=open_store(), options=opts))
        v.work_folder = str(out)
        return v
    from papercoder.verify import VerifyResult

    found = check_repository(path)
    certain = [f for f in found if f.get("certain", True)]
    return VerifyResult(repository=str(path), static=StaticRecord(
        findings=certain, notes=[f for f in found if f not in certain]))


def report(v: VerifyResult, as_json: bool = False) -> None:
    from papercoder.textsafe import safe as plain
    from papercoder.verify import finding_lines

    static = v.static or StaticRecord()
    if as_json:
        g = v.grounding or StaticRecord()
        for line in finding_lines(static.findings + static.notes + g.findings + g.notes):
            print(line)
        if v.repository is not None:
            if static.findings:
                raise typer.Exit(1)
            return
    if v.repository is not None:
        from papercoder.verify import where

        for f in static.findings:
            console.print(Text(plain(f"{where(f)} [{f.get('check')}] {f.get('message')}")),
                          soft_wrap=True)
        for f in static.notes:
            console.print(Text(plain(f"note: {where(f)} [{f.get('check')}] "
                                     f"{f.get('message')}")), soft_wrap=True)
        n, k = len(static.findings), len(static.notes)
        console.print(Text(plain(("ok: " if not n else "FAILED: ") + f"static checks: {n} "
                                 f"certain finding(s), {k} note(s)")), soft_wrap=True)
        if n:
            raise typer.Exit(1)
        return
    line, ok = summary(v)
    if v.work_folder and not as_json:
        console.print(Text(plain(f"Work copy and results: {v.work_folder}")),
                      soft_wrap=True)
    if not as_json:
        console.print(Text(plain(("ok: " if ok else "FAILED: ") + line)), soft_wrap=True)
    if not ok:
        raise typer.Exit(1)


def verify(
    out: Path = typer.Argument(..., help="An output folder written by `papercoder run`, or "
                               "any repository folder (static checks only)."),
    execute: bool = typer.Option(False, "--execute", help="Also run the smoke commands in a "
                                 "sandbox and repair what fails."),
    model: str | None = typer.Option(None, "-m", "--model", help="Model for repairs (default: "
                                     "the run's model)."),
    debug_rounds: int = typer.Option(4, "--debug-rounds", min=0, max=50,
                                     help="Repair rounds at most."),
    python: Path | None = typer.Option(None, "--python", help="Run with this interpreter; "
                                       "nothing is installed."),
    no_install: bool = typer.Option(False, "--no-install", help="No venv, no installs: use "
                                    "the current interpreter."),
    allow_network: bool = typer.Option(False, "--allow-network", help="Let the generated "
                                       "code use the network (e.g. to download datasets)."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds per smoke command."),
    as_json: bool = typer.Option(False, "--json", help="Print the static findings as JSON "
                                 "Lines (file, line, check, certain, message)."),
    smoke: list[str] | None = typer.Option(None, "--smoke", help="On a repository papercoder "
                                           "did not write: the command --execute runs."),
) -> None:
    """Check the generated repository; with --execute run it and debug it until it runs."""
    v = run_verify(out, model=model, execute=execute, debug_rounds=debug_rounds, python=python,
                   install=not no_install, allow_network=allow_network, timeout=timeout,
                   quiet=as_json, smoke=smoke)
    report(v, as_json)
