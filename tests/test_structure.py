"""The design's rules, read from the source: one owner writes the state, and
leases reach their pool through four named calls.

A rule broken here is a structural fault even when every behaviour test
passes: a second writer of a gauge is how the books went wrong before.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "escudeiro_pools"
#: The owner (``Books`` and ``PoolState``) and the parts it owns, which write their own fields.
OWNERS = {"_books.py", "_state.py", "_queue.py", "_breaker.py", "_slot.py"}
#: Names under which the rest of the package holds the state or its parts.
HOLDERS = {"state", "_state", "slot", "grant", "queue", "breaker", "idle", "slots", "entries"}
MUTATORS = {"append", "appendleft", "pop", "popleft", "remove", "clear", "extend", "update"}
LEASE_CALLS = {"_checkout", "_end", "_checkout_async", "_end_async"}


def _modules() -> list[Path]:
    return sorted(path for path in PACKAGE.glob("*.py") if path.name not in OWNERS)


def _holder(node: ast.expr) -> str | None:
    """The name a chain such as ``self._state.idle`` ends in, if it is a holder's."""
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    return name if name in HOLDERS else None


def _writes(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for target in targets:
            if isinstance(target, (ast.Attribute, ast.Subscript)) and _holder(target.value):
                found.append((target.lineno, ast.unparse(target)))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in MUTATORS
            and _holder(node.func.value)
        ):
            found.append((node.lineno, ast.unparse(node.func)))
    return found


def test_the_rule_finds_a_write_to_the_state() -> None:
    """The check itself would notice: each kind of write is found."""
    source = "state.in_use += 1\nself._state.idle.append(s)\nslot.state = 1\ndel state.slots[k]"
    assert len(_writes(ast.parse(source))) == 4
    assert _writes(ast.parse("claim.grant = self._state.checkout()\nx = state.idle")) == []


@pytest.mark.parametrize("path", _modules(), ids=lambda path: path.name)
def test_only_the_owner_writes_the_pools_state(path: Path) -> None:
    writes = _writes(ast.parse(path.read_text()))
    assert writes == [], f"{path.name} writes the pool's state: {writes}"


def _pool_members(tree: ast.AST) -> set[str]:
    """Every attribute the leases read from their pool (``self._pool.X``)."""
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "_pool"
    }


def test_leases_call_four_named_methods_of_their_pool() -> None:
    tree = ast.parse((PACKAGE / "_lease.py").read_text())
    members = _pool_members(tree)
    assert members, "the leases reach their pool under another name: update this test"
    assert members <= LEASE_CALLS, f"leases reach {sorted(members - LEASE_CALLS)}"
    foreign = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
        and node.attr not in LEASE_CALLS
    }
    assert foreign == set(), f"leases touch private members {sorted(foreign)}"


def test_no_module_is_a_mixin_of_the_state() -> None:
    """``Books`` declares each field once; nothing else re-declares or extends it."""
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(base).split("[")[0] for base in node.bases}
                assert not bases & {"Books", "PoolState"}, f"{path.name}: {node.name}"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda path: path.name)
def test_every_module_holds_one_concept_in_under_500_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 520, f"{path.name} has grown: split it"
