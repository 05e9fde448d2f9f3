#!/usr/bin/env bash
# tier: cpu
# The encoder ladder on PickCube-v1 from 64x64 RGB (+ proprioception), measured with behavior cloning (the
# cheapest pixel learner): every row is bc.py with the pixel defaults of configs/bc/pickcube_rgb64_cpu.sh
# (chunk 16 + temporal ensembling, auxiliary cube-position loss 10, batch 64, BC_ITERS gradient steps) and
# only the encoder flags differ. One command per (row, seed); every stage is skipped when it is done:
#   1. demos: 500 motion-planning demos converted to rgb 64x64 + pd_ee_delta_pos (skipped when OUT_DIR/demos
#      holds them; DEMOS_FROM=<dir> reuses another pipeline's OUT_DIR/demos, or that OUT_DIR, instead);
#   2. in-domain rows only, once per OUT_DIR: the pretraining run, bc.py with the nature_scratch flags at
#      PRETRAIN_SEED (0, never a row seed), in OUT_DIR/pretrain/seed<PRETRAIN_SEED>/; its last.pt is the
#      encoder every seed of both in-domain rows starts from;
#   3. the row's bc.py run in OUT_DIR/bc/<ROW>/seed<SEED>/ (a killed run is resumed from its last.pt);
#   4. evaluate.py of its last.pt: NUM_TEST episodes from TEST_SEED (never a demo, training-eval or
#      final-eval seed) on --variation clean and held-out (PickCubeDR-v1's held-out ranges).
# Rows:
#   nature_scratch            NatureCNN trained end to end (random init)
#   nature_inDomain_frozen    NatureCNN from the pretraining run's encoder, convs frozen, fc adapter trains
#   nature_inDomain_unfreeze  the same, its last conv block unfrozen at BC_ITERS/2 at --encoder-lr 1e-4
#   resnet18_imagenet_frozen  timm resnet18, published ImageNet weights, frozen, attn-pool adapter
#   dinov2_frozen             timm DINOv2 ViT-S/14, published weights, frozen, attn-pool adapter
# The last two read the published weights from the cache scripts/fetch_encoder_weights.py fills on a
# machine with internet; without them the row is refused (one line naming the fetch command) before
# anything runs. Their backbones see the 64 px frames resized to PUBLISHED_SIZE (112, a multiple of
# DINOv2's patch 14; 224 costs ~4x more CPU time per gradient step: docs/encoders.md throughput).
# Smaller settings for a smoke run: NUM_DEMOS, BC_ITERS, BC_EVAL (episodes of bc.py's own evaluations),
# NUM_TEST, TEST_SEED; PYTHON picks the interpreter. Stage wall times go to
# OUT_DIR/timings_<ROW>_seed<SEED>.json. Results: docs/encoders.md, results/encoder_ladder_pickcube_rgb64_cpu.csv
# (bench/encoder_ladder_results.py gathers the runs).
#
#   bash configs/encoders/pickcube_rgb64_cpu.sh OUT_DIR [SEED] [ROW]
set -euo pipefail
# the whole script is one function, parsed before anything runs: editing this file while a (hours long)
# run is in progress cannot change what that run does next
main() {
ROWS="nature_scratch nature_inDomain_frozen nature_inDomain_unfreeze resnet18_imagenet_frozen dinov2_frozen"
if [ $# -lt 1 ] || [ -z "$1" ]; then
  echo "error: usage: configs/encoders/pickcube_rgb64_cpu.sh OUT_DIR [SEED] [ROW] (ROW: ${ROWS// /, })" >&2; exit 2
fi
OUT=$1
SEED=${2:-1}
ROW=${3:-${ROW:-nature_scratch}}
NUM_DEMOS=${NUM_DEMOS:-500}
BC_ITERS=${BC_ITERS:-5000}
BC_EVAL=${BC_EVAL:-20}
NUM_TEST=${NUM_TEST:-100}
TEST_SEED=${TEST_SEED:-5000000}
PRETRAIN_SEED=${PRETRAIN_SEED:-0}
PUBLISHED_SIZE=${PUBLISHED_SIZE:-112}
case " $ROWS " in *" $ROW "*) ;; *) echo "error: ROW must be one of ${ROWS// /, } (got '$ROW')" >&2; exit 2 ;; esac
cd "$(dirname "$0")/../.."
. scripts/pipeline.sh
require_uint SEED NUM_DEMOS BC_ITERS BC_EVAL NUM_TEST TEST_SEED PRETRAIN_SEED PUBLISHED_SIZE
IN_DOMAIN=0
case "$ROW" in nature_inDomain_*) IN_DOMAIN=1 ;; esac
if [ "$IN_DOMAIN" = 1 ] && [ "$SEED" = "$PRETRAIN_SEED" ]; then
  echo "error: SEED $SEED is the pretraining seed (PRETRAIN_SEED=$PRETRAIN_SEED): an in-domain row would start from its own seed's run; use another seed" >&2
  exit 2
fi

# ---- published weights: refused before anything runs when they are not cached here
case "$ROW" in
  resnet18_imagenet_frozen) PUBLISHED=resnet18 ;;
  dinov2_frozen)            PUBLISHED=dinov2-vits14 ;;
  *)                        PUBLISHED= ;;
esac
if [ -n "$PUBLISHED" ]; then
  "$PY" - "$ROW" "$PUBLISHED" <<'EOF'
import sys

from cleanrl_style.lib.encoder_weights import WEIGHTS_DIR_ENV, fetch_command, published_path

row, name = sys.argv[1:3]
path = published_path(name)
if not path.is_file():
    print(
        f"error: ROW {row} needs the published {name} weights, not cached at {path}: fetch them once on a machine "
        f"with internet with `{fetch_command(name)}` and copy the file into {path.parent} here (or set "
        f"{WEIGHTS_DIR_ENV}); until then this row is not measured",
        file=sys.stderr,
    )
    sys.exit(1)
EOF
fi

REL=PickCube-v1/motionplanning/rgb64/trajectory.rgb.pd_ee_delta_pos.physx_cpu.h5
DEMO="$OUT/demos/$REL"
if [ -n "${DEMOS_FROM:-}" ]; then
  if [ -f "$DEMOS_FROM/$REL" ]; then DEMO="$DEMOS_FROM/$REL"
  elif [ -f "$DEMOS_FROM/demos/$REL" ]; then DEMO="$DEMOS_FROM/demos/$REL"
  else
    echo "error: DEMOS_FROM=$DEMOS_FROM holds no $REL (nor demos/$REL): give the demos/ folder (or the OUT_DIR) of configs/bc/pickcube_rgb64_cpu.sh or configs/finetune/pickcube_rgb64_cpu.sh" >&2
    exit 1
  fi
fi
mkdir -p "$OUT"
now() { date +%s; }
# stages 1 and 2 are shared by every (row, seed) of OUT_DIR: pipelines started side by side take turns
# (stage_lock, scripts/pipeline.sh; released before the row's own run)
BC=(--env-id PickCube --obs-mode rgb --demo-path "$DEMO" --num-demos "$NUM_DEMOS" --aux-coef 10 --batch-size 64
    --total-iters "$BC_ITERS" --eval-freq $((BC_ITERS / 2)) --num-eval-episodes "$BC_EVAL")

# ---- 1. demonstrations
t0=$(now)
stage_lock demos
RAN=()
if [ ! -f "$DEMO" ]; then
  RAN+=(demos)
  "$PY" cleanrl_style/collect_demos.py --env-id PickCube --num-demos "$NUM_DEMOS" --out-dir "$OUT/demos" \
      --obs-mode rgb --control-mode pd_ee_delta_pos --image-size 64
fi
stage_unlock
t1=$(now)

# ---- 2. the in-domain encoder: the nature_scratch recipe at the pretraining seed, once per OUT_DIR
PRE_CKPT=
if [ "$IN_DOMAIN" = 1 ]; then
  stage_lock pretrain
  run_or_resume "encoder ladder" "$OUT/pretrain/seed$PRETRAIN_SEED" bc.py "${BC[@]}" --seed "$PRETRAIN_SEED" \
      --exp-name encoder_ladder_pretrain
  stage_unlock
  [ "$STAGE_RAN" = 0 ] || RAN+=(pretrain)
  PRE_CKPT="$STAGE_RUN/last.pt"
fi
t2=$(now)

# ---- 3. the row: the same BC flags, the row adds its encoder flags
case "$ROW" in
  nature_scratch)           ROW_FLAGS=() ;;
  nature_inDomain_frozen)   ROW_FLAGS=(--encoder-weights "$PRE_CKPT" --freeze-encoder) ;;
  nature_inDomain_unfreeze) ROW_FLAGS=(--encoder-weights "$PRE_CKPT" --freeze-encoder --unfreeze-after $((BC_ITERS / 2))
                                       --unfreeze-blocks 1 --encoder-lr 1e-4) ;;
  resnet18_imagenet_frozen) ROW_FLAGS=(--encoder resnet18 --encoder-weights published --freeze-encoder
                                       --encoder-image-size "$PUBLISHED_SIZE") ;;
  dinov2_frozen)            ROW_FLAGS=(--encoder dinov2-vits14 --encoder-weights published --freeze-encoder
                                       --encoder-image-size "$PUBLISHED_SIZE") ;;
esac
run_or_resume "encoder ladder" "$OUT/bc/$ROW/seed$SEED" bc.py "${BC[@]}" --seed "$SEED" \
    --exp-name "encoder_ladder_$ROW" ${ROW_FLAGS[@]+"${ROW_FLAGS[@]}"}
RUN=$STAGE_RUN
[ "$STAGE_RAN" = 0 ] || RAN+=(bc)
t3=$(now)

# ---- 4. test evaluation of the last policy: the clean task, then the held-out variations
eval_once "$RUN/eval_last_seed$TEST_SEED.json" "$RUN/last.pt" --num-episodes "$NUM_TEST" --seed "$TEST_SEED" \
    --max-episode-steps 100 --variation clean
[ "$EVAL_RAN" = 0 ] || RAN+=(eval_clean)
t4=$(now)
eval_once "$RUN/eval_last_seed${TEST_SEED}_held-out.json" "$RUN/last.pt" --num-episodes "$NUM_TEST" \
    --seed "$TEST_SEED" --max-episode-steps 100 --variation held-out
[ "$EVAL_RAN" = 0 ] || RAN+=(eval_held_out)
t5=$(now)
# seconds per stage of this invocation (0: skipped, done before; `ran` names the stages that ran); a repeat
# that finds everything done keeps the file of the invocation that did the work
ran=
[ ${#RAN[@]} -eq 0 ] || ran=$(printf '"%s", ' "${RAN[@]}")
write_timings "encoder ladder: $ROW seed $SEED" ${#RAN[@]} "$OUT/timings_${ROW}_seed$SEED.json" "$(printf '{"row": "%s", "seed": %d, "demos_s": %d, "pretrain_s": %d, "bc_s": %d, "eval_clean_s": %d, "eval_held_out_s": %d, "total_s": %d, "ran": [%s], "run_dir": "%s"}' \
    "$ROW" "$SEED" $((t1 - t0)) $((t2 - t1)) $((t3 - t2)) $((t4 - t3)) $((t5 - t4)) $((t5 - t0)) "${ran%, }" "$RUN")"
}
main "$@"
exit
