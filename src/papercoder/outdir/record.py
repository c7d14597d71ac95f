"""The run record, ``OUT/run.json``: a typed model, read tolerantly, written atomically.

Reading never raises on what is in the file: an older or damaged ``run.json`` loads with a
note for every part that was ignored (:func:`parse_record`, :func:`read_record`). Fields this
version does not know are kept as they were (``extra="allow"``), so a record written by a
newer version survives a rerun by an older one, and a new field needs no change here.

``totals`` are the whole run's, summed over every session (a rerun from the cache, a later
``verify``); ``totals.session`` holds the latest session's own figures. Each stage's figures
in ``stages`` are summed the same way.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from papercoder.errors import PapercoderError
from papercoder.outdir.paths import read_inside

MAX_RECORD_BYTES = 50_000_000
_FIGURES = ("calls", "cache_hits", "prompt_tokens", "cached_prompt_tokens",
            "cache_write_tokens", "completion_tokens")


class Figures(BaseModel):
    """Calls, tokens, dollars and seconds: of a stage, a session or the whole run."""

    model_config = ConfigDict(extra="allow")

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    cache_write_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    """None when a call's price is unknown."""

    def plus(self, other: Figures) -> dict[str, Any]:
        """The figures of both, as a dict (the extra fields of ``self`` kept)."""
        out = self.model_dump()
        for k in _FIGURES:
            out[k] = getattr(self, k) + getattr(other, k)
        out["cost_usd"] = (None if self.cost_usd is None or other.cost_usd is None
                           else round(self.cost_usd + other.cost_usd, 6))
        for k in ("seconds", "wall_seconds"):
            a, b = _number(out.get(k)), _number(other.model_dump().get(k))
            if a is not None or b is not None:
                out[k] = round((a or 0.0) + (b or 0.0), 2)
        return out


def figures(d: Any) -> Figures:
    """The figures in ``d`` (a stage's or a session's dict); zero where it is damaged."""
    try:
        return Figures.model_validate(d if isinstance(d, dict) else {})
    except ValidationError:
        return Figures()


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


class Totals(Figures):
    """The whole run: every session summed. ``session`` is the latest session alone."""

    wall_seconds: float = 0.0
    sessions: int = 0
    """How many sessions (run, rerun, verify) the figures sum."""
    spent_before_this_session: float | None = None
    """Dollars of the earlier sessions (kept for readers of older records)."""
    session: dict[str, Any] | None = None
    """The latest session's own figures (the Figures fields plus ``wall_seconds``)."""

    def add_session(self, session: dict[str, Any]) -> Totals:
        """These totals with one more session's figures ``session`` added."""
        s = figures(session)
        earlier = self.sessions or int(bool(self.calls or self.wall_seconds))  # older records
        merged = Totals.model_validate({**self.plus(s), "sessions": earlier + 1,
                                        "session": session,
                                        "spent_before_this_session": self.cost_usd})
        return merged

    def extend_session(self, more: dict[str, Any]) -> Totals:
        """These totals with ``more`` added to the run and to the latest session (a verify
        in the same command as the run)."""
        mf = figures(more)
        latest = figures(self.session).plus(mf)
        return Totals.model_validate({**self.plus(mf), "sessions": max(self.sessions, 1),
                                      "session": latest,
                                      "spent_before_this_session":
                                      self.spent_before_this_session})


class Entry(BaseModel):
    """A part of the record that is written back as it was read: only the fields that were in
    the file or were set since are dumped (a default is not written into run.json), and
    unknown fields are kept."""

    model_config = ConfigDict(extra="allow")

    @model_serializer(mode="wrap")
    def _only_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        keep = self.model_fields_set | set(self.__pydantic_extra__ or {})
        return {k: v for k, v in data.items() if k in keep} if isinstance(data, dict) else data

    def to_dict(self) -> dict[str, Any]:
        """As run.json holds it."""
        return self.model_dump(mode="json")

    def unset(self, name: str) -> None:
        """Remove the field ``name``: back to its default, and no longer written."""
        if name in type(self).model_fields:
            setattr(self, name, type(self).model_fields[name].get_default(
                call_default_factory=True))
            self.model_fields_set.discard(name)
        elif self.__pydantic_extra__ is not None:
            self.__pydantic_extra__.pop(name, None)


class FileRecord(Entry):
    """What ``files[<path>]`` holds."""

    status: str = "pending"
    """pending, written or failed."""
    error: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    model: str | None = None
    analysis_error: str | None = None
    bytes: int | None = None
    """Size of the written file (the contract audit)."""


class StageRecord(Entry, Figures):
    """What ``stages[<stage>]`` holds: its figures over every session, its status, and its
    latest session's own figures."""

    seconds: float | None = None
    status: str = "pending"
    session: dict[str, Any] | None = None


class RepairRecord(Entry):
    """A repair asked of the model before the smoke run (static or grounding findings)."""

    applied: bool = False
    error: str | None = None
    diff: str | None = None
    md: str | None = None


class StaticRecord(Entry):
    """``verify.static``: certain findings (what a repair acts on), those left after the
    repair, and the notes (reported, never acted on)."""

    findings: list[dict[str, Any]] = Field(default_factory=list)
    remaining: list[dict[str, Any]] = Field(default_factory=list)
    notes: list[dict[str, Any]] = Field(default_factory=list)
    repair: RepairRecord | None = None


class GroundingRecord(StaticRecord):
    """``verify.grounding``: names and keywords checked against the installed packages (the
    summary's counts are kept as extra fields)."""


class SmokeRecord(Entry):
    """``verify.smoke``: the smoke runs of the last attempt."""

    passed: bool = False
    commands: list[dict[str, Any]] = Field(default_factory=list)
    skipped: bool = False
    """Only the static checks ran."""
    failure: dict[str, Any] | None = None
    work_copies: list[str] = Field(default_factory=list)
    stopped: str | None = None
    """Why the debug loop stopped, in words."""


class RoundRecord(Entry):
    """One debug round (``verify.rounds[]``)."""

    n: int = 0
    error: str = ""
    signature: str | None = None
    diff: str | None = None
    md: str | None = None
    log: str | None = None
    applied: bool = False
    passed: bool = False
    model_error: str | None = None


class Executability(Entry):
    """``verify.executability``: how much of the generated code the debug loop changed."""

    lines_changed: int = 0
    total_lines: int = 0
    percent: float = 0.0
    rounds: int = 0
    passed: bool = False


class VerifyRecord(Entry):
    """``verify``: static checks, grounding, environment, isolation, smoke runs, debug rounds,
    executability and the calls verify made. Empty until verify runs."""

    static: StaticRecord | None = None
    grounding: GroundingRecord | None = None
    environment: dict[str, Any] | None = None
    isolation: dict[str, Any] | None = None
    smoke: SmokeRecord | None = None
    rounds: list[RoundRecord] = Field(default_factory=list)
    executability: Executability | None = None
    calls: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return bool(self.model_fields_set or self.__pydantic_extra__)


class Manifest(BaseModel):
    """``run.json``. The README's "Output folder" describes the fields."""

    model_config = ConfigDict(extra="allow")

    run_id: str = ""
    paper: dict[str, Any] = Field(default_factory=dict)
    model: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)
    status: str = "running"
    error: str | None = None
    steps: dict[str, str] = Field(default_factory=dict)
    """Planning steps and analyses done: name -> "done"."""
    files: dict[str, FileRecord] = Field(default_factory=dict)
    """Per repository file: status (pending, written, failed), error, depends_on."""
    order: list[str] = Field(default_factory=list)
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    """Per stage: calls, cache hits, tokens, dollars, seconds (all sessions), status."""
    totals: Totals = Field(default_factory=Totals)
    reductions: list[str] = Field(default_factory=list)
    reduced: list[dict[str, Any]] = Field(default_factory=list)
    """Structured context reductions: {"what": "paper"|..., "action": "dropped"|"summarized"|
    "cut", "sections": [headings], "tokens_before": int, "tokens_after": int}."""
    models: dict[str, str] = Field(default_factory=dict)
    """Which model wrote each planning step and analysis ("plan", "analysis:<file>", ...);
    each repository file records its own in files[f]["model"]."""
    warnings: list[str] = Field(default_factory=list)
    verify: VerifyRecord = Field(default_factory=VerifyRecord)
    """Static checks, environment, isolation, smoke runs, debug rounds, executability."""
    requirements: dict[str, Any] = Field(default_factory=dict)
    """The paper contract (papercoder.requirements, papercoder.audit): status, total, met,
    partial, unmet, dropped, uncovered, per category, per round."""
    started: float = Field(default_factory=time.time)
    updated: float = Field(default_factory=time.time)
    finished: float | None = None

    def files_with(self, status: str) -> list[str]:
        """The repository files whose status is ``status`` (written, failed, pending)."""
        return [f for f, s in self.files.items() if s.status == status]

    def unanalyzed(self) -> list[str]:
        """The files coded without their analysis, which failed."""
        return [f for f, s in self.files.items() if s.analysis_error]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, d: Any) -> Manifest:
        """The record in ``d``, whatever is wrong with it (see :func:`parse_record`)."""
        return parse_record(d)[0]


def _shown(key: Any) -> str:
    return repr(str(key)[:60])


def parse_record(data: Any) -> tuple[Manifest, list[str]]:
    """The record in the parsed JSON ``data``, and a note for each part ignored: a field of
    the wrong type is left out (a bad entry of ``files`` or ``stages``, or a bad part of
    ``verify``, alone), never a traceback."""
    if not isinstance(data, dict):
        return Manifest(), [f"run.json holds {type(data).__name__}, not an object; "
                            "it was ignored."]
    data = dict(data)
    notes: list[str] = []
    for key, entry_model in (("files", FileRecord), ("stages", StageRecord)):
        entries = data.get(key)
        if not isinstance(entries, dict):
            continue
        kept = {}
        for name, entry in entries.items():
            try:
                entry_model.model_validate(entry)
                kept[name] = entry
            except (ValidationError, RecursionError) as e:
                why = e.errors()[0].get("msg", "invalid") if isinstance(e, ValidationError) \
                    else "nested too deeply"
                notes.append(f"run.json: {key} entry {_shown(name)} was ignored ({why}).")
        data[key] = kept
    for _ in range(100):
        try:
            return Manifest.model_validate(data), notes
        except (ValidationError, RecursionError, ValueError, TypeError) as e:
            errors = e.errors() if isinstance(e, ValidationError) else []
            dropped = False
            for err in errors:
                loc = err.get("loc") or ()
                top = loc[0] if loc else None
                inner = data.get(top) if top is not None else None
                if top in ("files", "stages", "verify") and len(loc) > 1 \
                        and isinstance(inner, dict) and loc[1] in inner:
                    data[top] = {k: v for k, v in inner.items() if k != loc[1]}
                    notes.append(f"run.json: {top} entry {_shown(loc[1])} was ignored "
                                 f"({err.get('msg', 'invalid')}).")
                    dropped = True
                elif top in data:
                    data.pop(top)
                    notes.append(f"run.json: {_shown(top)} was ignored "
                                 f"({err.get('msg', 'invalid')}).")
                    dropped = True
            if not dropped:
                break
    return Manifest(), notes + ["run.json could not be read; it was ignored."]


def read_record(out: Path) -> tuple[Manifest | None, list[str]]:
    """OUT/run.json as a record (None when there is none or it is not JSON), with notes of
    what was ignored. A link there is refused by :mod:`papercoder.outdir.paths`."""
    try:
        text = read_inside(Path(out), "run.json", max_bytes=MAX_RECORD_BYTES)
    except PapercoderError as e:
        return None, [f"run.json could not be read ({e})"]
    if text is None:
        return None, []
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None, ["run.json is not valid JSON and was ignored."]
    return parse_record(data)
