"""The distributions carry everything the package needs at run time.

The source tree (what a clone has: tracked files and new ones git does not
ignore) is copied to a temporary folder and built once with ``python -m build``:
the sdist, then the wheel from that sdist, as pip does from PyPI. So a
template, static file or migration missing from ``MANIFEST.in`` or from the
package data is missing from the wheel, and fails here. The wheel is then
installed on its own into a folder and used: templates, ``status.js`` and the
migrations are found there, not in the source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "flask_taches"
BUILD_TIMEOUT = 300  # seconds
#: Package data: every file below these folders must ship (plus py.typed).
DATA_FOLDERS = ("templates", "static", "migrations")
#: Files of the contract that must exist whatever else changes.
REQUIRED = (
    "flask_taches/py.typed",
    "flask_taches/static/status.js",
    "flask_taches/migrations/env.py",
    "flask_taches/migrations/versions/taches_0001_create_taches.py",
    "flask_taches/migrations/old_branch_versions/taches_0001_moved.py",
)
SDIST_EXTRAS = ("README.md", "CHANGES.md", "LICENSE", "pyproject.toml", "MANIFEST.in")


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path


def source_files() -> list[Path]:
    """What a clone holds: tracked files and untracked ones that are not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=BUILD_TIMEOUT,
    ).stdout.decode()
    return [Path(name) for name in listed.split("\0") if name and (REPO / name).is_file()]


def package_files() -> set[str]:
    """Every file of ``flask_taches`` that must be in both archives."""
    files = {
        path.relative_to(REPO).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    tracked = {path.as_posix() for path in source_files()}
    return files & tracked  # not a stray file that a clone would not have


def data_files() -> set[str]:
    prefixes = tuple(f"flask_taches/{folder}/" for folder in DATA_FOLDERS)
    return {name for name in package_files() if name.startswith(prefixes)} | {REQUIRED[0]}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    source = tmp_path_factory.mktemp("source")
    for relative in source_files():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, source / relative)
    dist = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        # --no-isolation: the build tools come from the dev extra, no download.
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    return Built(sdist=sdist, wheel=wheel)


def wheel_names(built: Built) -> set[str]:
    with zipfile.ZipFile(built.wheel) as archive:
        return set(archive.namelist())


def sdist_names(built: Built) -> set[str]:
    with tarfile.open(built.sdist) as archive:
        # Drop the leading "flask_taches-0.1.0/" folder.
        return {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}


def test_the_contract_files_exist_in_the_source() -> None:
    for name in REQUIRED:
        assert (REPO / name).is_file(), name
    assert any(PACKAGE.glob("templates/taches/*.html"))


def test_the_wheel_carries_every_module_template_static_file_and_migration(built: Built) -> None:
    names = wheel_names(built)

    missing = sorted((package_files() | set(REQUIRED)) - names)

    assert missing == []
    assert data_files() <= names


def test_the_sdist_carries_the_same_files_and_the_project_files(built: Built) -> None:
    names = sdist_names(built)

    missing = sorted((package_files() | set(REQUIRED) | set(SDIST_EXTRAS)) - names)

    assert missing == []


def test_the_wheel_holds_only_the_package(built: Built) -> None:
    for name in wheel_names(built):
        top = name.split("/", 1)[0]
        assert top == "flask_taches" or top.endswith(".dist-info"), name
        assert "__pycache__" not in name and not name.endswith(".pyc"), name


def test_the_wheel_metadata_declares_python_dependencies_and_extras(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as archive:
        (metadata_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())

    requires = [line.replace(" ", "") for line in metadata.get_all("Requires-Dist") or []]
    assert metadata["Requires-Python"] == ">=3.10"
    for requirement in (
        "Flask>=3.0",
        "Flask-SQLAlchemy>=3.1",
        "SQLAlchemy>=2.0",
        "Flask-Migrate>=4.0",
        "python-dotenv>=1.0",
        "blinker>=1.9",
    ):
        assert requirement in requires
    assert {"postgres", "mysql", "metrics", "dev"} <= set(metadata.get_all("Provides-Extra") or [])
    assert any(r.startswith("prometheus_client") and 'extra=="metrics"' in r for r in requires)
    assert any(r.startswith("psycopg[binary]>=3") and 'extra=="postgres"' in r for r in requires)
    assert any(r.startswith("PyMySQL") and 'extra=="mysql"' in r for r in requires)
    assert any(r.startswith("selenium") and 'extra=="dev"' in r for r in requires)


USE_INSTALLED = textwrap.dedent(
    """
    import json
    from pathlib import Path

    from flask import Flask, render_template_string
    from flask_sqlalchemy import SQLAlchemy

    import flask_taches
    from flask_taches import TachesExtension
    from flask_taches.migrations import VERSIONS_DIR, upgrade

    app = Flask("installed")
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///installed.sqlite", SECRET_KEY="x")
    db = SQLAlchemy(app)
    TachesExtension(app, db)
    with app.test_client() as client:
        script = client.get("/taches/static/status.js")
        with app.test_request_context():
            page = render_template_string("{{ taches_script() }}")
            template = app.jinja_env.get_or_select_template("taches/_status.html")
    with app.app_context():
        revision = upgrade()  # the shipped env.py and revisions, run
    print(json.dumps({
        "package": flask_taches.__file__,
        "status_js": script.status_code,
        "script_tag": page,
        "template": template.filename,
        "migrations": sorted(p.name for p in Path(VERSIONS_DIR).glob("*.py")),
        "versions_dir": str(VERSIONS_DIR),
        "revision": revision,
    }))
    script.close()
    """
)


def test_the_installed_wheel_serves_its_templates_script_and_migrations(
    built: Built, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    subprocess.run(
        [*pip, "--target", str(target), str(built.wheel)],
        capture_output=True,
        check=True,
        timeout=BUILD_TIMEOUT,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}  # before the editable checkout

    result = subprocess.run(
        [sys.executable, "-c", USE_INSTALLED],
        cwd=tmp_path,  # not the repository, whose flask_taches would shadow the wheel's
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(seen["package"]).is_relative_to(target)
    assert seen["status_js"] == 200
    assert "status.js" in seen["script_tag"]
    assert Path(seen["template"]).is_relative_to(target)
    assert Path(seen["versions_dir"]).is_relative_to(target)
    assert "taches_0001_create_taches.py" in seen["migrations"]
    assert seen["revision"].startswith("taches_")
