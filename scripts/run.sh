#!/usr/bin/env bash
# README command 1: set up, then run every task at the automatic scale (smoke on a CPU, small on a GPU), write the
# run file and its HTML report (beside it: results/local/<run id>-report/), and print both paths, ending with the
# report's. Extra arguments go to `ctbench run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ctbench run "$@"
