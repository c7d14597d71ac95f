"""`papercoder batch` and `papercoder bench paperbench`: thin layers over the library."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.text import Text

from papercoder.batch.summary import plain
from papercoder.console import console, err_console
from papercoder.errors import ConfigError

EVAL_MODES = ("reference-free", "reference-based", "rubric")
LOCAL = "local"
"""``--ray`` without an address: ``$RAY_ADDRESS`` when set, else a new local instance."""
_ADDRESS = re.compile(r"^(auto|local|[a-z][a-z0-9+.-]*://\S+|\[[0-9a-fA-F:.]+\]:\d+|"
                      r"[\w.-]+:\d+)$")


def optional_ray_value(argv: list[str]) -> list[str]:
    """``--ray [ADDRESS]``: the option parser wants a value, so a bare ``--ray`` (last, before
    another option, or before a word that is not a Ray address, such as INPUT) becomes
    ``--ray=local``. Only in the ``batch`` and ``bench paperbench`` commands, before ``--``."""
    out = list(argv)
    words = [a for a in out if not a.startswith("-")]
    if not words or not ({"batch", "paperbench"} & set(words[:2])):
        return out
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if arg != "--ray":
            continue
        nxt = out[i + 1] if i + 1 < len(out) else None
        if nxt is None or nxt == "--" or nxt.startswith("-") or not _ADDRESS.match(nxt):
            out[i] = f"--ray={LOCAL}"
    return out


def _ray_target(ray: str | None, ray_address: str | None) -> tuple[bool, str | None]:
    """(use Ray, the address to join: None for $RAY_ADDRESS or a new local instance)."""
    chosen = ray_address or ray
    if chosen is None:
        return False, None
    return True, None if chosen == LOCAL else chosen


class Board:
    """One progress display for every paper: a row each (stage, files done, cost) and a row
    for the whole batch. Every field is shown as plain text."""

    def __init__(self, slugs: list[str], quiet: bool = False) -> None:
        self.quiet = quiet
        self._bar: RichProgress | None = None
        self._tasks: dict[str, Any] = {}
        self._slugs = slugs
        self._overall: Any = None
        self._finished: set[str] = set()

    def __enter__(self) -> Board:
        if self.quiet:
            return self
        self._bar = RichProgress(
            TextColumn("{task.fields[slug]}", markup=False),
            TextColumn("{task.fields[stage]}", markup=False), BarColumn(bar_width=20),
            MofNCompleteColumn(), TextColumn("{task.fields[current]}", markup=False),
            TextColumn("{task.fields[info]}", markup=False), TimeElapsedColumn(),
            console=err_console, transient=False)
        self._overall = self._bar.add_task("all", total=len(self._slugs), slug="all papers",
                                           stage="", current="", info="")
        for s in self._slugs:
            self._tasks[s] = self._bar.add_task(s, total=None, slug=plain(s)[:40],
                                                stage="waiting", current="", info="",
                                                start=False)
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def emit(self, slug: str, ev: dict[str, Any]) -> None:
        if self._bar is None or slug not in self._tasks:
            return
        task = self._tasks[slug]
        upd: dict[str, Any] = {}
        if "stage" in ev:
            upd["stage"] = plain(ev["stage"])[:24]
            self._bar.start_task(task)
        if "total" in ev:
            upd["total"] = ev["total"]
        if "done" in ev:
            upd["completed"] = ev["done"]
        if "current" in ev:
            upd["current"] = plain(ev["current"])[:40]
        if "cost" in ev:
            upd["info"] = plain(f"{ev['cost']} · {ev.get('calls', 0)} calls "
                                f"({ev.get('cache_hits', 0)} cached)")
        self._bar.update(task, **upd)
        status = ev.get("status")
        if status and status != "running" and slug not in self._finished:
            self._finished.add(slug)
            self._bar.update(self._overall, completed=len(self._finished))


def _print_results(rows: list[dict[str, Any]], outdir: Path, title: str) -> None:
    from papercoder.batch.summary import failures, table

    console.print(table(rows, title=title))
    for line in failures(rows):
        console.print(line, soft_wrap=True)
    console.print(Text(f"Summary: {outdir / 'summary.json'} and {outdir / 'summary.csv'}"),
                  soft_wrap=True)


def _eval_options(eval_mode: str | None, judge: str | None) -> None:
    if eval_mode is not None and eval_mode not in EVAL_MODES:
        raise ConfigError(f"--eval must be one of {', '.join(EVAL_MODES)}, not '{eval_mode}'.")


def _inputs_for_eval(eval_mode: str | None, items: list[Any]) -> None:
    """Every paper has what ``--eval`` grades with, or one sentence before any call."""
    from papercoder.batch.stages import missing_for_mode

    lacking = [(i.slug, missing_for_mode(eval_mode, i.rubric, i.reference)) for i in items]
    lacking = [(s, what) for s, what in lacking if what]
    if lacking:
        names = ", ".join(s for s, _ in lacking[:5]) + (" ..." if len(lacking) > 5 else "")
        raise ConfigError(f"--eval {eval_mode} needs {lacking[0][1]} in each paper's folder, "
                          f"and {len(lacking)} paper(s) have none ({names}); add it or "
                          "choose another --eval mode.")


def batch(
    input_path: str = typer.Argument(..., metavar="INPUT", help="A folder of papers, a folder "
                                     "of PaperBench-style folders (paper.pdf|md|tex, optional "
                                     "rubric.json, addendum.md), or a text file listing "
                                     "papers and arXiv ids."),
    model: str = typer.Option(..., "-m", "--model", help="The model for every paper."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder: one folder per paper "
                             "(each with its own store), summary.json, summary.csv."),
    workers: int = typer.Option(2, "--workers", min=1, max=256, help="Papers at once."),
    concurrency: int = typer.Option(8, "--concurrency", min=1, max=64,
                                    help="Calls in flight at once within one paper."),
    execute: bool = typer.Option(False, "--execute", help="Verify each repository: static "
                                 "checks, a sandboxed smoke run, the debug loop."),
    eval_mode: str | None = typer.Option(None, "--eval", help="Grade each repository: "
                                         "reference-free, reference-based or rubric (the "
                                         "paper folder's rubric.json)."),
    judge: str | None = typer.Option(None, "--judge", help="Judge model for --eval "
                                     "(default: the generation model)."),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint."),
    rpm: float | None = typer.Option(None, "--rpm", help="Requests per minute for the whole "
                                     "batch (default: the model-settings table)."),
    tpm: float | None = typer.Option(None, "--tpm", help="Tokens per minute for the whole "
                                     "batch (default: the model-settings table)."),
    max_cost: float | None = typer.Option(None, "--max-cost", help="Budget per paper (USD)."),
    ray: str | None = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Run each paper "
                                   "as a Ray task: alone, on $RAY_ADDRESS or a new local "
                                   "instance; or on ADDRESS (auto, HOST:PORT, ray://...)."),
    ray_address: str | None = typer.Option(None, "--ray-address", hidden=True,
                                           help="The same as --ray ADDRESS."),
    gpus_per_verify: float = typer.Option(0.0, "--gpus-per-verify", min=0.0,
                                          help="GPUs each Ray task requests for --execute."),
    timeout: float = typer.Option(600.0, "--timeout", help="Seconds per model call."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    pdf_reader: str = typer.Option("default", "--pdf-reader", help="default, model or "
                                   "model-all: a vision model transcribes PDF pages (see run)."),
    reader_model: str | None = typer.Option(None, "--reader-model", help="The vision model "
                                            "for --pdf-reader model (default: --model)."),
) -> None:
    """Run many papers: resumable, rate-limited, one progress display, a summary table."""
    from papercoder.batch.inputs import discover
    from papercoder.batch.runner import BatchOptions, run_batch
    from papercoder.ingest import check_reader

    _eval_options(eval_mode, judge)
    check_reader(pdf_reader, reader_model)
    items = discover(input_path)
    _inputs_for_eval(eval_mode, items)
    opts = BatchOptions(model=model, out=out, workers=workers, concurrency=concurrency,
                        base_url=base_url, timeout=timeout, max_cost=max_cost, rpm=rpm, tpm=tpm,
                        execute=execute, eval_mode=eval_mode, judge=judge,
                        gpus_per_verify=gpus_per_verify, quiet=quiet, pdf_reader=pdf_reader,
                        reader_model=reader_model)
    use_ray, address = _ray_target(ray, ray_address)
    with Board([i.slug for i in items], quiet) as board:
        rows = asyncio.run(run_batch(items, opts, emit=board.emit, use_ray=use_ray,
                                     ray_address=address))
    _print_results(rows, out, f"Batch: {len(rows)} papers with {plain(model)}")
    if rows and all(r["status"] in ("failed", "error") for r in rows):
        raise typer.Exit(1)


def paperbench(
    papers_dir: Path = typer.Argument(..., help="PaperBench-style folders: paper.pdf|md|tex, "
                                      "rubric.json, optional addendum.md."),
    model: str = typer.Option(..., "-m", "--model", help="The model that writes the code."),
    judge: str = typer.Option(..., "--judge", help="The model that grades the rubrics."),
    out: Path = typer.Option(Path("out/paperbench"), "-o", "--out", help="Output folder."),
    seeds: int = typer.Option(3, "--seeds", min=1, max=20, help="Independent runs per paper."),
    execute: bool = typer.Option(False, "--execute", help="Verify each repository first."),
    all_categories: bool = typer.Option(False, "--all-categories", help="Grade Code Execution "
                                        "and Result Analysis leaves too (default Code-Dev)."),
    workers: int = typer.Option(2, "--workers", min=1, max=256, help="Runs at once."),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint."),
    rpm: float | None = typer.Option(None, "--rpm", help="Requests per minute, all runs."),
    tpm: float | None = typer.Option(None, "--tpm", help="Tokens per minute, all runs."),
    ray: str | None = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Run each paper "
                                   "and seed as a Ray task (as in `batch`)."),
    ray_address: str | None = typer.Option(None, "--ray-address", hidden=True,
                                           help="The same as --ray ADDRESS."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """PaperBench: generate, optionally verify, grade on each rubric; the published table."""
    from papercoder.batch.paperbench import bench_items, render_report, run_paperbench
    from papercoder.batch.runner import BatchOptions

    items = bench_items(papers_dir, seeds)
    opts = BatchOptions(model=model, out=out, workers=workers, base_url=base_url, rpm=rpm,
                        tpm=tpm, execute=execute, eval_mode="rubric", judge=judge, quiet=quiet,
                        eval_options={"all_categories": all_categories})
    use_ray, address = _ray_target(ray, ray_address)
    with Board([i.slug for i in items], quiet) as board:
        report = asyncio.run(run_paperbench(items, opts, emit=board.emit, use_ray=use_ray,
                                            ray_address=address))
    render_report(report, console)
