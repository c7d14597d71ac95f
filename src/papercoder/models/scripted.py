"""A deterministic model shipped in the package, for tests and offline demos.

Answers come from a JSON or YAML file (``-m scripted:PATH``):

* a list: answers given in order, whatever is asked;
* a mapping keyed by ``"stage"`` or ``"stage:file"`` (and optionally ``"*"``): each value is
  an answer or a list of answers used in turn for that key;
* a recording folder (with ``manifest.json``, planning/analysis/coding answers), replayed by
  stage and file.

A mapping may also hold ``"rules"``: a list of ``{"contains": TEXT, "answer": A}`` (``A`` an
answer or a list used in turn). The first rule whose text occurs in the request's messages
answers, before any stage key; this gives per-item answers (e.g. per rubric leaf) whatever
order concurrent calls arrive in.

An answer is a string, or ``{"text": ..., "delay": seconds, "finish_reason": ...}``.
Every request is kept in :attr:`ScriptedModel.history`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from papercoder import yamlsafe
from papercoder.errors import ConfigError, ModelOutputError
from papercoder.models.base import Completion, Message, Schema, Usage, loggable, schema_json
from papercoder.tokens import estimate_messages, estimate_tokens

# Recording file names per planning step, in the published method's order.
RECORDING_PLANNING = {
    "plan": "1_overall_plan.md",
    "architecture": "2_architecture.txt",
    "logic": "3_logic_design.txt",
    "config": "4_config.txt",
}


class ScriptedModel:
    provider = "scripted"
    takes_images = True
    """Images are accepted (tests); the history keeps their placeholders, not the bytes."""

    def __init__(
        self,
        script: Sequence[Any] | Mapping[str, Any],
        *,
        name: str = "scripted",
        delay: float = 0.0,
    ) -> None:
        self.name = name
        self.endpoint: str | None = None
        self.delay = delay
        self.history: list[dict[str, Any]] = []
        self._ordered: list[Any] = []
        self._keyed: dict[str, list[Any]] = {}
        self._rules: list[tuple[str, list[Any]]] = []
        if isinstance(script, Mapping):
            for k, v in script.items():
                if k == "rules" and isinstance(v, list):
                    for i, rule in enumerate(v):
                        if not isinstance(rule, Mapping) or "contains" not in rule:
                            raise ConfigError(f"Scripted rule {i} needs 'contains' and "
                                              "'answer'.")
                        a = rule.get("answer", "")
                        self._rules.append((str(rule["contains"]),
                                            list(a) if isinstance(a, list) else [a]))
                    continue
                self._keyed[str(k)] = list(v) if isinstance(v, list) else [v]
        else:
            self._ordered = list(script)
        self._used: dict[str, int] = {}

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_path(cls, path: str | Path) -> ScriptedModel:
        p = Path(path).expanduser()
        if p.is_dir():
            return cls.from_recording(p)
        try:
            text = p.read_text(encoding="utf-8")
            data = json.loads(text) if p.suffix == ".json" else yamlsafe.load(text)
        except FileNotFoundError:
            raise ConfigError(f"The script file {p} does not exist; check the path after "
                              "'scripted:'.") from None
        except (OSError, ValueError, yaml.YAMLError, RecursionError) as e:
            raise ConfigError(f"The script file {p} could not be parsed ({type(e).__name__}); "
                              "it must be a JSON or YAML list or mapping.") from None
        if not isinstance(data, (list, dict)):
            raise ConfigError(f"The script file {p} must hold a list or a mapping of answers.")
        return cls(data, name=f"scripted:{p.name}")

    @classmethod
    def from_recording(cls, folder: str | Path, *, delay: float = 0.0) -> ScriptedModel:
        """Replay a recorded run: ``planning/``, ``analysis/<file>.md``, ``coding/<file>.txt``."""
        root = Path(folder)
        if not (root / "planning").is_dir():
            raise ConfigError(f"{root} is not a recording folder (no planning/ inside).")
        script: dict[str, Any] = {}
        for stage, fname in RECORDING_PLANNING.items():
            f = root / "planning" / fname
            if f.exists():
                script[stage] = f.read_text(encoding="utf-8")
        for f in sorted((root / "analysis").glob("*.md")):
            script[f"analysis:{f.name[:-3]}"] = f.read_text(encoding="utf-8")
        for f in sorted((root / "coding").glob("*.txt")):
            script[f"coding:{f.name[:-4]}"] = f.read_text(encoding="utf-8")
        return cls(script, name=f"scripted:{root.name}", delay=delay)

    # -- the interface ------------------------------------------------------------------
    def _next(self, meta: Mapping[str, str], text: str = "") -> Any:
        stage, file = meta.get("stage"), meta.get("file")
        for n, (needle, answers) in enumerate(self._rules):
            if needle in text:
                i = self._used.get(f"\x00rule{n}", 0)
                self._used[f"\x00rule{n}"] = i + 1
                return answers[min(i, len(answers) - 1)]
        keys = ([f"{stage}:{file}"] if file else []) + ([stage] if stage else []) + ["*"]
        for key in keys:
            keyed = self._keyed.get(key)
            if keyed:
                i = self._used.get(key, 0)
                self._used[key] = i + 1
                # The last answer repeats, so re-asks and reruns stay deterministic.
                return keyed[min(i, len(keyed) - 1)]
        if self._ordered:
            i = self._used.get("", 0)
            if i >= len(self._ordered):
                raise ModelOutputError(
                    f"The scripted model ran out of answers after {i} calls; add more to the "
                    "script file."
                )
            self._used[""] = i + 1
            return self._ordered[i]
        where = f"{stage}:{file}" if file else str(stage)
        raise ModelOutputError(
            f"The scripted model has no answer for '{where}'; add one to the script file."
        )

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: Schema | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> Completion:
        meta = dict(meta or {})
        self.history.append(
            {"messages": loggable(messages), "schema": schema is not None,
             "schema_json": schema_json(schema) if schema is not None else None,
             "temperature": temperature, "max_tokens": max_tokens, "meta": meta}
        )
        start = time.perf_counter()
        answer = self._next(meta, "\n".join(str(m.get("content", "")) for m in messages))
        delay = self.delay
        finish = "stop"
        if isinstance(answer, Mapping):
            delay = float(answer.get("delay", delay))
            finish = str(answer.get("finish_reason", finish))
            answer = answer.get("text", "")
        elif not isinstance(answer, str):
            answer = json.dumps(answer)
        if delay:
            await asyncio.sleep(delay)
        usage = Usage(
            prompt_tokens=estimate_messages(list(messages)),
            completion_tokens=estimate_tokens(answer),
        )
        return Completion(
            text=answer, model=self.name, usage=usage,
            latency=time.perf_counter() - start, finish_reason=finish,
        )
