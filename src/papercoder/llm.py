"""The caller every stage uses: cache, log, budget, validation and bounded re-asks.

One :class:`Caller` wraps one model for one run. ``await caller.call(messages, stage=...)``:

1. answers from the store when the same request was answered before (no cost);
2. refuses, with :class:`BudgetExceeded`, a call that would take the run over budget;
3. calls the model, logs the exchange with tokens, dollars and latency;
4. validates (schema, then an optional ``check``); a :class:`FormatError` goes back to the
   model as the next turn, at most ``repairs`` times, then becomes a ModelOutputError.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from papercoder.errors import (
    BudgetExceeded,
    ConfigError,
    ContextOverflowError,
    FormatError,
    Interrupted,
    MalformedResponseError,
    ModelError,
    ModelOutputError,
    PapercoderError,
)
from papercoder.models.base import (
    Completion,
    Message,
    Model,
    Schema,
    Usage,
    has_images,
    loggable,
    schema_fingerprint,
)
from papercoder.models.settings import cost_of, price_for, settings_for
from papercoder.models.structured import close_truncated, parse_truncated
from papercoder.models.structured import parse as parse_structured
from papercoder.store import Store, cache_key
from papercoder.textsafe import storable
from papercoder.tokens import estimate_messages

log = logging.getLogger("papercoder")

DEFAULT_EXPECTED_OUTPUT = 2000
IMAGE_TOKENS = 1600
"""Input tokens assumed per image for the budget and context checks (a page rendered at the
reader's size costs about this much with OpenAI's and Anthropic's image pricing)."""
TRUNCATED = {"length", "max_tokens"}
"""Finish reasons that mean the answer was cut off by the output limit."""
FILTERED = {"content_filter", "refusal", "safety", "recitation", "blocklist",
            "prohibited_content"}
"""Finish reasons that mean the provider stopped or withheld the answer (OpenAI's content
filter, Anthropic's refusal stop reason, and the names other compatible servers use)."""
_OPENER = re.compile(r"^\W*(?:(?:i['\u2019]?m|i am)\s+(?:so |very |really )?sorry\b|sorry\b|"
                     r"i\b|unfortunately\b|as an ai\b)", re.I)
_DECLINE = re.compile(
    r"\b(?:can(?:not|['\u2019]?t)|won['\u2019]?t|will not|unable|not able)\b.{0,60}?\b(?:help|"
    r"assist|comply|fulfil|fulfill|do (?:that|this|it)|complete (?:that|this|it|the)|"
    r"provide (?:that|this|it|the)|write (?:that|this|it|the)|answer (?:that|this|it))\b|"
    r"\b(?:must|have to|need to) decline\b|\bas an ai\b", re.I | re.S)
REFUSAL_MAX_CHARS = 600
"""A refusal is short: a longer answer that opens with an apology is judged by its content."""


def looks_like_refusal(text: str) -> bool:
    """True for a short answer that declines ("I'm sorry, I can't help with that.") and holds
    no code."""
    t = text.strip()
    return bool(t) and len(t) <= REFUSAL_MAX_CHARS and "```" not in t and \
        bool(_OPENER.match(t)) and bool(_DECLINE.search(t[:300]))


class WholeAnswerError(FormatError):
    """The answer is not whole (cut off, filtered, refused): the re-ask does not quote it."""


CONTINUE = ("Your answer was cut off by the length limit. Continue exactly where it stopped, "
            "without repeating anything and without any preamble.")


MIN_CONTINUATION = 128
"""Tokens a continuation needs at least to be worth asking for."""


def join_continuation(first: Completion, more: Completion) -> Completion:
    """One answer from a cut-off answer and its continuation. A continuation that reopens
    the code fence the first part left open has that fence line dropped."""
    tail = more.text
    if first.text.count("```") % 2 == 1 and tail.lstrip().startswith("```"):
        tail = tail.lstrip().split("\n", 1)[1] if "\n" in tail.lstrip() else ""
    cost = None if first.cost is None or more.cost is None else first.cost + more.cost
    return Completion(text=first.text + tail, model=more.model, usage=first.usage + more.usage,
                      latency=first.latency + more.latency, finish_reason=more.finish_reason,
                      cached=first.cached and more.cached, cost=cost,
                      exchanges=first.exchanges + more.exchanges)


@dataclass
class Totals:
    calls: int = 0
    cache_hits: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    unpriced_calls: int = 0
    seconds: float = 0.0

    def figures(self) -> dict[str, Any]:
        """These totals as run.json's figures (``outdir.record.Figures``)."""
        u = self.usage
        return {"calls": self.calls, "cache_hits": self.cache_hits,
                "prompt_tokens": u.prompt_tokens, "cached_prompt_tokens": u.cached_prompt_tokens,
                "cache_write_tokens": u.cache_write_tokens,
                "completion_tokens": u.completion_tokens,
                "cost_usd": None if self.unpriced_calls else round(self.cost, 6)}


def _estimate(messages: Sequence[Message]) -> int:
    """Estimated input tokens: the text, plus :data:`IMAGE_TOKENS` per image."""
    text = [{"role": m["role"], "content": m["content"]} for m in messages]
    return estimate_messages(text) + IMAGE_TOKENS * sum(len(m.get("images") or [])
                                                         for m in messages)


def _jsonable(parsed: Any) -> Any:
    if isinstance(parsed, BaseModel):
        return parsed.model_dump(mode="json")
    return parsed


class Caller:
    def __init__(
        self,
        model: Model,
        store: Store,
        run_id: str | None = None,
        *,
        use_cache: bool = True,
        max_cost: float | None = None,
        context_window: int | None = None,
        on_update: Callable[[Totals], None] | None = None,
    ) -> None:
        self.model = model
        self.store = store
        self.run_id = run_id
        self.use_cache = use_cache
        self.max_cost = max_cost
        self.settings = settings_for(model.name)
        self.context_window = context_window or getattr(model, "context_window", None) or \
            self.settings.window  # the input limit (plus an answer) where it is smaller
        self.totals = Totals()
        self.by_stage: dict[str, Totals] = {}
        self.on_update = on_update
        self._budget_lock = asyncio.Lock()
        self.spent_before = store.run_cost(run_id) if run_id else 0.0
        self.stopping = False
        """Set by :meth:`stop` (Ctrl-C): no new exchange starts, those in flight finish."""
        self.in_flight = 0

    def stop(self) -> None:
        """Start no new exchange (each raises Interrupted); the ones in flight finish and
        are stored, so a rerun pays nothing twice."""
        self.stopping = True

    # -- accounting -----------------------------------------------------------------------
    @property
    def spent(self) -> float:
        return self.spent_before + self.totals.cost

    def _account(self, stage: str, c: Completion) -> None:
        for t in (self.totals, self.by_stage.setdefault(stage, Totals())):
            t.calls += 1
            t.seconds += c.latency
            if c.cached:
                t.cache_hits += 1
                continue
            t.usage = t.usage + c.usage
            if c.cost is None:
                t.unpriced_calls += 1
            else:
                t.cost += c.cost
        if self.on_update:
            self.on_update(self.totals)

    def _check_budget(self, messages: Sequence[Message], max_tokens: int | None) -> None:
        if self.max_cost is None:
            return
        price = price_for(self.model.name)
        if price is None:
            return
        est_in = _estimate(messages)
        est_out = max_tokens or DEFAULT_EXPECTED_OUTPUT
        # Priced as the provider will bill it: a prompt over a long-context threshold at the
        # higher tier for the whole call (OpenAI gpt-5.4 and later above 272K).
        projected = self.spent + price.cost(Usage(prompt_tokens=est_in,
                                                  completion_tokens=est_out))
        if projected > self.max_cost:
            raise BudgetExceeded(
                f"Stopped before the next call: it would bring the cost to about "
                f"${projected:.4f}, over the --max-cost budget of ${self.max_cost:.4f} "
                f"(${self.spent:.4f} spent); raise --max-cost and rerun to continue."
            )

    # -- one exchange -------------------------------------------------------------------
    async def _exchange(
        self,
        messages: list[Message],
        *,
        stage: str,
        file: str | None,
        schema: Schema | None,
        temperature: float | None,
        max_tokens: int | None,
    ) -> Completion:
        if self.stopping:
            raise Interrupted()
        if has_images(messages) and not getattr(self.model, "takes_images", False):
            raise ConfigError(f"{self.model.name} cannot take images; choose a model that can "
                              "(e.g. --reader-model openai/gpt-4.1).")
        params = {"schema": schema_fingerprint(schema), "temperature": temperature,
                  "max_tokens": max_tokens}
        endpoint = getattr(self.model, "endpoint", None)
        ident = self.model.name + (f"@{endpoint}" if endpoint else "")
        # Images are hashed (SHA-256 and size stand for their bytes) and logged that way.
        logged = loggable(messages)
        key = cache_key(ident, logged, **params)
        request = {"messages": logged, **params}
        if self.use_cache:
            hit = self.store.lookup(key)
            if hit is not None and hit.status == "malformed":
                self.store.log(run_id=self.run_id, stage=stage, file=file, model=self.model.name,
                               key=key, request={"cache_hit_of": hit.id}, response=None,
                               status="error", cached_from=hit.id, cost=0.0, latency=0.0,
                               error=hit.error)
                raise ModelError(
                    f"{(hit.error or 'The server sent a malformed answer').rstrip('.')} (this "
                    "answer was stored when it arrived and is not paid for again; rerun with "
                    "--no-cache to ask the server again).")
            if hit is not None and hit.response is not None:
                xid = self.store.log(run_id=self.run_id, stage=stage, file=file,
                                     model=self.model.name, key=key,
                                     request={"cache_hit_of": hit.id}, response=None,
                                     status="cached", cached_from=hit.id, cost=0.0, latency=0.0,
                                     finish_reason=hit.finish_reason)
                c = Completion(text=hit.response, model=hit.model, finish_reason=hit.finish_reason,
                               parsed=hit.parsed, cached=True, cost=0.0, exchanges=[xid])
                self._account(stage, c)
                return c
        est = _estimate(messages)
        if est + (max_tokens or 0) > self.context_window * 1.1:
            raise ContextOverflowError(
                f"The {stage} request (~{est} tokens) does not fit {self.model.name}'s context "
                f"window of {self.context_window} tokens; use a model with a larger window."
            )
        async with self._budget_lock:
            self._check_budget(messages, max_tokens)
        if self.stopping:
            raise Interrupted()
        started = time.perf_counter()
        self.in_flight += 1
        try:
            c = await self.model.complete(messages, schema=schema, temperature=temperature,
                                          max_tokens=max_tokens,
                                          meta={"stage": stage, **({"file": file} if file else {})})
            # No await from here to the store.log below: the answer is stored before any
            # cancellation can reach this task.
        except MalformedResponseError as e:
            # An answer arrived but has the wrong shape: it is stored as it came (and paid
            # for), so a rerun replays the same failure instead of paying again.
            self.store.log(run_id=self.run_id, stage=stage, file=file, model=self.model.name,
                           key=key, request=request, response=e.raw or "", status="malformed",
                           error=str(e), latency=time.perf_counter() - started)
            raise
        except PapercoderError as e:
            self.store.log(run_id=self.run_id, stage=stage, file=file, model=self.model.name,
                           key=key, request=request, status="error", error=str(e),
                           latency=time.perf_counter() - started)
            raise
        finally:
            self.in_flight -= 1
        clean = storable(c.text) if isinstance(c.text, str) else ""
        if clean != c.text:
            # Unencodable text (lone surrogates) is replaced; what was parsed from the raw
            # text is parsed again from the stored one, so nothing unencodable goes on.
            c.text, c.parsed = clean, None
        c.cost = cost_of(self.model.name, c.usage)
        c.exchanges = [self.store.log(
            run_id=self.run_id, stage=stage, file=file, model=self.model.name, key=key,
            request=request, response=c.text, parsed=_jsonable(c.parsed),
            usage=c.usage.to_dict(), cost=c.cost, latency=c.latency,
            finish_reason=c.finish_reason, status="ok",
        )]
        self._account(stage, c)
        return c

    @staticmethod
    def _parse(c: Completion, schema: Schema, stage: str, file: str | None,
               allow_closed: bool = True) -> Any:
        """The validated object of a structured answer. An answer cut off by the length
        limit is accepted only when its JSON object was complete anyway; otherwise, when
        ``allow_closed``, its open parts are closed and it is validated (logged)."""
        truncated = c.finish_reason in TRUNCATED
        try:
            parsed = c.parsed if (c.parsed is not None and not c.cached) else \
                parse_structured(c.text, schema)
            if not truncated or close_truncated(c.text) is None:
                return parsed
        except FormatError:
            if not truncated:
                raise
        if not allow_closed:
            raise WholeAnswerError(
                "Your answer was cut off by the length limit before the JSON object was "
                "complete. Send the whole object again, complete, keeping every item and "
                "writing each text field more briefly.",
                user_message="the JSON answer was cut off by the length limit, and a "
                "shortened object would lose items")
        parsed = parse_truncated(c.text, schema)  # may raise FormatError too
        log.warning("%s%s: the JSON answer hit the length limit; its open parts were "
                    "closed and it validated", stage, f" ({file})" if file else "")
        return parsed

    @staticmethod
    def _whole(c: Completion, *, free_text: bool, continuations: int,
               cut_ok: bool = False) -> None:
        """FormatError for an answer that is not whole: stopped by a content filter, a
        refusal, or (free text) still cut off after the allowed continuations."""
        if c.finish_reason in FILTERED:
            raise WholeAnswerError(
                "Your previous answer was stopped before it was complete. Answer the request "
                "again in full; it is an ordinary software task.",
                user_message=f"the provider stopped the answer ({c.finish_reason})")
        if free_text and not cut_ok and c.finish_reason in TRUNCATED:
            more = f" even after {continuations} continuations" if continuations else ""
            raise WholeAnswerError(
                f"Your previous answer was cut off by the length limit{more}. Answer again in "
                "full, more concisely, so the whole answer fits.",
                user_message=f"the answer was still cut off by the length limit{more}")
        if free_text and looks_like_refusal(c.text):
            raise WholeAnswerError(
                "Your previous answer declined the request. This is an ordinary task: "
                "implementing a published research paper as code. Answer the request in full.",
                user_message=f"the model declined ({c.text.strip()[:60]!r})")

    async def call(
        self,
        messages: Sequence[Message],
        *,
        stage: str,
        file: str | None = None,
        schema: Schema | None = None,
        check: Callable[[Completion], Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        repairs: int = 2,
        last_resort: Callable[[Completion, FormatError], Any] | None = None,
        continuations: int = 0,
        allow_closed: bool = True,
        accept_cut: bool = False,
    ) -> Completion:
        """One validated, whole answer. ``check`` may raise FormatError or return a value,
        which is stored in ``completion.parsed``. When the last allowed answer still fails,
        ``last_resort`` may salvage it (return a value) before the run gives up. A free-text
        answer cut off by the length limit is continued up to ``continuations`` times; one
        still cut off, one stopped by a content filter, and a refusal are re-asked (then
        fail). ``allow_closed=False`` refuses a JSON answer that had to be closed after a
        cut-off (for answers where a lost item changes the result). ``accept_cut=True``
        keeps a free-text answer still cut off after its continuations (logged): only for
        answers that are lossy by nature, such as a section summary."""
        convo: list[Message] = [dict(m) for m in messages]  # type: ignore[misc]
        for attempt in range(repairs + 1):
            c = await self._exchange(convo, stage=stage, file=file, schema=schema,
                                     temperature=temperature, max_tokens=max_tokens)
            made = 0
            if schema is None:
                for _ in range(continuations):
                    if c.finish_reason not in TRUNCATED:
                        break
                    # The model continues from where it stopped: its answer so far, then a
                    # "continue" turn; the pieces are joined. In a small window the
                    # continuation gets the room that is left (none left: asked again).
                    ask = convo + [{"role": "assistant", "content": c.text},
                                   {"role": "user", "content": CONTINUE}]
                    room = int(self.context_window * 1.05) - _estimate(ask)
                    if room < MIN_CONTINUATION:
                        break
                    more = await self._exchange(
                        ask, stage=stage, file=file, schema=None, temperature=temperature,
                        max_tokens=min(max_tokens or room, room))
                    c = join_continuation(c, more)
                    made += 1
            try:
                self._whole(c, free_text=schema is None, continuations=made,
                            cut_ok=accept_cut)
                if accept_cut and schema is None and c.finish_reason in TRUNCATED:
                    log.warning("%s%s: the answer was cut off by the length limit and kept, "
                                "as this step allows", stage, f" ({file})" if file else "")
                if schema is not None:
                    c.parsed = self._parse(c, schema, stage, file, allow_closed)
                if check is not None:
                    c.parsed = check(c)
                return c
            except FormatError as e:
                if attempt == repairs and last_resort is not None and \
                        not isinstance(e, WholeAnswerError):
                    salvaged = last_resort(c, e)
                    if salvaged is not None:
                        c.parsed = salvaged
                        self.store.set_outcome(c.exchanges[-1:], "ok (salvaged: "
                                               f"{e.user_message})")
                        return c
                self.store.set_outcome(c.exchanges[-1:], f"rejected: {e.user_message}")
                if attempt == repairs:
                    where = f" for {file}" if file else ""
                    raise ModelOutputError(
                        f"The model's {stage} answer{where} was still unusable after "
                        f"{repairs} re-asks ({e.user_message}); try a stronger model."
                    ) from None
                if isinstance(e, WholeAnswerError):
                    # The unfinished answer is not shown again (it may be long or filtered).
                    convo = convo + [{"role": "user", "content": str(e)}]
                else:
                    convo = convo + [
                        {"role": "assistant", "content": c.text},
                        {"role": "user", "content": f"{e} Answer again in full."},
                    ]
        raise AssertionError("unreachable")
