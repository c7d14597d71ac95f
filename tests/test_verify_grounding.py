"""API grounding: third-party names and keywords checked in a real venv, inside the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from papercoder.verify.env import EnvManager
from papercoder.verify.grounding import collect_queries, ground, parse_answer
from papercoder.verify.sandbox import Limits, Sandbox
from tests.verify_helpers import build_wheel

BODY = '''
class Field:
    def __init__(self, tokenize=None, lower=False):
        self.lower = lower


def fit(x, lr=0.1, *, epochs=1):
    return x


def loose(x, **kwargs):
    return x

VERSION = "2.0"
'''

CODE = '''import tinyapi as ta
from tinyapi import Field, Iterator
from tinyapi import fit as train

f = Field(lower=True, tokenise=str)
train(1, lr=0.5, epoch=3)
ta.loose(1, anything=2)
print(ta.VERSON, ta.VERSION)
if hasattr(ta, "maybe"):
    print(ta.maybe)
'''


def test_queries_cover_imports_attribute_chains_and_keywords() -> None:
    qs = {q.path: q for q in collect_queries({"m.py": CODE, "local.py": "x = 1\n",
                                              "n.py": "import os\nimport local\nlocal.y\n"})}
    assert {"tinyapi.Field", "tinyapi.Iterator", "tinyapi.fit", "tinyapi.VERSON",
            "tinyapi.loose", "tinyapi.maybe"} <= set(qs)
    assert qs["tinyapi.fit"].kwargs == ["lr", "epoch"]
    assert qs["tinyapi.maybe"].guarded and not qs["tinyapi.VERSON"].guarded
    assert not any(p.startswith(("os", "local")) for p in qs)


@pytest.mark.slow
def test_missing_names_and_keywords_are_found_in_the_installed_version(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "tinyapi", body=BODY)
    envm = EnvManager(tmp_path / "verify" / "venv", python=None, install=True,
                      pip_args=["--no-index", "--find-links", str(wheels)])
    env = envm.prepare()
    envm.install_requirements("tinyapi==1.0\n")
    assert env.failure is None, env.failure
    sandbox = Sandbox(limits=Limits(memory_mb=4096, cpu_seconds=120), readonly=env.readonly)
    found, summary = ground({"m.py": CODE, "requirements.txt": "tinyapi==1.0\n"}, env.python,
                            sandbox)
    assert summary["answered"] == summary["queries"] > 0
    got = {(f["line"], f["certain"], f["message"].split(",")[0]) for f in found}
    msgs = " | ".join(f["message"] for f in found)
    assert all(f["check"] == "api" and f["file"] == "m.py" for f in found)
    assert (2, True, "uses tinyapi.Iterator") in got
    assert (8, True, "uses tinyapi.VERSON") in got and "did you mean VERSION" in msgs
    assert "'tokenise'" in msgs and "did you mean tokenize" in msgs
    assert "'epoch'" in msgs and "did you mean epochs" in msgs
    assert "Field," not in msgs.replace("uses tinyapi.Field", "")  # present names: silent
    assert "anything" not in msgs and "'lower'" not in msgs and "'lr'" not in msgs
    assert [f for f in found if "maybe" in f["message"]] == [] or not any(
        f["certain"] for f in found if "maybe" in f["message"])
    assert len([f for f in found if f["certain"]]) == 4


def test_a_hostile_inspector_answer_is_ignored() -> None:
    assert parse_answer("garbage", 3) is None
    assert parse_answer("PAPERCODER-GROUNDING:{not json", 3) is None
    bad = ('PAPERCODER-GROUNDING:[{"id": 99, "status": "missing"}, {"id": 0, "status": "x"},'
           ' {"id": 1, "status": "missing", "missing": 5, "names": [1, "a"]}, 7]')
    got = parse_answer(bad, 2)
    assert got == {1: {"status": "missing", "missing": "", "owner": "", "names": ["a"],
                       "bad_kwargs": [], "params": [], "via": ""}}


@pytest.mark.slow
def test_verify_repairs_a_missing_api_name_before_any_smoke_run(tmp_path: Path) -> None:
    from papercoder.models.scripted import ScriptedModel
    from papercoder.store import Store
    from tests.verify_helpers import MAIN, edit_line, good_repo, make_out, run

    wheels = tmp_path / "wheels"
    build_wheel(wheels, "tinyapi", body=BODY)
    files = good_repo()
    files["main.py"] = MAIN.replace("import yaml\n", "import tinyapi\nimport yaml\n").replace(
        "    random.seed(args.seed)\n", "    random.seed(args.seed)\n    print(tinyapi.VERSON)\n")
    files["requirements.txt"] = "pyyaml>=5\ntinyapi==1.0\n"
    out = make_out(tmp_path, files)
    model = ScriptedModel({"verify": edit_line(files, "main.py", "tinyapi.VERSON",
                                               "tinyapi.VERSION")})
    v = run(out, model, Store(tmp_path / "s.db"), install=True, python=None,
            static_repair=True, pip_args=["--no-index", "--find-links", str(wheels)])
    g = v["grounding"]
    assert [f["message"].split(",")[0] for f in g["findings"]] == ["uses tinyapi.VERSON"]
    assert g["repair"]["applied"] and (out / g["repair"]["diff"]).is_file()
    assert v["smoke"]["passed"] and v["rounds"] == []  # no smoke run was spent on it
    assert "tinyapi.VERSION" in (out / "repo" / "main.py").read_text()


def _wheel(dest: Path, name: str, files: dict[str, str]) -> None:
    import base64
    import hashlib
    import zipfile

    dest.mkdir(parents=True, exist_ok=True)
    info = f"{name}-1.0.dist-info"
    files = {**files, f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    def digest(c: str) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(
            b"=").decode()

    rec = [f"{p},sha256={digest(c)},{len(c.encode())}" for p, c in files.items()]
    files[f"{info}/RECORD"] = "\n".join([*rec, f"{info}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(dest / f"{name}-1.0-py3-none-any.whl", "w") as z:
        for p, c in files.items():
            z.writestr(p, c)


@pytest.mark.slow
def test_a_package_that_does_not_import_is_judged_from_its_installed_source(
        tmp_path: Path) -> None:
    # Like torchtext 0.18 beside a newer torch: its native library does not load, so the
    # names are read from the installed source files.
    _wheel(tmp_path / "wheels", "brokentext", {
        "brokentext/__init__.py": "raise OSError('Could not load this library: x.so')\n",
        "brokentext/data/__init__.py": "from .utils import get_tokenizer\n"
                                       "def to_map_style_dataset(x):\n    return x\n",
        "brokentext/data/utils.py": "def get_tokenizer(n):\n    return n\n",
        "brokentext/lazy.py": "def __getattr__(name):\n    return name\n"})
    envm = EnvManager(tmp_path / "verify" / "venv", python=None, install=True,
                      pip_args=["--no-index", "--find-links", str(tmp_path / "wheels")])
    env = envm.prepare()
    envm.install_requirements("brokentext==1.0\n")
    assert env.failure is None, env.failure
    code = {"m.py": "from brokentext.data import Field, get_tokenizer\n"
                    "from brokentext.data.utils import get_tokenizer as g\n"
                    "from brokentext.lazy import anything\n"}
    found, _ = ground(code, env.python, Sandbox(readonly=env.readonly))
    assert [(f["line"], f["certain"]) for f in found] == [(1, True)]
    assert "no 'Field'" in found[0]["message"] and "OSError" in found[0]["message"]
