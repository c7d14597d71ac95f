"""Schemas of the structured planning artifacts.

Field names are snake_case; the published method's key names ("File list", "Logic Analysis",
...) are accepted too, so recorded answers in that format validate.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

PATH_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$"
"""Relative file paths: what a well-formed file list holds."""


SMALL_FILE = r"^[a-z][a-z0-9_]{1,24}\.py$"
"""File names a small model may choose under a grammar (see ``decoding_schema``)."""
_LINE = r"(    [A-Za-z][^\n\"\\]{2,70}\n){1,8}$"


def _diagram(head: str) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^{head}\\n{_LINE}"}


def _short(n: int = 160) -> dict[str, Any]:
    return {"type": "string", "maxLength": n}


def _closed(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


def _alias(*names: str) -> Any:
    return Field(validation_alias=AliasChoices(*names))


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return "\n".join(str(x) for x in v)
    return str(v)


class Architecture(BaseModel):
    """Stage 1, step 2: the architecture design."""

    model_config = ConfigDict(populate_by_name=True, use_attribute_docstrings=True)

    implementation_approach: str = _alias("implementation_approach", "Implementation approach")
    """How the paper's method will be implemented, and with which libraries."""
    file_list: list[str] = Field(
        validation_alias=AliasChoices("file_list", "File list"),
        # Shown to constrained decoders only; the program checks paths itself.
        json_schema_extra={"items": {"type": "string", "pattern": PATH_PATTERN}},
    )
    """Every file of the repository, relative paths; must include an entry point."""
    data_structures_and_interfaces: str = _alias(
        "data_structures_and_interfaces", "Data structures and interfaces")
    """A mermaid classDiagram of the classes and their methods with signatures."""
    program_call_flow: str = _alias("program_call_flow", "Program call flow")
    """A mermaid sequenceDiagram of the program's call flow."""
    anything_unclear: str = Field(default="", validation_alias=AliasChoices(
        "anything_unclear", "Anything UNCLEAR", "open_questions"))
    """Open questions the paper leaves unclear."""

    _coerce = field_validator("implementation_approach", "data_structures_and_interfaces",
                              "program_call_flow", "anything_unclear", mode="before")(
        lambda v: _text(v))

    @classmethod
    def decoding_schema(cls) -> dict[str, Any]:
        """What a constrained decoder (the local backend) may write: main.py first, two to
        four plain .py names, mermaid diagrams that open with their kind. Tighter than the
        validation, so a small model's answer passes the checks on the first try."""
        return _closed({
            "implementation_approach": _short(),
            "file_list": {"type": "array", "prefixItems": [{"const": "main.py"}],
                          "items": {"type": "string", "pattern": SMALL_FILE},
                          "minItems": 2, "maxItems": 4},
            "data_structures_and_interfaces": _diagram("classDiagram"),
            "program_call_flow": _diagram("sequenceDiagram"),
            "anything_unclear": _short(200),
        })

    @field_validator("file_list", mode="before")
    @classmethod
    def _files(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [x.strip(" -*`\t") for x in v.replace(",", "\n").splitlines() if x.strip()]
        return v


class FileLogic(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    file: str
    """The file this note is about."""
    notes: str = ""
    """What the file must contain: classes, functions, the paper's algorithm, config keys."""
    depends_on: list[str] | None = None
    """Other files of the list this one imports from."""
    requirements: list[str] = Field(default_factory=list)
    """Ids of the paper's requirements (artifacts/requirements.json) this file implements."""

    @field_validator("requirements", mode="before")
    @classmethod
    def _ids(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            return [x.strip() for x in v.replace(";", ",").split(",") if x.strip()]
        return v

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)) and v:
            return {"file": str(v[0]), "notes": _text(list(v[1:]))}
        return v


class SmokeCommand(BaseModel):
    """One command of the smoke mode and the files it must write."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    command: str
    """A shell command run from the repository root, e.g. "python main.py train --smoke"."""
    outputs: list[str] = Field(default_factory=list)
    """Files the command writes (relative paths), e.g. "results/metrics.json"."""

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, v: Any) -> Any:
        return {"command": v} if isinstance(v, str) else v

    @field_validator("outputs", mode="before")
    @classmethod
    def _outs(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else ([] if v is None else v)


class LogicDesign(BaseModel):
    """Stage 1, step 3: the logic design."""

    model_config = ConfigDict(populate_by_name=True, use_attribute_docstrings=True)

    required_packages: list[str] = _alias("required_packages", "Required packages")
    """pip requirement strings, with versions where known."""
    logic_analysis: list[FileLogic] = _alias("logic_analysis", "Logic Analysis")
    """Per-file logic notes and the files each one depends on."""
    task_list: list[str] = Field(default_factory=list, validation_alias=AliasChoices(
        "task_list", "Task list"))
    """A suggested writing order (the program computes the real one)."""
    shared_knowledge: str = Field(default="", validation_alias=AliasChoices(
        "shared_knowledge", "Shared Knowledge"))
    """Conventions and values shared across files."""
    anything_unclear: str = Field(default="", validation_alias=AliasChoices(
        "anything_unclear", "Anything UNCLEAR", "open_questions"))
    """Open questions."""
    smoke_commands: list[SmokeCommand] = Field(default_factory=list, validation_alias=AliasChoices(
        "smoke_commands", "Smoke commands"))
    """Commands that run the same code path in seconds on CPU (``--smoke``), each with the
    output files it writes; verify runs them to decide whether the repository works."""

    _coerce = field_validator("shared_knowledge", "anything_unclear", mode="before")(
        lambda v: _text(v))

    @field_validator("required_packages", "task_list", mode="before")
    @classmethod
    def _strs(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [x.strip(" -*`") for x in v.splitlines() if x.strip(" -*`")]
        return v


def logic_for(files: list[str]) -> type[LogicDesign]:
    """A LogicDesign whose file names can only be files of the list, so constrained decoders
    cannot name unknown files and other models get a precise validation error."""
    names = Literal[tuple(files)]  # type: ignore[valid-type]

    class PlannedFile(FileLogic):
        file: names  # type: ignore[valid-type]
        depends_on: list[names] | None = None  # type: ignore[valid-type]

    class PlannedLogic(LogicDesign):
        logic_analysis: list[PlannedFile] = _alias(  # type: ignore[assignment]
            "logic_analysis", "Logic Analysis")
        task_list: list[str] = Field(
            default_factory=list, validation_alias=AliasChoices("task_list", "Task list"),
            json_schema_extra={"items": {"enum": list(files)}})

        @classmethod
        def decoding_schema(cls) -> dict[str, Any]:
            """For constrained decoders: one note per file, in an order where each file may
            depend only on the files before it (entry points last), so the dependencies
            cannot form a cycle; short texts; at most one smoke command."""
            from papercoder.pipeline.order import entry_point

            entry = entry_point(files)
            ordered = [f for f in files if f != entry] + ([entry] if entry else [])
            notes = []
            for i, f in enumerate(ordered):
                deps: dict[str, Any] = {"type": "array", "maxItems": i}
                if i:
                    deps["items"] = {"enum": ordered[:i]}
                notes.append(_closed({"file": {"const": f}, "notes": _short(),
                                      "depends_on": deps}))
            return _closed({
                "required_packages": {"type": "array", "maxItems": 4, "items": {
                    "type": "string", "pattern": r"^[a-z][a-z0-9_-]{1,30}(>=[0-9]+(\.[0-9]+)?)?$"}},
                "logic_analysis": {"type": "array", "prefixItems": notes,
                                   "minItems": len(notes), "maxItems": len(notes)},
                "task_list": {"type": "array", "items": {"enum": list(files)},
                              "maxItems": len(files)},
                "shared_knowledge": _short(),
                "anything_unclear": _short(200),
                "smoke_commands": {"type": "array", "maxItems": 1, "items": _closed({
                    "command": {"type": "string", "pattern": r"^python main\.py[a-z0-9 _-]{0,30}$"},
                    "outputs": {"type": "array", "maxItems": 0}})},
            })

    PlannedLogic.__name__ = "LogicDesign"
    return PlannedLogic
