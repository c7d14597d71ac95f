"""`papercoder run` and `papercoder plan`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.text import Text

from papercoder.console import console, err_console, plain, styled
from papercoder.errors import BudgetExceeded, ConfigError, PapercoderError, SandboxError

if TYPE_CHECKING:
    from papercoder.outdir.record import Manifest

FROM_HELP = ("Redo from this stage: planning, analysis or coding (also how to continue an "
             "output folder with another model).")
CONTEXT_HELP = ("scoped (every lower dependency level in full, a level written concurrently) "
                "or full (all earlier code, one file at a time).")
CONCURRENCY_HELP = "Calls in flight at once (1-64)."
MAX_COST_HELP = "Budget in USD; the run stops cleanly before a call would exceed it."
CONTEXT_WINDOW_HELP = ("Override the model's context window in tokens (from the model settings "
                       "table by default); a small window makes papercoder shorten the paper.")
REFERENCES_HELP = "Send the paper's reference list too (left out by default)."
PROMPTS_HELP = "Folder of prompt template overrides."
TIMEOUT_HELP = "Seconds per model call attempt, the whole answer included."
GRACE_HELP = "After Ctrl-C, seconds the calls in flight may take to finish and be stored."
RETRIES_HELP = "Retries on rate limits, server errors, timeouts."
RETRY_WAIT_HELP = ("Longest wait between retries in seconds (Retry-After is honoured up to it; "
                   "default 30 or $PAPERCODER_MAX_RETRY_WAIT).")
PDF_READER_HELP = ("How a PDF is read: default (pure Python), model (a vision model "
                   "transcribes the pages with display maths or algorithms) or model-all "
                   "(every page).")
READER_MODEL_HELP = "The vision model that transcribes pages (default: the run's model)."
NO_CONTRACT_HELP = ("Run the published method alone: no requirements contract, no audit.")
AUDIT_ROUNDS_HELP = ("Audit repair rounds at most (0: grade the code against the contract "
                     "without repairing).")
ADDENDUM_HELP = "The authors' clarifications (PaperBench addendum.md), a source of requirements."
NO_SOURCE_HELP = ("Read a PDF as given, even when it names its arXiv id (default: its LaTeX "
                  "source).")


def default_out_name(paper: str) -> str:
    """A safe folder name for a paper path, URL or arXiv id."""
    name = paper.rstrip("/").split("/")[-1]
    name = re.sub(r"(\.tar\.gz|\.tgz|\.gz|\.pdf|\.tex|\.md|\.markdown|\.txt|\.json)$", "",
                  name, flags=re.I)
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "paper"


def check_settings(*, from_stage: str | None = None, context: str = "scoped",
                   concurrency: int = 4, max_cost: float | None = None, timeout: float = 600.0,
                   context_window: int | None = None, prompts: Path | None = None,
                   out: Path | None = None) -> None:
    """Bad option values are one sentence and exit status 2, before anything runs."""
    if from_stage not in (None, "planning", "analysis", "coding"):
        raise ConfigError(f"--from must be planning, analysis or coding, not '{from_stage}'.")
    if context not in ("scoped", "full"):
        raise ConfigError(f"--context must be scoped or full, not '{context}'.")
    if not 1 <= concurrency <= 64:
        raise ConfigError(f"--concurrency must be between 1 and 64, not {concurrency}.")
    if max_cost is not None and not max_cost >= 0:  # also refuses NaN
        raise ConfigError(f"--max-cost must be a number of dollars, 0 or more, not {max_cost}.")
    if not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, not {timeout}.")
    if context_window is not None and context_window < 512:
        raise ConfigError(f"--context-window must be at least 512 tokens, not {context_window}.")
    if prompts is not None and not prompts.is_dir():
        raise ConfigError(f"--prompts must be a folder of template overrides; {prompts} is not "
                          "one.")
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"The output path {out} is a file; give a folder with -o.")


def _run(paper: str, model: str | None, out: Path | None, stop_after: str,
         verify: dict | None = None, **kw: Any) -> None:
    out = out or Path("out") / default_out_name(paper)
    report = True
    final: list[Text] = []  # the status line, printed last of all
    try:
        _run_stages(paper, model, out, stop_after, verify=verify, final=final, **kw)
    except PapercoderError as e:
        # Bad settings, a link in OUT or a busy OUT (exit 2): the run never started, and
        # OUT may belong to another run or hold a link, so nothing more is written there.
        report = e.exit_code != 2
        raise
    finally:
        if report:
            _write_report(out)
        said = _requirements_said(out) if report else None
        if said and final:  # the one final line stays last and starts with the status
            final[-1].append(plain(f" · {said}"))
        elif said:
            console.print(plain(said), soft_wrap=True)
        for line in final:
            console.print(line, soft_wrap=True)


def _write_report(out: Path) -> None:
    """OUT/report.html after every run that got as far as run.json; never fails the run."""
    manifest = out / "run.json"
    if manifest.is_symlink() or not manifest.is_file():
        return
    try:
        from papercoder.report import write_report

        path = write_report(out)
        console.print(Text(f"Report: {path}"))
    except Exception as e:  # noqa: BLE001 - the report must never fail the run
        err_console.print(Text(f"Warning: the report could not be written ({e})."))


def _requirements_said(out: Path) -> str | None:
    """What the audit found, for the final line: ``requirements: 41/47 met, 4 partial, 2
    unmet``; None without an audit."""
    try:
        from papercoder.outdir.workspace import Workspace

        m = Workspace(out).load_manifest()
    except PapercoderError:
        return None
    if m is not None and m.requirements.get("total") is not None and "audit" in m.requirements:
        from papercoder.audit import summary_line

        return summary_line(m.requirements)
    return None


def _run_stages(paper: str, model: str | None, out: Path, stop_after: str,
                verify: dict | None = None, final: list[Text] | None = None,
                **kw: Any) -> None:
    from papercoder.cli.common import db_path
    from papercoder.models import default_model_name
    from papercoder.pipeline import RunOptions, run_pipeline
    from papercoder.store import Store

    check_settings(from_stage=kw.get("from_stage"), context=kw.get("context", "scoped"),
                   concurrency=kw.get("concurrency", 4), max_cost=kw.get("max_cost"),
                   timeout=kw.get("timeout", 600.0), context_window=kw.get("context_window"),
                   prompts=kw.get("prompts_dir"), out=out)
    from papercoder.ingest import check_reader

    check_reader(kw.get("pdf_reader", "default"), kw.get("reader_model"))
    if model is None:
        model, offline = default_model_name()
        if offline:
            from papercoder.models.local import embedded_notice

            err_console.print(plain(embedded_notice(), "cyan"), soft_wrap=True)
    opts = RunOptions(paper=paper, model=model, out=out,
                      stop_after=stop_after, **kw)
    store = Store(db_path())
    try:
        m = run_pipeline(opts, store=store)
    except BudgetExceeded:
        err_console.print(plain(f"Artifacts so far are in {out}; rerun with a higher "
                                "--max-cost to continue."), soft_wrap=True)
        raise
    final = [] if final is None else final
    said, ran = "", True
    if stop_after == "coding" and verify is not None and m.status in ("done", "partial"):
        from papercoder.cli.verify import run_verify, summary
        from papercoder.outdir.workspace import Workspace

        # static checks always; smoke run with --execute. Their verdict joins the final
        # line, whose first word stays the run's status.
        try:
            said, ran = summary(run_verify(out, model=model, base_url=opts.base_url,
                                           quiet=opts.quiet, same_session=True, **verify))
        except SandboxError as e:  # ours, not the code's: said on the final line
            said, ran = f"verify stopped: {e}", False
        m = Workspace(out).load_manifest() or m  # its calls are in the totals now
    code = print_summary(m, out, paper, final)
    if said:
        final[-1].append(plain(f" · {said}"))
    if not ran:
        code = 1  # README, Exit status: 1 when the repository did not run
    if code:
        raise typer.Exit(code)


STATUS_STYLE = {"done": "bold green", "planned": "bold green", "analyzed": "bold green",
                "partial": "bold yellow", "failed": "bold red"}
EXIT_STATUS = {"done": 0, "planned": 0, "analyzed": 0, "partial": 4, "failed": 1}
"""Exit status per final run status (README "Exit status")."""


def print_summary(m: Manifest, out: Path, paper: str, final: list[Text] | None = None) -> int:
    """The run's closing lines; returns the exit status they stand for. The status line goes
    to ``final`` (printed last, after the report and verify) or, without it, first."""
    t = m.totals  # the whole run: every session, every call (the static repair's too)
    cost = "unknown" if t.cost_usd is None else f"${t.cost_usd:.4f}"
    written = len(m.files_with("written"))
    wall = t.wall_seconds or sum(s.seconds or 0 for s in m.stages.values())
    toks = t.completion_tokens
    gen = sum(s.seconds or 0 for s in m.stages.values())
    speed = f" · {toks / gen:.1f} output tokens/s" if gen and toks else ""
    if m.status == "planned":
        what = f"{len(m.steps)} planning steps, {len(m.files)} files planned in {out / 'artifacts'}"
    else:
        what = f"{written}/{len(m.files)} files written to {out / 'repo'}"
    line = Text()
    line.append(f"{m.status}:", style=STATUS_STYLE.get(m.status, "bold"))
    line.append(plain(f" {what} · {t.calls} calls ({t.cache_hits} cached) · "
                      f"{t.prompt_tokens:,} prompt + {toks:,} output tokens · {cost} · "
                      f"{wall:.1f}s{speed} · run {m.run_id}"))
    if final is None:
        console.print(line, soft_wrap=True)
    else:
        final.append(line)
    read_from = str(m.paper.get("read_from") or "")
    if read_from:
        what = ("the arXiv LaTeX source (" + read_from.split(":", 1)[1] + ")"
                if read_from.startswith("arxiv-source:") else "the PDF as given")
        pages = (m.paper.get("reader") or {}).get("transcribed") or []
        if pages:
            what += (f"; page(s) {', '.join(str(p) for p in pages)} transcribed by "
                     f"{m.paper['reader'].get('model')}")
        console.print(plain(f"Paper read from {what}."), soft_wrap=True)
    for f in m.files_with("failed"):
        console.print(styled(("not written", "red"), f" {f}: {m.files[f].error}"),
                      soft_wrap=True)
    if m.status == "planned":
        console.print(plain(f"Edit the plan in {out / 'artifacts'} if you like; then "
                            f"`papercoder run {paper} -o {out}` continues from it."),
                      soft_wrap=True)
    return EXIT_STATUS.get(m.status, 1)


def run(
    paper: str = typer.Argument(..., help="The paper: a path (Markdown, text, PDF, LaTeX, "
                                "S2ORC JSON) or an arXiv id/URL."),
    model: str | None = typer.Option(None, "-m", "--model", help="provider/model, alias, "
                                     "local[:PATH.gguf] or scripted:PATH. Default: a hosted "
                                     "model if a key is set, else the embedded offline model."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Output folder "
                                    "(default out/<paper name>)."),
    refine: bool = typer.Option(False, "--refine", help="Verify and refine each planning "
                                "artifact and analysis."),
    context: str = typer.Option("scoped", "--context", help=CONTEXT_HELP),
    concurrency: int = typer.Option(8, "--concurrency", help=CONCURRENCY_HELP),
    max_cost: float | None = typer.Option(None, "--max-cost", help=MAX_COST_HELP),
    from_stage: str | None = typer.Option(None, "--from", help=FROM_HELP),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint."),
    context_window: int | None = typer.Option(None, "--context-window",
                                              help=CONTEXT_WINDOW_HELP),
    no_cache: bool = typer.Option(False, "--no-cache", help="Ignore cached answers."),
    keep_references: bool = typer.Option(False, "--keep-references", help=REFERENCES_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    prompts: Path | None = typer.Option(None, "--prompts", help=PROMPTS_HELP),
    timeout: float = typer.Option(600.0, "--timeout", help=TIMEOUT_HELP),
    max_retries: int = typer.Option(5, "--max-retries", min=0, max=20, help=RETRIES_HELP),
    max_retry_wait: float | None = typer.Option(None, "--max-retry-wait", min=0,
                                                help=RETRY_WAIT_HELP),
    execute: bool = typer.Option(False, "--execute", help="After coding, run the smoke "
                                 "commands in a sandbox and repair what fails (see verify)."),
    debug_rounds: int = typer.Option(4, "--debug-rounds", min=0, max=50,
                                     help="Repair rounds at most (with --execute)."),
    grace: float = typer.Option(10.0, "--grace", min=0, help=GRACE_HELP),
    no_source: bool = typer.Option(False, "--no-source", help=NO_SOURCE_HELP),
    pdf_reader: str = typer.Option("default", "--pdf-reader", help=PDF_READER_HELP),
    reader_model: str | None = typer.Option(None, "--reader-model", help=READER_MODEL_HELP),
    no_contract: bool = typer.Option(False, "--no-contract", help=NO_CONTRACT_HELP),
    audit_rounds: int = typer.Option(1, "--audit-rounds", min=0, max=10,
                                     help=AUDIT_ROUNDS_HELP),
    addendum: Path | None = typer.Option(None, "--addendum", help=ADDENDUM_HELP),
) -> None:
    """Turn a paper into a repository: plan, analyze, code (then verify)."""
    _run(paper, model, out, "coding", refine=refine, context=context, concurrency=concurrency,
         max_cost=max_cost, from_stage=from_stage, base_url=base_url,
         context_window=context_window, use_cache=not no_cache, quiet=quiet,
         prompts_dir=prompts, timeout=timeout, keep_references=keep_references, grace=grace,
         max_retries=max_retries, max_retry_wait=max_retry_wait, prefer_source=not no_source,
         pdf_reader=pdf_reader, reader_model=reader_model, no_contract=no_contract,
         audit_rounds=audit_rounds, addendum=_addendum(addendum),
         verify={"execute": execute, "debug_rounds": debug_rounds, "python": None,
                 "install": True, "allow_network": False, "timeout": 300.0})


def plan(
    paper: str = typer.Argument(..., help="The paper: a path (Markdown, text, PDF, LaTeX, "
                                "S2ORC JSON) or an arXiv id/URL."),
    model: str | None = typer.Option(None, "-m", "--model", help="provider/model, alias, "
                                     "local[:PATH.gguf] or scripted:PATH."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Output folder "
                                    "(default out/<paper name>)."),
    refine: bool = typer.Option(False, "--refine", help="Verify and refine each artifact."),
    context: str = typer.Option("scoped", "--context", help=CONTEXT_HELP + " Coding only; "
                                "checked and recorded in run.json."),
    concurrency: int = typer.Option(4, "--concurrency", help=CONCURRENCY_HELP),
    max_cost: float | None = typer.Option(None, "--max-cost", help=MAX_COST_HELP),
    from_stage: str | None = typer.Option(None, "--from", help=FROM_HELP),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint."),
    context_window: int | None = typer.Option(None, "--context-window",
                                              help=CONTEXT_WINDOW_HELP),
    no_cache: bool = typer.Option(False, "--no-cache", help="Ignore cached answers."),
    keep_references: bool = typer.Option(False, "--keep-references", help=REFERENCES_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    prompts: Path | None = typer.Option(None, "--prompts", help=PROMPTS_HELP),
    timeout: float = typer.Option(600.0, "--timeout", help=TIMEOUT_HELP),
    max_retries: int = typer.Option(5, "--max-retries", min=0, max=20, help=RETRIES_HELP),
    max_retry_wait: float | None = typer.Option(None, "--max-retry-wait", min=0,
                                                help=RETRY_WAIT_HELP),
    grace: float = typer.Option(10.0, "--grace", min=0, help=GRACE_HELP),
    no_source: bool = typer.Option(False, "--no-source", help=NO_SOURCE_HELP),
    pdf_reader: str = typer.Option("default", "--pdf-reader", help=PDF_READER_HELP),
    reader_model: str | None = typer.Option(None, "--reader-model", help=READER_MODEL_HELP),
    no_contract: bool = typer.Option(False, "--no-contract", help=NO_CONTRACT_HELP),
    addendum: Path | None = typer.Option(None, "--addendum", help=ADDENDUM_HELP),
) -> None:
    """Run the planning stage only; edit the artifacts, then `papercoder run` continues."""
    _run(paper, model, out, "planning", refine=refine, context=context,
         concurrency=concurrency, max_cost=max_cost, from_stage=from_stage, base_url=base_url,
         context_window=context_window, use_cache=not no_cache, quiet=quiet,
         prompts_dir=prompts, timeout=timeout, keep_references=keep_references, grace=grace,
         max_retries=max_retries, max_retry_wait=max_retry_wait, prefer_source=not no_source,
         pdf_reader=pdf_reader, reader_model=reader_model, no_contract=no_contract,
         addendum=_addendum(addendum))


def _addendum(path: Path | None) -> Path | None:
    """--addendum: a readable file, or one sentence and exit status 2."""
    if path is not None and not path.is_file():
        raise ConfigError(f"The addendum {path} is not a file; check the --addendum path.")
    return path
