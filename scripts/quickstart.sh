#!/usr/bin/env bash
# Install nbclaude with JupyterLab into .venv and open the quickstart notebook.
# Without ANTHROPIC_API_KEY the notebook runs nbclaude's offline demo (canned replies).
# Usage: bash scripts/quickstart.sh            # opens JupyterLab
#        bash scripts/quickstart.sh --execute  # runs the notebook headless instead
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
venv="${NBCLAUDE_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e ".[lab]"

if [ -z "${ANTHROPIC_API_KEY:-}" ]; then
  echo "No ANTHROPIC_API_KEY: the notebook will run the offline demo with canned replies."
fi

if [ "${1:-}" = "--execute" ]; then
  "$venv/bin/jupyter" nbconvert --to notebook --execute \
    --ExecutePreprocessor.timeout=600 \
    --output quickstart.out.ipynb notebooks/quickstart.ipynb
  echo "Wrote notebooks/quickstart.out.ipynb"
else
  exec "$venv/bin/jupyter" lab notebooks/quickstart.ipynb
fi
