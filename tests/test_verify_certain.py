"""Static findings are certain or notes: the false patterns found on real repositories."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from papercoder.store import Store
from papercoder.verify.requirements import Installed, decode_text, missing_requirements
from papercoder.verify.static import _yaml_keys, check_config, read_repo, run_static
from tests.verify_helpers import good_repo


def certain(found: list[dict], check: str) -> list[dict]:
    return [f for f in found if f["check"] == check and f["certain"]]


def notes(found: list[dict], check: str) -> list[dict]:
    return [f for f in found if f["check"] == check and not f["certain"]]


def test_every_finding_has_check_certain_file_and_line() -> None:
    files = good_repo()
    files["main.py"] += "\nprint(undefined_y)\nimport numpy_not_there\n"
    del files["reproduce.sh"]
    found = run_static(files, ["python main.py --smoke"])
    assert found
    for f in found:
        assert {"file", "line", "check", "certain", "message"} <= set(f)
        assert isinstance(f["line"], int) and f["file"]


# -- names imported from the repository ----------------------------------------------------
def test_star_reexports_and_submodules_resolve_like_python() -> None:
    code = {"models/__init__.py": "from .base import *\nfrom .vae import VAE\n",
            "models/base.py": "__all__ = ['BaseVAE']\nclass BaseVAE: pass\nclass Hidden: pass\n",
            "models/vae.py": "class VAE: pass\n", "models/ddpm.py": "x = 1\n",
            "main.py": "from models import BaseVAE, VAE, ddpm\n", "requirements.txt": ""}
    assert [f for f in run_static(code, reproduce=False) if f["check"] == "import"] == []
    code["main.py"] = "from models import Hidden\n"  # not in __all__: really missing
    got = certain(run_static(code, reproduce=False), "import")
    assert [(f["file"], f["line"]) for f in got] == [("main.py", 1)]


def test_a_star_import_from_outside_makes_a_missing_name_a_note() -> None:
    code = {"layers.py": "from torch.nn import *\n", "main.py": "from layers import Linear\n",
            "requirements.txt": "torch\n"}
    found = run_static(code, reproduce=False)
    assert certain(found, "import") == [] and len(notes(found, "import")) == 1


def test_a_script_folder_shadowing_the_root_module_is_a_note() -> None:
    code = {"models.py": "class A: pass\n", "scripts/models.py": "class B: pass\n",
            "scripts/run.py": "from models import B\n", "requirements.txt": ""}
    assert certain(run_static(code, reproduce=False), "import") == []


# -- config ---------------------------------------------------------------------------------
def test_config_reads_without_a_provable_load_are_notes() -> None:
    main = ("class TrainConfig:\n    lr = 0.1\n\n"
            "def run(config):\n    config.tb_logger = None\n    print(config.tb_logger)\n"
            "    if hasattr(config, 'warmup'):\n        print(config.warmup)\n"
            "    print(config.num_layers)\n    print(config['optim']['beta'])\n")
    code = {"main.py": main, "config.yaml": "optim:\n  lr: 1\n", "requirements.txt": ""}
    found = run_static(code, reproduce=False)
    assert certain(found, "config") == []
    msgs = " ".join(f["message"] for f in notes(found, "config"))
    assert "tb_logger" not in msgs and "warmup" not in msgs


def test_a_huggingface_style_config_subclass_is_not_judged() -> None:
    code = {"cfg.py": "from transformers import PretrainedConfig\n"
                      "class MyConfig(PretrainedConfig):\n    pass\n",
            "main.py": "from cfg import MyConfig\nconfig = MyConfig()\nprint(config.hidden_size)\n",
            "requirements.txt": "transformers\n"}
    assert certain(run_static(code, reproduce=False), "config") == []


def test_a_read_of_the_loaded_config_that_it_lacks_is_certain() -> None:
    files = good_repo()
    files["main.py"] = files["main.py"].replace('    width = cfg["model"]["width"]\n',
                                                '    width = cfg["model"]["depth"]\n')
    got = certain(run_static(files, ["python main.py --smoke"]), "config")
    assert len(got) == 1 and "model.depth" in got[0]["message"]
    assert got[0]["file"] == "main.py" and got[0]["line"] > 1
    # handed to a function that may add keys: a note
    files["main.py"] = files["main.py"].replace("    random.seed(args.seed)\n",
                                                "    random.seed(args.seed)\n    fill(cfg)\n")
    files["main.py"] = "def fill(c):\n    c['model']['depth'] = 1\n\n" + files["main.py"]
    assert certain(run_static(files, ["python main.py --smoke"]), "config") == []


def test_a_self_referencing_yaml_alias_does_not_recurse() -> None:
    import yaml

    data = yaml.safe_load("a: &x [*x]\nb: &y {c: *y}\n")
    keys, _ = _yaml_keys(data)
    assert keys == {"a", "b", "c"}
    check_config({"config.yaml": "a: &x [*x]\nb: &y {c: *y}\n"}, {})  # no RecursionError


# -- requirements ----------------------------------------------------------------------------
def _req(code: dict[str, str]) -> list[dict]:
    return missing_requirements(code, installed=Installed(paths=[]))


def test_transitive_guarded_sibling_and_trap_imports_are_not_certain() -> None:
    code = {"requirements.txt": "hydra-core==1.3\ntorchvision\n",
            "train.py": "import omegaconf\nimport torch\nimport hydra\n"
                        "from transformers.utils import is_apex_available\n"
                        "if is_apex_available():\n    import apex\n"
                        "try:\n    import wandb\nexcept ImportError:\n    wandb = None\n",
            "encoder/models.py": "class InferSent: pass\n",
            "encoder/train.py": "from models import InferSent\nimport clip\n"}
    found = _req(code)
    assert [f for f in found if f["certain"]] == [
        f for f in found if "transformers" in f["message"]]
    assert len([f for f in found if f["certain"]]) == 1
    clip = [f for f in found if "imports clip" in f["message"]]
    assert clip and not clip[0]["certain"] and "add clip" not in clip[0]["message"]
    assert not any("models" in f["message"] or "apex" in f["message"] for f in found)


def test_a_jax_import_nothing_installs_is_certain() -> None:
    code = {"requirements.txt": "torch\nnumpy\n", "m.py": "import numpy\nimport jax\n"}
    found = _req(code)
    assert [(f["file"], f["line"], f["certain"]) for f in found] == [("m.py", 2, True)]
    assert "add jax" in found[0]["message"]


def test_vcs_url_and_option_lines_are_accepted() -> None:
    text = ("--extra-index-url https://download.pytorch.org/whl/cpu\n"
            "-e git+https://github.com/openai/CLIP.git#egg=clip\n"
            "git+https://github.com/huggingface/peft.git\n"
            "torch==2.0 --hash=sha256:abc\nnumpy>=1 ; python_version > '3.8'\n"
            "pkg @ https://example.org/pkg.whl\n./local_pkg\n")
    found = _req({"requirements.txt": text, "a.py": "import clip\nimport torch\n"})
    assert not any("not a valid" in f["message"] for f in found)
    assert not [f for f in found if f["certain"]]


def test_requirements_in_utf16_or_with_a_bom_are_read(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import yaml\nimport numpy\n")
    for enc in ("utf-16", "utf-8-sig"):
        (tmp_path / "requirements.txt").write_bytes("PyYAML==6.0\r\nnumpy\r\n".encode(enc))
        code = read_repo(tmp_path)
        assert code["requirements.txt"].splitlines() == ["PyYAML==6.0", "numpy"]
        assert _req(code) == []
    assert decode_text(b"\x00\xff\xfe") is None or True  # never raises


def test_a_conda_export_is_one_finding_saying_what_it_is() -> None:
    text = ("# This file may be used to create an environment using:\n"
            "# $ conda create --name <env> --file <this file>\n# platform: linux-64\n"
            "_libgcc_mutex=0.1=main\nnumpy=1.18.1=py37h4f9e942_0\ntorch=1.4.0=pypi_0\n"
            "tqdm=4.42.1=py_0\n")
    found = _req({"requirements.txt": text, "a.py": "import numpy, torch\n"})
    assert len(found) == 1 and found[0]["certain"] and "conda" in found[0]["message"]


# -- only certain findings reach the repair call ---------------------------------------------
def test_notes_never_reach_the_repair_call(tmp_path: Path) -> None:
    from papercoder.models.scripted import ScriptedModel
    from papercoder.verify import VerifyOptions, verify_output
    from tests.verify_helpers import make_out

    files = good_repo()
    files["main.py"] += "\ndef later(config):\n    return config.not_there\n"
    out = make_out(tmp_path, files)
    model = ScriptedModel({})  # any call would fail the run
    v = asyncio.run(verify_output(out, model=model, store=Store(tmp_path / "s.db"),
                                  options=VerifyOptions(quiet=True))).model_dump(mode="json")
    assert v["static"]["findings"] == [] and "repair" not in v["static"]
    assert [f["check"] for f in v["static"]["notes"]] == ["config"]
    saved = json.loads((out / "run.json").read_text())["verify"]["static"]
    assert saved["notes"] == v["static"]["notes"]


# -- papercoder verify PATH on any repository ------------------------------------------------
def test_verify_any_repository_folder_prints_json_lines(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from papercoder.cli import app

    repo = tmp_path / "someone-elses-repo"
    (repo / "models").mkdir(parents=True)
    (repo / "models" / "__init__.py").write_text("from .base import *\n")
    (repo / "models" / "base.py").write_text("class BaseVAE:\n    pass\n")
    (repo / "train.py").write_text("import jax\nfrom models import BaseVAE\nprint(undefined)\n")
    (repo / "requirements.txt").write_text("numpy\n")
    r = CliRunner().invoke(app, ["verify", str(repo), "--json"])
    rows = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert r.exit_code == 1, r.output
    assert {(x["file"], x["line"], x["check"], x["certain"]) for x in rows} == {
        ("train.py", 3, "pyflakes", True), ("train.py", 1, "requirement", True)}
    assert all(set(x) == {"file", "line", "check", "certain", "message"} for x in rows)
    assert not (repo / "verify").exists() and not (repo / "run.json").exists()  # no edits
    (repo / "train.py").write_text("from models import BaseVAE\n")
    r = CliRunner().invoke(app, ["verify", str(repo)])
    assert r.exit_code == 0 and "0 certain finding(s)" in r.output, r.output
    r = CliRunner().invoke(app, ["verify", str(repo), "--execute"])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_verify_execute_on_any_repository_checks_apis_and_runs_a_copy(
        tmp_path: Path, monkeypatch) -> None:
    import sys
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the work copy goes here

    from typer.testing import CliRunner

    from papercoder.cli import app

    repo = tmp_path / "repo"
    repo.mkdir()
    train = "import yaml\n\nprint(yaml.safe_lod('a: 1'))\n"
    (repo / "train.py").write_text(train)
    (repo / "requirements.txt").write_text("pyyaml\n")
    r = CliRunner().invoke(app, ["verify", str(repo), "--execute", "--json"])
    assert r.exit_code == 2 and "--smoke" in r.output  # the command to run is needed
    r = CliRunner().invoke(app, ["verify", str(repo), "--execute", "--smoke",
                                 "python train.py", "--python", sys.executable, "--json",
                                 "--timeout", "60"])
    rows = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert r.exit_code == 1, r.output  # it does not run, and nothing repairs it without -m
    api = [x for x in rows if x["check"] == "api"]
    assert [(x["file"], x["line"], x["certain"]) for x in api] == [("train.py", 3, True)]
    assert "did you mean safe_load" in api[0]["message"]
    assert (repo / "train.py").read_text() == train and sorted(
        p.name for p in repo.iterdir()) == ["requirements.txt", "train.py"]
    work = [p for p in tmp_path.iterdir() if p.name.startswith("papercoder-verify-")]
    assert len(work) == 1 and (work[0] / "repo" / "train.py").is_file()
