"""The package outside its source tree: cfgs by name from any directory, the
README's Python snippet and newcomer commands, the install metadata (every
subpackage and the cfg files installed; numpy and cffi the only core
dependencies; matplotlib optional)."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

from darknet_rnn import cfgfiles
from test_cli import ROOT

README = pathlib.Path(ROOT, "README.md").read_text()


def run_in(cwd, *args, code=None):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "darknet_rnn", *args]
    return subprocess.run([str(c) for c in cmd], capture_output=True, timeout=300, env=env,
                          cwd=str(cwd))


def test_packaged_cfgs():
    names = cfgfiles.packaged_cfgs()
    assert {"char-small", "char-small.train", "rnn", "rnn.train", "tiny"} <= set(names)
    assert cfgfiles.cfg_path("char-small").endswith("char-small.cfg")
    assert cfgfiles.cfg_path("char-small", training=True).endswith("char-small.train.cfg")
    assert cfgfiles.cfg_path("tiny", training=True).endswith("tiny.cfg")
    with pytest.raises(FileNotFoundError, match="packaged cfgs: .*char-small"):
        cfgfiles.cfg_path("nope")


def test_resolution_prefers_an_existing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkdir("cfg")
    pathlib.Path("cfg/tiny.cfg").write_text("[net]\n")
    assert cfgfiles.resolve_cfg("cfg/tiny.cfg") == "cfg/tiny.cfg"          # the user's own
    assert cfgfiles.resolve_cfg("tiny") == cfgfiles.cfg_path("tiny")       # not a file here
    assert cfgfiles.resolve_cfg("cfg/rnn.cfg") == cfgfiles.cfg_path("rnn")
    with pytest.raises(FileNotFoundError):
        cfgfiles.resolve_cfg("elsewhere/rnn.cfg")      # only bare names and cfg/NAME


def test_cfgs_by_name_from_outside_the_repository(tmp_path):
    p = run_in(tmp_path, "train", "tiny", "--srand", 1, "--max-batches", 3, "--out", "o", "-q",
               "--valid-bytes", 500)
    assert p.returncode == 0, p.stderr.decode()
    assert (tmp_path / "o" / "tiny_final.weights").exists()
    # Darknet's spelling of the same path works from anywhere too
    p = run_in(tmp_path, "generate", "cfg/tiny.cfg", "o/tiny_final.weights", "-len", 5, "-q")
    assert p.returncode == 0, p.stderr.decode()
    assert len(p.stdout) == 2 + 5 + 1


def python_snippet():
    m = re.search(r"## Python API\s+```python\n(.*?)```", README, re.S)
    assert m, "README has a Python API snippet"
    return m.group(1)


def test_readme_snippet_runs_outside_the_repository(tmp_path):
    p = run_in(tmp_path, code=python_snippet())
    assert p.returncode == 0, p.stderr.decode()
    assert (tmp_path / "demo.weights").exists()


def test_readme_newcomer_commands():
    block = re.search(r"<!-- ci:install -->\s*```\n(.*?)\n```", README, re.S).group(1)
    assert block.startswith('pip install -e ".[test,mpi]" && ')     # MPI tests run in CI
    for cfg in re.findall(r"darknet-rnn \w+ (\S+)", block):
        assert os.path.isfile(cfgfiles.resolve_cfg(cfg)), cfg
    test_block = re.search(r"<!-- ci:test -->\s*```\n(.*?)\n```", README, re.S).group(1)
    assert "pytest" in test_block


def test_install_metadata():
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads(pathlib.Path(ROOT, "pyproject.toml").read_text())
    st = meta["tool"]["setuptools"]
    subpackages = {f"darknet_rnn.{d.name}" for d in pathlib.Path(ROOT, "darknet_rnn").iterdir()
                   if (d / "__init__.py").exists()}
    assert {"darknet_rnn"} | subpackages <= set(st["packages"])
    assert st["package-dir"]["darknet_rnn.cfgdata"] == "cfg"
    assert st["package-data"]["darknet_rnn.cfgdata"] == ["*.cfg"]
    deps = meta["project"]["dependencies"]
    assert sorted(d.split(">")[0] for d in deps) == ["cffi", "numpy"]
    extras = meta["project"]["optional-dependencies"]
    assert any(d.startswith("matplotlib") for d in extras["plot"])
    assert any(d.startswith("matplotlib") for d in extras["test"])


def test_an_installed_layout_finds_its_cfgs(tmp_path):
    """As `pip install .` lays the package out: darknet_rnn/ with the cfgs in
    darknet_rnn/cfgdata and no source tree around it."""
    import shutil
    site = tmp_path / "site"
    shutil.copytree(pathlib.Path(ROOT, "darknet_rnn"), site / "darknet_rnn",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(pathlib.Path(ROOT, "cfg"), site / "darknet_rnn" / "cfgdata")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    code = ("import darknet_rnn, darknet_rnn.cfgfiles as c; print(darknet_rnn.__file__); "
            "print(c.cfg_path('char-small', training=True))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, cwd=work,
                       timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    where, path = p.stdout.decode().split()
    assert where.startswith(str(site)) and path == str(
        site / "darknet_rnn" / "cfgdata" / "char-small.train.cfg")
    p = subprocess.run([sys.executable, "-m", "darknet_rnn", "info", "cfg/rnn.cfg"],
                       capture_output=True, env=env, cwd=work, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    assert b"cfgdata/rnn.cfg" in p.stdout and b"8,931,584 trainable" in p.stdout
