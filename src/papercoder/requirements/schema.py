"""The contract's records: requirements, dropped requirements, the extraction answer."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from papercoder.errors import PapercoderError
from papercoder.models.structured import loads_bounded

CATEGORIES = ("model", "objective", "algorithm", "data", "training", "evaluation",
              "experiment", "result")
Category = Literal["model", "objective", "algorithm", "data", "training", "evaluation",
                   "experiment", "result"]
ID_PATTERN = re.compile(r"^R[1-9][0-9]{0,3}$")


class Requirement(BaseModel):
    """One atomic, checkable statement of what a faithful implementation must contain."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="ignore")

    id: str = Field(max_length=8)
    """R1, R2, ... unique in the contract."""
    category: Category
    """model, objective, algorithm, data, training, evaluation, experiment or result."""
    statement: str = Field(min_length=3, max_length=600)
    """One sentence: what the code must do or contain."""
    quote: str = Field(min_length=1, max_length=1000)
    """The sentence(s) of the paper that ground it, copied verbatim (at most ~300 chars)."""
    section: str = Field(default="", max_length=200)
    """The section of the paper the quote is from ("addendum" for the addendum)."""

    @field_validator("category", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("id", "section", mode="before")
    @classmethod
    def _str(cls, v: Any) -> Any:
        return "" if v is None else str(v).strip()


class ExtractionAnswer(BaseModel):
    """The extraction answer: ``{"requirements": [...]}``."""

    requirements: list[Requirement] = Field(max_length=400)


class Dropped(BaseModel):
    statement: str = ""
    quote: str = ""
    reason: str = ""


class Contract(BaseModel):
    """``artifacts/requirements.json``."""

    requirements: list[Requirement] = Field(default_factory=list)
    dropped: list[Dropped] = Field(default_factory=list)

    def ids(self) -> list[str]:
        return [r.id for r in self.requirements]

    def by_id(self) -> dict[str, Requirement]:
        return {r.id: r for r in self.requirements}

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=2, ensure_ascii=False) + "\n"


def load_contract(text: str, name: str = "artifacts/requirements.json") -> Contract:
    """A contract from disk (the user may have edited it); one sentence when it is unusable."""
    try:
        c = Contract.model_validate(loads_bounded(text))
    except (ValueError, ValidationError, RecursionError) as e:
        first = str(e).splitlines()[0][:160]
        raise PapercoderError(f"{name} is not a valid contract ({first}); fix it, or delete it "
                              "to extract the contract again.") from None
    seen: set[str] = set()
    for r in c.requirements:
        if not ID_PATTERN.match(r.id) or r.id in seen:
            raise PapercoderError(f"{name} has a missing, malformed or repeated id ({r.id!r}); "
                                  "give each requirement its own id R1, R2, ...") from None
        seen.add(r.id)
    return c
