#!/usr/bin/env bash
# Adds to the offline GPU bundle (.gpu/, built by ../shared/gpu/make_bundle.sh) what this project needs
# there and the shared bundle lacks: PyYAML (config.yaml), tqdm (progress), tensorboard's writer and its
# pure-Python dependencies (without grpcio: writing event files does not need it), and 2 PickCube
# state demos and 2 raw PegInsertionSide demos collected here (the GPU image has no mplib, the motion
# planner), so `make gpu-check`'s bc_cpu_eval, finetune and finetune_peg checks run there (they convert the
# raw demos on the box). Run it here, in the project virtualenv, after make_bundle.sh:
#   bash ../shared/gpu/make_bundle.sh && bash scripts/gpu_extras.sh
# It appends one unpacking line to .gpu/remote_setup.sh (once). ~8 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER="${1:-3.12}"
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
[ -f .gpu/remote_setup.sh ] || { echo "error: no .gpu/remote_setup.sh: run bash ../shared/gpu/make_bundle.sh first" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
PLAT="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp $PLAT \
  -d "$TMP/whl" PyYAML tqdm tensorboard tensorboard-data-server protobuf markdown werkzeug absl-py six 2>&1 \
  | { grep -v 'WARNING: Location' || true; }
mkdir -p "$TMP/site"
for w in "$TMP"/whl/*.whl; do "$PY" -m zipfile -e "$w" "$TMP/site"; done
tar cf - -C "$TMP/site" . | xz -T2 -6 > .gpu/extras.txz
# the demos bc_cpu_eval evaluates from (collected on the CPU sim, as that check's demos always are)
if [ ! -f .gpu/demos/PickCube-v1/motionplanning/state/trajectory.state.pd_ee_delta_pos.physx_cpu.h5 ]; then
  "$PY" cleanrl_style/collect_demos.py --env-id PickCube --num-demos 2 --out-dir .gpu/demos --obs-mode state \
      --control-mode pd_ee_delta_pos --num-procs 1
fi
# the raw demos the finetune_peg check converts (rgb 64 + pd_ee_delta_pose, on the box)
if [ ! -f .gpu/demos/PegInsertionSide-v1/motionplanning/trajectory.h5 ]; then
  "$PY" cleanrl_style/collect_demos.py --env-id PegInsertionSide --num-demos 2 --out-dir .gpu/demos --num-procs 1
fi
grep -q 'extras.txz' .gpu/remote_setup.sh || cat >> .gpu/remote_setup.sh <<'EOS'
tar xJf .gpu/extras.txz -C /tmp/site  # scripts/gpu_extras.sh: PyYAML, tqdm, tensorboard writer
EOS
du -sh .gpu/extras.txz .gpu/demos
