"""Settings of one pipeline run."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

STAGE_NAMES = ("planning", "analysis", "coding")


class RunOptions(BaseModel):
    paper: str
    """Path (or id) of the paper to implement."""
    out: Path
    """Output folder: repo/, artifacts/, run.json and the log go here."""
    model: str | None = None
    """provider/model, alias, local[:PATH] or scripted:PATH; None picks the default."""
    base_url: str | None = None
    """OpenAI-compatible endpoint for self-hosted servers."""
    refine: bool = False
    """Critique and rewrite each planning artifact and analysis."""
    context: Literal["scoped", "full"] = "scoped"
    """How much earlier code a coding prompt holds: every file of a lower dependency level in
    full, the files of a level written concurrently (scoped), or every earlier file in full,
    one at a time (full, as published)."""
    layout: Literal["stable", "plain"] = "stable"
    """stable: paper and plan first with cache breakpoints; plain: one message per call, no
    breakpoints (the published layout, kept for comparison)."""
    concurrency: int = Field(8, ge=1, le=64)
    """Calls in flight at once during analysis and coding."""
    max_cost: float | None = None
    """Stop cleanly before a call that would take the run over this many dollars."""
    from_stage: str | None = None
    """Redo from this stage (planning, analysis, coding) instead of reusing its artifacts."""
    stop_after: Literal["planning", "analysis", "coding"] = "coding"
    """Last stage to run (`papercoder plan` stops after planning)."""
    keep_references: bool = False
    """Send the paper's reference list to the model (it is left out by default: it carries
    no implementation detail and would be resent on every call)."""
    use_cache: bool = True
    """Answer repeated requests from the run store."""
    prefer_source: bool = True
    """Read a PDF that names its arXiv id from its LaTeX source (the PDF as fallback)."""
    pdf_reader: Literal["default", "model", "model-all"] = "default"
    """How a PDF is read: the pure-Python reader; or a vision model transcribes the pages
    where it found display maths or algorithm boxes (model), or every page (model-all)."""
    reader_model: str | None = None
    """The model that transcribes pages (default: the run's model)."""
    context_window: int | None = None
    """Override the model's context window from the settings table."""
    prompts_dir: Path | None = None
    """A folder of template overrides."""
    quiet: bool = False
    """No progress display."""
    timeout: float = 600.0
    """Seconds before one model call times out (each attempt as a whole, body included)."""
    max_retries: int = Field(5, ge=0, le=20)
    """Retries of one call on rate limits, server errors, timeouts and dropped connections."""
    max_retry_wait: float | None = None
    """Longest wait between retries (Retry-After is honoured up to it); None: the default
    (30 s, or $PAPERCODER_MAX_RETRY_WAIT)."""
    grace: float = Field(10.0, ge=0)
    """After Ctrl-C, seconds the calls in flight may take to finish and be stored."""
    no_contract: bool = False
    """Run the published method alone: no requirements stage, no audit."""
    audit_rounds: int = Field(1, ge=0, le=10)
    """Repair rounds of the audit (0: grade only)."""
    addendum: Path | None = None
    """The authors' clarifications, a source of requirements too."""
