"""The README's exit status classes hold for every command (table-driven, CLI in-process).

0 done, 1 failed, 2 bad input or settings, 3 budget stop, 4 partial, 130 interrupted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from papercoder.cli import app
from tests import pipeline_helpers as ph

runner = CliRunner()


def setup(tmp: Path) -> dict[str, str]:
    """Paths the table refers to as {name}."""
    paper, script = ph.write_fixture(tmp)
    partial = tmp / "partial.json"
    partial.write_text(json.dumps(ph.script(**{"coding:main.py": "No code, sorry."})))
    nothing = tmp / "nothing.json"
    nothing.write_text(json.dumps(ph.script(**{f"coding:{f}": "No code." for f in ph.FILES})))
    answers = tmp / "answers.json"
    answers.write_text(json.dumps(["hello"]))
    empty = tmp / "empty.json"
    empty.write_text(json.dumps({"other": "x"}))
    schema = tmp / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["a"]}))
    (tmp / "a-file").write_text("x")
    prices = tmp / "config.yaml"
    prices.write_text("prices:\n  scripted:\n    '': {input: 1000, cached_input: 100, "
                      "output: 1000}\n")
    return {"paper": str(paper), "script": f"scripted:{script}", "partial": f"scripted:{partial}",
            "nothing": f"scripted:{nothing}", "answers": f"scripted:{answers}",
            "noanswer": f"scripted:{empty}", "schema": str(schema), "file": str(tmp / "a-file"),
            "out": str(tmp / "out"), "missing": str(tmp / "no-such-paper.pdf"),
            "tmp": str(tmp)}


def interrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C arrives while the paper is read (deterministic: no signal timing)."""
    def boom(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("papercoder.pipeline.load_paper", boom)
    monkeypatch.setattr("papercoder.paper.load_paper", boom)
    monkeypatch.setattr("papercoder.store.Store.runs", boom)


RUNLIKE = ["run", "plan"]
CASES: list[tuple[str, list[str], int, Callable[..., None] | None]] = [
    # (command, arguments, exit status, setup hook)
    *[(c, [c, "{paper}", "-m", "{script}", "-o", "{out}", "-q"], 0, None) for c in RUNLIKE],
    ("run", ["run", "{paper}", "-m", "{partial}", "-o", "{out}", "-q"], 4, None),
    ("run", ["run", "{paper}", "-m", "{nothing}", "-o", "{out}", "-q"], 1, None),
    ("plan", ["plan", "{paper}", "-m", "{noanswer}", "-o", "{out}", "-q"], 1, None),
    *[(c, [c, "{missing}", "-m", "{script}", "-o", "{out}", "-q"], 2, None) for c in RUNLIKE],
    *[(c, [c, "{paper}", "-m", "{script}", "-o", "{out}", "--from", "bogus"], 2, None)
      for c in RUNLIKE],
    *[(c, [c, "{paper}", "-m", "{script}", "-o", "{out}", "--context", "bogus"], 2, None)
      for c in RUNLIKE],
    *[(c, [c, "{paper}", "-m", "{script}", "-o", "{file}"], 2, None) for c in RUNLIKE],
    *[(c, [c, "{paper}", "-m", "{script}", "-o", "{out}", "--max-cost", "-1"], 2, None)
      for c in RUNLIKE],
    *[(c, [c, "{paper}", "-m", "{script}", "-o", "{out}", "--concurrency", "0"], 2, None)
      for c in RUNLIKE],
    *[(c, [c, "{paper}", "-m", "{script}", "-o", "{out}", "--timeout", "0"], 2, None)
      for c in RUNLIKE],
    *[(c, [c, "{paper}", "-m", "{script}", "-o", "{out}", "--prompts", "{file}"], 2, None)
      for c in RUNLIKE],
    *[(c, [c, "{paper}", "-m", "nosuchprovider/x", "-o", "{out}"], 2, None) for c in RUNLIKE],
    *[(c, [c, "{paper}", "-m", "{script}", "-o", "{out}", "-q", "--max-cost", "0.0001"], 3,
       None) for c in RUNLIKE],
    *[(c, [c, "{paper}", "-m", "{script}", "-o", "{out}", "-q"], 130, interrupt)
      for c in RUNLIKE],
    ("ingest", ["ingest", "{paper}"], 0, None),
    ("ingest", ["ingest", "{missing}"], 2, None),
    ("ingest", ["ingest", "{paper}", "--extractor", "bogus"], 2, None),
    ("ingest", ["ingest", "{paper}"], 130, interrupt),
    ("prompt", ["prompt", "hi", "-m", "{answers}"], 0, None),
    ("prompt", ["prompt", "hi", "-m", "{noanswer}"], 1, None),
    ("prompt", ["prompt", "hi", "-m", "{answers}", "--schema", "{paper}"], 2, None),
    ("prompt", ["prompt", "hi", "-m", "nosuchprovider/x"], 2, None),
    ("prompt", ["prompt", "hi " * 300, "-m", "{answers}", "--max-cost", "0.0001"], 3, None),
    ("models", ["models"], 0, None),
    ("runs", ["runs"], 0, None),
    ("runs", ["--db", "{file}", "runs"], 2, None),
    ("runs", ["runs"], 130, interrupt),
    ("logs", ["logs"], 2, None),  # an empty store: nothing to show is a settings problem
    ("logs", ["logs", "no-such-run"], 2, None),
    ("logs", ["--db", "{file}", "logs"], 2, None),
    ("cost", ["cost", "no-such-run"], 2, None),
    ("cost", ["--db", "{file}", "cost"], 2, None),
    ("verify", ["verify", "{tmp}"], 2, None),  # a folder with no run in it
    ("verify", ["verify", "{file}"], 2, None),
    ("report", ["report", "{tmp}"], 2, None),
    ("report", ["report", "{file}"], 2, None),
    ("eval", ["eval", "{tmp}/nope", "--paper", "{paper}", "-m", "{answers}", "--yes"], 2, None),
    ("eval", ["eval", "{tmp}", "--paper", "{missing}", "-m", "{answers}", "--yes"], 2, None),
    ("batch", ["batch", "{tmp}/nope", "-m", "{script}", "-o", "{out}"], 2, None),
    ("bench", ["bench", "paperbench", "{tmp}/nope", "-m", "{script}", "--judge", "{script}"],
     2, None),
]


@pytest.mark.parametrize(("command", "args", "status", "hook"), CASES,
                         ids=[f"{c}-{s}-{i}" for i, (c, _, s, _h) in enumerate(CASES)])
def test_exit_status_classes_hold_for_every_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, args: list[str],
        status: int, hook: Callable[..., None] | None) -> None:
    names = setup(tmp_path)
    if status == 3:  # a priced scripted model so that the budget bites
        monkeypatch.setenv("PAPERCODER_CONFIG", str(tmp_path / "config.yaml"))
    if hook is not None:
        hook(monkeypatch)
    r = runner.invoke(app, [a.format(**names) for a in args])
    out = r.output
    assert r.exit_code == status, out
    assert "Traceback" not in out
    if status in (2, 3, 130):
        errors = [ln for ln in out.splitlines() if ln.startswith("Error: ")]
        assert len(errors) == 1, out
        assert errors[0].rstrip().endswith("."), errors[0]


def test_every_command_has_a_row_in_the_table() -> None:
    from typer.main import get_command

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    assert commands <= {c for c, *_ in CASES}


@pytest.mark.parametrize(("model", "status", "word"), [("script", 0, "done"),
                                                       ("partial", 4, "partial"),
                                                       ("nothing", 1, "failed")])
def test_the_final_line_is_last_and_its_first_word_is_the_status(
        tmp_path: Path, model: str, status: int, word: str) -> None:
    """README, Exit status: the final line's word is the status. Nothing follows it (not the
    report's path, not verify's verdict), and no "ok" appears in a partial or failed run."""
    names = setup(tmp_path)
    r = runner.invoke(app, ["run", names["paper"], "-m", names[model], "-o", names["out"],
                            "-q"])
    assert r.exit_code == status, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert lines[-1].split(":")[0] == word, r.output
    assert sum(ln.startswith(f"{word}:") for ln in lines) == 1, r.output
    if word != "done":
        assert not any(ln.lower().startswith("ok") for ln in lines), r.output
    if word != "failed":
        assert "static checks:" in lines[-1], r.output  # verify's verdict joins the line


def test_a_run_into_a_file_prints_one_line_per_step(tmp_path: Path) -> None:
    """`make run > log 2>&1`: no terminal, so no live bar that shows nothing for minutes;
    one line per step (stage started, each file) with the elapsed time."""
    import subprocess
    import sys

    from tests.cli_proc import env

    names = setup(tmp_path)
    r = subprocess.run([sys.executable, "-m", "papercoder", "run", names["paper"], "-m",
                        names["script"], "-o", names["out"]], env=env(), capture_output=True,
                       text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    steps = [ln for ln in r.stderr.splitlines() if ln.startswith("[")]
    from tests import pipeline_helpers as ph

    for i, f in enumerate(ph.FILES, 1):
        assert any(f"] coding {i}/{len(ph.FILES)}: {f} · " in ln for ln in steps), r.stderr
    assert any("] planning 0/4: started" in ln for ln in steps), r.stderr
    assert r.stdout.splitlines()[-1].startswith("done: ")


def test_a_sandbox_that_cannot_start_ends_the_run_with_one_final_line(tmp_path: Path) -> None:
    """`run --execute` where bwrap fails before the program starts: no debug round for the
    model, the reason on the final line (status first, last line), exit 1."""
    import subprocess
    import sys

    from tests.cli_proc import env

    names = setup(tmp_path)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bwrap").write_text(
        "#!/bin/sh\nfor a; do last=$a; done\n[ \"$last\" = true ] && exit 0\n"
        "echo \"bwrap: Can't find source path out/x/verify/venv: No such file\" >&2\nexit 1\n",
        encoding="utf-8")
    (fake / "bwrap").chmod(0o755)
    e = env()
    e["PATH"] = f"{fake}:{e['PATH']}"
    r = subprocess.run([sys.executable, "-m", "papercoder", "run", names["paper"], "-m",
                        names["script"], "-o", names["out"], "-q", "--execute"], env=e,
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r.stdout + r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("done: ") and "sandbox could not start" in last, r.stdout
    assert "Can't find source path" in last and "Traceback" not in r.stderr
    run = json.loads((Path(names["out"]) / "run.json").read_text())
    assert not (run.get("verify") or {}).get("rounds")
