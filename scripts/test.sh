#!/usr/bin/env bash
# README command 2 (and .ci/run): set up, install the system packages the tests use (Debian's real Fashion-MNIST,
# Chromium for the browser tests, bubblewrap for the sandbox tests), lint, and run the tests with pytest-benchmark
# writing its JSON where
# `ctbench report` finds it (.ci/out/pytest-benchmark.json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v bwrap >/dev/null || need+=(bubblewrap)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
mkdir -p .ci/out
.venv/bin/ruff check .
.venv/bin/ruff format --check . >/dev/null
.venv/bin/mypy  # the engine, ctbench/ (config in pyproject.toml)
CTBENCH_SCREENSHOTS=1 .venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 \
    --benchmark-json .ci/out/pytest-benchmark.json "$@"
echo "test output: .ci/out/ (pytest-benchmark.json, screenshots/)"
