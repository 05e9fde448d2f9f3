# Sourced (never run) by the pipelines under configs/ (finetune, generalization, encoders), after they `cd` to
# the repository root: the steps every stage of those pipelines shares. It defines functions and PY only.
#
#   PY                    the interpreter: $PYTHON, else .venv/bin/python, else python
#   require_uint NAME...  each named variable holds a non-negative integer, else one error line and exit 2
#   require_positive NAME...  the same, and > 0
#   run_or_resume LABEL DIR SCRIPT ARGS...
#                         the one run of cleanrl_style/SCRIPT under DIR: finished (final_eval.json) -> kept;
#                         killed (last.pt) -> continued with `SCRIPT --resume RUN`; otherwise DIR is emptied and
#                         `SCRIPT ARGS --runs-dir DIR` starts it. Sets STAGE_RUN (the run's directory) and
#                         STAGE_RAN (0 when the run was finished already, 1 otherwise)
#   eval_once JSON CKPT ARGS...
#                         `evaluate.py --checkpoint CKPT ARGS` unless JSON (the file that command writes) exists
#                         and is newer than CKPT; sets EVAL_RAN (0 when skipped). Delete JSON to evaluate again
#   write_timings LABEL DID_WORK PATH JSON
#                         the stage wall times of this invocation (JSON, one line) written to PATH (via PATH.new)
#                         unless DID_WORK is 0 and PATH exists: a repeat that found every stage done keeps the
#                         times of the invocation that did the work. Prints PATH
#   stage_lock NAME / stage_unlock
#                         pipelines started side by side on one OUT_DIR take turns at a shared stage (flock on
#                         OUT_DIR/.NAME.lock, fd 9); a no-op where flock is missing

PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}

require_uint() {
  local v
  for v in "$@"; do
    case "${!v}" in ''|*[!0-9]*) echo "error: $v must be a non-negative integer (got '${!v}')" >&2; exit 2 ;; esac
  done
}

require_positive() {
  local v
  require_uint "$@"
  for v in "$@"; do
    [ $((10#${!v})) -gt 0 ] || { echo "error: $v must be a positive integer (got '${!v}')" >&2; exit 2; }
  done
}

run_or_resume() {
  local label=$1 dir=$2 script=$3 run
  shift 3
  run=$(ls -d "$dir"/*/ 2>/dev/null | head -1 || true)
  run=${run%/}
  STAGE_RAN=1
  if [ -n "$run" ] && [ -f "$run/final_eval.json" ]; then
    echo "$label: $run is finished"
    STAGE_RAN=0
  elif [ -n "$run" ] && [ -f "$run/last.pt" ]; then
    "$PY" "cleanrl_style/$script" --resume "$run"
  else
    rm -rf "$dir"
    "$PY" "cleanrl_style/$script" "$@" --runs-dir "$dir"
  fi
  run=$(ls -d "$dir"/*/ | head -1)
  STAGE_RUN=${run%/}
}

eval_once() {
  local json=$1 ckpt=$2
  shift 2
  EVAL_RAN=0
  if [ -f "$json" ] && [ "$json" -nt "$ckpt" ]; then
    echo "$json exists"
  else
    EVAL_RAN=1
    "$PY" cleanrl_style/evaluate.py --checkpoint "$ckpt" "$@"
    [ -f "$json" ] || { echo "error: evaluate.py wrote no $json" >&2; exit 1; }
  fi
}

write_timings() {
  local label=$1 did=$2 path=$3 json=$4
  if [ "$did" = 0 ] && [ -f "$path" ]; then
    echo "$label: every stage was done already; $path kept"
  else
    printf '%s\n' "$json" > "$path.new"
    mv "$path.new" "$path"
  fi
  cat "$path"
}

stage_lock() { if command -v flock >/dev/null; then exec 9>"$OUT/.$1.lock"; flock 9; fi; }
stage_unlock() { if command -v flock >/dev/null; then flock -u 9; exec 9>&-; fi; }
