"""The installed kit claims one top-level name: ``escudeiro_pools``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def python(cwd: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_project_with_its_own_integrations_package_imports_the_kit(tmp_path: Path) -> None:
    own = tmp_path / "integrations"
    own.mkdir()
    (own / "__init__.py").write_text("OWN = True\n")
    (own / "asyncpg.py").write_text("MINE = 1\n")
    done = python(
        tmp_path,
        """
        from escudeiro_pools.integrations.asyncpg import connection_pool
        from escudeiro_pools.integrations.fastapi import lifespan
        from integrations.asyncpg import MINE
        import integrations
        print(integrations.OWN, MINE, callable(connection_pool), callable(lifespan))
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "1", "True", "True"]


def test_no_top_level_integrations_package_is_installed(tmp_path: Path) -> None:
    done = python(tmp_path, "import integrations")
    assert "ModuleNotFoundError" in done.stderr


def test_a_missing_extra_names_the_install_command(tmp_path: Path) -> None:
    blocker = tmp_path / "asyncpg.py"
    blocker.write_text("raise ImportError('not installed')\n")
    done = python(tmp_path, "import escudeiro_pools.integrations.asyncpg")
    assert "pip install 'escudeiro-pools[asyncpg]'" in done.stderr


def test_readme_links_are_absolute_and_the_metadata_points_home() -> None:
    import re
    import tomllib

    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)]+)\)", readme) + re.findall(r"<(https?://[^>]+)>", readme)
    assert targets
    relative = [t for t in targets if not t.startswith("https://")]
    assert not relative, relative  # a package index shows the README without the repository
    urls = tomllib.loads((root / "pyproject.toml").read_text())["project"]["urls"]
    assert {"Documentation", "Source", "Changelog"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    site = (root / "mkdocs.yml").read_text()
    assert f"site_url: {urls['Documentation']}" in site


def test_importing_the_package_stays_cheap() -> None:
    """``import escudeiro_pools`` loads neither importlib.metadata (``__version__``
    is read on demand) nor pkgutil, nor any integration."""
    code = (
        "import sys, escudeiro_pools; "
        "print(sorted(m for m in ('importlib.metadata', 'pkgutil', 'escudeiro_pools.integrations')"
        " if m in sys.modules)); print(escudeiro_pools.__version__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "[]", out
    assert out[1].count(".") >= 2 or out[1] == "0+unknown"
