"""`papercoder batch --ray [ADDRESS]` and `bench paperbench --ray [ADDRESS]`: every form of
the option, through the CLI's own entry point (the Ray run itself: tests/test_batch_ray.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from papercoder import cli
from papercoder.batch import runner
from papercoder.cli.batch import optional_ray_value
from tests import pipeline_helpers as ph


def _batch_through_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        argv: list[str]) -> tuple[dict[str, Any], Any]:
    """Run ``papercoder batch`` through ``cli.main()`` (argv: the words after ``batch``,
    where PAPERS stands for a folder of one paper) with run_batch replaced by a recorder;
    returns what run_batch was given and the exit code."""
    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "a.md").write_text(ph.TINY_PAPER)
    seen: dict[str, Any] = {}

    async def fake_run_batch(items: Any, opts: Any, **kw: Any) -> list[dict[str, Any]]:
        seen.update(kw, slugs=[i.slug for i in items])
        return []

    monkeypatch.setattr(runner, "run_batch", fake_run_batch)
    words = [str(papers) if w == "PAPERS" else w for w in argv]
    monkeypatch.setattr(sys, "argv", ["papercoder", "batch", *words])
    with pytest.raises(SystemExit) as e:
        cli.main()
    return seen, e.value.code


@pytest.mark.parametrize(("args", "use_ray", "address"), [
    ([], False, None),
    (["--ray"], True, None),  # last: $RAY_ADDRESS, else a new local instance
    (["--ray", "-q"], True, None),
    (["--ray", "auto"], True, "auto"),
    (["--ray", "10.0.0.5:6379", "-q"], True, "10.0.0.5:6379"),
    (["--ray=ray://head.example:10001"], True, "ray://head.example:10001"),
    (["--ray", "[::1]:6379"], True, "[::1]:6379"),
    (["--ray-address", "10.0.0.7:6379"], True, "10.0.0.7:6379"),  # the hidden alias
])
def test_ray_takes_an_optional_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       args: list[str], use_ray: bool,
                                       address: str | None) -> None:
    seen, code = _batch_through_main(tmp_path, monkeypatch, [
        "PAPERS", "-m", "scripted:x", "-o", str(tmp_path / "o"), *args])
    assert code in (0, None)
    assert (seen["use_ray"], seen["ray_address"], seen["slugs"]) == (use_ray, address, ["a"])


def test_a_bare_ray_before_the_input_does_not_swallow_it(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) \
        -> None:
    seen, _ = _batch_through_main(tmp_path, monkeypatch, [
        "--ray", "PAPERS", "-m", "scripted:x", "-o", str(tmp_path / "o")])
    assert (seen["use_ray"], seen["ray_address"], seen["slugs"]) == (True, None, ["a"])


def test_the_rewrite_touches_only_the_batch_commands() -> None:
    assert optional_ray_value(["run", "p.md", "--ray"]) == ["run", "p.md", "--ray"]
    assert optional_ray_value(["bench", "paperbench", "d", "--ray"]) == \
        ["bench", "paperbench", "d", "--ray=local"]
    assert optional_ray_value(["batch", "d", "--", "--ray"]) == ["batch", "d", "--", "--ray"]
