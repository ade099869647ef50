"""Summarise ``mutmut results`` for the scope ``make mutate`` ran.

    python tools/mutation_report.py 'escudeiro_pools._core.*' ...

Prints the counts by status, the survivors, and the score
killed / (total - equivalent), where timeouts count as killed (a test noticed
the change and hung on it) and the equivalent mutants are the ones listed in
``tools/equivalent_mutants.txt`` (one name per line, a ``#`` comment after it
says why).
"""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from collections import Counter
from pathlib import Path

EQUIVALENT = Path(__file__).with_name("equivalent_mutants.txt")


def main(patterns: list[str]) -> int:
    listing = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    statuses: dict[str, str] = {}
    for line in listing.splitlines():
        name, _, status = line.strip().partition(": ")
        if status and any(fnmatch.fnmatchcase(name, p) for p in patterns):
            statuses[name] = status
    equivalent = set()
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text(encoding="utf-8").splitlines():
            name = line.split("#", 1)[0].strip()
            if name:
                equivalent.add(name)
    counts = Counter(statuses.values())
    survived = {n for n, s in statuses.items() if s == "survived"}
    survivors = sorted(survived - equivalent)
    killed = counts["killed"] + counts["timeout"]
    considered = len(statuses) - len(equivalent & survived) - counts["not checked"]
    print("mutants by status:", dict(sorted(counts.items())))
    print(f"equivalent (tools/equivalent_mutants.txt): {len(equivalent & survived)}")
    for name in sorted(equivalent & set(statuses) - survived):
        print(f"listed as equivalent but {statuses[name]}: {name}")
    for name in survivors:
        print(f"survived: {name}")
    score = killed / considered if considered else 0.0
    print(
        f"score: killed {killed} / (total {len(statuses)} - equivalent - unchecked) = {score:.1%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
