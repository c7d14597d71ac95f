"""The hand contracts of bench/rubric_coverage.py stay true: every quote is in its paper (as
papercoder's quote checker sees it) and every rubric leaf is matched to known requirements."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from papercoder.requirements.schema import load_contract

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rubric_coverage", BENCH / "rubric_coverage.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["rubric_coverage"] = mod
    spec.loader.exec_module(mod)
    return mod


rc = _load()


@pytest.mark.parametrize("name", rc.PAPERS)
def test_hand_contract_quotes_are_in_the_paper(shared: Path, name: str) -> None:
    if not (shared / "papers" / name / "rubric.json").is_file():
        pytest.skip(f"../shared/papers/{name} is absent")
    paper = rc.load(name)
    assert len(paper.contract.requirements) >= 30
    assert paper.quote_problems == []
    assert paper.map_problems == []
    # the matching is real data: most leaves of every rubric have a requirement, not all
    _, matched, full, _ = rc.coverage(paper)
    assert 0 < full <= matched < len(paper.leaves)


def test_the_check_finds_an_altered_quote_and_a_bad_matching(shared: Path) -> None:
    name = "semantic-self-consistency"
    folder = shared / "papers" / name
    if not (folder / "rubric.json").is_file():
        pytest.skip(f"../shared/papers/{name} is absent")
    raw = json.loads((BENCH / "contracts" / f"{name}.json").read_text(encoding="utf-8"))
    raw["requirements"][1]["quote"] = raw["requirements"][1]["quote"].replace("254", "255")
    contract = load_contract(json.dumps(raw))
    problems = rc.check_quotes(contract, rc.quote_index(folder))
    assert [rid for rid, _ in problems] == [raw["requirements"][1]["id"]]

    paper = rc.load(name)
    first = paper.leaves[0].id
    matching = {k: v for k, v in paper.matching.items() if k != first}
    matching["not-a-leaf"] = ["R999"]
    found = rc.check_matching(matching, paper.leaves, paper.contract)
    assert any(first in p for p in found)
    assert any("not-a-leaf" in p and "not in the rubric" in p for p in found)
    assert any("R999" in p for p in found)
    assert rc.check_matching({**paper.matching, first: []}, paper.leaves, paper.contract,
                             frozenset({first})) == [f"partial leaf {first} has no matching "
                                                     "requirement"]
