"""MkDocs hooks (mkdocs.yml): the installed package's sources, and Mermaid shipped with the site.

The repository keeps ``escudeiro_pools.integrations`` in ``integrations/``;
only the installed package (the editable install's tree, or site-packages)
has it inside ``escudeiro_pools``. Reading the sources from there documents
the core and the integrations under their import paths.

The theme draws ``mermaid`` blocks with Mermaid.js, which it fetches from a CDN
unless the page already defines ``mermaid``. The site ships a pinned copy
instead (``extra_javascript`` in mkdocs.yml), so its diagrams draw offline: the
npm package is downloaded once, checked against its published digest and kept
in ``.cache/``.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import ConfigurationError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

MERMAID_VERSION = "11.17.2"  # the major version the theme asks its CDN for
MERMAID_TARBALL = f"https://registry.npmjs.org/mermaid/-/mermaid-{MERMAID_VERSION}.tgz"
MERMAID_SHA512 = (
    "V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/qt5gHO73aCleBBg=="
)
MERMAID_SCRIPT = "assets/javascripts/mermaid.min.js"
CACHE = Path(__file__).resolve().parent.parent / ".cache" / "docs"


@event_priority(100)  # before mkdocstrings reads its handlers' options
def on_config(config: MkDocsConfig) -> MkDocsConfig:
    spec = importlib.util.find_spec("escudeiro_pools.integrations")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "escudeiro_pools.integrations is not importable: install the project first "
            "(make docs does, in .venv)"
        )
    root = Path(next(iter(spec.submodule_search_locations))).parent.parent
    handlers: dict[str, Any] = config.plugins["mkdocstrings"].config["handlers"]
    handlers.setdefault("python", {})["paths"] = [str(root)]
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    if MERMAID_SCRIPT not in config.extra_javascript:
        raise ConfigurationError(f"mkdocs.yml: extra_javascript must list {MERMAID_SCRIPT}")
    files.append(File.generated(config, MERMAID_SCRIPT, abs_src_path=str(mermaid_script())))
    return files


def mermaid_script() -> Path:
    """The pinned ``mermaid.min.js``, from ``.cache/`` or downloaded and verified there."""
    cached = CACHE / f"mermaid-{MERMAID_VERSION}.min.js"
    if cached.exists():
        return cached
    try:
        with urllib.request.urlopen(MERMAID_TARBALL, timeout=60) as response:
            tarball = response.read()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot download Mermaid {MERMAID_VERSION} from {MERMAID_TARBALL} ({exc}); "
            f"the site ships it so that its diagrams draw offline. "
            f"Put dist/mermaid.min.js of that package at {cached} to build without a network"
        ) from exc
    digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if digest != MERMAID_SHA512:
        raise ConfigurationError(
            f"{MERMAID_TARBALL} does not match its published sha512 digest: not using it"
        )
    with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
        member = archive.extractfile("package/dist/mermaid.min.js")
        if member is None:
            raise ConfigurationError(f"{MERMAID_TARBALL} has no dist/mermaid.min.js")
        script = member.read()
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".part")
    partial.write_bytes(script)
    partial.replace(cached)
    return cached
