"""Stage 1: overall plan, architecture design, logic design, config.yaml.

Each step saves its artifact before the next starts. A rerun reuses an artifact found on disk
(the user may have edited it) unless ``--from planning`` asks to redo the stage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from papercoder import yamlsafe
from papercoder.errors import FormatError, ModelOutputError, PapercoderError
from papercoder.models.base import Completion
from papercoder.models.structured import loads_bounded
from papercoder.outdir.paths import check_file_list
from papercoder.outdir.record import FileRecord
from papercoder.pipeline.answers import extract_yaml
from papercoder.pipeline.configcheck import config_problem, unmarked_values
from papercoder.pipeline.order import (
    GENERATED,
    entry_point,
    infer_dependencies,
    topological_order,
)
from papercoder.pipeline.refine import verify_and_refine
from papercoder.pipeline.schemas import Architecture, LogicDesign, logic_for
from papercoder.requirements import stage as contract

if TYPE_CHECKING:
    from papercoder.pipeline.runner import Pipeline

CONFIG_AS_JSON = ("Give the same settings as one JSON object instead: sections as nested "
                  "objects, values the paper does not give as null.")


class _Settings(dict):
    """The settings schema (any non-empty object), with a fixed shape for constrained
    decoders (the local backend), so a small model writes numbers, not plan text."""

    @staticmethod
    def decoding_schema() -> dict[str, Any]:
        def group(**fields: str) -> dict[str, Any]:
            return {"type": "object", "properties": {k: {"type": t} for k, t in fields.items()},
                    "required": list(fields), "additionalProperties": False}

        return {"type": "object", "additionalProperties": False,
                "required": ["model", "training", "evaluation"], "properties": {
                    "model": group(name="string"),
                    "training": group(learning_rate="number", batch_size="integer",
                                      steps="integer", seed="integer"),
                    "evaluation": group(metric="string")}}


SETTINGS_SCHEMA = _Settings({"title": "settings", "type": "object", "minProperties": 1,
                             "additionalProperties": True})
FILES = {"plan": "plan.md", "architecture": "architecture.json", "logic": "logic.json",
         "config": "config.yaml"}


def _done(p: Pipeline, step: str) -> bool:
    return p.manifest.steps.get(step) == "done" and p.ws.read_artifact(FILES[step]) is not None


async def _step(p: Pipeline, step: str, messages: list, *, kind: str, format_hint: str,
                schema: Any = None, check: Any = None, last_resort: Any = None) -> Completion:
    # A planning answer closed after a cut-off would lose files or dependencies silently.
    c = await p.call(messages, stage=step, schema=schema, check=check, last_resort=last_resort,
                     allow_closed=False)
    if p.opts.refine:
        draft = c.text
        p.ws.write_artifact(f"refine/{step}.draft.txt", draft)
        c = await verify_and_refine(p, name=step, kind=kind, messages=messages, content=draft,
                                    format_hint=format_hint, schema=schema, check=check,
                                    last_resort=last_resort, allow_closed=False)
    return c


# -- checks -----------------------------------------------------------------------------------
PLAN_MIN_WORDS = 5
"""Fewer words than this is no plan at all."""


def check_plan(c: Completion) -> str:
    text = c.text.strip()
    if len(re.findall(r"\w+", text)) < PLAN_MIN_WORDS:
        raise FormatError(
            "Your overall plan is empty or has no substance. Write the whole plan in Markdown: "
            "the methods, the experiments and settings, and how to implement them.",
            user_message="the overall plan had no substance" if text else
            "the overall plan was empty")
    return text + "\n"

def architecture_last_resort(
        p: Pipeline) -> Callable[[Completion, FormatError], Architecture | None]:
    """After the re-asks, a file list that lacks only an entry point gets main.py (said)."""

    def salvage(c: Completion, e: FormatError) -> Architecture | None:
        arch = c.parsed
        if not isinstance(arch, Architecture) or "entry point" not in e.user_message:
            return None
        p.warn("the model's file list had no entry point after re-asks; main.py was added")
        return check_architecture(Completion(text="", model="", parsed=arch.model_copy(
            update={"file_list": [*arch.file_list, "main.py"]})))

    return salvage


def check_architecture(c: Completion) -> Architecture:
    arch: Architecture = c.parsed
    try:
        files = check_file_list(arch.file_list, reserved=GENERATED)
    except PapercoderError as e:
        raise FormatError(f"{e} Use relative paths inside the repository such as 'model.py'.",
                          user_message=str(e).rstrip(".")) from None
    code_files = [f for f in files if f not in GENERATED]
    if not code_files:
        raise FormatError("The file list holds no source files. List the repository's files.",
                          user_message="the file list holds no source files")
    if entry_point(code_files) is None:
        raise FormatError(
            "The file list has no entry point. Include main.py (or run.py / train.py) that runs "
            "the experiments, and send the whole JSON object again.",
            user_message="the file list has no entry point such as main.py",
        )
    return arch.model_copy(update={"file_list": files})


def plan_graph(logic: LogicDesign, files: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Reconcile the logic design with the file list; FormatError on unknown files/cycles."""
    known = set(files)
    unknown = sorted({x.file for x in logic.logic_analysis if x.file not in known}
                     | {d for x in logic.logic_analysis for d in (x.depends_on or [])
                        if d not in known and d not in GENERATED})
    if unknown:
        raise FormatError(
            f"The logic design names files that are not in the file list: {', '.join(unknown)}. "
            f"Only use these files: {', '.join(files)}.",
            user_message=f"the logic design names unknown files ({', '.join(unknown)})",
        )
    notes = {x.file: x for x in logic.logic_analysis}
    deps: dict[str, list[str]] = {}
    for f in files:
        entry = notes.get(f)
        if entry is not None and entry.depends_on is not None:
            deps[f] = [d for d in entry.depends_on if d in known and d != f]
        else:
            deps[f] = infer_dependencies(f, entry.notes if entry else "", files)
    # The task list is only a preference for ties: entries outside the file list are ignored
    # and files it omits still get written (reconciled, not trusted).
    order = topological_order(deps, [t for t in logic.task_list if t in known] + files)
    return deps, order


def make_logic_check(files: list[str]) -> Callable[[Completion], LogicDesign]:
    graph_asks = {"n": 0}

    def check(c: Completion) -> LogicDesign:
        logic: LogicDesign = c.parsed
        try:
            plan_graph(logic, files)
        except FormatError as e:
            graph_asks["n"] += 1
            if graph_asks["n"] > 1:  # asked once to fix it already
                raise ModelOutputError(
                    f"The logic design is still unusable after one correction "
                    f"({e.user_message}); edit artifacts/logic.json and rerun."
                ) from None
            raise
        return logic

    return check


def check_config(c: Completion) -> str:
    text, data = extract_yaml(c.text)
    problem = config_problem(data)
    if problem:
        raise FormatError(
            f"That is not a config.yaml: {problem}. Write the paper's hyperparameters and "
            "settings (model sizes, optimizer, learning rate, batch size, training length, "
            "evaluation) as YAML sections, in one fenced yaml block.",
            user_message=f"the config answer was not a settings file ({problem})")
    return text


# -- the stage -----------------------------------------------------------------------------
async def run(p: Pipeline) -> None:
    ws = p.ws
    redo = p.opts.from_stage == "planning"
    if redo:
        p.manifest.steps = {}
        p.manifest.models = {}
    base = p.prefix()
    p.progress.stage("planning", 4)

    # 1. overall plan
    if not redo and _done(p, "plan"):
        p.plan = ws.read_artifact("plan.md") or ""
    else:
        c = await _step(p, "plan", base + [{"role": "user", "content": p.render("plan")}],
                        kind="overall plan", format_hint="Answer with the whole plan in "
                        "Markdown, no code.", check=check_plan)
        p.plan = c.parsed
        ws.write_artifact("plan.md", p.plan)
        p.done("plan")
        p.save()
    p.progress.advance("plan")

    # 2. architecture
    if not redo and _done(p, "architecture"):
        p.architecture = _load_json(p, "architecture.json", Architecture)
        p.architecture = check_architecture(Completion(text="", model="", parsed=p.architecture))
    else:
        shell = p.render("architecture", plan="")
        msgs = base + [{"role": "user", "content": p.render(
            "architecture", plan=p.fit(p.plan, "overall plan", base, shell))}]
        c = await _step(p, "architecture", msgs, kind="architecture design",
                        format_hint="Answer with the whole JSON object.",
                        schema=Architecture, check=check_architecture,
                        last_resort=architecture_last_resort(p))
        p.architecture = c.parsed
        assert p.architecture is not None
        ws.write_artifact("architecture.json",
                          json.dumps(p.architecture.model_dump(), indent=2) + "\n")
        ws.write_artifact("class_diagram.mmd", p.architecture.data_structures_and_interfaces
                          .strip() + "\n")
        ws.write_artifact("sequence_diagram.mmd", p.architecture.program_call_flow.strip() + "\n")
        for field, head in (("data_structures_and_interfaces", "classDiagram"),
                            ("program_call_flow", "sequenceDiagram")):
            if head not in getattr(p.architecture, field):
                p.warn(f"architecture: {field} is not a mermaid {head}")
        p.done("architecture")
        p.save()
    p.progress.advance("architecture")
    files = [f for f in p.architecture.file_list if f not in GENERATED]

    # 3. logic design
    if not redo and _done(p, "logic"):
        p.logic = _load_json(p, "logic.json", LogicDesign)
        try:
            p.deps, p.order = plan_graph(p.logic, files)
        except FormatError as e:
            raise PapercoderError(f"artifacts/logic.json is inconsistent ({e.user_message}); "
                                  "fix it or rerun with --from planning.") from None
    else:
        reqs = contract.listed(p)
        shell = p.render("logic", architecture="", files=files, requirements=reqs)
        arch_json = p.fit(json.dumps(p.architecture.model_dump(), indent=1), "architecture",
                          base, shell)
        msgs = base + [{"role": "user", "content": p.render(
            "logic", architecture=arch_json, files=files, requirements=reqs)}]
        c = await _step(p, "logic", msgs, kind="logic design",
                        format_hint="Answer with the whole JSON object.",
                        schema=logic_for(files),
                        check=contract.covering_check(p, make_logic_check(files)))
        p.logic = LogicDesign.model_validate(c.parsed.model_dump())
        assert p.logic is not None
        p.deps, p.order = plan_graph(p.logic, files)
        ws.write_artifact("logic.json", json.dumps(p.logic.model_dump(), indent=2) + "\n")
        p.done("logic")
    p.files = files
    contract.apply_mapping(p)
    p.manifest.order = p.order
    for f in p.order:
        entry = p.manifest.files.setdefault(f, FileRecord(status="pending"))
        entry.depends_on = p.deps[f]
    for f in list(p.manifest.files):
        if f not in p.deps:
            del p.manifest.files[f]
    p.save()
    p.progress.advance("logic")

    # 4. config.yaml
    if not redo and _done(p, "config"):
        p.config_text = ws.read_artifact("config.yaml") or ""
        try:
            yamlsafe.load(p.config_text)
        except (yaml.YAMLError, RecursionError):
            raise PapercoderError("artifacts/config.yaml is not valid YAML; fix it or rerun "
                                  "with --from planning.") from None
    else:
        logic_json = p.fit(json.dumps(p.logic.model_dump(), indent=1), "logic design", base,
                           p.render("config"))
        msgs = base + [{"role": "user", "content": "The logic design:\n\n" + logic_json
                        + "\n\n" + p.render("config")}]
        try:
            if getattr(p.caller.model, "prefers_json", False):
                # a constrained small model (the local backend) is asked for JSON at once
                raise ModelOutputError("")
            c = await _step(p, "config", msgs, kind="config.yaml",
                            format_hint="Answer with the whole file in one fenced yaml block.",
                            check=check_config)
            p.config_text = c.parsed
        except ModelOutputError as e:
            # Last repair path: the same settings as a JSON object (constrained decoders
            # can always produce one), written out as YAML.
            if str(e):
                p.warn(f"config.yaml: {str(e).split(';')[0]}; asked for the settings as JSON "
                       "instead")
            # a config that never came whole fails the planning step (clearly, recorded in
            # run.json): a placeholder would let the run end "done" without the paper's settings
            c = await p.call(msgs + [{"role": "user", "content": CONFIG_AS_JSON}],
                             stage="config", schema=SETTINGS_SCHEMA, allow_closed=False)
            p.config_text = "# config.yaml, converted from the model's JSON answer\n" + \
                yaml.safe_dump(c.parsed, sort_keys=False)
        try:
            problem = config_problem(yamlsafe.load(p.config_text))
        except yaml.YAMLError as e:
            problem = " ".join(str(e).split())[:200]
        if problem:
            p.warn(f"config.yaml is not a usable settings file ({problem}); write it by hand "
                   "or rerun with a stronger model")
        ws.write_artifact("config.yaml", p.config_text)
        p.done("config")
        p.save()
        unmarked = unmarked_values(p.config_text, p.paper.to_markdown())
        if unmarked:
            p.warn("config.yaml has values not found in the paper and not marked '# assumed': "
                   + ", ".join(unmarked[:12]))
    p.progress.advance("config")


def _load_json(p: Pipeline, name: str, model: Any) -> Any:
    text = p.ws.read_artifact(name) or ""
    try:
        return model.model_validate(loads_bounded(text))
    except (ValueError, ValidationError, RecursionError) as e:
        first = str(e).splitlines()[0][:160]
        raise PapercoderError(f"artifacts/{name} is not valid ({first}); fix it or rerun with "
                              "--from planning.") from None
