"""From a wheel, without a checkout: ``pip install`` of the built wheel into a fresh virtual
environment, then ``cascade list``, ``run`` and ``check`` from a folder that is not the project's,
naming shipped scenarios by name. The shipped libraries (scenarios, strategies, baselines) come
with the wheel, under ``<venv>/share/cascade-engine/``.

The fresh environment takes its dependencies (numba, pandas, ...) from this one through a path
line in a ``.pth`` file, so that nothing is downloaded but the build backend; the package itself
is the wheel's. numba's cache is warmed from the checkout's (same sources, same stamps), as a
previous run would have left it, so that the test does not pay a 45 s compile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def _warm_numba_cache(checkout: Path, installed: Path) -> None:
    for cache in checkout.rglob("__pycache__"):
        for file in cache.iterdir():
            if file.suffix in (".nbi", ".nbc"):
                target = installed / cache.relative_to(checkout) / file.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, target)
    for source in checkout.rglob("*.py"):  # numba's index is keyed on the source's stamp
        target = installed / source.relative_to(checkout)
        if target.exists():
            stat = source.stat()
            os.utime(target, (stat.st_atime, stat.st_mtime))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The ``bin/`` of a fresh venv with the wheel built from this checkout installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp / "dist")],
                           capture_output=True, text=True, timeout=600)
    if build.returncode != 0 and "No matching distribution" in build.stderr + build.stdout:
        pytest.skip("the build backend (setuptools) cannot be downloaded here: " + build.stderr[-300:])
    assert build.returncode == 0, build.stderr[-3000:]
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools' scratch folder in the checkout
    (wheel,) = (tmp / "dist").glob("cascade_engine-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "zz-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")  # a path line: no .pth run
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                              str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    _warm_numba_cache(ROOT / "engine", purelib / "engine")
    return venv / "bin"


def _cascade(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CASCADE_SCENARIOS", "VIRTUAL_ENV")}
    return subprocess.run([str(bin_dir / "cascade"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_installed_package_is_the_wheels(installed, tmp_path):
    out = subprocess.run([installed / "python", "-c", "import engine; print(engine.__file__)"], cwd=tmp_path,
                         capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert Path(out.stdout.strip()).is_relative_to(installed.parent), out.stdout + out.stderr
    # the package data it reads (the calibration's parameter table) and its one version, from the wheel
    code = ("import importlib.metadata, engine; from engine.calibration.parameters import PARAMETERS; "
            "print(len(PARAMETERS), engine.__version__ == importlib.metadata.version('cascade-engine'))")
    out = subprocess.run([installed / "python", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.stdout.split() == [str(len(__import__("engine.calibration.parameters", fromlist=["_"]).PARAMETERS)),
                                  "True"], out.stdout + out.stderr


def test_list_run_and_check_work_from_any_folder(installed, tmp_path):
    listed = _cascade(installed, "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "feb-2026-deleveraging.yaml" in listed.stdout and "put-protection-50k-60k" in listed.stdout
    run = _cascade(installed, "run", "feb-2026-deleveraging", "--paths", "500", "--no-save", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "feb-2026-deleveraging: 500 paths" in run.stdout and "put_60k" in run.stdout  # its book and `use:` hedges
    check = _cascade(installed, "check", "ci-calm", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ci-calm: ok" in check.stdout and "share/cascade-engine/results/baselines/ci-calm.json" in check.stdout
    assert not (tmp_path / "results").exists()  # --no-save, and check writes nothing
