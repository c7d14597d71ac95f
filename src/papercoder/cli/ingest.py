"""`papercoder ingest --pdf-reader model`: transcribe pages outside a run (logged as a run of
its own, command ``ingest``, so `papercoder cost` shows what the pages cost)."""

from __future__ import annotations

import asyncio
from typing import Any

from papercoder.paper import Paper


def load_with_model(paper: str, *, pdf_reader: str, reader_model: str | None,
                    base_url: str | None = None, max_cost: float | None = None,
                    use_cache: bool = True, timeout: float = 600.0,
                    prefer_source: bool = True) -> tuple[Paper, list[str], dict[str, Any]]:
    """The paper read with the model reader, the lines to tell the user, and the reader
    report (run.json's ``paper.reader`` shape, plus ``run_id`` and ``cost_usd``)."""
    from papercoder.cli.common import db_path
    from papercoder.errors import BudgetExceeded, ConfigError, Interrupted
    from papercoder.ingest import check_reader, read_with_model, require_images
    from papercoder.llm import Caller
    from papercoder.models import default_model_name, get_model
    from papercoder.paper import load_paper_and_pdf
    from papercoder.store import Store

    check_reader(pdf_reader)
    if max_cost is not None and not max_cost >= 0:
        raise ConfigError(f"--max-cost must be a number of dollars, 0 or more, not {max_cost}.")
    p, pdf = load_paper_and_pdf(paper, prefer_source=prefer_source)
    if pdf is None:
        note = (f"--pdf-reader {pdf_reader} transcribes PDF pages, but this paper was not read "
                "from a PDF; no page was sent to a model.")
        return p, [note], {"reader": pdf_reader, "transcribed": [], "note": note}
    model = get_model(reader_model or default_model_name()[0], base_url=base_url,
                      timeout=timeout)
    require_images(model)
    store = Store(db_path())
    run_id = store.create_run("ingest", paper=paper, model=model.name,
                              settings={"pdf_reader": pdf_reader, "max_cost": max_cost})
    caller = Caller(model, store, run_id, use_cache=use_cache, max_cost=max_cost)
    status = "failed"
    try:
        p, report = asyncio.run(read_with_model(pdf, caller=caller, mode=pdf_reader))
        status = "partial" if report.fallback else "done"
    except BudgetExceeded:
        status = "stopped"
        raise
    except (Interrupted, KeyboardInterrupt):
        status = "interrupted"
        raise
    finally:
        store.set_run_status(run_id, status)
    p.read_from = "pdf"
    t = caller.totals
    cost = "unknown" if t.unpriced_calls else f"${t.cost:.4f}"
    lines = report.lines() + [
        f"Reading cost {cost} in {t.calls} call(s), {t.cache_hits} answered from the cache "
        f"(`papercoder cost {run_id}`)."]
    return p, lines, {**report.to_dict(), "run_id": run_id,
                      "cost_usd": None if t.unpriced_calls else round(t.cost, 6)}
