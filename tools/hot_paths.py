"""Inline the pools' hot paths from their one source in ``escudeiro_pools/_core.py``.

A call on the uncontended path costs a measurable share of an acquire, so
``acquire``, ``release`` and the leases' enter and exit carry copies of
``PoolCore._lend_idle`` and ``PoolCore._return_plain``. The copies sit
between marker comments naming the call they stand for::

    # inline: slot = pool._lend_idle()
    ...generated...
    # end inline

The method's body is copied with ``self`` renamed to the receiver, its
parameter to the argument and its returned local to the target; its one
``return`` must be its last statement. Locals it assigns for the code after the
copy to read (``verdict``) carry ``# noqa: F841`` in the source only.

    python tools/hot_paths.py          # rewrite the copies
    python tools/hot_paths.py --check  # exit 1 if a copy differs from its source
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "escudeiro_pools" / "_core.py"
TARGETS = [
    ROOT / "escudeiro_pools" / "_async_pool.py",
    ROOT / "escudeiro_pools" / "_thread_pool.py",
    ROOT / "escudeiro_pools" / "_lease.py",
]
START = re.compile(
    r"^(?P<indent> *)# inline: (?P<target>\w+) = "
    r"(?P<receiver>\w+)\.(?P<method>\w+)\((?P<arg>\w*)\)$"
)
END = "# end inline"


def method_body(name: str) -> tuple[str, list[str], str]:
    """The body of ``PoolCore.<name>`` without its docstring and final return:
    (body text, parameter names, returned name)."""
    source = SOURCE.read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "PoolCore":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == name:
                    return _extract(item, lines)
    raise SystemExit(f"{SOURCE.name}: PoolCore.{name} not found")


def _extract(function: ast.FunctionDef, lines: list[str]) -> tuple[str, list[str], str]:
    body = function.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    last = body[-1]
    if not (isinstance(last, ast.Return) and isinstance(last.value, ast.Name)):
        raise SystemExit(f"PoolCore.{function.name} must end with `return <local>`")
    for node in ast.walk(ast.Module(body=body[:-1], type_ignores=[])):
        if isinstance(node, ast.Return):
            raise SystemExit(f"PoolCore.{function.name}: only its last statement may return")
    first, end = body[0].lineno, last.lineno - 1
    text = textwrap.dedent("\n".join(lines[first - 1 : end]))
    params = [arg.arg for arg in function.args.args[1:]]
    return text, params, last.value.id


def _rename(text: str, old: str, new: str) -> str:
    if old == new:
        return text
    return re.sub(rf"(?<![\w.]){re.escape(old)}(?!\w)", new, text)


def expand(match: re.Match[str]) -> list[str]:
    text, params, returned = method_body(match["method"])
    args = [match["arg"]] if match["arg"] else []
    if len(args) != len(params):
        raise SystemExit(f"{match.group(0).strip()}: {match['method']} takes {params}")
    text = _rename(text, "self", match["receiver"])
    for param, arg in zip(params, args, strict=True):
        text = _rename(text, param, arg)
    text = _rename(text, returned, match["target"])
    # A local the source leaves for its caller is unused only in the source.
    text = text.replace("  # noqa: F841", "")
    return [match["indent"] + line if line else line for line in text.splitlines()]


def generate(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        out.append(line)
        index += 1
        match = START.match(line)
        if match is None:
            continue
        while index < len(lines) and lines[index].strip() != END:
            index += 1
        if index == len(lines):
            raise SystemExit(f"{path.name}: `{line.strip()}` has no `{END}`")
        out.extend(expand(match))
        out.append(lines[index])
        index += 1
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if a copy is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path in TARGETS:
        current = path.read_text(encoding="utf-8")
        wanted = generate(path)
        if current != wanted:
            stale.append(path)
            if not args.check:
                path.write_text(wanted, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        print(f"hot paths out of date in {names}: run python tools/hot_paths.py", file=sys.stderr)
        return 1
    verb = "would rewrite" if args.check else "rewrote"
    print(f"{verb} {len(stale)} file(s)" if stale else "hot paths up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
