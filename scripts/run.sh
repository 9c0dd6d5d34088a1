#!/usr/bin/env bash
# README command 1: set up, then run every task at the automatic scale (smoke on a CPU, small on a GPU), write the
# run file and the HTML report, and print both paths. Extra arguments go to `ctbench run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ctbench run "$@"
