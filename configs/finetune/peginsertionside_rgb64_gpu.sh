#!/usr/bin/env bash
# tier: gpu
# The stretch of docs/finetune.md: BC -> RL fine-tuning from 64x64 RGB (base and hand camera) + proprioception
# on PegInsertionSide-v1, where ManiSkill's RGB imitation baselines (diffusion policy, BC) are said to reach 0.00. NOT YET
# MEASURED: no GPU has been lent to this project; its chain ran once on the CPU sim at smoke size (below).
#   1. collect NUM_DEMOS (1000) motion-planning demos and convert them to rgb 64x64 + pd_ee_delta_pose with
#      rewards (planner and conversion run on the CPU sim, up to 8 processes; skipped when OUT_DIR/demos
#      already holds the converted file);
#   2. bc.py --policy gaussian, the auxiliary loss on the peg's position (skipped when OUT_DIR/bc/seed<SEED>
#      holds a finished run; a killed one is resumed);
#   3. sac_rgb.py with the flags of configs/finetune/peginsertionside_rgb64_gpu.args (the recipe row of
#      configs/finetune/pickcube_rgb64_cpu.sh at 512 envs), --init-from the BC policy, --demos the converted file;
#   4. evaluate.py on NUM_TEST held-out episodes (seeds TEST_SEED..) of the fine-tuned and of the BC policy.
# pd_ee_delta_pose and 300-step episodes: peg and box are placed at random yaws (+-60 and +-22.5 degrees), so the
# gripper must rotate (pd_ee_delta_pos cannot), and the planner's demos are longer than the task's 100-step default
# (178-186 steps in a 2-demo sample); ManiSkill's diffusion-policy example uses the same two settings.
# Stage 1 needs mani_skill's motion planner (mplib, installed with mani_skill); where it is missing (this
# project's lent GPU image), collect the raw demos elsewhere with the same collect_demos.py command and put
# them under OUT_DIR/demos: the pipeline then only converts them.
# Needs CUDA; ALLOW_CPU=1 runs the chain on the CPU sim for a smoke test, e.g.
#   ALLOW_CPU=1 NUM_DEMOS=2 BC_ITERS=20 BC_EVAL=1 NUM_TEST=1 MAX_STEPS=10 RL_EXTRA="--num-envs 1 --num-eval-envs 1
#     --total-timesteps 8 --eval-freq 0 --num-eval-episodes 1 --learning-starts 2 --batch-size 4 --buffer-size 50
#     --num-q 2 --critic-warmup-steps 2" bash configs/finetune/peginsertionside_rgb64_gpu.sh /tmp/peg_smoke
# Resumable: a killed fine-tuning run continues from its last.pt when the command is repeated. Gather the
# runs with bench/finetune_results.py OUT_DIR --out <a CSV of its own under results/> (one task per CSV:
# it refuses to add them to the PickCube one).
#
#   bash configs/finetune/peginsertionside_rgb64_gpu.sh OUT_DIR [SEED]
set -euo pipefail
# one function, parsed before anything runs: editing this file during a run cannot change that run
main() {
OUT=${1:?usage: peginsertionside_rgb64_gpu.sh OUT_DIR [SEED]}
SEED=${2:-1}
NUM_DEMOS=${NUM_DEMOS:-1000}
NUM_TEST=${NUM_TEST:-100}
TEST_SEED=${TEST_SEED:-5000000}
BC_ITERS=${BC_ITERS:-20000}
BC_EVAL=${BC_EVAL:-64}
MAX_STEPS=${MAX_STEPS:-300}
RL_EXTRA=${RL_EXTRA:-}
cd "$(dirname "$0")/../.."
. scripts/pipeline.sh
require_uint SEED TEST_SEED
require_positive NUM_DEMOS NUM_TEST BC_ITERS BC_EVAL MAX_STEPS
if [ "${ALLOW_CPU:-0}" != 1 ] && ! "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
  echo "error: peginsertionside_rgb64_gpu.sh is sized for a CUDA GPU (512 envs, 3M env steps) and none is visible; ALLOW_CPU=1 with small sizes runs a smoke test (see its header)" >&2
  exit 2
fi
ARGS_FILE=configs/finetune/peginsertionside_rgb64_gpu.args
mkdir -p "$OUT"
DEMO="$OUT/demos/PegInsertionSide-v1/motionplanning/rgb64/trajectory.rgb.pd_ee_delta_pose.physx_cpu.h5"
now() { date +%s; }

# ---- 1. demonstrations
t0=$(now)
RAN=0  # 1 once a stage does work: a repeat that finds everything done keeps the timings of the one that did
if [ ! -f "$DEMO" ]; then
  RAN=1
  # the planner succeeds in about 2 of 7 attempts here (collect_demos.py's default allows 2 per demo)
  "$PY" cleanrl_style/collect_demos.py --env-id PegInsertionSide --num-demos "$NUM_DEMOS" --out-dir "$OUT/demos" \
      --max-attempts $((NUM_DEMOS * 5 + 20)) --obs-mode rgb --control-mode pd_ee_delta_pose --image-size 64
fi
t1=$(now)

# ---- 2. the starting policy: single-step tanh-Gaussian BC (the architecture sac_rgb.py loads)
run_or_resume finetune "$OUT/bc/seed$SEED" bc.py --env-id PegInsertionSide --obs-mode rgb --policy gaussian \
    --demo-path "$DEMO" --aux-actor peg --max-episode-steps "$MAX_STEPS" --seed "$SEED" \
    --exp-name bc_gaussian_rgb64 --total-iters "$BC_ITERS" --eval-freq $((BC_ITERS / 2)) \
    --num-eval-episodes "$BC_EVAL"
RAN=$((RAN | STAGE_RAN))
BC_CKPT="$STAGE_RUN/last.pt"
t2=$(now)

# ---- 3. fine-tuning: the GPU config's flags, then this run's inputs, seed and place (the last value wins)
# shellcheck disable=SC2046,SC2086  # the config's flags and RL_EXTRA are word lists
run_or_resume finetune "$OUT/rl/bc_init_demos/seed$SEED" sac_rgb.py $(grep -v '^#' "$ARGS_FILE") \
    --max-episode-steps "$MAX_STEPS" --init-from "$BC_CKPT" --demos "$DEMO" --seed "$SEED" \
    --exp-name finetune_bc_init_demos $RL_EXTRA
RAN=$((RAN | STAGE_RAN))
RUN=$STAGE_RUN
t3=$(now)

# ---- 4. held-out evaluation of the last policy and of the row's starting policy (each skipped when done)
eval_once "$RUN/eval_last_seed$TEST_SEED.json" "$RUN/last.pt" --num-episodes "$NUM_TEST" --seed "$TEST_SEED" \
    --max-episode-steps "$MAX_STEPS"
RAN=$((RAN | EVAL_RAN))
eval_once "$(dirname "$BC_CKPT")/eval_last_seed$TEST_SEED.json" "$BC_CKPT" --num-episodes "$NUM_TEST" \
    --seed "$TEST_SEED" --max-episode-steps "$MAX_STEPS"
RAN=$((RAN | EVAL_RAN))
t4=$(now)
write_timings finetune "$RAN" "$OUT/timings_bc_init_demos_seed$SEED.json" "$(printf '{"row": "bc_init_demos", "seed": %d, "collect_and_convert_s": %d, "bc_s": %d, "rl_s": %d, "test_eval_s": %d, "total_s": %d, "run_dir": "%s"}' \
    "$SEED" $((t1 - t0)) $((t2 - t1)) $((t3 - t2)) $((t4 - t3)) $((t4 - t0)) "$RUN")"
}
main "$@"
exit
