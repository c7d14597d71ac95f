"""Mode 1: reference-free and reference-based scoring on a 1-5 scale, N samples.

Each sample is one judge call through the Caller (stage ``eval``). Samples differ by their
review number in the prompt, so each is its own cache entry while a rerun hits them all.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from papercoder.errors import ContextOverflowError, ModelOutputError, RetriesExhaustedError
from papercoder.llm import Caller
from papercoder.models.base import Message

FLOOR = 1
CEILING = 5
JUDGE_FAILURES = (ModelOutputError, ContextOverflowError, RetriesExhaustedError)
"""Errors that make one judge answer invalid without stopping the evaluation."""


class Critique(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    file: str
    """The target repository's file the problem is in."""
    function: str
    """The function or class in that file ("" when not inside one)."""
    gold_file: str | None
    """The reference repository's corresponding file, or null."""
    gold_function: str | None
    """The reference repository's corresponding function, or null."""
    severity: Literal["high", "medium", "low"]
    """high: core method missing/wrong or only described; medium: secondary part; low: detail."""
    problem: str
    """What is missing or wrong, in one or two sentences."""

    @field_validator("severity", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("function", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return "" if v is None else v


class ScoreAnswer(BaseModel):
    """A judge's review of a repository."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    critiques: list[Critique]
    """Concrete problems, most severe first."""
    score: int = Field(ge=FLOOR, le=CEILING)
    """Correctness from 1 (not implemented) to 5 (complete and correct)."""

    @field_validator("score", mode="before")
    @classmethod
    def _no_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("score must be an integer from 1 to 5")
        return v


@dataclass
class Sample:
    index: int
    valid: bool
    score: int | None = None
    error: str | None = None
    critiques: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "valid": self.valid, "score": self.score,
                "error": self.error, "critiques": self.critiques or []}


async def take_samples(
    caller: Caller,
    prefix: list[Message],
    render_prompt: Any,
    n: int,
    *,
    concurrency: int,
    repairs: int = 2,
    on_done: Callable[[int, int], None] | None = None,
) -> list[Sample]:
    """``n`` judge answers; ``render_prompt(k)`` is the last user turn of sample ``k``.
    ``on_done(done, n)`` is told after each answer (the progress display)."""
    sem = asyncio.Semaphore(max(1, concurrency))
    finished = [0]

    def tell() -> None:
        finished[0] += 1
        if on_done is not None:
            on_done(finished[0], n)

    async def one(k: int) -> Sample:
        async with sem:
            msgs = prefix + [{"role": "user", "content": render_prompt(k)}]
            try:
                c = await caller.call(msgs, stage="eval", file=f"sample-{k}", schema=ScoreAnswer,
                                      repairs=repairs)
            except JUDGE_FAILURES as e:
                tell()
                return Sample(k, False, error=str(e))
            tell()
            ans = c.parsed if isinstance(c.parsed, ScoreAnswer) else \
                ScoreAnswer.model_validate(c.parsed)
            return Sample(k, True, ans.score,
                          critiques=[x.model_dump(mode="json") for x in ans.critiques])

    return list(await asyncio.gather(*(one(k) for k in range(1, n + 1))))


def spread(scores: list[float]) -> dict[str, float]:
    if not scores:
        return {"std": 0.0, "min": 0.0, "max": 0.0}
    return {"std": statistics.pstdev(scores) if len(scores) > 1 else 0.0,
            "min": float(min(scores)), "max": float(max(scores))}


def mean_score(samples: list[Sample]) -> float | None:
    """The mean over valid samples, or None when no sample is valid."""
    valid = [s.score for s in samples if s.valid and s.score is not None]
    return sum(valid) / len(valid) if valid else None
