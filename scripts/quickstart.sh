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
"$venv/bin/python" -m pip install --quiet -e ".[lab,images]"

if [ -z "${ANTHROPIC_API_KEY:-}" ]; then
  echo "No ANTHROPIC_API_KEY: the notebook will run the offline demo with canned replies."
fi

if [ "${1:-}" = "--execute" ]; then
  # store_widget_state=False: nbconvert would otherwise save the state of every widget the
  # run opened, closed ones included; nbclaude's replies are saved as plain HTML outputs.
  "$venv/bin/jupyter" nbconvert --to notebook --execute \
    --ExecutePreprocessor.timeout=600 \
    --ExecutePreprocessor.store_widget_state=False \
    --output quickstart.out.ipynb notebooks/quickstart.ipynb
  echo "Wrote notebooks/quickstart.out.ipynb"
else
  # Jupyter refuses to start as root unless told to (containers and CI machines run as root).
  root_flag=()
  if [ "$(id -u)" = 0 ]; then
    root_flag=(--allow-root)
  fi
  exec "$venv/bin/jupyter" lab "${root_flag[@]}" notebooks/quickstart.ipynb
fi
