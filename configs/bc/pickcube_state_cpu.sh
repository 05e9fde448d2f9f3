#!/usr/bin/env bash
# tier: cpu
# PickCube-v1 behavior cloning from state, end to end on a 2-core CPU: collect motion-planning demos,
# convert them to the learner's obs/control mode, train bc.py, evaluate on 100 episodes whose seeds
# were never used for demos. Writes OUT_DIR/demos/..., OUT_DIR/runs/<run>/{best.pt,last.pt,final_eval.json}
# and OUT_DIR/timings.json (seconds per stage). Results: docs/bc.md, results/bc_pickcube_state_cpu.csv.
#
#   bash configs/bc/pickcube_state_cpu.sh OUT_DIR [SEED]
set -euo pipefail
OUT=${1:?usage: $0 OUT_DIR [SEED]}
SEED=${2:-1}
NUM_DEMOS=${NUM_DEMOS:-500}
CONTROL=${CONTROL:-pd_ee_delta_pos}
cd "$(dirname "$0")/../.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
mkdir -p "$OUT"
t0=$(date +%s)
"$PY" cleanrl_style/collect_demos.py --env-id PickCube --num-demos "$NUM_DEMOS" --out-dir "$OUT/demos" \
    --obs-mode state --control-mode "$CONTROL"
t1=$(date +%s)
"$PY" cleanrl_style/bc.py --env-id PickCube --seed "$SEED" --runs-dir "$OUT/runs" --exp-name bc_pickcube_state_cpu \
    --demo-path "$OUT/demos/PickCube-v1/motionplanning/state/trajectory.state.$CONTROL.physx_cpu.h5" \
    --total-iters 5000 --eval-freq 2500 --num-eval-episodes 100
t2=$(date +%s)
printf '{"collect_and_convert_s": %d, "train_and_eval_s": %d, "total_s": %d, "num_demos": %d, "seed": %d}\n' \
    $((t1 - t0)) $((t2 - t1)) $((t2 - t0)) "$NUM_DEMOS" "$SEED" > "$OUT/timings.json"
cat "$OUT/timings.json"
