"""run.json as a typed record: tolerant reading, and the run's history across sessions with
every call counted once (final line, `papercoder cost`, run.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from papercoder.cli import app
from papercoder.outdir.record import Manifest, parse_record, read_record
from tests.pipeline_helpers import write_fixture


def _run(tmp: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["--db", str(tmp / "s.db"), *args])
    return r.exit_code, r.output


def test_every_call_is_counted_once_in_the_final_line_cost_and_run_json(tmp_path: Path) -> None:
    """The static repair's calls were missing from the final line and run.json's totals."""
    paper, script = write_fixture(tmp_path)
    s = json.loads(script.read_text())
    s["verify"] = "Nothing to change."  # the static repair's answers: no edit blocks
    script.write_text(json.dumps(s))
    out = tmp_path / "out"
    code, output = _run(tmp_path, "run", str(paper), "-m", f"scripted:{script}", "-o", str(out))
    assert code == 0, output
    final = [ln for ln in output.splitlines() if ln.startswith("done:")]
    assert final and "Static repair failed" in output
    calls = int(re.search(r"(\d+) calls", final[-1])[1])
    totals = json.loads((out / "run.json").read_text())["totals"]
    code, cost = _run(tmp_path, "cost", str(out))
    total_row = [ln for ln in cost.splitlines() if ln.startswith("total")][0]
    verify_row = [ln for ln in cost.splitlines() if ln.startswith("verify")][0]
    assert int(verify_row.split()[1]) == 3  # the repair and its two re-asks
    assert calls == totals["calls"] == totals["session"]["calls"] == int(total_row.split()[1])


def test_a_damaged_or_older_run_json_loads_with_notes(tmp_path: Path) -> None:
    m, notes = parse_record({"run_id": "r1", "status": 7, "files": {"a.py": "written",
                                                                      "b.py": {"status": "ok"}},
                             "totals": {"calls": 3, "cost_usd": 0.5}, "future_field": [1]})
    assert m.run_id == "r1" and m.status == "running" and list(m.files) == ["b.py"]
    assert m.totals.calls == 3 and m.to_dict()["future_field"] == [1]  # kept as it was
    assert any("'status'" in n for n in notes) and any("'a.py'" in n for n in notes)
    empty, why = parse_record([1, 2])
    assert isinstance(empty, Manifest) and empty.run_id == "" and not empty.files and why
    # an older record (totals of one session, no "sessions") gains the next session
    t = parse_record({"totals": {"calls": 4, "wall_seconds": 10.0}})[0].totals
    t2 = t.add_session({"calls": 1, "wall_seconds": 1.0})
    assert (t2.calls, t2.sessions, t2.wall_seconds, t2.session["calls"]) == (5, 2, 11.0, 1)
    bad, why = parse_record({"files": {"a.py": {"status": 3}, "b.py": {"status": "written"}},
                             "stages": {"planning": {"calls": "x"}, "coding": {"calls": 2}}})
    assert bad.files_with("written") == ["b.py"] and list(bad.stages) == ["coding"]
    assert len(why) == 2 and "'a.py'" in why[0] and "'planning'" in why[1]
    (tmp_path / "run.json").write_text("{not json")
    assert read_record(tmp_path) == (None, ["run.json is not valid JSON and was ignored."])


def test_a_run_over_a_damaged_run_json_resumes_and_says_what_it_ignored(tmp_path: Path) -> None:
    paper, script = write_fixture(tmp_path)
    out = tmp_path / "out"
    code, output = _run(tmp_path, "run", str(paper), "-m", f"scripted:{script}", "-o", str(out),
                        "-q")
    assert code == 0, output
    rec = json.loads((out / "run.json").read_text())
    rec["totals"] = "lots"
    rec["stages"]["planning"] = ["x"]
    (out / "run.json").write_text(json.dumps(rec))
    code, output = _run(tmp_path, "run", str(paper), "-m", f"scripted:{script}", "-o", str(out),
                        "-q")
    assert code == 0 and "Traceback" not in output, output
    again = json.loads((out / "run.json").read_text())
    assert again["run_id"] == rec["run_id"] and again["status"] == "done"
    assert any("'totals' was ignored" in w for w in again["warnings"])


def test_the_typed_record_reads_by_attribute_and_writes_back_what_it_read() -> None:
    """run.json's shape does not change with the types: a record round-trips key for key
    (no default written in, unknown fields kept), and each part reads as an attribute."""
    data = {
        "run_id": "r1", "status": "done",
        "files": {"a.py": {"status": "written", "model": "m1", "bytes": 12, "later": 1},
                  "b.py": {"status": "failed", "error": None, "analysis_error": "x"}},
        "stages": {"coding": {"calls": 2, "cost_usd": None, "status": "done", "seconds": 1.5,
                              "session": {"calls": 2}}},
        "verify": {
            "static": {"findings": [{"file": "a.py", "kind": "name"}], "remaining": [],
                       "notes": [], "repair": {"applied": True, "diff": "d", "md": "m"}},
            "grounding": {"checked": 3, "findings": [], "notes": []},
            "environment": {"kind": "venv", "python": "/p", "installed": []},
            "smoke": {"passed": False, "commands": [{"cmd": "python a.py", "exit": 1}],
                      "failure": None, "work_copies": [], "stopped": "round 1: no edits"},
            "rounds": [{"n": 1, "error": "E", "signature": "s", "applied": False,
                        "passed": False, "model_error": "no edits", "new_key": [1]}],
            "executability": {"lines_changed": 0, "total_lines": 9, "percent": 0.0,
                              "rounds": 1, "passed": False},
            "future": {"x": 1}},
    }
    m, notes = parse_record(json.loads(json.dumps(data)))
    assert notes == []
    out = m.to_dict()
    for key in ("files", "stages", "verify"):
        assert out[key] == data[key]
    assert m.files["a.py"].status == "written" and m.files["a.py"].bytes == 12
    assert m.stages["coding"].seconds == 1.5 and m.stages["coding"].cost_usd is None
    v = m.verify
    assert v.static is not None and v.static.repair is not None and v.static.repair.applied
    assert v.smoke is not None and v.smoke.stopped == "round 1: no edits"
    assert v.rounds[0].model_error == "no edits" and v.executability is not None
    assert v.executability.total_lines == 9
    m.files["b.py"].unset("analysis_error")
    m.files["b.py"].status = "written"
    assert m.to_dict()["files"]["b.py"] == {"status": "written", "error": None}
    # a fresh record writes no empty parts: verify stays {} until verify runs
    assert Manifest().to_dict()["verify"] == {} and not Manifest().verify


def test_a_damaged_part_of_verify_is_left_out_alone_with_a_note() -> None:
    m, notes = parse_record({"verify": {"static": {"findings": [], "notes": []},
                                        "smoke": {"passed": [1, 2]},
                                        "rounds": [{"n": "first"}]}})
    assert m.verify.static is not None and m.verify.smoke is None and m.verify.rounds == []
    assert m.to_dict()["verify"] == {"static": {"findings": [], "notes": []}}
    assert len(notes) == 2 and all("verify" in n for n in notes)
    assert any("'smoke'" in n for n in notes) and any("'rounds'" in n for n in notes)
