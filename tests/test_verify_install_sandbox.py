"""pip installs the model-written requirements inside the sandbox: a hostile sdist, whose build
code tries to write outside the venv, read the parent's API key and look into the home folder,
gets none of it. Offline: the sdist is found with ``--no-index --find-links``."""

from __future__ import annotations

import ast
import io
import json
import shutil
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import pytest

from papercoder.store import Store
from papercoder.verify.sandbox import Sandbox
from tests.verify_helpers import good_repo, make_out, run

KEY = "sk-parent-secret-0123456789"

BACKEND = '''
import base64, hashlib, os, zipfile

TARGETS = {targets!r}
HOME = {home!r}


def _probe():
    seen = {{"wrote": [], "errors": []}}
    for t in TARGETS:
        try:
            with open(t, "w") as f:
                f.write("escaped")
            seen["wrote"].append(t)
        except OSError as e:
            seen["errors"].append(type(e).__name__)
    seen["key"] = os.environ.get("OPENAI_API_KEY")
    try:
        seen["home"] = sorted(os.listdir(HOME))
    except OSError:
        seen["home"] = None
    return seen


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    body = "SEEN = " + repr(_probe()) + "\\n"
    info = "evil-1.0.dist-info"
    files = {{"evil.py": body,
             info + "/METADATA": "Metadata-Version: 2.1\\nName: evil\\nVersion: 1.0\\n",
             info + "/WHEEL": "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\n"
                              "Tag: py3-none-any\\n"}}
    record = []
    for p, c in files.items():
        d = base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b"=")
        record.append(p + ",sha256=" + d.decode() + "," + str(len(c.encode())))
    files[info + "/RECORD"] = "\\n".join(record + [info + "/RECORD,,"]) + "\\n"
    name = "evil-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for p, c in files.items():
            z.writestr(p, c)
    return name
'''


def _hostile_sdist(dest: Path, targets: list[Path]) -> Path:
    """An sdist whose in-tree build backend (code that runs at install time, like a
    setup.py) records what it could do."""
    dest.mkdir(parents=True, exist_ok=True)
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                          'backend-path = ["."]\n',
        "PKG-INFO": "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n",
        "backend.py": BACKEND.format(targets=[str(t) for t in targets], home=str(Path.home())),
    }
    path = dest / "evil-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"evil-1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _seen(out: Path) -> dict:
    site = out / "verify" / "venv" / "lib" / \
        f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages" / "evil.py"
    return ast.literal_eval(site.read_text().split("=", 1)[1].strip())


def _bwrap_works() -> bool:
    return shutil.which("bwrap") is not None and Sandbox().isolation.sandbox == "bwrap"


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, list[Path]]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    links = tmp_path / "links"
    out = make_out(tmp_path, dict(good_repo(), **{"requirements.txt": "pyyaml>=5\nevil==1.0\n"}))
    targets = [tmp_path / "canary", links / "canary", out / "verify" / "canary",
               out / "repo" / "canary"]
    _hostile_sdist(links, targets)
    return out, links, targets


@pytest.mark.slow
def test_a_hostile_sdist_builds_inside_the_sandbox(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if not _bwrap_works():
        pytest.skip("bubblewrap is not available here, so the install cannot be isolated")
    out, links, targets = _setup(tmp_path, monkeypatch)
    v = run(out, None, Store(tmp_path / "s.db"), install=True, python=None,
            pip_args=["--no-index", "--find-links", str(links)])
    assert v["environment"]["installed"] == ["evil==1.0"], (out / "verify/install.log")
    seen = _seen(out)  # the package was built and installed: its build code did run
    assert seen["wrote"] == [] and len(seen["errors"]) == len(targets)
    assert not any(t.exists() for t in targets)
    assert seen["key"] is None
    assert v["environment"]["install_sandbox"] == "bwrap"
    # The home folder is hidden: only folders bound for the interpreter can show there.
    outside = set((Path.home()).iterdir()) if Path.home().is_dir() else set()
    bound = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parents[1]]
    for p in outside:
        if not any(b == p or p in b.parents for b in bound):
            assert p.name not in (seen["home"] or []), p
    # The venv is handed back to its owner afterwards.
    venv = out / "verify" / "venv"
    assert all(p.lstat().st_uid == venv.parent.stat().st_uid for p in venv.rglob("*"))
    saved = json.loads((out / "run.json").read_text())["verify"]["environment"]
    assert saved["install_sandbox"] == "bwrap"
    assert "in the bwrap sandbox" in (out / "verify" / "install.log").read_text()


@pytest.mark.slow
def test_without_bwrap_the_install_is_said_to_be_unisolated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out, links, targets = _setup(tmp_path, monkeypatch)
    v = run(out, None, Store(tmp_path / "s.db"), install=True, python=None, use_bwrap=False,
            pip_args=["--no-index", "--find-links", str(links)])
    assert v["environment"]["installed"] == ["evil==1.0"]
    assert v["environment"]["install_sandbox"] == "none"
    assert json.loads((out / "run.json").read_text())["verify"]["environment"][
        "install_sandbox"] == "none"
    assert "WITHOUT isolation" in capsys.readouterr().err.replace("\n", " ")
    seen = _seen(out)
    assert seen["key"] is None  # the environment is still filtered
    assert str(targets[0]) in seen["wrote"]  # and this is what "not isolated" means
    assert "WITHOUT a sandbox" in (out / "verify" / "install.log").read_text()


@pytest.mark.slow
def test_the_torch_pin_holds_inside_the_sandbox(tmp_path: Path) -> None:
    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        pytest.skip("torch is not installed in this interpreter")
    if not _bwrap_works():
        pytest.skip("bubblewrap is not available here, so the install cannot be isolated")
    links = tmp_path / "links"
    links.mkdir()
    out = make_out(tmp_path, dict(good_repo(), **{"requirements.txt": "torch==1.0.0\n"}))
    v = run(out, None, Store(tmp_path / "s.db"), install=True, python=None,
            pip_args=["--no-index", "--find-links", str(links)])
    assert v["environment"]["install_sandbox"] == "bwrap"
    assert v["smoke"]["failure"]["kind"] == "install"
    log = (out / "verify" / "install.log").read_text()
    assert f"(constraint) torch=={torch}" in log, log[-2000:]
    assert f"torch=={torch}\n" in (out / "verify" / "constraints.txt").read_text()
    # the user's torch is untouched
    r = subprocess.run([sys.executable, "-c", "import importlib.metadata as m;"
                        "print(m.version('torch'))"], capture_output=True, text=True)
    assert r.stdout.strip() == torch
