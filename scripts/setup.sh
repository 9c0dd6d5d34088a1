#!/usr/bin/env bash
# Create .venv and install ctbench with torch pinned (constraints.txt): torch first, so pip never resolves a newer
# torch and pulls GBs of CUDA packages on a CPU machine. Idempotent: a second call installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt)
"${pip[@]}" "torch==2.13.0" numpy
"${pip[@]}" -e ".[peers,dev,ray]"
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
