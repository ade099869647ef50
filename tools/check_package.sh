#!/usr/bin/env bash
# Build the sdist and the wheel, check what they hold, install the wheel into a
# fresh venv without any dev dependency and use it: `make package`.
set -euo pipefail
python=${1:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"

"$python" -m venv "$work/build-env"
"$work/build-env/bin/python" -m pip install --quiet --upgrade pip build twine
rm -rf dist
"$work/build-env/bin/python" -m build --outdir dist . > "$work/build.log" 2>&1 || {
    tail -n 40 "$work/build.log"; exit 1; }
"$work/build-env/bin/python" -m twine check --strict dist/*

sdist=$(ls "$root"/dist/*.tar.gz)
wheel=$(ls "$root"/dist/*.whl)
version=$("$work/build-env/bin/python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
echo "built $sdist and $wheel (version $version)"

# The sdist holds the packages, README, LICENSE and CHANGELOG, not the tests.
listing=$(tar tzf "$sdist")
for wanted in README.md LICENSE CHANGELOG.md escudeiro_pools/__init__.py integrations/asyncpg.py; do
    grep -q "/$wanted\$" <<< "$listing" || { echo "sdist lacks $wanted"; exit 1; }
done
if grep -qE "/(tests|bench|docs|tools|examples)/" <<< "$listing"; then
    echo "sdist carries what it should not:"; grep -E "/(tests|bench|docs|tools|examples)/" <<< "$listing"; exit 1
fi

# The wheel installs escudeiro_pools (with its integrations inside) and a LICENSE, nothing else.
wheel_listing=$("$work/build-env/bin/python" -m zipfile -l "$wheel")
grep -q "escudeiro_pools/integrations/fastapi.py" <<< "$wheel_listing" || { echo "wheel lacks the integrations"; exit 1; }
grep -qE "dist-info/licenses/LICENSE" <<< "$wheel_listing" || { echo "wheel lacks LICENSE"; exit 1; }
if grep -qE "^ *integrations/" <<< "$wheel_listing"; then echo "wheel installs a top-level integrations"; exit 1; fi

# A fresh venv, no dev dependencies: the core alone, then each integration with its extra.
"$python" -m venv "$work/user"
user="$work/user/bin/python"
"$user" -m pip install --quiet --upgrade pip
"$user" -m pip install --quiet "$wheel"
cd "$work"
"$user" - "$version" <<'PY'
import sys
import escudeiro_pools
assert escudeiro_pools.__version__ == sys.argv[1], (escudeiro_pools.__version__, sys.argv[1])
try:
    import escudeiro_pools.integrations.asyncpg  # noqa: F401
except ImportError as exc:
    assert "pip install 'escudeiro-pools[asyncpg]'" in str(exc), exc
else:
    raise AssertionError("asyncpg imported without its extra")
try:
    import integrations  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise AssertionError("a top-level integrations package was installed")
print("core", escudeiro_pools.__version__, "ok")
PY
for extra in starlette fastapi asyncpg httpx opentelemetry; do
    "$user" -m pip install --quiet "$wheel[$extra]"
    "$user" -c "import escudeiro_pools.integrations.$extra; print('$extra ok')"
done
cp "$root/examples/asyncio_script.py" "$work/script.py"
"$user" "$work/script.py"
