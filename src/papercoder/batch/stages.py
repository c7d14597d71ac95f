"""The one place batch reaches the verify and evaluate stages.

Options are passed by name and only those the stage's options dataclass declares, so a stage
that grows or drops an option does not break batch. Both stages are imported when first
used, so that the CLI's start-up does not load them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from papercoder.outdir.record import VerifyRecord

if TYPE_CHECKING:
    from papercoder.verify import VerifyResult


def _options(cls: Any, wanted: dict[str, Any]) -> Any:
    if dataclasses.is_dataclass(cls):
        names = {f.name for f in dataclasses.fields(cls)}
    else:  # pydantic or a plain class: trust its declared fields/annotations
        names = set(getattr(cls, "model_fields", None) or getattr(cls, "__annotations__", {}))
    return cls(**{k: v for k, v in wanted.items() if k in names and v is not None})


async def verify(out: Path, *, model: Any, store: Any, execute: bool = True,
                 **options: Any) -> VerifyResult:
    """Run verify on ``out``; returns its result (also saved in ``out/run.json``)."""
    from papercoder.verify import VerifyOptions, verify_output  # not at start-up

    opts = _options(VerifyOptions, {"execute": execute, **options})
    return await verify_output(out, model=model, store=store, options=opts)


def missing_for_mode(mode: str | None, rubric: Path | None, ref: Path | None) -> str | None:
    """What a paper lacks for the evaluation ``mode`` (None: nothing)."""
    if mode == "rubric" and rubric is None:
        return "rubric.json"
    if mode == "reference-based" and ref is None:
        return "a reference/ folder"
    return None


async def evaluate(target: Path, *, paper: Any, judge: Any, store: Any, mode: str,
                   rubric: Path | None = None, addendum: Path | None = None,
                   ref: Path | None = None, **options: Any) -> dict[str, Any]:
    """Grade ``target`` (an output folder) with ``judge`` in ``mode``; returns the eval
    summary. The mode is what the options select (a rubric, a reference, or neither), so
    only the inputs of the mode asked for are passed, and a missing one is refused."""
    from papercoder.errors import ConfigError
    from papercoder.evaluate import EvalOptions, evaluate_target  # not at start-up

    lacking = missing_for_mode(mode, rubric, ref)
    if lacking:
        raise ConfigError(f"--eval {mode} needs {lacking} in the paper's folder; add it or "
                          "choose another --eval mode.")
    wanted = {"rubric": rubric if mode == "rubric" else None,
              "addendum": addendum if mode == "rubric" else None,
              "ref": ref if mode == "reference-based" else None, **options}
    opts = _options(EvalOptions, wanted)
    if opts.mode != mode:
        raise ConfigError(f"--eval {mode} is not an evaluation mode batch can run; use "
                          "reference-free, reference-based or rubric.")
    return await evaluate_target(target, paper=paper, judge=judge, store=store, options=opts)


def smoke_ran(verify_result: VerifyRecord | None) -> bool | None:
    """Whether the generated code ran (verify's smoke run or executability), else None."""
    if verify_result is None:
        return None
    ex = verify_result.executability
    if ex is not None and "passed" in ex.model_fields_set:
        return ex.passed
    smoke = verify_result.smoke
    if smoke is not None and smoke.skipped:
        return None  # only the static checks ran
    if smoke is not None and "passed" in smoke.model_fields_set:
        return smoke.passed
    return None
