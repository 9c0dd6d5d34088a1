#!/usr/bin/env bash
# scripts/gpu_check.sh OUT_DIR: prove the GPU path in one prepared check (README "Checking a GPU").
#
# With the machine's own python3 (or $PYTHON), which must already hold a CUDA torch (nothing is installed from a
# registry; torch is never touched), in at most 8 minutes of GPU time:
#   1. the memory calibration: 64 and 256 MiB steps read back within 1%, seen by NVML  -> OUT_DIR/calibration.json
#   2. every task at its gpu-smoke scale on cuda, within a time budget                -> OUT_DIR/runs/<run_id>.json
#   3. the summary (printed; small enough to copy back from a remote machine)           -> OUT_DIR/summary.{txt,json}
# Without a GPU it says so and exits 0 in seconds. Exit 0 when the calibration passed and the run file was
# written, else 1. The run file then goes to results/reference/.
#
# Peers that are not on the machine (torchdeq, FrEIA, normflows) come as pure-Python wheels in .gpu_wheels/
# (git-ignored; see the README); without them their references are left out, by name, in the run's settings.
#
# Environment knobs:
#   PYTHON                  interpreter (default python3)
#   GPU_CHECK_RUN_TIME      seconds after which no new case starts (default 360; the rest are recorded "not run")
#   GPU_CHECK_CASE_TIMEOUT  seconds per case (default 75): the run ends by RUN_TIME + CASE_TIMEOUT
#   GPU_CHECK_WHEELS        folder of peer wheels (default .gpu_wheels in this checkout)
#   GPU_CHECK_RUN_ARGS      more arguments for `ctbench run` (split on spaces), e.g. "--impl backprop --param n=8"
#   GPU_CHECK_DEVICE, GPU_CHECK_SCALE, GPU_CHECK_TASKS   a CPU rehearsal of the same logic, e.g.
#       GPU_CHECK_DEVICE=cpu GPU_CHECK_SCALE=smoke GPU_CHECK_TASKS=tiny CTBENCH_PATH=<copy of tests/template>
set -uo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
SCALE=${GPU_CHECK_SCALE:-gpu-smoke}
RUN_TIME=${GPU_CHECK_RUN_TIME:-360}
CASE_TIMEOUT=${GPU_CHECK_CASE_TIMEOUT:-75}
export PYTHONUNBUFFERED=1

# 0. Is there a GPU? Only torch is imported, so a machine without one is answered in seconds.
if [ "$DEVICE" = cuda ]; then
    probe='import torch; print("" if torch.cuda.is_available() else f"torch {torch.__version__} sees no CUDA device")'
    why=$("$PY" -c "$probe" 2>/dev/null) || why="$PY is missing or cannot import torch"
    if [ -n "$why" ]; then
        echo "gpu_check: no GPU here ($why); nothing to check."
        exit 0
    fi
fi

mkdir -p "$1" && OUT=$(cd "$1" && pwd) || exit 1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
export CTBENCH_CACHE="$TMP/cache" # datasets, pretrained networks: never under OUT_DIR (it comes back whole)
if compgen -G "$OUT/runs/*.json" >/dev/null; then
    echo "gpu_check: WARNING: $OUT/runs already holds run files; the summary reads them all"
fi

# 1. ctbench from this checkout, and the peers' wheels (if any) into a temporary target, both on PYTHONPATH.
PEERS=""
shopt -s nullglob
wheels=("${GPU_CHECK_WHEELS:-$REPO/.gpu_wheels}"/*.whl)
shopt -u nullglob
if [ ${#wheels[@]} -gt 0 ]; then
    PEERS="$TMP/peers"
    echo "gpu_check: installing ${#wheels[@]} peer wheel(s) from $(dirname "${wheels[0]}") into a temporary folder"
    if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
        --target "$PEERS" "${wheels[@]}" >"$TMP/pip.log" 2>&1; then
        # a pure-Python wheel is a zip laid out as site-packages: unpacking it is the install
        echo "gpu_check: pip failed ($(tail -n 1 "$TMP/pip.log")); unpacking the wheels instead"
        for w in "${wheels[@]}"; do "$PY" -m zipfile -e "$w" "$PEERS" || echo "gpu_check: cannot unpack $w"; done
    fi
fi
export PYTHONPATH="$REPO${PEERS:+:$PEERS}${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - <<'EOF'
import importlib.util
for name in ("torchdiffeq", "torchdeq", "FrEIA", "normflows"):
    spec = importlib.util.find_spec(name)
    print(f"gpu_check: peer {name}: {spec.origin if spec else 'not installed (its references are left out)'}")
EOF

# 2. The memory calibration (exit 1 on a failed reading).
echo "gpu_check: calibration on $DEVICE"
"$PY" -m ctbench.run.calibrate --device "$DEVICE" --out "$OUT/calibration.json"
calibration_rc=$?

# 3. Every task that has the scale (GPU_CHECK_TASKS: those only), one run, one run file. --max-run-time stops
#    starting cases after RUN_TIME s and still writes the run file; --timeout bounds the case running then.
if [ -n "${GPU_CHECK_TASKS:-}" ]; then
    tasks=$GPU_CHECK_TASKS
else
    tasks=$("$PY" - "$SCALE" <<'EOF'
import sys
from ctbench.catalog.registry import broken_tasks, tasks
for name, task in tasks().items():
    if sys.argv[1] in task.scales:
        print(name)
    else:
        print(f"gpu_check: WARNING: task {name} has no {sys.argv[1]} scale; it is left out", file=sys.stderr)
for name, why in broken_tasks().items():
    print(f"gpu_check: WARNING: task {name} does not load ({why}); it is left out", file=sys.stderr)
EOF
    )
fi
task_args=()
for t in $tasks; do task_args+=(--task "$t"); done
before=$(find "$OUT/runs" -maxdepth 1 -name '*.json' 2>/dev/null | wc -l)
if [ ${#task_args[@]} -gt 0 ]; then
    echo "gpu_check: running $(echo $tasks) at scale $SCALE on $DEVICE (no new case after ${RUN_TIME} s," \
        "${CASE_TIMEOUT} s per case)"
    "$PY" -m ctbench_cli run "${task_args[@]}" --scale "$SCALE" --device "$DEVICE" --out "$OUT/runs" --no-report \
        --max-run-time "$RUN_TIME" --timeout "$CASE_TIMEOUT" ${GPU_CHECK_RUN_ARGS:-} 2>&1 | tee "$OUT/run.log"
    echo "gpu_check: ctbench run: exit ${PIPESTATUS[0]} (0: every case passed; 1: some did not, see the summary)"
else
    echo "gpu_check: no task to run at scale $SCALE"
fi
after=$(find "$OUT/runs" -maxdepth 1 -name '*.json' 2>/dev/null | wc -l)

# 4. The summary, last, so that it is what the screen shows.
"$PY" -m ctbench_cli.gpu_summary "$OUT"
echo "gpu_check: ${SECONDS} s in all; outputs in $OUT"
if [ $calibration_rc -eq 0 ] && [ "$after" -gt "$before" ]; then
    echo "gpu_check: PASSED (calibration passed, run file written; the cases' outcomes are in the summary)"
    exit 0
fi
why=""
[ $calibration_rc -eq 0 ] || why="the calibration failed"
[ "$after" -gt "$before" ] || why="${why:+$why; }no run file was written"
echo "gpu_check: FAILED ($why)"
exit 1
