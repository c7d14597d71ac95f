"""The PaperBench harness: each paper, several seeds, graded on its rubric; the table as
published results give it (score per paper, mean ± standard error over papers, mean over
seeds, generation and grading cost per paper).

Each (paper, seed) run is a batch item with its own folder, ``OUTDIR/<paper>/seed-<n>/``, and
its own store, so seeds are independent samples (no answer is shared between seeds through
the cache) and a rerun resumes every one of them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from papercoder.batch.inputs import PaperItem, from_folder
from papercoder.batch.runner import BatchOptions, Emit, run_batch
from papercoder.batch.summary import plain, write_summary
from papercoder.errors import ConfigError
from papercoder.outdir.paths import write_inside

_SEED = re.compile(r"^(.*)/seed-(\d+)$")


def bench_items(papers_dir: Path, seeds: int) -> list[PaperItem]:
    """One item per paper folder with a rubric and per seed (slug ``<paper>/seed-<n>``)."""
    if not papers_dir.is_dir():
        raise ConfigError(f"{papers_dir} is not a folder; give the folder holding one "
                          "PaperBench paper folder (paper.pdf|md|tex and rubric.json) each.")
    papers = [p for p in from_folder(papers_dir) if p.rubric is not None]
    if not papers:
        raise ConfigError(f"No folder in {papers_dir} holds a paper with a rubric.json; see "
                          "the README's PaperBench section for the layout.")
    return [PaperItem(f"{p.slug}/seed-{s}", p.source, p.rubric, p.addendum)
            for p in papers for s in range(1, seeds + 1)]


def rubric_score(row: dict[str, Any]) -> float | None:
    for name, score in sorted((row.get("scores") or {}).items()):
        if name.startswith("rubric") and score is not None:
            return float(score)
    return None


def mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def stderr(xs: list[float]) -> float | None:
    """Standard error of the mean (sample standard deviation / sqrt(n))."""
    if len(xs) < 2:
        return None
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) / math.sqrt(len(xs))


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per paper: scores by seed, their mean, generation and grading cost per run; overall:
    mean ± standard error over papers (of per-paper means), mean of each seed over papers,
    and the mean over seeds with its standard error. A run without a score counts as 0, as
    in PaperBench (a failed attempt replicates nothing); how many did is reported."""
    papers: dict[str, dict[str, Any]] = {}
    seeds: set[int] = set()
    for r in rows:
        m = _SEED.match(r["slug"])
        name, seed = (m.group(1), int(m.group(2))) if m else (r["slug"], 1)
        seeds.add(seed)
        p = papers.setdefault(name, {"paper": name, "scores": {}, "gen_cost": [],
                                     "grade_cost": [], "unscored": 0, "statuses": {}})
        s = rubric_score(r)
        if s is None:
            p["unscored"] += 1
        p["scores"][seed] = s if s is not None else 0.0
        p["statuses"][seed] = r["status"]
        p["gen_cost"].append(r.get("cost_usd"))
        p["grade_cost"].append(r.get("eval_cost_usd"))
    for p in papers.values():
        p["mean"] = mean(list(p["scores"].values()))
        for k in ("gen_cost", "grade_cost"):
            known = [c for c in p[k] if c is not None]
            p[k] = mean(known) if known and len(known) == len(p[k]) else None
    means = [p["mean"] for p in papers.values() if p["mean"] is not None]
    per_seed = {s: mean([p["scores"][s] for p in papers.values() if s in p["scores"]])
                for s in sorted(seeds)}
    seed_means = [v for v in per_seed.values() if v is not None]
    gen = [p["gen_cost"] for p in papers.values()]
    grade = [p["grade_cost"] for p in papers.values()]
    return {
        "papers": list(papers.values()),
        "mean": mean(means), "stderr": stderr(means), "n_papers": len(means),
        "per_seed": per_seed, "mean_over_seeds": mean(seed_means),
        "stderr_over_seeds": stderr(seed_means),
        "gen_cost_per_paper": None if any(c is None for c in gen) else mean(gen),
        "grade_cost_per_paper": None if any(c is None for c in grade) else mean(grade),
        "unscored_runs": sum(p["unscored"] for p in papers.values()),
    }


async def run_paperbench(items: list[PaperItem], opts: BatchOptions, *,
                         emit: Emit | None = None, use_ray: bool = False,
                         ray_address: str | None = None) -> dict[str, Any]:
    rows = await run_batch(items, opts, emit=emit, use_ray=use_ray, ray_address=ray_address)
    report = aggregate(rows)
    report.update(model=opts.model, judge=opts.judge, execute=opts.execute,
                  categories="all" if opts.eval_options.get("all_categories") else "Code-Dev")
    import json

    write_inside(opts.out, "paperbench.json", json.dumps(report, indent=2, default=str) + "\n")
    write_summary(opts.out, rows, opts)
    return report


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _money(x: float | None) -> str:
    return "unknown" if x is None else f"${x:.2f}"


def render_report(report: dict[str, Any], console: Console) -> None:
    seeds = sorted({s for p in report["papers"] for s in p["scores"]})
    t = Table(title=Text(plain(f"PaperBench ({report.get('categories', 'Code-Dev')}): "
                               f"{report.get('model')} graded by {report.get('judge')}")),
              caption="scores in % of the rubric's weight; cost per run, averaged over seeds")
    for col in ("paper", *(f"seed {s}" for s in seeds), "mean", "generation $", "grading $"):
        t.add_column(col, justify="left" if col == "paper" else "right")
    for p in report["papers"]:
        t.add_row(*(Text(c) for c in [plain(p["paper"]), *(_pct(p["scores"].get(s))
                                                            for s in seeds),
                                       _pct(p["mean"]), _money(p["gen_cost"]),
                                       _money(p["grade_cost"])]))
    t.add_section()
    t.add_row(*(Text(c) for c in ["mean over seeds", *(_pct(report["per_seed"].get(s))
                                                       for s in seeds),
                                  _pct(report["mean_over_seeds"]),
                                  _money(report["gen_cost_per_paper"]),
                                  _money(report["grade_cost_per_paper"])]))
    console.print(t)
    se = report.get("stderr")
    console.print(Text(
        f"Mean over {report['n_papers']} papers: {_pct(report['mean'])}%"
        + (f" ± {_pct(se)} (standard error over papers)" if se is not None else "")
        + (f"; over seeds ± {_pct(report['stderr_over_seeds'])}"
           if report.get("stderr_over_seeds") is not None else "")
        + (f"; {report['unscored_runs']} runs had no score and count as 0"
           if report.get("unscored_runs") else "")))
