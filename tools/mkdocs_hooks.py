"""MkDocs hooks (mkdocs.yml): point mkdocstrings at the installed package.

The repository keeps ``escudeiro_pools.integrations`` in ``integrations/``;
only the installed package (the editable install's tree, or site-packages)
has it inside ``escudeiro_pools``. Reading the sources from there documents
the core and the integrations under their import paths.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import ConfigurationError
from mkdocs.plugins import event_priority


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
