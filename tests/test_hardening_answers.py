"""Hardening of what the model and the server hand us: extraction, paths, parsing bounds,
whole answers, response shapes, bounded calls (unit level; tests/test_faults.py runs the
same classes end to end through the CLI)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from papercoder.crosscheck import unresolved_imports
from papercoder.errors import FormatError, ModelError, ModelOutputError, UnsafePathError
from papercoder.filecheck import check_python
from papercoder.llm import Caller, looks_like_refusal
from papercoder.models.base import Completion
from papercoder.models.openai_api import OpenAIModel
from papercoder.models.retry import backoff, retry_after
from papercoder.models.scripted import ScriptedModel
from papercoder.models.structured import MAX_JSON_DEPTH, TooDeep, extract_json, loads_bounded
from papercoder.outdir.paths import check_file_list, clean_path, resolve_inside
from papercoder.outdir.workspace import artifact_file, artifact_name
from papercoder.pipeline.answers import (
    accepted_tags,
    extract_code,
    extract_yaml,
)
from papercoder.pipeline.interfaces import public_interface
from papercoder.pyparse import MAX_INDENT_DEPTH, parse_python
from papercoder.store import Store
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.server import Reply

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

# -- strategies ----------------------------
name_part = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=10)
py_files = st.builds(lambda folders, stem: "/".join([*folders, stem + ".py"]),
                     st.lists(name_part, max_size=2), name_part)
code_line = st.text(alphabet=st.characters(blacklist_characters="`~\r\n\x0b\x0c\x1c\x1d\x1e"
                                           "\x85\u2028\u2029",
                                           blacklist_categories=("Cs",)), max_size=40)
code_body = st.lists(code_line, min_size=1, max_size=8).map("\n".join).filter(
    lambda s: s.strip() != "")
prose = st.lists(st.text(alphabet="abcdefghij klmnop,;:!?()XYZ", max_size=40),
                 max_size=4).map("\n".join)


def fenced(code: str, lang: str = "python") -> str:
    return f"```{lang}\n{code}\n```"


# -- code extraction (properties) ----------------------------
@SETTINGS
@given(file=py_files, code=code_body, before=prose, after=prose)
def test_the_block_headed_for_the_file_is_extracted_exactly(file: str, code: str, before: str,
                                                            after: str) -> None:
    answer = f"{before}\n\n## Code: {file}\n{fenced(code)}\n{after}"
    assert extract_code(answer, file) == code + "\n"


@SETTINGS
@given(file=py_files, other=py_files, code=code_body, mine=code_body, before=prose,
       ours_first=st.booleans())
def test_another_files_block_is_never_extracted(file: str, other: str, code: str, mine: str,
                                               before: str, ours_first: bool) -> None:
    assume(other != file and other.rsplit("/", 1)[-1] != file.rsplit("/", 1)[-1])
    theirs = f"## Code: {other}\n{fenced(code)}\n"
    with pytest.raises(FormatError, match="not " + file.replace(".", r"\.")):
        extract_code(f"{before}\n{theirs}", file)
    ours = f"## Code: {file}\n{fenced(mine)}\n"
    answer = before + "\n" + (ours + theirs if ours_first else theirs + ours)
    assert extract_code(answer, file) == mine + "\n"


@SETTINGS
@given(file=py_files, code=code_body,
       lang=st.sampled_from(["javascript", "js", "typescript", "java", "rust", "go", "c"]))
def test_a_block_in_another_language_is_refused(file: str, code: str, lang: str) -> None:
    with pytest.raises(FormatError, match=lang):
        extract_code(f"Here you go.\n{fenced(code, lang)}\n", file)


@SETTINGS
@given(file=py_files, a=code_body, b=code_body)
def test_two_unnamed_candidates_are_an_ambiguity(file: str, a: str, b: str) -> None:
    assume(a.strip() != b.strip())
    with pytest.raises(FormatError, match="not clear which"):
        extract_code(f"Code:\n{fenced(a)}\nExample:\n{fenced(b)}\n", file)


@pytest.mark.parametrize("answer, file, reason", [
    ("## Code: model.py\n```python\n   \n```\n", "model.py", "empty"),
    ("## Code: data.py\n```python\nx = 1\n```\n", "model.py", "data.py"),
    ("```javascript\nx = 1\n```\n", "model.py", "javascript"),
    ("Just prose, no code.", "model.py", "no fenced code block"),
    ("```python\nprint(1)\n```\n", "config.yaml", "python"),
    ("```yaml\na: 1\n```\n", "run.sh", "yaml"),
])
def test_wrong_blocks_are_format_errors_with_the_reason(answer: str, file: str,
                                                        reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        extract_code(answer, file)


@pytest.mark.parametrize("answer, file, expected", [
    ("```python title=\"pkg/model.py\"\nA = 1\n```", "pkg/model.py", "A = 1\n"),
    ("**model.py**\n```python\nA = 1\n```\nRun:\n```bash\npython main.py\n```", "model.py",
     "A = 1\n"),
    ("```bash\n#!/bin/sh\necho hi\n```", "scripts/run", "#!/bin/sh\necho hi\n"),
    ("```dockerfile\nFROM python:3.12\n```", "Dockerfile", "FROM python:3.12\n"),
    ("```\nA = 1\n```", "model.py", "A = 1\n"),
    ("~~~yaml\nlr: 0.1\n~~~", "config/train.yml", "lr: 0.1\n"),
    ("See e.g. Sec. 3.2 of the paper.\n```python\nA = 1\n```", "model.py", "A = 1\n"),
])
def test_the_extraction_rule_accepts_clear_answers(answer: str, file: str,
                                                   expected: str) -> None:
    assert extract_code(answer, file) == expected


def test_languages_come_from_the_extension_or_the_shebang() -> None:
    assert "python" in (accepted_tags("a/b.py") or set())
    assert "bash" in (accepted_tags("x.sh") or set())
    assert "toml" in (accepted_tags("pyproject.toml") or set())
    assert accepted_tags("tool", "#!/usr/bin/env python3\n") is not None
    assert "python" in (accepted_tags("tool", "#!/usr/bin/env python3\n") or set())
    assert accepted_tags("LICENSE") is None  # nothing to tell by: any tag


# -- paths (properties) ----------------------------
path_text = st.text(alphabet="abcAB_.-/%\\ 0~:", min_size=1, max_size=30)


@SETTINGS
@given(raw=path_text)
def test_clean_paths_stay_inside_and_never_name_a_folder(raw: str, tmp_path: Path) -> None:
    try:
        p = clean_path(raw)
    except UnsafePathError:
        return
    assert not p.startswith("/") and ".." not in p.split("/") and not p.endswith("/")
    root = tmp_path / "repo"
    assert root.resolve() in resolve_inside(root, p).parents


@SETTINGS
@given(paths=st.lists(path_text, min_size=1, max_size=6))
def test_checked_file_lists_have_no_clashes_and_distinct_artifacts(paths: list[str]) -> None:
    try:
        files = check_file_list(paths, reserved=("README.md",))
    except UnsafePathError:
        return
    assert len({f.lower() for f in files}) == len(files)
    names = [artifact_name(f) for f in files]
    assert len(set(names)) == len(names) and not any("/" in n for n in names)
    for f in files:
        assert not any(g.lower().startswith(f.lower() + "/") for g in files)


@SETTINGS
@given(a=path_text, b=path_text)
def test_artifact_names_are_one_to_one(a: str, b: str) -> None:
    if a != b:
        assert artifact_name(a) != artifact_name(b)
    assert artifact_file(artifact_name(a)) == a


@pytest.mark.parametrize("files, words", [
    (["main.py", "pkg/"], "folder"),
    (["main.py", "Main.py"], "case"),
    (["main.py", "main.py/x.py"], "file and as a folder"),
    (["main.py", "readme.md"], "writes itself"),
])
def test_unusable_file_lists_are_refused_at_planning(files: list[str], words: str) -> None:
    with pytest.raises(UnsafePathError, match=words):
        check_file_list(files, reserved=("README.md", "config.yaml", "requirements.txt"))


def test_former_artifact_collision_is_gone() -> None:
    assert artifact_name("pkg/util.py") != artifact_name("pkg__util.py")
    assert artifact_name("pkg/util.py") != artifact_name("pkg%2Futil.py")


# -- bounded parsing ----------------------------
def test_deep_json_is_refused_before_parsing() -> None:
    with pytest.raises(TooDeep):
        loads_bounded("[" * 100_000 + "]" * 100_000)
    assert loads_bounded("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    with pytest.raises(FormatError, match="nested"):
        extract_json('{"a": ' * 50_000 + "1" + "}" * 50_000)
    # brackets inside strings do not count
    assert loads_bounded(json.dumps({"a": "[" * 10_000})) == {"a": "[" * 10_000}


@pytest.mark.parametrize("source", [
    "x = " + "(" * 10_000 + ")" * 10_000,
    "x = " + "-" * 200_000 + "1",
    "".join("    " * i + f"if a{i}:\n" for i in range(200)) + "    " * 200 + "pass\n",
    "x = 1\x00\n",
])
def test_deep_or_odd_python_is_a_format_error_never_a_crash(source: str) -> None:
    with pytest.raises(FormatError):
        check_python(source, "model.py")
    assert public_interface(source).startswith("# (interface unavailable")
    assert unresolved_imports({"model.py": source, "main.py": "from model import x\n"}) == []


def test_parse_python_accepts_ordinary_code() -> None:
    code = "".join("    " * i + f"if a{i}:\n" for i in range(MAX_INDENT_DEPTH - 2)) + \
        "    " * (MAX_INDENT_DEPTH - 2) + "pass\n"
    parse_python(code)


def test_deep_yaml_is_a_format_error() -> None:
    deep = "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 500))
    with pytest.raises(FormatError):
        extract_yaml(f"```yaml\n{deep}```")
    with pytest.raises(FormatError):
        extract_yaml("```yaml\nx: " + "[" * 5000 + "]" * 5000 + "\n```")


# -- whole answers through the Caller ----------------------------
def _caller(script: dict, tmp_path: Path) -> tuple[Caller, ScriptedModel, Store]:
    model = ScriptedModel(script)
    store = Store(tmp_path / "s.db")
    return Caller(model, store, "run1"), model, store


def _ask(caller: Caller, **kw: object) -> Completion:
    return asyncio.run(caller.call([{"role": "user", "content": "Do it."}], stage="plan",
                                   **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("finish", ["content_filter", "refusal"])
def test_filtered_answers_are_reasked_without_quoting_them(finish: str, tmp_path: Path) -> None:
    caller, model, _ = _caller({"plan": [{"text": "Half a pl", "finish_reason": finish},
                                         "The whole plan."]}, tmp_path)
    c = _ask(caller)
    assert c.text == "The whole plan."
    second = model.history[1]["messages"]
    assert "stopped before it was complete" in second[-1]["content"]
    assert all(m["content"] != "Half a pl" for m in second)


def test_a_free_text_answer_still_cut_off_fails(tmp_path: Path) -> None:
    caller, model, _ = _caller({"plan": {"text": "Half", "finish_reason": "length"}},
                               tmp_path)
    with pytest.raises(ModelOutputError, match="cut off by the length limit even after 2"):
        _ask(caller, continuations=2, repairs=1)
    assert len(model.history) == 6  # (answer + 2 continuations) x 2 attempts


@pytest.mark.parametrize("text", ["I'm sorry, I can't help with that.",
                                  "I’m sorry, but I cannot assist with that.",
                                  "Sorry, I can't do that.", "I won't do this.",
                                  "As an AI, I must decline.",
                                  "Unfortunately, I cannot help with this request."])
def test_refusals_are_recognized_and_reasked(text: str, tmp_path: Path) -> None:
    assert looks_like_refusal(text)
    caller, _, _ = _caller({"plan": [text, "A real plan."]}, tmp_path)
    assert _ask(caller).text == "A real plan."


@pytest.mark.parametrize("text", ["I'm sorry for the long plan: " + "step. " * 200,
                                  "Sorry, here it is:\n```python\nx = 1\n```",
                                  "I cannot find the learning rate; assume 0.1.",
                                  "I'm sorry for the confusion. The plan: train, then test.",
                                  "The model cannot help but overfit; use weight decay.",
                                  "I cannot determine the batch size; proceed with 32.",
                                  "I won't repeat the equations; they are in Sec. 1."])
def test_answers_that_only_open_with_an_apology_are_not_refusals(text: str) -> None:
    assert not looks_like_refusal(text)


SCHEMA = {"type": "object", "properties": {"files": {"type": "array",
                                                     "items": {"type": "string"}}},
          "required": ["files"]}


def test_a_json_answer_closed_after_a_cut_off_is_refused_when_items_matter(
        tmp_path: Path) -> None:
    cut = {"text": '{"files": ["a.py", "b.py", "c.', "finish_reason": "length"}
    caller, model, _ = _caller({"plan": [cut, '{"files": ["a.py", "b.py", "c.py"]}']},
                               tmp_path)
    c = _ask(caller, schema=SCHEMA, allow_closed=False)
    assert c.parsed == {"files": ["a.py", "b.py", "c.py"]} and len(model.history) == 2
    caller, _, _ = _caller({"plan": cut}, tmp_path / "b")
    assert _ask(caller, schema=SCHEMA, allow_closed=True).parsed["files"][:2] == \
        ["a.py", "b.py"]


def test_a_cached_answer_is_validated_again_and_never_paid_twice(tmp_path: Path) -> None:
    caller, model, store = _caller({"plan": "I'm sorry, I can't help with that."}, tmp_path)
    with pytest.raises(ModelOutputError, match="declined"):
        _ask(caller)
    asked = len(model.history)
    again = Caller(model, store, "run2")
    with pytest.raises(ModelOutputError, match="declined"):
        _ask(again)
    assert len(model.history) == asked  # every answer came from the store


# -- the store ----------------------------
def test_lone_surrogates_are_stored_safely(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.log(run_id="r", stage="plan\ud800", file=None, model="m", key="k",
              request={"messages": [{"content": "a\udc80"}]}, response="ans\ud800wer",
              parsed={"x\ud800": ["\udfff"]}, error="e\ud800")
    hit = store.lookup("k")
    assert hit is not None and hit.response == "ans\\ud800wer"


# -- response shapes and bounded calls (loopback server) ----------------------------
ASK = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("body, words", [
    ({"choices": {"0": {}}}, "choices is an object"),
    ({"choices": [{"message": "hello", "finish_reason": "stop"}]}, "message is a string"),
    ({"choices": [{"message": {"content": 42}}]}, "content is a number"),
    ({"choices": [{"message": {"content": [{"type": "text"}]}}]}, "content is a list"),
    ({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "many"}},
     "prompt_tokens"),
    ({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": -1}},
     "prompt_tokens"),
    ({"choices": [{"message": {"content": "x"}, "finish_reason": 3}]}, "finish_reason"),
])
def test_malformed_200s_are_one_sentence_stored_and_not_paid_twice(body: dict, words: str,
                                                                   tmp_path: Path) -> None:
    with FakeOpenAIServer() as srv:
        srv.enqueue(Reply(raw=json.dumps(body).encode()))
        model = OpenAIModel("gpt-4.1", base_url=srv.url, max_retries=0)
        store = Store(tmp_path / "s.db")
        for run in ("r1", "r2"):
            with pytest.raises(ModelError, match=words) as e:
                asyncio.run(Caller(model, store, run).call(ASK, stage="plan"))
            assert str(e.value).count(". ") == 0 or "--no-cache" in str(e.value)
        assert len(srv.chat_requests()) == 1
        assert store.exchanges("r1")[0].status == "malformed"
        assert "rerun with --no-cache" in str(e.value)


def test_a_trickling_body_is_bounded_by_the_timeout() -> None:
    with FakeOpenAIServer() as srv:
        srv.enqueue(Reply(text="x" * 200, trickle=0.3))
        model = OpenAIModel("gpt-4.1", base_url=srv.url, timeout=1.0, max_retries=0)
        t = time.monotonic()
        with pytest.raises(ModelError, match=r"within 1 second \(1 attempt\)"):
            asyncio.run(model.complete(ASK))
        assert time.monotonic() - t < 20  # the body alone would take over a minute


def test_a_long_retry_after_fails_at_once_saying_so() -> None:
    with FakeOpenAIServer() as srv:
        srv.enqueue(Reply(status=429, headers={"Retry-After": "120"},
                          body={"error": {"message": "slow down"}}))
        model = OpenAIModel("gpt-4.1", base_url=srv.url, max_retries=5, max_wait=30)
        t = time.monotonic()
        with pytest.raises(ModelError, match="asked to wait 120 s.*30 s retry-wait cap"):
            asyncio.run(model.complete(ASK))
        assert time.monotonic() - t < 20 and len(srv.chat_requests()) == 1


def test_error_messages_count_the_attempts_really_made() -> None:
    err = Reply(status=500, body={"error": {"message": "boom", "type": "server_error"}})
    with FakeOpenAIServer() as srv:
        srv.enqueue(err, err, err)
        model = OpenAIModel("gpt-4.1", base_url=srv.url, max_retries=1)
        with pytest.raises(ModelError, match=r"HTTP 500 \(boom\) after 2 attempts"):
            asyncio.run(model.complete(ASK))
        assert len(srv.chat_requests()) == 2


def test_retry_after_parsing_and_capped_backoff() -> None:
    assert retry_after({"Retry-After": "7"}) == 7
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({"Retry-After": "-3"}) is None
    far = retry_after({"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    assert far is not None and far > 1e8
    assert backoff(30, None, 5.0) == 5.0 and backoff(1, 100.0, 5.0) == 5.0


# -- run.json records what failed ------------------------------------------------------------
def test_a_failed_analysis_makes_the_run_partial_and_is_recorded(tmp_path: Path) -> None:
    from papercoder.models.scripted import ScriptedModel as Scripted
    from papercoder.pipeline import RunOptions, run_pipeline
    from tests import pipeline_helpers as ph

    paper, _ = ph.write_fixture(tmp_path)
    model = Scripted(ph.script(**{"analysis:model.py": "I'm sorry, I can't help with that."}))
    opts = RunOptions(paper=str(paper), out=tmp_path / "out", quiet=True)
    m = run_pipeline(opts, model=model, store=Store(tmp_path / "s.db"))
    assert m.status == "partial" and "model.py" in (m.error or "")
    assert "declined" in m.files["model.py"].analysis_error
    assert m.stages["analysis"].status == "partial"
    assert m.stages["coding"].status == "done"


def test_a_file_whose_answers_are_never_whole_is_failed_not_written(tmp_path: Path) -> None:
    from papercoder.models.scripted import ScriptedModel as Scripted
    from papercoder.pipeline import RunOptions, run_pipeline
    from tests import pipeline_helpers as ph

    paper, _ = ph.write_fixture(tmp_path)
    cut = {"text": ph.code_answer("data.py")[:60], "finish_reason": "length"}
    model = Scripted(ph.script(**{"coding:data.py": cut}))
    opts = RunOptions(paper=str(paper), out=tmp_path / "out", quiet=True)
    m = run_pipeline(opts, model=model, store=Store(tmp_path / "s.db"))
    assert m.status == "partial" and m.files["data.py"].status == "failed"
    assert "cut off by the length limit" in m.files["data.py"].error
    assert not (tmp_path / "out" / "repo" / "data.py").exists()
    assert m.stages["coding"].status == "partial"


# -- the local backend's result is checked too -------------------------------------------------
@pytest.mark.parametrize("out, words", [
    ({"choices": {}}, "no choices"),
    ({"choices": [{"text": 5}]}, "not a string"),
    ({"choices": [{"text": "x"}], "usage": {"prompt_tokens": "9"}}, "prompt_tokens"),
    ("nonsense", "no choices"),
])
def test_local_results_of_another_shape_are_one_sentence(out: object, words: str) -> None:
    from types import SimpleNamespace

    from papercoder.models.local_llamacpp import LocalModel  # the llama-cpp-python runtime

    with pytest.raises(ModelError, match=words):
        LocalModel._checked(SimpleNamespace(name="local:x.gguf"), out, 5)  # type: ignore[arg-type]
    assert LocalModel._checked(SimpleNamespace(name="local"),  # type: ignore[arg-type]
                               {"choices": [{"text": "hi", "finish_reason": "stop"}]}, 5) == \
        ("hi", "stop", 5, 0)


def test_a_lossy_step_may_keep_a_cut_answer_but_never_a_refusal(tmp_path: Path) -> None:
    caller, _, _ = _caller({"plan": {"text": "A summary that was cut", "finish_reason":
                                     "length"}}, tmp_path)
    assert _ask(caller, accept_cut=True).text == "A summary that was cut"
    caller, _, _ = _caller({"plan": ["I'm sorry, I can't help with that.", "Summary."]},
                           tmp_path / "b")
    assert _ask(caller, accept_cut=True).text == "Summary."
