"""Print what ``make`` is about to install: the project's dependency groups.

python tools/show_groups.py test lint demo
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path


def main(groups: list[str]) -> int:
    try:
        import tomllib
    except ImportError:  # Python 3.10: the install itself says what it needs
        return 0
    project = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))
    declared = project.get("dependency-groups", {})
    for group in groups:
        names = [
            entry.split(";")[0].strip()
            for entry in declared.get(group, [])
            if isinstance(entry, str)
        ]
        print(
            textwrap.fill(
                ", ".join(names),
                width=88,
                initial_indent=f"  {group + ':':6} ",
                subsequent_indent=" " * 9,
                break_on_hyphens=False,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
