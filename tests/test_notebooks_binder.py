"""The Binder setup: repo2docker accepts binder/, and the notebooks run through binder/start.

``repo2docker --no-build`` only plans the image (it prints the Dockerfile it would build), so
it needs no Docker daemon; the test points DOCKER_HOST at nothing to prove it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.services import service_missing

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKSIM_")}
    env.update(extra)
    return env


def test_repo2docker_plans_an_image_from_binder_without_docker() -> None:
    exe = shutil.which("repo2docker")
    if exe is None:
        service_missing("repo2docker is missing (pip install jupyter-repo2docker)")
    result = subprocess.run(
        [exe, "--no-build", "--debug", "--no-run", "."],
        cwd=ROOT,
        env=_env(DOCKER_HOST="unix:///nonexistent/docker.sock"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "python=3.11" in out  # binder/runtime.txt
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in out
    assert "./binder/postBuild" in out
    assert 'R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in out


def test_binder_requirements_install_this_package_with_its_notebook_extras() -> None:
    lines = [
        line.strip()
        for line in (BINDER / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "-e .[notebooks]" in lines
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["notebooks"]
    names = {e.split(">")[0].split("=")[0].split("[")[0].strip() for e in extras}
    assert {"ipywidgets", "bqplot"} <= names


def test_binder_start_sets_fast_mode_and_execs_its_arguments() -> None:
    start = BINDER / "start"
    assert os.access(start, os.X_OK)
    code = [s for s in start.read_text().splitlines() if s.strip() and not s.startswith("#")]
    assert code[-1] == 'exec "$@"'
    show = [str(start), sys.executable, "-c", "import os; print(os.environ['MOCKSIM_FAST'])"]
    fast = subprocess.run(show, env=_env(), capture_output=True, text=True, check=True)
    assert fast.stdout.strip() == "1"
    chosen = subprocess.run(
        show, env=_env(MOCKSIM_FAST="0"), capture_output=True, text=True, check=True
    )
    assert chosen.stdout.strip() == "0"  # a user's choice wins


def test_binder_post_build_accepts_this_environment() -> None:
    result = subprocess.run(
        [str(BINDER / "postBuild")],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mocksim" in result.stdout


def test_notebooks_are_committed_without_outputs() -> None:
    import nbformat  # noqa: PLC0415 - only this test needs it

    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        code = [c for c in book.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path.name
        assert book.cells[0].cell_type == "markdown", path.name
        assert "What you will learn" in book.cells[0].source, path.name
        assert "close()" in code[-1].source, path.name


@pytest.mark.slow
def test_quickstart_notebook_runs_through_binder_start() -> None:
    result = subprocess.run(
        [
            str(BINDER / "start"),
            sys.executable,
            "-m",
            "pytest",
            "--nbmake",
            "-q",
            "-p",
            "no:cacheprovider",
            "notebooks/01_quickstart.ipynb",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "1 passed" in result.stdout
