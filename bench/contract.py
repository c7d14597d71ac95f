"""The paper contract, scripted: quote checks, audit and repair, evidence, cost, PaperBench.

1. Quotes, on examples/tiny-sgd-paper.md and every shared paper (as papercoder reads it):
   real sentences of the paper (verbatim, and re-typed: case, spacing, line breaks) must all
   be kept; fabricated ones (a real sentence with a number or a word changed, invented
   sentences) must all be dropped.
2. Audit: the small paper's scripted run with a requirement planted as missing: found unmet,
   met after one repair round. Fabricated evidence (snippets not in the code) never counts
   as met.
3. Cost: the recorded Transformer run (../shared/recordings/transformer-claude-3-7-sonnet)
   replayed with and without the contract (scripted extraction, audit and one repair round
   for a third of the files), caches simulated as in bench/context_cost.py, priced for two
   hosted models. Target: at most +35% input dollars.
4. PaperBench: each shared rubric's leaves per task category, and how the contract's
   categories line up.

Usage: python bench/contract.py
"""

from __future__ import annotations

import json
import random
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from papercoder.audit.verdicts import AuditAnswer, check_grades  # noqa: E402
from papercoder.models.scripted import ScriptedModel  # noqa: E402
from papercoder.paper import load_paper  # noqa: E402
from papercoder.pipeline import RunOptions, run_pipeline  # noqa: E402
from papercoder.requirements.quotes import QuoteIndex  # noqa: E402
from papercoder.store import Store  # noqa: E402

SHARED = ROOT.parent / "shared"
PAPERS = [ROOT / "examples" / "tiny-sgd-paper.md"] + [
    p for name in ("transformer/paper.tex", "adaptive-pruning/paper.md",
                   "semantic-self-consistency/paper.md",
                   "sequential-neural-score-estimation/paper.md")
    if (p := SHARED / "papers" / name).is_file()]


def sentences(text: str) -> list[str]:
    flat = re.sub(r"\s+", " ", text)
    out = [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", flat)]
    return [s for s in out if 40 <= len(s) <= 300 and not s.startswith(("#", "|", "!"))]


def fabricate(s: str, rng: random.Random) -> str:
    nums = re.findall(r"\d+(?:\.\d+)?", s)
    if nums:
        n = rng.choice(nums)
        return s.replace(n, str(int(float(n) * 3 + 7)), 1)
    words = [w for w in re.findall(r"[A-Za-z]{5,}", s)]
    w = rng.choice(words) if words else "model"
    return s.replace(w, "quantum" if w != "quantum" else "classical", 1)


def retype(s: str, rng: random.Random) -> str:
    """The same sentence as a model may copy it: case and spacing changed, a line broken."""
    words = s.split(" ")
    if len(words) > 6:
        i = rng.randrange(2, len(words) - 2)
        words[i] = words[i] + "\n"
    return "  ".join(words).lower() if rng.random() < 0.5 else " ".join(words).upper()


def quotes() -> bool:
    rng = random.Random(7)
    invented = ["We train the network with a two-layer MLP and ReLU activations.",
                "The learning rate is 0.123 and decays by half every 17 epochs.",
                "All experiments use 64 TPU cores for three weeks."]
    ok = True
    print("1. Quotes (kept: real sentences, verbatim and re-typed; dropped: fabricated)")
    print(f"   {'paper':40} {'real kept':>12} {'fabricated dropped':>20}")
    for path in PAPERS:
        paper = load_paper(str(path))
        text = paper.to_markdown(include_references=False)
        index = QuoteIndex(text)
        real = sentences(text)
        rng.shuffle(real)
        real = real[:60]
        tried = real + [retype(s, rng) for s in real]
        kept = sum(index.problem(q) is None for q in tried)
        fakes = [f for f in (fabricate(s, rng) for s in real) if f not in text] + invented
        dropped = sum(index.problem(q) is not None for q in fakes)
        ok &= kept == len(tried) and dropped == len(fakes)
        print(f"   {path.parent.name if path.name.startswith('paper') else path.stem:40} "
              f"{kept:>5}/{len(tried):<6} {dropped:>10}/{len(fakes):<9}")
    return ok


def audit() -> bool:
    from tests import pipeline_helpers as ph

    print("\n2. Audit and repair on the small paper (scripted)")
    unmet = json.dumps({"requirements": [
        {"id": "R1", "verdict": "met", "evidence": [{"file": "model.py",
                                                     "quote": "class Regressor:"}]},
        {"id": "R2", "verdict": "met", "evidence": [{"file": "model.py",
                                                     "quote": "def fit(self, xs, ys"}]},
        {"id": "R3", "verdict": "unmet", "evidence": [], "reason": "momentum 0.9 missing"}]})
    fixed = ph.audit_answer("model.py", "met", "self.momentum = 0.9")
    repair = ("model.py\n<<<<<<< SEARCH\n        self.w = [0.0]\n=======\n        self.w = "
              "[0.0]\n        self.momentum = 0.9  # paper: R3\n>>>>>>> REPLACE\n")
    with tempfile.TemporaryDirectory() as tmp:
        paper = Path(tmp) / "paper.md"
        paper.write_text(ph.TINY_PAPER)
        model = ScriptedModel(ph.script(**{"audit:model.py": [unmet, fixed],
                                           "repair:model.py": repair}))
        m = run_pipeline(RunOptions(paper=str(paper), out=Path(tmp) / "out", quiet=True),
                         model=model, store=Store(Path(tmp) / "s.db"))
    rounds = m.requirements["rounds"]
    planted = rounds[0]["unmet"] == 1 and rounds[1]["unmet"] == 0 and m.requirements["met"] == 5
    print(f"   planted missing requirement: round 0 unmet={rounds[0]['unmet']}, after one repair "
          f"round met={rounds[1]['met']}/{m.requirements['total']} -> "
          f"{'ok' if planted else 'FAILED'}")
    code = {f: ph.CODE[f] for f in ph.FILES}
    rng = random.Random(3)
    fake_met = 0
    trials = 0
    for f, src in code.items():
        for _ in range(25):
            lines = [x for x in src.splitlines() if len(x.strip()) >= 8]
            fake = rng.choice(lines).strip() + rng.choice([" + 1", "  # tuned", "(x)", "_v2"])
            ans = AuditAnswer.model_validate({"requirements": [
                {"id": "R1", "verdict": rng.choice(["met", "partial"]),
                 "evidence": [{"file": rng.choice([f, "other.py"]), "quote": fake}]}]})
            trials += 1
            fake_met += check_grades(ans, ["R1"], f, code)[0]["verdict"] != "unmet"
    print(f"   fabricated evidence counted as met or partial: {fake_met}/{trials} -> "
          f"{'ok' if fake_met == 0 else 'FAILED'}")
    return planted and fake_met == 0


def cost() -> bool:
    from context_cost import dollars, simulate

    from papercoder.models.structured import loads_bounded
    from papercoder.pipeline.answers import extract_code

    rec = SHARED / "recordings" / "transformer-claude-3-7-sonnet"
    paper_path = SHARED / "papers" / "transformer" / "paper.tex"
    print("\n3. Cost of the contract (Transformer recording, replayed)")
    if not rec.is_dir() or not paper_path.is_file():
        print("   skipped: the recording is absent")
        return True
    base = ScriptedModel.from_recording(rec)
    script: dict[str, Any] = {k: v[0] for k, v in base._keyed.items()}
    text = load_paper(str(paper_path)).to_markdown(include_references=False)
    real = sentences(text)[:40]
    cats = ["model", "objective", "algorithm", "data", "training", "evaluation", "experiment",
            "result"]
    reqs = [{"id": f"R{i + 1}", "category": cats[i % len(cats)],
             "statement": f"Implement what the paper says here ({i + 1}).", "quote": q,
             "section": "body"} for i, q in enumerate(real)]
    script["requirements"] = json.dumps({"requirements": reqs})
    raw = script["logic"]
    body = raw[raw.find("{"): raw.rfind("}") + 1]
    logic = loads_bounded(body, strict=False)
    entries = logic.get("Logic Analysis") or logic.get("logic_analysis")
    files = [e[0] if isinstance(e, list) else e["file"] for e in entries]
    mapping = {f: [] for f in files}
    for i, r in enumerate(reqs):
        mapping[files[i % len(files)]].append(r["id"])
    logic["logic_analysis"] = [{"file": f, "notes": str(e[1] if isinstance(e, list) else
                                                        e.get("notes", "")),
                                "requirements": mapping[f]}
                               for f, e in zip(files, entries, strict=True)]
    logic.pop("Logic Analysis", None)
    script["logic"] = json.dumps(logic)
    for n, f in enumerate(files):
        src = extract_code(script[f"coding:{f}"], f)
        line = next(x for x in src.splitlines() if len(x.strip()) >= 12)
        met = json.dumps({"requirements": [
            {"id": r, "verdict": "met", "evidence": [{"file": f, "quote": line.strip()}],
             "reason": "as the paper says"} for r in mapping[f]]})
        if n % 3 == 0:  # a third of the files need one repair round
            partial = met.replace('"verdict": "met"', '"verdict": "partial"', 1)
            script[f"audit:{f}"] = [partial, met]
            script[f"repair:{f}"] = (f"{f}\n<<<<<<< SEARCH\n{line}\n=======\n{line}\n"
                                     f"# paper: {mapping[f][0]}\n>>>>>>> REPLACE\n")
        else:
            script[f"audit:{f}"] = met
    results = {}
    for name, no_contract in (("published method", True), ("with the contract", False)):
        model = ScriptedModel(script)
        with tempfile.TemporaryDirectory() as tmp:
            m = run_pipeline(RunOptions(paper=str(paper_path), out=Path(tmp) / "out", quiet=True,
                                        concurrency=1, no_contract=no_contract),
                             model=model, store=Store(Path(tmp) / "s.db"))
        if m.status != "done":
            print(f"   replay failed: {m.error}")
            return False
        results[name] = (dollars(simulate(model.history, "stable"),
                                 m.totals["completion_tokens"]), m)
    (a, _), (b, mb) = results["published method"], results["with the contract"]
    print(f"   contract: {mb.requirements['total']} requirements, "
          f"{mb.stages['requirements'].calls} extraction call(s), "
          f"{mb.stages['audit'].calls} audit/repair calls "
          f"(rounds: {[(r['round'], r['met'], r['partial']) for r in mb.requirements['rounds']]})")
    ok = True
    for label, key in (("openai/gpt-4.1", "oa_in"), ("anthropic/claude-sonnet-4-6", "an_in")):
        added = (b[key] - a[key]) / a[key] * 100
        ok &= added <= 35
        print(f"   {label:28} input ${a[key]:.4f} -> ${b[key]:.4f}  (+{added:.1f}%, target "
              f"<= 35%)")
    return ok


MAPPING = {"model": "Code Development", "objective": "Code Development",
           "algorithm": "Code Development", "data": "Code Development",
           "training": "Code Development / Code Execution",
           "evaluation": "Code Development / Code Execution",
           "experiment": "Code Execution", "result": "Result Analysis"}


def paperbench() -> None:
    print("\n4. PaperBench rubrics: leaves per task category, and the contract's categories")
    for rubric in sorted(SHARED.glob("papers/*/rubric.json")):
        counts: dict[str, int] = {}
        todo = [json.loads(rubric.read_text())]
        while todo:
            node = todo.pop()
            subs = node.get("sub_tasks") or []
            if not subs:
                cat = node.get("task_category") or "none"
                counts[cat] = counts.get(cat, 0) + 1
            todo.extend(subs)
        print(f"   {rubric.parent.name:38} " + ", ".join(f"{k}: {v}" for k, v in
                                                        sorted(counts.items())))
    print("   contract category -> PaperBench task category")
    for k, v in MAPPING.items():
        print(f"     {k:11} -> {v}")


def main() -> int:
    ok = quotes()
    ok &= audit()
    ok &= cost()
    paperbench()
    print("\nall targets met" if ok else "\nSOME TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
