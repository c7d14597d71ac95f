"""Evaluate a repository against its paper: a 1-5 judge score (without or with a reference
repository), PaperBench rubric grading, and verify's executability figures beside them.

Library entry point: ``await evaluate_target(target, paper=..., judge=..., store=...,
options=EvalOptions(...))`` writes ``summary.json``, ``report.md`` and ``samples.json`` or
``tree.json`` to ``TARGET/eval/<mode>-<judge>/`` (or ``options.out``) and returns the summary.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from papercoder.errors import ConfigError, ContextOverflowError, PapercoderError
from papercoder.evaluate import files as F
from papercoder.evaluate.estimate import Estimate, estimate_rubric, estimate_scoring
from papercoder.evaluate.grading import TOP_FILES, Grader, LeafJob
from papercoder.evaluate.guards import Facts, analyse, describe_guard, guard
from papercoder.evaluate.judge import CEILING, FLOOR, mean_score, spread, take_samples
from papercoder.evaluate.report import rubric_report, scoring_report
from papercoder.evaluate.rubric import (
    CATEGORIES,
    CODE_DEV,
    aggregate,
    contexts,
    load_rubric,
    per_category,
    prune,
)
from papercoder.evaluate.target import (
    Target,
    executability,
    head_tail,
    reproduction_log,
    resolve_target,
    slug,
    smoke_summary,
    static_findings,
)
from papercoder.llm import Caller
from papercoder.models.base import Message, Model
from papercoder.outdir.paths import write_inside
from papercoder.outdir.record import VerifyRecord
from papercoder.paper.model import DROPPABLE, Paper
from papercoder.prompts import render
from papercoder.store import Store
from papercoder.tokens import estimate_messages, estimate_tokens

__all__ = ["EvalOptions", "evaluate_target", "Estimate"]

MODES = ("reference-free", "reference-based", "rubric")
OUTPUT_RESERVE = 8192
"""Tokens kept free for the judge's answer (or the model's output limit, if smaller)."""


@dataclass
class EvalOptions:
    ref: Path | None = None
    """A gold repository (or output folder): reference-based scoring."""
    rubric: Path | None = None
    """A PaperBench rubric.json: rubric grading."""
    addendum: Path | None = None
    all_categories: bool = False
    """Rubric mode: grade Code Execution and Result Analysis leaves too."""
    log: Path | None = None
    """The reproduction log for those leaves (default: verify's smoke-run logs)."""
    samples: int = 8
    concurrency: int = 4
    max_cost: float | None = None
    out: Path | None = None
    context_window: int | None = None
    use_cache: bool = True
    repairs: int = 2
    confirm: Callable[[Estimate], bool] | None = None
    """Called with the cost estimate before the first judge call; False cancels."""
    on_progress: Callable[[int, int], None] | None = None
    """Rubric mode: called with (leaves done, leaves) as leaves finish."""

    @property
    def mode(self) -> str:
        if self.rubric is not None:
            return "rubric"
        return "reference-based" if self.ref is not None else "reference-free"


def result_dir(target: Path, judge: str, options: EvalOptions) -> Path:
    if options.out is not None:
        return Path(options.out)
    return Path(target) / "eval" / f"{options.mode}-{slug(judge)}"


OWN_RESULTS = "papercoder's own evaluation results"


def own_results(t: Target, out_dir: Path | None) -> dict[str, str]:
    """The folders of the repository that papercoder's own evaluations wrote (the results
    folder of this evaluation, and ``eval/<mode>-<judge>/`` folders holding a summary.json),
    with the reason they are left out. Everything else, the repository's own ``eval/``
    included, is shown. An output folder's results live beside its repo/, so there only an
    explicit ``--out`` inside repo/ is left out."""
    repo = t.repo
    out: dict[str, str] = {}
    if out_dir is not None:
        try:
            out[out_dir.resolve().relative_to(repo.resolve()).as_posix()] = OWN_RESULTS
        except (ValueError, OSError):
            pass
    folder = repo / "eval"
    if not t.is_output and folder.is_dir() and not folder.is_symlink():
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            names = []
        for name in names:
            sub = folder / name
            if name.startswith(tuple(m + "-" for m in MODES)) and sub.is_dir() and \
                    not sub.is_symlink() and (sub / "summary.json").is_file():
                out[f"eval/{name}"] = OWN_RESULTS
    out.pop(".", None)
    return out


def _make_dir(base: Path, path: Path) -> None:
    """Create ``path`` under ``base``, refusing any existing component below ``base`` that is
    a symbolic link (the target folder's contents are not trusted)."""
    try:
        rel = path.relative_to(base)
    except ValueError:
        path.mkdir(parents=True, exist_ok=True)
        return
    cur = base
    for part in rel.parts:
        cur = cur / part
        if cur.is_symlink():
            raise PapercoderError(f"{cur} is a symbolic link; refusing to write evaluation "
                                  "results through it. Remove it or give --out.")
        if cur.exists() and not cur.is_dir():
            raise PapercoderError(f"{cur} exists and is not a folder; give another --out.")
    path.mkdir(parents=True, exist_ok=True)


def _paper_message(paper: Paper, addendum: str | None, window: int) -> tuple[Message, str]:
    p = paper.without(["references"])
    text, note = p.to_markdown(include_references=False), ""
    if estimate_tokens(text) > window * 0.5:
        p = paper.without(DROPPABLE)
        text = p.to_markdown(include_references=False)
        note = "acknowledgements and appendices left out to fit the judge's window"
    body = render("eval_paper", paper=text, reductions=note, addendum=addendum or "")
    if estimate_tokens(body) > window * 0.6:
        raise ContextOverflowError(
            f"The paper (~{estimate_tokens(body)} tokens) leaves no room for code in the "
            f"judge's context window of {window} tokens; use a judge with a larger window.")
    return {"role": "user", "content": body, "cache": True}, note


def _left_note(left: list[F.LeftOut]) -> str:
    if not left:
        return ""
    names = ", ".join(x.path for x in left[:20]) + (" ..." if len(left) > 20 else "")
    return (f"{len(left)} file(s) did not fit the context window and are not shown "
            f"(most relevant files were kept first): {names}")


def _facts_text(facts: Facts, verify: VerifyRecord | None) -> str:
    return render("eval_facts", facts=facts, static=static_findings(verify),
                  smoke=smoke_summary(verify))


def _base_summary(mode: str, judge: str, g: str | None, verify: VerifyRecord | None
                  ) -> dict[str, Any]:
    s: dict[str, Any] = {
        "mode": mode, "judge": judge, "score": None, "valid_samples": 0, "samples": [],
        "spread": spread([]), "guard": g, "leaves": 0,
        "executability": executability(verify), "files_shown": [], "files_left_out": [],
        "cost_usd": 0.0,
    }
    if g:
        s["guard_reason"] = describe_guard(g)
    return s


def _confirm(options: EvalOptions, est: Estimate) -> None:
    if options.confirm is not None and not options.confirm(est):
        raise PapercoderError("Evaluation cancelled before any judge call; nothing was spent.")


async def _scoring(t: Target, paper: Paper, caller: Caller, options: EvalOptions,
                   files: list[F.RepoFile], left: list[F.LeftOut], facts: Facts,
                   g: str | None, addendum: str | None) -> tuple[dict[str, Any], list[dict]]:
    s = _base_summary(options.mode, caller.model.name, g, t.verify)
    if g:
        s.update(score=float(FLOOR), files_left_out=[x.to_dict() for x in left])
        return s, []
    window = caller.context_window
    reserve = min(caller.settings.max_output, OUTPUT_RESERVE)
    paper_msg, _ = _paper_message(paper, addendum, window)
    prefix: list[Message] = [{"role": "system", "content": render("eval_system")}, paper_msg]
    facts_text = _facts_text(facts, t.verify)
    gold_files: list[F.RepoFile] = []
    if options.ref is not None:
        gold = resolve_target(Path(options.ref))
        gold_files, _ = F.collect(gold.repo, exclude=own_results(gold, None))
        if not gold_files:
            raise ConfigError(f"The reference repository {options.ref} holds no code files; "
                              "check the --ref path.")
    query = paper.title + "\n" + paper.abstract + "\n" + paper.to_markdown()[:20000]

    def prompt(code: str, gold: str, left_note: str, gold_note: str, k: int) -> str:
        return render("eval_score", facts=facts_text, code=code, gold=gold,
                      left_out=left_note, gold_left_out=gold_note, sample=k)

    fixed = estimate_messages(prefix) + estimate_tokens(prompt("", "x", "", "", 1))
    budget = int(window * 0.9) - reserve - fixed
    if budget < 500:
        raise ContextOverflowError(
            f"The paper and instructions leave no room for code in the judge's context window "
            f"of {window} tokens; use a judge with a larger window.")
    ranked = F.rank(files, query)
    need = sum(f.tokens for f in ranked)
    gold_ranked = F.rank(gold_files, query) if gold_files else []
    gold_need = sum(f.tokens for f in gold_ranked)
    t_budget = max(budget // 2, budget - gold_need) if gold_ranked else budget
    shown, fit_left = F.fit(ranked, t_budget)
    g_shown, g_left = F.fit(gold_ranked, budget - min(need, t_budget)) if gold_ranked \
        else ([], [])
    code, gold_code = F.render(shown), F.render(g_shown)
    left_note, gold_note = _left_note(fit_left), _left_note(g_left)
    full = prefix + [{"role": "user", "content": prompt(code, gold_code, left_note,
                                                        gold_note, 1)}]
    _confirm(options, estimate_scoring(caller.model.name, options.samples,
                                       estimate_messages(full), estimate_messages(prefix)))
    if options.on_progress:
        options.on_progress(0, options.samples)
    samples = await take_samples(
        caller, prefix, lambda k: prompt(code, gold_code, left_note, gold_note, k),
        options.samples, concurrency=options.concurrency, repairs=options.repairs,
        on_done=options.on_progress)
    valid = [float(x.score) for x in samples if x.valid and x.score is not None]
    s.update(score=mean_score(samples), valid_samples=len(valid), samples=valid,
             spread=spread(valid), files_shown=[f.path for f in shown],
             files_left_out=[x.to_dict() for x in left + fit_left])
    if gold_ranked:
        s["gold_files_shown"] = [f.path for f in g_shown]
        s["gold_files_left_out"] = [x.to_dict() for x in g_left]
    if not valid:
        errors = sorted({x.error or "" for x in samples})
        s["error"] = (f"None of the {len(samples)} judge samples was valid, so there is no "
                      f"score (first error: {errors[0] if errors else 'unknown'}); try "
                      "again with a stronger judge.")
    return s, [x.to_dict() for x in samples]


async def _rubric(t: Target, paper: Paper, caller: Caller, options: EvalOptions,
                  files: list[F.RepoFile], left: list[F.LeftOut], g: str | None,
                  addendum: str | None) -> tuple[dict[str, Any], Any]:
    cats = CATEGORIES if options.all_categories else (CODE_DEV,)
    from papercoder.requirements import rubric as auto

    if auto.is_auto(options.rubric):  # the paper contract as the rubric
        from papercoder.evaluate.rubric import parse_rubric

        contract = await auto.derive_contract(caller, paper, addendum, t.root)
        root = prune(parse_rubric(auto.contract_tree(contract, paper.title)), cats)
    else:
        root = prune(load_rubric(Path(options.rubric)), cats)  # type: ignore[arg-type]
    ctxs = contexts(root)
    s = _base_summary("rubric", caller.model.name, g, t.verify)
    s.update(leaves=len(ctxs), invalid_leaves=0)
    if g:
        for c in ctxs:
            c.leaf.score, c.leaf.valid = 0.0, True
            c.leaf.explanation = describe_guard(g)
    else:
        window = caller.context_window
        reserve = min(caller.settings.max_output, OUTPUT_RESERVE)
        paper_msg, _ = _paper_message(paper, addendum, window)
        prefix: list[Message] = [{"role": "system", "content": render("eval_system")},
                                 paper_msg]
        base = estimate_messages(prefix)
        budget = int(window * 0.9) - reserve - base - 1500
        if budget < 500:
            raise ContextOverflowError(
                f"The paper leaves no room for code in the judge's context window of {window} "
                "tokens; use a judge with a larger window.")
        log, log_note = None, None
        if options.all_categories:
            log, source = reproduction_log(t, options.log)
            if log is not None:
                log, cut = head_tail(log, min(200 * 1024, budget * 2))
                log_note = f"from {source}" + (f"; {cut}" if cut else "")
        tree_budget = max(200, min(8000, window // 8))
        grader = Grader(caller, prefix, files, budget, tree_budget, log, log_note,
                        concurrency=options.concurrency, repairs=options.repairs,
                        partial=auto.is_auto(options.rubric))
        jobs = [LeafJob(c, needs_log=(c.leaf.task_category or CODE_DEV) != CODE_DEV)
                for c in ctxs]
        tree_tokens = min(sum(estimate_tokens(f.path) + 6 for f in files), tree_budget)
        sizes = sorted((f.tokens for f in files), reverse=True)
        shown_est = min(sum(sizes[:TOP_FILES]), budget)
        graded = sum(1 for j in jobs if not (j.needs_log and log is None))
        _confirm(options, estimate_rubric(caller.model.name, graded, base + tree_tokens + 200,
                                          base + 1500 + shown_est, base))
        done = [0]

        def tick() -> None:
            done[0] += 1
            if options.on_progress:
                options.on_progress(done[0], len(jobs))

        grader.on_done = tick
        await grader.grade_all(jobs)
    score = aggregate(root)
    leaves = root.leaves()
    s.update(score=score, valid_samples=1 if any(x.valid for x in leaves) else 0,
             samples=[score], spread=spread([score]), per_category=per_category(root),
             invalid_leaves=sum(1 for x in leaves if not x.valid),
             no_log_leaves=sum(1 for x in leaves if x.flag == "no-log"),
             files_shown=sorted({p for x in leaves for p in x.files}),
             files_left_out=[x.to_dict() for x in left])
    return s, root


async def evaluate_target(target: Path, *, paper: Paper, judge: Model, store: Store,
                          options: EvalOptions) -> dict[str, Any]:
    """Evaluate ``target`` (an output folder or any repository folder); write the results
    and return the summary (see the module docstring)."""
    if options.samples < 1:
        raise ConfigError("-n must be at least 1.")
    t = resolve_target(Path(target))
    out_dir = result_dir(t.root, judge.name, options)
    _make_dir(t.root, out_dir)  # refuse a linked result folder before anything is spent
    files, left = F.collect(t.repo, exclude=own_results(t, out_dir))
    facts = analyse(files)
    g = guard(facts)
    addendum = None
    if options.addendum is not None:
        try:
            addendum = Path(options.addendum).read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise ConfigError(f"The addendum {options.addendum} could not be read "
                              f"({type(e).__name__}); check the --addendum path.") from None
    if options.rubric is not None and str(options.rubric) != "auto":
        load_rubric(Path(options.rubric))  # bad rubric: fail before anything else
    if options.ref is not None and not Path(options.ref).is_dir():
        raise ConfigError(f"The reference repository {options.ref} is not a folder; check "
                          "the --ref path.")
    run_id = store.create_run("eval", paper=paper.source or paper.title, model=judge.name,
                              out_dir=str(Path(out_dir).absolute()),
                              settings={"mode": options.mode, "samples": options.samples})
    caller = Caller(judge, store, run_id, use_cache=options.use_cache,
                    max_cost=options.max_cost, context_window=options.context_window)
    title = paper.title or str(target)
    try:
        if options.mode == "rubric":
            summary, root = await _rubric(t, paper, caller, options, files, left, g, addendum)
            record_name, record = "tree.json", root.to_dict()
            report = rubric_report(summary, root, title)
        else:
            summary, samples = await _scoring(t, paper, caller, options, files, left, facts,
                                              g, addendum)
            record_name, record = "samples.json", samples
            report = scoring_report(summary, samples, title)
    except BaseException:
        store.set_run_status(run_id, "failed")
        raise
    tot = caller.totals
    summary["cost_usd"] = None if tot.unpriced_calls else round(tot.cost, 6)
    summary["calls"] = tot.calls
    summary["cache_hits"] = tot.cache_hits
    summary["structure"] = facts.to_dict()
    summary["run_id"] = run_id
    summary["scale"] = [0, 1] if options.mode == "rubric" else [FLOOR, CEILING]
    write_inside(out_dir, record_name, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    write_inside(out_dir, "report.md", report)
    write_inside(out_dir, "summary.json",
                 json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    summary["out"] = str(out_dir)
    store.set_run_status(run_id, "done")
    return summary
