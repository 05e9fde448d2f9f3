#!/usr/bin/env bash
# make quickstart: train a small PPO policy (the GPU config, PickCube, when CUDA is present; else the CPU
# config, PushCube), evaluate the best checkpoint again through evaluate.py, save eval videos, print the run dir.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if "$PY" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then tier=gpu; else tier=cpu; fi
mapfile -t FLAGS < <(grep -v '^\s*#' "configs/quickstart/$tier.args" | grep -v '^\s*$' | tr ' ' '\n')
RUNS=runs/quickstart
echo "[quickstart] $tier config: configs/quickstart/$tier.args"
start=$(date +%s)
"$PY" cleanrl_style/ppo.py "${FLAGS[@]}" --capture-video --runs-dir "$RUNS" --exp-name quickstart | tee /tmp/quickstart.$$.log
run_dir=$(grep '^run dir:' /tmp/quickstart.$$.log | tail -1 | sed 's/^run dir: //')
rm -f /tmp/quickstart.$$.log
echo "[quickstart] re-evaluating $run_dir/best.pt through evaluate.py (fresh seeds, video)"
"$PY" cleanrl_style/evaluate.py --checkpoint "$run_dir/best.pt" --num-episodes 8 --seed 12345 --video \
  --out-dir "$run_dir/reeval"
echo "[quickstart] done in $(( $(date +%s) - start )) s"
echo "[quickstart] run directory: $run_dir"
echo "[quickstart]   config.yaml metrics.csv best.pt last.pt final_eval.json videos/final_eval.mp4 reeval/"
echo "[quickstart]   tensorboard --logdir $RUNS"
