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


# -- requirements against what verify's venv really installed ---------------------------------
def _dist(site: Path, name: str, version: str, requires: list[str], modules: list[str]) -> None:
    d = site / f"{name.replace('-', '_')}-{version}.dist-info"
    d.mkdir(parents=True)
    (d / "METADATA").write_text("Metadata-Version: 2.1\n" f"Name: {name}\nVersion: {version}\n"
                                + "".join(f"Requires-Dist: {r}\n" for r in requires)
                                + "\nlong description\nRequires-Dist: not-a-header\n")
    (d / "RECORD").write_text("".join(f"{m}/__init__.py,sha256=x,1\n" for m in modules)
                              + f"{d.name}/METADATA,,\n")


def test_dependencies_come_from_the_venvs_metadata_when_there_is_one(tmp_path: Path) -> None:
    """Without a venv the dependencies of an unknown requirement are unknown: a note. With
    the venv, its METADATA says what the requirement brought in (extras included), so the
    import it covers is no finding and the one it does not cover is certain."""
    site = tmp_path / "site-packages"
    _dist(site, "zz-research-kit", "1.0", ["zz-tensor (>=2)", 'zz-gpu ; extra == "gpu"',
                                           'zz-plot[fancy] ; extra == "all"'], ["zzkit"])
    _dist(site, "zz-tensor", "2.1", [], ["zztensor"])
    _dist(site, "zz-gpu", "0.3", [], ["zzgpu"])
    parent = tmp_path / "parent-site-packages"  # reused by the venv, not installed by it
    _dist(parent, "zz-plot", "0.1", ['zz-colors ; extra == "fancy"'], ["zzplot"])
    _dist(parent, "zz-colors", "0.1", [], ["zzcolors"])
    code = {"requirements.txt": "zz-research-kit[gpu]==1.0\n",
            "m.py": "import zzkit\nimport zztensor\nimport zzgpu\nimport zzcolors\n"}
    before = _req(code)
    assert before and not [f for f in before if f["certain"]]  # today's behaviour: notes
    venv = Installed.from_venv([site], base=Installed(paths=[str(parent)]))
    assert venv.own == {"zz-research-kit", "zz-tensor", "zz-gpu"}
    after = missing_requirements(code, installed=venv)
    assert [(f["line"], f["certain"]) for f in after] == [(4, True)]  # zzcolors: not asked
    assert "add zz-colors" in after[0]["message"]
    code["requirements.txt"] = "zz-research-kit[gpu,all]\n"
    assert missing_requirements(code, installed=venv) == []


def test_a_requirement_the_venv_does_not_hold_leaves_notes(tmp_path: Path) -> None:
    """hydra-core's dependencies are in the packaged table, but in a venv that does not hold
    it (its install failed) the omegaconf import is no longer certain either way."""
    site = tmp_path / "site-packages"
    site.mkdir()
    code = {"requirements.txt": "hydra-core\n", "m.py": "import omegaconf\n"}
    assert _req(code) == []  # the table: omegaconf comes with hydra-core
    found = missing_requirements(code, installed=Installed.from_venv([site],
                                                                     base=Installed(paths=[])))
    assert [f["certain"] for f in found] == [False]


def test_hostile_venv_metadata_is_read_within_bounds(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    _dist(site, "zz-ok", "1", ["zz-dep"], ["zzok"])
    _dist(site, "zz-dep", "1", [], ["zzdep"])
    bad = site / "zz_bad-1.dist-info"
    bad.mkdir()
    (bad / "METADATA").write_bytes(b"Name: zz-bad\nRequires-Dist: \xff\xfe((((\n"
                                   + b"Requires-Dist: " + b"x" * 3_000_000 + b"\n")
    (bad / "RECORD").write_bytes(b"\x00\x01,,\n../../etc/passwd,,\n")
    (site / "zz_link-1.dist-info").symlink_to(site / "zz_ok-1.dist-info")
    secret = tmp_path / "secret.txt"
    secret.write_text("Name: zz-secret\n")
    nolink = site / "zz_nolink-1.dist-info"
    nolink.mkdir()
    (nolink / "METADATA").symlink_to(secret)
    (site / "not-a-dist.dist-info").write_text("a file, not a folder")
    inst = Installed.from_venv([site, tmp_path / "missing"], base=Installed(paths=[]))
    assert set(inst.requires) == {"zz-ok", "zz-dep", "zz-bad"}
    assert inst.requires["zz-bad"] == [] and inst.modules["zzok"] == ["zz-ok"]
    code = {"requirements.txt": "zz-ok\n", "m.py": "import zzdep\nimport zzok\n"}
    assert missing_requirements(code, installed=inst) == []


def test_the_env_manager_reads_its_own_venv(tmp_path: Path) -> None:
    """A real venv (no pip run): what sits in its own site-packages is what the requirement
    check sees; no venv (the current interpreter) gives None, today's behaviour."""
    from papercoder.verify.env import EnvManager

    assert EnvManager(tmp_path / "none" / "venv", python=None, install=False) \
        .installed_packages() is None
    envm = EnvManager(tmp_path / "verify" / "venv", python=None, install=True)
    envm.prepare()
    [own] = envm.own_site_packages()
    _dist(own, "zz-installed", "1", [], ["zzinstalled"])
    inst = envm.installed_packages()
    assert inst is not None and "zz-installed" in inst.own
    code = {"requirements.txt": "git+https://example.org/zz.git\nzz-installed\n",
            "m.py": "import zzinstalled\n"}
    assert missing_requirements(code, installed=inst) == []


# -- Hydra config groups ------------------------------------------------------------------------
def _hydra_repo() -> dict[str, str]:
    return {
        "requirements.txt": "hydra-core\n",
        "src/train.py": (
            "import hydra\nfrom omegaconf import DictConfig\n\n\n"
            "@hydra.main(version_base=None, config_path='../conf', config_name='config')\n"
            "def main(cfg: DictConfig) -> None:\n"
            "    print(cfg.lr, cfg['seed'], cfg.model.width, cfg.model.depth)\n"
            "    print(cfg.loss.beta, cfg.loss.name, cfg.max_steps, cfg.data.path)\n"
            "    print(cfg.get('anything'), cfg.model.items(), cfg.hydra.run)\n"
            "    cfg.extra = 1\n"
            "    print(cfg.extra)\n"
            "    if 'probe' in cfg:\n"
            "        print(cfg.probe)\n"
            "    print(cfg.data.name.lower())\n"
            "    print(cfg.model.widht)\n"
            "    print(cfg.optim.lr)\n\n\n"
            "if __name__ == '__main__':\n    main()\n"),
        "conf/config.yaml": ("defaults:\n  - _self_\n  - model: small\n  - loss: sft\n"
                             "  - trainer: basic\n\nlr: 0.001\nseed: 0\ndata:\n  path: ???\n"
                             "  name: toy\n"),
        "conf/model/small.yaml": "width: 64\n",
        "conf/model/large.yaml": "defaults:\n  - small\n  - _self_\nwidth: 1024\ndepth: 24\n",
        "conf/loss/sft.yaml": "name: sft\n",
        "conf/loss/dpo.yaml": "name: dpo\nbeta: 0.1\n",
        "conf/trainer/basic.yaml": "# @package _global_\nmax_steps: 10\n",
    }


def test_hydra_groups_judge_reads_certainly_when_everything_resolves() -> None:
    """Keys of the primary config, of every option of each selected group (model.depth is
    only in large.yaml, loss.beta only in dpo.yaml) and of a ``_global_`` package exist;
    runtime-assigned, probed, generic and ``hydra.*`` reads are left alone; the typo
    ``model.widht`` and the absent ``optim.lr`` are certain."""
    found = [f for f in run_static(_hydra_repo(), reproduce=False) if f["check"] == "config"]
    assert [(f["file"], f["line"], f["certain"]) for f in found] == [
        ("src/train.py", 15, True), ("src/train.py", 16, True)], found
    assert "'model.widht'" in found[0]["message"] and "conf/config.yaml" in found[0]["message"]
    assert "'optim.lr'" in found[1]["message"]


def test_hydra_reads_are_notes_when_the_composition_is_not_fully_known() -> None:
    code = _hydra_repo()
    code["run.sh"] = "python src/train.py +optim.lr=0.1 loss=dpo\n"  # adds a key
    found = [f for f in run_static(code, reproduce=False) if f["check"] == "config"]
    assert len(found) == 2 and not any(f["certain"] for f in found)
    assert "run.sh:1" in found[0]["message"]
    code = _hydra_repo()
    code["conf/config.yaml"] = code["conf/config.yaml"].replace("model: small",
                                                                "model: tiny")  # no such file
    code["conf/optim/adam.yaml"] = "lr: 0.1\n"  # a group the defaults do not select
    found = [f for f in run_static(code, reproduce=False) if f["check"] == "config"]
    assert [f["certain"] for f in found] == [False, False]
    assert "model/tiny.yaml does not exist" in found[0]["message"]
    code = _hydra_repo()  # an option whose own defaults reach into another group
    code["conf/model/large.yaml"] = "defaults:\n  - /optim: adam\ndepth: 24\n"
    found = [f for f in run_static(code, reproduce=False) if f["check"] == "config"]
    assert [f["certain"] for f in found] == [False, False]
    assert "conf/model/large.yaml is not modelled" in found[0]["message"]
    code = _hydra_repo()  # a read guarded by try: a note
    code["src/train.py"] = code["src/train.py"].replace(
        "    print(cfg.optim.lr)\n", "    try:\n        print(cfg.optim.lr)\n"
        "    except Exception:\n        pass\n")
    found = [f for f in run_static(code, reproduce=False) if f["check"] == "config"]
    assert [f["certain"] for f in found] == [True, False]
    assert "guarded" in found[1]["message"]


def test_hydra_without_a_repository_config_file_is_not_judged() -> None:
    code = _hydra_repo()
    code["src/train.py"] = code["src/train.py"].replace("config_path='../conf'",
                                                        "config_path=None")
    assert not [f for f in run_static(code, reproduce=False) if f["check"] == "config"]
    code = _hydra_repo()
    code["src/train.py"] = code["src/train.py"].replace("    cfg.extra = 1\n",
                                                        "    cfg = fix(cfg)\n")
    assert not [f for f in run_static(code, reproduce=False) if f["check"] == "config"]


def test_a_conda_environment_under_another_name_is_a_declaration() -> None:
    """mdlm ships its environment as requirements.yaml: not 'no requirements at all'."""
    code = {"requirements.yaml": "name: x\nchannels:\n  - pytorch\ndependencies:\n"
                                 "  - python=3.9\n  - pip:\n      - einops==0.7.0\n",
            "m.py": "import einops\nimport jax\n"}
    found = _req(code)  # conda packages' dependencies are not known here: a note
    assert [(f["line"], f["certain"]) for f in found] == [(2, False)]
    assert "add jax" in found[0]["message"] and "no requirements" not in found[0]["message"]
