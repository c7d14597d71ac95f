"""The command line: a thin layer over the library API."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.text import Text

from papercoder.cli.common import CliSettings, cells, db_path, guarded, open_store, use_settings
from papercoder.config import config_path, load_user_config
from papercoder.console import console, plain, safe, styled
from papercoder.errors import ConfigError, PapercoderError

if TYPE_CHECKING:
    from papercoder.models.base import Message

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Turn a machine-learning paper into a runnable code repository.",
)

@app.callback()
def _root(
    db: Path | None = typer.Option(
        None, "--db", help="Run store / cache database (default: $PAPERCODER_DB or "
        "~/.local/share/papercoder/papercoder.db).", envvar=None),
) -> None:
    use_settings(CliSettings(db=db))


# -- models -------------------------------------------------------------------------------
@app.command()
@guarded
def models() -> None:
    """Show the backends, aliases, and which provider keys were found."""
    from papercoder.models import PROVIDERS, default_model_name

    t = Table(title="Backends")
    t.add_column("provider")
    t.add_column("select with")
    t.add_column("key / url")
    env = os.environ
    t.add_row(*cells("openai", "openai/MODEL [--base-url URL]",
                     ("OPENAI_API_KEY found" if env.get("OPENAI_API_KEY")
                      else "OPENAI_API_KEY not set")
                     + (f"; OPENAI_BASE_URL={env['OPENAI_BASE_URL']}"
                        if env.get("OPENAI_BASE_URL") else "")))
    t.add_row(*cells("anthropic", "anthropic/MODEL",
                     "ANTHROPIC_API_KEY found" if env.get("ANTHROPIC_API_KEY")
                     else "ANTHROPIC_API_KEY not set"))
    t.add_row(*cells("local", "local[:PATH.gguf]",
                     "in-process llama.cpp (extra: papercoder[local])"))
    t.add_row(*cells("scripted", "scripted:PATH", "answers from a file (tests, demos)"))
    assert set(PROVIDERS) == {"openai", "anthropic", "local", "scripted"}
    console.print(t)
    cfg = load_user_config()
    if cfg.aliases:
        a = Table(title=plain(f"Aliases ({config_path()})"))
        a.add_column("alias")
        a.add_column("model")
        a.add_column("base url")
        for k, v in cfg.aliases.items():
            a.add_row(*cells(k, v.model, v.base_url or ""))
        console.print(a)
    else:
        console.print(plain(f"No aliases (define them in {config_path()})."), soft_wrap=True)
    name, offline = default_model_name()
    console.print(plain(f"Default model: {name}" + (" (embedded offline demo model)"
                                                     if offline else "")), soft_wrap=True)
    console.print(plain(f"Run store: {db_path()}"), soft_wrap=True)


# -- prompt -------------------------------------------------------------------------------
@app.command()
@guarded
def prompt(
    text: str = typer.Argument(..., help="The prompt."),
    model: str = typer.Option(..., "-m", "--model", help="provider/model, alias, local:PATH or "
                              "scripted:PATH."),
    schema: Path | None = typer.Option(None, "--schema", help="A JSON Schema file the answer "
                                          "must validate against."),
    system: str | None = typer.Option(None, "--system", help="A system prompt."),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint."),
    temperature: float | None = typer.Option(None, "--temperature"),
    max_tokens: int | None = typer.Option(None, "--max-tokens"),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not answer from the cache."),
    max_cost: float | None = typer.Option(None, "--max-cost", help="Budget in USD."),
    timeout: float = typer.Option(600.0, "--timeout", min=0.01,
                                  help="Seconds to wait for each provider request."),
    max_retries: int = typer.Option(5, "--max-retries", min=0,
                                    help="Retries on rate limits, server errors, timeouts."),
) -> None:
    """Make one call, to check a backend."""
    from papercoder.llm import Caller
    from papercoder.models import get_model

    schema_obj = None
    if schema is not None:
        try:
            schema_obj = json.loads(schema.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:
            raise ConfigError(f"The schema file {schema} is not readable JSON ({e}).") from None
    m = get_model(model, base_url=base_url, timeout=timeout, max_retries=max_retries)
    store = open_store()
    run_id = store.create_run("prompt", model=m.name, settings={"base_url": base_url})
    caller = Caller(m, store, run_id, use_cache=not no_cache, max_cost=max_cost)
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": text})
    try:
        c = asyncio.run(caller.call(messages, stage="prompt", schema=schema_obj,
                                    temperature=temperature, max_tokens=max_tokens))
    except PapercoderError:
        store.set_run_status(run_id, "failed")
        raise
    store.set_run_status(run_id, "done")
    if schema_obj is not None:
        console.print_json(json.dumps(c.parsed), ensure_ascii=True)
    else:
        console.print(plain(c.text), soft_wrap=True)
    cost = "cached, $0" if c.cached else ("cost unknown" if c.cost is None else f"${c.cost:.6f}")
    console.print(styled((
        f"{m.name} · {c.usage.prompt_tokens} in ({c.usage.cached_prompt_tokens} cached) / "
        f"{c.usage.completion_tokens} out · {cost} · {c.latency:.2f}s · run {run_id}", "dim")),
        soft_wrap=True)


# -- runs / logs / cost ---------------------------------------------------------------------
def _resolve_run(store: Any, run: str | None) -> str:
    if run is None:
        runs = store.runs(limit=1)
        if not runs:
            raise ConfigError(f"The run store {db_path()} holds no runs yet.")
        return runs[0].id
    from papercoder.outdir.record import read_record

    p = Path(run)
    record, damaged = read_record(p) if p.is_dir() else (None, [])
    if record is not None or damaged:
        if record is None or not record.run_id:
            raise ConfigError(f"{p / 'run.json'} is damaged; give the run id instead.")
        return record.run_id
    rec = store.get_run(run)
    if rec is None:
        raise ConfigError(f"No run '{run}' in {db_path()}; `papercoder runs` lists them.")
    return rec.id


def _money(x: float | None) -> str:
    return "unknown" if x is None else f"${x:.4f}"


def _line(*parts: tuple[str, str] | str) -> Text:
    """One console line, cut with an ellipsis at the console's width (never wrapped)."""
    inert = [(safe(p[0], newlines=False), p[1]) if isinstance(p, tuple)
             else safe(p, newlines=False) for p in parts]
    t = Text.assemble(*inert, no_wrap=True, overflow="ellipsis")
    t.truncate(console.width, overflow="ellipsis")
    return t


def _left_cut(path: str, room: int) -> str:
    """A path shortened from the left (its end says most), with an ellipsis."""
    room = max(room, 12)
    return path if len(path) <= room else "…" + path[-(room - 1):]


def _model_and_folder(model: str, folder: str, room: int) -> tuple[str, str]:
    """A run's model and output folder in ``room`` columns: the folder keeps at least half
    (a long model path such as a .gguf file is cut first), so runs can be told apart."""
    if len(model) + len(folder) <= room:
        return model, folder
    keep = max(room - len(folder), room // 2, 12)
    if len(model) > keep:  # its start (provider) and its end (file) say most
        head = 2 * (keep - 1) // 3
        model = model[:head] + "…" + model[len(model) - (keep - 1 - head):]
    return model, _left_cut(folder, room - len(model))


def _title(text: str) -> Text:
    return _line((text, "bold"))


@app.command()
@guarded
def runs(limit: int = typer.Option(30, "--limit", "-n")) -> None:
    """List the runs in the store."""
    import datetime as dt

    store = open_store()
    console.print(_title(f"Runs in {db_path()}"))
    records = store.runs(limit)
    if not records:
        console.print("No runs yet.")
    for r in records:  # two lines per run: fits 80 columns whatever the paths
        rows = store.cost_summary(r.id)
        total = None if any(x["cost"] is None for x in rows) else sum(x["cost"] or 0 for x in rows)
        when = dt.datetime.fromtimestamp(r.created).strftime("%m-%d %H:%M")
        console.print(_line((f"{r.id:<21}", "bold"), f"{when}  {r.command:<7} ",
                            (f"{r.status:<11}", _STATUS_STYLE.get(r.status, "")),
                            f" {_money(total)}"))
        model, where = _model_and_folder(r.model or "-", r.out_dir or "-", console.width - 5)
        console.print(_line("  ", (model, "cyan"), " · ", where))


_STATUS_STYLE = {"done": "green", "ok": "green", "planned": "green", "partial": "yellow",
                 "stopped": "yellow", "failed": "red", "error": "red", "interrupted": "yellow",
                 "cut off": "yellow", "rejected": "red"}


@app.command()
@guarded
def logs(
    run: str | None = typer.Argument(None, help="Run id (or prefix) or output folder; "
                                        "default: the newest run."),
    stage: str | None = typer.Option(None, "--stage", help="Only this stage."),
    file: str | None = typer.Option(None, "--file", help="Only this file."),
    full: bool = typer.Option(False, "--full", help="Print whole requests and responses."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines."),
) -> None:
    """Show the logged model exchanges of a run: two lines each (--full for everything)."""
    store = open_store()
    rid = _resolve_run(store, run)
    if stage is not None:
        store.check_stage(rid, stage)
    rows = store.exchanges(rid, stage=stage, file=file)
    if as_json:  # JSON Lines: one exchange per line, exactly as json.loads reads it
        from papercoder.store.db import exchange_json

        for x in rows:
            sys.stdout.write(exchange_json(x) + "\n")
        sys.stdout.flush()
        return
    if full:
        for x in rows:
            console.rule(plain(f"#{x.id} {x.stage} {x.file or ''} · {x.model} · {x.shown_status}",
                               newlines=False))
            if isinstance(x.request, dict):
                for m in x.request.get("messages", []):
                    if isinstance(m, dict):
                        console.print(styled((f"{m.get('role')}:", "bold"), " ",
                                             m.get("content")), soft_wrap=True)
            console.print(styled(("response", "bold"), ":"))
            console.print(plain(x.response or x.error or ""), soft_wrap=True)
        return
    models = sorted({x.model for x in rows})
    one_model = len(models) == 1
    console.print(_title(f"Exchanges of run {rid}" + (f" ({models[0]})" if one_model else "")))
    console.print(_line(("#id stage file · status · tokens in (cached) → out · $ · seconds",
                         "dim")))
    for x in rows:
        preview = " ".join((x.error or x.response or (
            f"(cache hit of #{x.cached_from})" if x.cached_from else "")).split())
        where = f"{x.stage or '-'}" + (f" {x.file}" if x.file else "")
        cost = f" · {_money(x.cost)}" if x.status != "error" else ""
        secs = f" · {x.latency:.1f}s" if x.latency else ""
        console.print(_line((f"#{x.id} ", "bold"), where, " · ",
                            (x.shown_status, _STATUS_STYLE.get(
                                x.shown_status.split(":")[0].split(" (")[0], "")),
                            *(() if one_model else (" · ", (str(x.model), "cyan"))),
                            f" · {x.prompt_tokens} ({x.cached_prompt_tokens}) → "
                            f"{x.completion_tokens}{cost}{secs}"))
        console.print(_line("    ", (preview or "(empty)", "dim" if not preview else "")))


@app.command()
@guarded
def cost(run: str | None = typer.Argument(None, help="Run id (or prefix) or output folder.")) \
        -> None:
    """Tokens and dollars per stage and model for a run."""
    store = open_store()
    rid = _resolve_run(store, run)
    rows = store.cost_summary(rid)
    models = sorted({r["model"] for r in rows})
    one_model = len(models) == 1
    console.print(_title(f"Cost of run {rid}"))
    if one_model:
        console.print(_line("model: ", (models[0], "cyan")))
    t = Table(box=None, pad_edge=False, padding=(0, 1))
    cols = ["stage", "calls", "hits", "in", "cached", "written", "out", "$"]
    for col in cols:
        numeric = col != "stage"
        t.add_column(col, justify="right" if numeric else "left", no_wrap=True,
                     min_width=len(col), overflow="ellipsis",
                     max_width=None if numeric else 18)
    total: float | None = 0.0
    for r in rows:
        label = (r["stage"] or "") if one_model else f"{r['stage'] or ''} {r['model']}"
        t.add_row(*cells(label, str(r["calls"]), str(r["cache_hits"] or 0),
                         _k(r["prompt_tokens"]), _k(r["cached_prompt_tokens"]),
                         _k(r["cache_write_tokens"]), _k(r["completion_tokens"]),
                         _money(r["cost"])))
        total = None if (total is None or r["cost"] is None) else total + r["cost"]
    t.add_section()
    t.add_row("total", str(sum(r["calls"] for r in rows)),
              str(sum(r["cache_hits"] or 0 for r in rows)),
              _k(sum(r["prompt_tokens"] for r in rows)),
              _k(sum(r["cached_prompt_tokens"] for r in rows)),
              _k(sum(r["cache_write_tokens"] for r in rows)),
              _k(sum(r["completion_tokens"] for r in rows)), _money(total))
    console.print(t)
    console.print(Text("in: prompt tokens; cached: served from the provider's prompt cache; "
                       "written: written to it; hits: answered from papercoder's cache",
                       style="dim"))


def _k(n: int) -> str:
    """A token count that stays narrow: exact below a million, else in millions."""
    return str(n) if n < 1_000_000 else f"{n / 1e6:.1f}M"


def _register() -> None:
    """Commands that live next to the stage they drive."""
    from papercoder.cli.paper import ingest
    from papercoder.cli.run import plan, run

    app.command()(guarded(run))
    app.command()(guarded(plan))
    app.command()(guarded(ingest))
    from papercoder.cli.report import report

    app.command()(guarded(report))

    from papercoder.cli.eval import eval_command

    app.command("eval")(guarded(eval_command))

    from papercoder.cli.batch import batch, paperbench

    app.command()(guarded(batch))
    bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks: PaperBench.")
    bench_app.command("paperbench")(guarded(paperbench))
    app.add_typer(bench_app, name="bench")


_register()


def _register_verify() -> None:
    from papercoder.cli.verify import verify

    app.command()(guarded(verify))


_register_verify()


def main() -> None:
    import sys

    from papercoder.cli.batch import optional_ray_value  # `--ray [ADDRESS]`

    app(args=optional_ray_value(sys.argv[1:]))


if __name__ == "__main__":
    main()
