#!/usr/bin/env bash
# Install nbclaude with its test tools and run every check CI runs.
# Usage: bash scripts/test.sh [--lowest] [pytest args...]
#   (default)  the newest versions the ranges in pyproject.toml allow, in .venv
#   --lowest   the lowest version of each runtime dependency, in .venv-lowest; the browser
#              tests (the [browser] extra), which check the front end rather than the
#              Python packages, are left out
set -euo pipefail
cd "$(dirname "$0")/.."

lowest=0
if [ "${1:-}" = "--lowest" ]; then
  lowest=1
  shift
fi

python="${PYTHON:-python3}"
if [ "$lowest" = 1 ]; then
  venv="${NBCLAUDE_VENV:-.venv-lowest}"
else
  venv="${NBCLAUDE_VENV:-.venv}"
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip

pytest_args=()
if [ "$lowest" = 1 ]; then
  "$venv/bin/python" scripts/lowest_versions.py > "$venv/lowest-versions.txt"
  echo "Testing the lowest versions: $(tr '\n' ' ' < "$venv/lowest-versions.txt")"
  "$venv/bin/python" -m pip install --quiet -e ".[test,images]" -c "$venv/lowest-versions.txt"
  pytest_args=(-m "not browser")
else
  "$venv/bin/python" -m pip install --quiet --upgrade --upgrade-strategy eager -e ".[test,images,browser]"
fi

"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/mypy"

status=0
"$venv/bin/python" -m pytest "${pytest_args[@]}" "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here." >&2
  exit 1
fi
exit "$status"
