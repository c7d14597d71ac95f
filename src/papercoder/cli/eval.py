"""`papercoder eval`: score a repository against its paper, a reference, or a rubric."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from papercoder.console import console, err_console
from papercoder.errors import BudgetExceeded, ConfigError
from papercoder.textsafe import safe as plain

if TYPE_CHECKING:
    from papercoder.evaluate.estimate import Estimate


def _confirm_factory(yes: bool, max_cost: float | None) -> Callable[[Estimate], bool]:

    def confirm(est: Estimate) -> bool:
        err_console.print(Text("Estimate: " + est.describe()), soft_wrap=True)
        if est.usd is not None and max_cost is not None and est.usd > max_cost:
            err_console.print(Text(f"The estimate is above --max-cost ${max_cost:.2f}; the "
                                   "grading will stop when the budget is reached (answers so "
                                   "far are cached)."), soft_wrap=True)
        if yes or est.usd == 0:
            return True
        if not sys.stdin.isatty():
            raise ConfigError("This evaluation spends money and there is no terminal to "
                              "confirm it; pass --yes to go ahead.")
        return typer.confirm("Go ahead?", default=False, err=True)

    return confirm


LEFT_OUT_LINES = 15
"""Left-out entries printed; the rest are in summary.json and report.md."""


def print_left_out(left: list[Any]) -> None:
    """What the judge did not see, and why (every entry is in summary.json too)."""
    rows = [x for x in left if isinstance(x, dict)]
    if not rows:
        return
    console.print(Text(f"Not shown to the judge ({len(rows)}):"))
    for x in rows[:LEFT_OUT_LINES]:
        console.print(Text(plain(f"  {x.get('path', '?')}: {x.get('reason', '')}")),
                      soft_wrap=True)
    if len(rows) > LEFT_OUT_LINES:
        console.print(Text(f"  ... and {len(rows) - LEFT_OUT_LINES} more, listed in "
                           "summary.json and report.md"))


def print_summary(summary: dict[str, Any]) -> None:
    scale = "0-1" if summary["mode"] == "rubric" else "1-5"
    t = Table(title=Text(plain(f"Evaluation ({summary['mode']}, judge {summary['judge']})")))
    t.add_column("measure")
    t.add_column("value", overflow="fold")
    score = summary.get("score")
    t.add_row("score", Text("none" if score is None else f"{score:.3f} ({scale})"))
    if summary.get("guard"):
        t.add_row("guard", Text(plain(f"{summary['guard']}: no judge call was made")))
    if summary["mode"] == "rubric":
        for cat, s in (summary.get("per_category") or {}).items():
            t.add_row(Text(plain(cat)), Text(f"{s:.3f}"))
        t.add_row("leaves", Text(f"{summary['leaves']} ({summary['invalid_leaves']} invalid, "
                                 f"scored 0)"))
    else:
        sp = summary["spread"]
        n = summary["valid_samples"]
        t.add_row("valid samples", Text(str(n)))
        if n:
            t.add_row("samples", Text(", ".join(f"{x:g}" for x in summary["samples"])))
            t.add_row("spread", Text(f"std {sp['std']:.2f}, min {sp['min']:g}, "
                                     f"max {sp['max']:g}"))
    ex = summary.get("executability")
    if ex:
        t.add_row("executability", Text(plain(
            f"passed={ex.get('passed')}, {ex.get('percent', '?')}% lines changed "
            f"({ex.get('lines_changed', '?')}/{ex.get('total_lines', '?')}), "
            f"{ex.get('rounds', '?')} debug rounds")))
    t.add_row("files shown / left out", Text(f"{len(summary['files_shown'])} / "
                                             f"{len(summary['files_left_out'])}"))
    cost = summary.get("cost_usd")
    t.add_row("judge calls", Text(f"{summary.get('calls', 0)} "
                                  f"({summary.get('cache_hits', 0)} from the cache)"))
    t.add_row("cost", Text("unknown" if cost is None else f"${cost:.4f}"))
    t.add_row("results", Text(plain(summary.get("out", ""))))
    console.print(t)
    print_left_out(summary.get("files_left_out") or [])
    if summary.get("error"):
        err_console.print(Text(plain(summary["error"]), style="bold red"), soft_wrap=True)


def eval_command(
    target: Path = typer.Argument(..., help="An output folder (its repo/ is evaluated) or "
                                  "any repository folder."),
    paper: str = typer.Option(..., "--paper", help="The paper, in any format `ingest` reads."),
    model: str = typer.Option(..., "-m", "--model", help="The judge: provider/model, alias, "
                              "local[:PATH] or scripted:PATH."),
    ref: Path | None = typer.Option(None, "--ref", help="The authors' repository: "
                                    "reference-based scoring."),
    rubric: Path | None = typer.Option(None, "--rubric", help="A PaperBench rubric.json, or "
                                       "'auto' (the paper contract as the rubric): rubric "
                                       "grading."),
    addendum: Path | None = typer.Option(None, "--addendum", help="The authors' "
                                         "clarifications (PaperBench addendum.md)."),
    all_categories: bool = typer.Option(False, "--all-categories", help="Rubric: also grade "
                                        "Code Execution and Result Analysis leaves."),
    log: Path | None = typer.Option(None, "--log", help="Reproduction log for those leaves "
                                    "(default: verify's smoke-run logs)."),
    n: int = typer.Option(8, "-n", "--samples", min=1, max=64, help="Judge samples "
                          "(reference-free/-based)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before spending."),
    max_cost: float | None = typer.Option(None, "--max-cost", help="Budget in USD."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, max=64,
                                    help="Judge calls in flight at once."),
    out: Path | None = typer.Option(None, "--out", help="Results folder (default "
                                    "TARGET/eval/<mode>-<judge>/)."),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint."),
    context_window: int | None = typer.Option(None, "--context-window",
                                              help="Override the judge's context window."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Ignore cached answers."),
    timeout: float = typer.Option(600.0, "--timeout", min=0.01, help="Seconds per call."),
) -> None:
    """Score a repository against its paper, a reference repository, or a rubric."""
    from papercoder.cli.common import open_store
    from papercoder.evaluate import EvalOptions, evaluate_target
    from papercoder.models import get_model
    from papercoder.paper import load_paper

    if ref is not None and rubric is not None:
        raise ConfigError("Give either --ref (reference-based scoring) or --rubric (rubric "
                          "grading), not both.")
    if (all_categories or log is not None) and rubric is None:
        raise ConfigError("--all-categories and --log apply to rubric grading; add --rubric.")
    if not target.is_dir():
        raise ConfigError(f"The target {target} is not a folder; give an output folder or a "
                          "repository folder.")
    p = load_paper(paper)
    judge = get_model(model, base_url=base_url, timeout=timeout)
    opts = EvalOptions(ref=ref, rubric=rubric, addendum=addendum,
                       all_categories=all_categories, log=log, samples=n,
                       concurrency=concurrency, max_cost=max_cost, out=out,
                       context_window=context_window, use_cache=not no_cache,
                       confirm=_confirm_factory(yes, max_cost))
    store = open_store()
    what = "grading leaves" if rubric is not None else "judge samples"
    progress = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err_console, transient=True)
    task = progress.add_task("grading", total=None)

    def tick(done: int, total: int) -> None:
        if not err_console.is_terminal:  # no live display there: one line per answer
            err_console.print(f"{what}: {done}/{total}", highlight=False)
            return
        if not progress.live.is_started:  # started after the confirmation question
            progress.start()
        progress.update(task, completed=done, total=total)

    opts.on_progress = tick
    try:
        summary = asyncio.run(evaluate_target(target, paper=p, judge=judge, store=store,
                                              options=opts))
    except BudgetExceeded:
        err_console.print("Answers so far are cached; rerun with a higher --max-cost to "
                          "finish without paying for them again.")
        raise
    finally:
        progress.stop()
    print_summary(summary)
    if summary.get("score") is None:
        raise typer.Exit(1)
