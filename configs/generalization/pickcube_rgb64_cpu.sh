#!/usr/bin/env bash
# tier: cpu
# The generalization table of docs/generalization.md: behavior cloning from 64x64 RGB (+ proprioception) on
# PickCube, one row per kind of randomization used in training, every policy scored on the clean task, on the
# training randomization (--sim-dr heavy) and on the held-out variations. ROW (default none):
#   none       clean demos;                       image      clean demos + bc.py --dr heavy (training batches);
#   sim        demos rendered under --sim-dr heavy (PickCubeDR-v1);   sim+image  both.
#   1. demos: 500 motion-planning demos (shared by every row), converted to rgb 64x64 + pd_ee_delta_pos, clean
#      (rows none, image) or replayed in PickCubeDR-v1 under --sim-dr heavy (rows sim, sim+image); skipped when
#      the row's converted file exists. DEMOS_FROM=<an OUT_DIR/demos of configs/finetune or configs/bc> links
#      the demos collected there (read only: a conversion they lack is written under OUT_DIR/demos);
#   2. bc.py with the pixel defaults of configs/bc/pickcube_rgb64_cpu.sh (auxiliary cube-position loss 10,
#      batch 64, BC_ITERS gradient steps, evaluation every BC_ITERS/2 on BC_EVAL episodes): one run per
#      (ROW, SEED) in OUT_DIR/bc/<ROW>/seed<SEED>/; skipped when finished, resumed from last.pt when killed;
#   3. evaluate.py on its last.pt: NUM_TEST episodes from TEST_SEED (never used by demos (0..), training
#      evaluations (seed + 1e6 ..) or final_eval.json (seed + 2e6 ..)) on --variation clean, train
#      (--sim-dr SIM_DR, for every row) and held-out; each skipped when its json exists.
# SIM_DR=light (default heavy) sets the level of the sim rows' demos and of every row's train column; use
# its own OUT_DIR: the results table is of heavy runs. Smaller settings for a smoke run: NUM_DEMOS, BC_ITERS,
# BC_EVAL, NUM_TEST, TEST_SEED; PYTHON picks the
# interpreter. Stage wall times go to OUT_DIR/timings_<ROW>_seed<SEED>.json (a stage a repeated command skips
# keeps its earlier time). Results:
# results/generalization_pickcube_rgb64_cpu.csv (python bench/generalization_results.py OUT_DIR gathers
# the runs), rendered into docs/generalization.md by python bench/reproduce.py --render.
#
#   bash configs/generalization/pickcube_rgb64_cpu.sh OUT_DIR [SEED] [ROW]
set -euo pipefail
# the whole script is one function, parsed before anything runs: editing this file while a (hours long)
# run is in progress cannot change what that run does next
main() {
OUT=${1:?usage: pickcube_rgb64_cpu.sh OUT_DIR [SEED] [ROW]}
SEED=${2:-1}
ROW=${3:-${ROW:-none}}
NUM_DEMOS=${NUM_DEMOS:-500}
BC_ITERS=${BC_ITERS:-5000}
BC_EVAL=${BC_EVAL:-30}
NUM_TEST=${NUM_TEST:-100}
TEST_SEED=${TEST_SEED:-5000000}
SIM_DR=${SIM_DR:-heavy}  # the level of the sim rows' demos and of every row's train column
IMAGE_DR=heavy  # bc.py --dr of the image rows
case "$ROW" in none|image|sim|sim+image) ;; *) echo "error: ROW must be none, image, sim or sim+image (got '$ROW')" >&2; exit 2 ;; esac
case "$SIM_DR" in light|heavy) ;; *) echo "error: SIM_DR must be light or heavy (got '$SIM_DR')" >&2; exit 2 ;; esac
cd "$(dirname "$0")/../.."  # OUT_DIR and DEMOS_FROM are relative to the repository, as in configs/finetune
. scripts/pipeline.sh
require_uint SEED NUM_DEMOS BC_ITERS BC_EVAL NUM_TEST TEST_SEED
if [ -n "${DEMOS_FROM:-}" ] && [ ! -f "$DEMOS_FROM/PickCube-v1/motionplanning/trajectory.h5" ]; then
  echo "error: DEMOS_FROM=$DEMOS_FROM holds no PickCube-v1/motionplanning/trajectory.h5 (an OUT_DIR/demos of configs/finetune or configs/bc)" >&2
  exit 2
fi
mkdir -p "$OUT"
MP="$OUT/demos/PickCube-v1/motionplanning"
CONTROL=pd_ee_delta_pos
case "$ROW" in
  none|image) SUB=rgb64;                ENV_ID=PickCube;   CONVERT=() ;;
  sim|sim+image) SUB=rgb64-simdr-$SIM_DR; ENV_ID=PickCubeDR; CONVERT=(--sim-dr "$SIM_DR") ;;
esac
case "$ROW" in
  image|sim+image) BC_ROW_FLAGS=(--dr "$IMAGE_DR") ;;
  *)               BC_ROW_FLAGS=() ;;
esac
DEMO="$MP/$SUB/trajectory.rgb.$CONTROL.physx_cpu.h5"
now() { date +%s; }
skipped=()

# ---- 1. demonstrations (raw demos shared by every row; one converted copy per kind of demo)
t0=$(now)
if [ -n "${DEMOS_FROM:-}" ]; then  # link, never write, the other pipeline's files
  SRC=$(cd "$DEMOS_FROM/PickCube-v1/motionplanning" && pwd)
  mkdir -p "$MP"
  for f in trajectory.h5 trajectory.json; do
    [ -e "$MP/$f" ] || ln -s "$SRC/$f" "$MP/$f"
  done
  if [ ! -f "$DEMO" ] && [ -f "$SRC/$SUB/$(basename "$DEMO")" ] && [ -f "$SRC/$SUB/$(basename "${DEMO%.h5}.json")" ]; then
    mkdir -p "$MP/$SUB"
    ln -s "$SRC/$SUB/$(basename "$DEMO")" "$DEMO"
    ln -s "$SRC/$SUB/$(basename "${DEMO%.h5}.json")" "${DEMO%.h5}.json"
  fi
fi
if [ -f "$DEMO" ] && [ -f "${DEMO%.h5}.json" ]; then
  echo "generalization: demos $DEMO exist"
  skipped+=(demos)
else
  # without DEMOS_FROM: collects up to NUM_DEMOS raw demos (nothing when they are there), then converts
  "$PY" cleanrl_style/collect_demos.py --env-id PickCube --num-demos "$NUM_DEMOS" --out-dir "$OUT/demos" \
      --obs-mode rgb --control-mode "$CONTROL" --image-size 64 "${CONVERT[@]}" ${DEMOS_FROM:+--convert-only}
fi
t1=$(now)

# ---- 2. behavior cloning from pixels (the pixel defaults of configs/bc/pickcube_rgb64_cpu.sh), + the row's flags
run_or_resume generalization "$OUT/bc/$ROW/seed$SEED" bc.py --env-id "$ENV_ID" --obs-mode rgb --demo-path "$DEMO" \
    --seed "$SEED" --exp-name "generalization_${ROW/+/_}" --aux-coef 10 --batch-size 64 \
    --total-iters "$BC_ITERS" --eval-freq $((BC_ITERS / 2)) --num-eval-episodes "$BC_EVAL" \
    ${BC_ROW_FLAGS[@]+"${BC_ROW_FLAGS[@]}"}
RUN=$STAGE_RUN
[ "$STAGE_RAN" = 1 ] || skipped+=(bc)
t2=$(now)

# ---- 3. test episodes of the last policy on each variation (evaluate.py's json names)
eval_s=()
for variation in clean train held-out; do
  case "$variation" in
    clean) json="$RUN/eval_last_seed$TEST_SEED.json";             EVAL_FLAGS=() ;;
    train) json="$RUN/eval_last_seed${TEST_SEED}_train.json";     EVAL_FLAGS=(--sim-dr "$SIM_DR") ;;
    *)     json="$RUN/eval_last_seed${TEST_SEED}_$variation.json"; EVAL_FLAGS=() ;;
  esac
  te=$(now)
  eval_once "$json" "$RUN/last.pt" --num-episodes "$NUM_TEST" --seed "$TEST_SEED" --variation "$variation" \
      ${EVAL_FLAGS[@]+"${EVAL_FLAGS[@]}"}
  [ "$EVAL_RAN" = 1 ] || skipped+=("eval_${variation/-/_}")
  eval_s+=($(( $(now) - te )))
done
t3=$(now)

# ---- timings: seconds of the stages this command ran; a skipped stage keeps what the file held for it
TIMINGS="$OUT/timings_${ROW}_seed$SEED.json"
printf '{"row": "%s", "seed": %d, "demos_s": %d, "bc_s": %d, "eval_clean_s": %d, "eval_train_s": %d, "eval_held_out_s": %d, "skipped": "%s", "num_demos": %d, "bc_iters": %d, "num_test": %d, "test_seed": %d, "run_dir": "%s"}\n' \
    "$ROW" "$SEED" $((t1 - t0)) $((t2 - t1)) "${eval_s[0]}" "${eval_s[1]}" "${eval_s[2]}" "${skipped[*]:-}" \
    "$NUM_DEMOS" "$BC_ITERS" "$NUM_TEST" "$TEST_SEED" "$RUN" > "$TIMINGS.new"
"$PY" -c '
import json, os, sys
path = sys.argv[1]
new = json.load(open(path + ".new"))
try:
    old = json.load(open(path)) if os.path.isfile(path) else {}
except ValueError:
    old = {}
for stage in new["skipped"].split():
    if stage + "_s" in old:
        new[stage + "_s"] = old[stage + "_s"]
new["test_eval_s"] = sum(new[k] for k in ("eval_clean_s", "eval_train_s", "eval_held_out_s"))
new["total_s"] = new["demos_s"] + new["bc_s"] + new["test_eval_s"]
with open(path + ".new", "w") as f:
    f.write(json.dumps(new) + "\n")
os.replace(path + ".new", path)
' "$TIMINGS"
cat "$TIMINGS"
}
main "$@"
exit
