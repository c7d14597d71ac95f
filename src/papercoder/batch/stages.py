"""The one place batch reaches the verify and evaluate stages.

Options are passed by name and only those the stage's options dataclass declares, so a stage
that grows or drops an option does not break batch. Both stages are imported when first
used, so that the CLI's start-up does not load them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any


def _options(cls: Any, wanted: dict[str, Any]) -> Any:
    if dataclasses.is_dataclass(cls):
        names = {f.name for f in dataclasses.fields(cls)}
    else:  # pydantic or a plain class: trust its declared fields/annotations
        names = set(getattr(cls, "model_fields", None) or getattr(cls, "__annotations__", {}))
    return cls(**{k: v for k, v in wanted.items() if k in names and v is not None})


async def verify(out: Path, *, model: Any, store: Any, execute: bool = True,
                 **options: Any) -> dict[str, Any]:
    """Run verify on ``out``; returns its "verify" dict (also saved in ``out/run.json``)."""
    from papercoder.verify import VerifyOptions, verify_output  # not at start-up

    opts = _options(VerifyOptions, {"execute": execute, **options})
    return await verify_output(out, model=model, store=store, options=opts)


async def evaluate(target: Path, *, paper: Any, judge: Any, store: Any, mode: str,
                   rubric: Path | None = None, addendum: Path | None = None,
                   **options: Any) -> dict[str, Any]:
    """Grade ``target`` (an output folder) with ``judge``; returns the eval summary."""
    wanted = {"mode": mode, "rubric": rubric, "addendum": addendum, "yes": True,
              "assume_yes": True, **options}
    from papercoder.evaluate import EvalOptions, evaluate_target  # not at start-up

    opts = _options(EvalOptions, wanted)
    return await evaluate_target(target, paper=paper, judge=judge, store=store, options=opts)


def smoke_ran(verify_result: dict[str, Any] | None) -> bool | None:
    """Whether the generated code ran (verify's smoke run or executability), else None."""
    if not isinstance(verify_result, dict):
        return None
    ex = verify_result.get("executability")
    if isinstance(ex, dict) and isinstance(ex.get("passed"), bool):
        return ex["passed"]
    smoke = verify_result.get("smoke")
    if isinstance(smoke, dict) and smoke.get("skipped"):
        return None  # only the static checks ran
    if isinstance(smoke, dict) and isinstance(smoke.get("passed"), bool):
        return smoke["passed"]
    return None
