#!/usr/bin/env bash
# tier: cpu
# PickCube-v1 behavior cloning from 64x64 RGB (+ proprioception) on a 2-core CPU: collect motion-planning
# demos (or reuse OUT_DIR/demos from configs/bc/pickcube_state_cpu.sh), convert them to rgb 64x64 +
# pd_ee_delta_pos, train bc.py with the pixel defaults (auxiliary cube-position loss, weight 10; batch 64),
# evaluate on 30 episodes whose seeds were never used for demos. Writes OUT_DIR/runs/<run>/{best.pt,
# last.pt,final_eval.json} and OUT_DIR/timings_rgb.json. Results: docs/bc.md, results/bc_pickcube_rgb_cpu.csv.
#
#   bash configs/bc/pickcube_rgb64_cpu.sh OUT_DIR [SEED]
set -euo pipefail
OUT=${1:?usage: $0 OUT_DIR [SEED]}
SEED=${2:-1}
NUM_DEMOS=${NUM_DEMOS:-500}
cd "$(dirname "$0")/../.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
mkdir -p "$OUT"
t0=$(date +%s)
"$PY" cleanrl_style/collect_demos.py --env-id PickCube --num-demos "$NUM_DEMOS" --out-dir "$OUT/demos" \
    --obs-mode rgb --control-mode pd_ee_delta_pos --image-size 64
t1=$(date +%s)
"$PY" cleanrl_style/bc.py --env-id PickCube --obs-mode rgb --seed "$SEED" --runs-dir "$OUT/runs" \
    --exp-name bc_pickcube_rgb64_cpu \
    --demo-path "$OUT/demos/PickCube-v1/motionplanning/rgb64/trajectory.rgb.pd_ee_delta_pos.physx_cpu.h5" \
    --aux-coef 10 --batch-size 64 --total-iters 5000 --eval-freq 2500 --num-eval-episodes 30
t2=$(date +%s)
printf '{"collect_and_convert_s": %d, "train_and_eval_s": %d, "total_s": %d, "num_demos": %d, "seed": %d}\n' \
    $((t1 - t0)) $((t2 - t1)) $((t2 - t0)) "$NUM_DEMOS" "$SEED" > "$OUT/timings_rgb.json"
cat "$OUT/timings_rgb.json"
