#!/usr/bin/env bash
# One-command setup, called by `make setup` (and so by `make test` / `make quickstart`).
#  1. CPU rendering: where there is no NVIDIA Vulkan driver, make sure a Vulkan software
#     rasterizer that SAPIEN accepts is installed (Mesa lavapipe >= 24.3; on Debian bookworm
#     it comes from bookworm-backports). Needs root for apt; otherwise says what to install.
#  2. .venv/ with a pinned torch (CPU wheel without CUDA, the normal CUDA wheel elsewhere),
#     then this project in editable mode with the dev extras, then timm (the pretrained image
#     encoders, docs/encoders.md) without its dependencies: timm requires torchvision, whose
#     PyPI wheel does not import beside the CPU torch wheel and can replace torch; timm's other
#     dependencies (huggingface_hub, safetensors, pyyaml) are in pyproject.toml.
#  3. Verifies that SAPIEN finds a rendering device.
# Idempotent: a stamp file skips the pip steps while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
TIMM_VERSION="${TIMM_VERSION:-1.0.31}"  # cleanrl_style/lib/timm_encoder.py names the same version
PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.setup-stamp"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

have_nvidia() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }
nvidia_icd() {
  for f in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
           /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$f" ] && return 0
  done
  return 1
}

# ---------------------------------------------------------------- 1. Vulkan for CPU rendering
mesa_version() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true; }
mesa_ok() {
  local v; v=$(mesa_version)
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 24.3 && dpkg-query -W -f='${Status}' libvulkan1 2>/dev/null | grep -q "ok installed"
}

setup_cpu_vulkan() {
  if mesa_ok; then say "Vulkan: Mesa lavapipe $(mesa_version) already installed"; return 0; fi
  if ! command -v apt-get >/dev/null 2>&1 || [ ! -f /etc/os-release ]; then
    die "no NVIDIA GPU and no apt: install Mesa >= 24.3 with the lavapipe Vulkan driver (mesa-vulkan-drivers) and the Vulkan loader (libvulkan1) with your OS package manager, then re-run 'make setup'. See docs/troubleshooting.md."
  fi
  . /etc/os-release
  if [ "$(id -u)" != 0 ]; then
    case "${VERSION_CODENAME:-}" in
      bookworm) die "CPU rendering needs Mesa >= 24.3 (found '$(mesa_version)'). As root run: echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list && apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1 ; then re-run 'make setup'." ;;
      *) die "CPU rendering needs Mesa >= 24.3 (found '$(mesa_version)'). As root run: apt-get update && apt-get install -y mesa-vulkan-drivers libvulkan1 (Mesa >= 24.3 required), then re-run 'make setup'." ;;
    esac
  fi
  local target=()
  if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      say "adding bookworm-backports to apt sources (Mesa >= 24.3 for CPU Vulkan rendering)"
      echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list
    fi
    target=(-t bookworm-backports)
  fi
  say "installing Mesa Vulkan drivers (lavapipe) with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${target[@]}" mesa-vulkan-drivers libvulkan1 >/dev/null
  mesa_ok || die "installed mesa-vulkan-drivers $(mesa_version), but SAPIEN needs >= 24.3 (lavapipe external-fd support). Install a newer Mesa (see docs/troubleshooting.md)."
  say "Vulkan: Mesa lavapipe $(mesa_version) installed"
}

if have_nvidia && nvidia_icd; then
  say "Vulkan: NVIDIA driver and ICD found, using GPU rendering"
elif have_nvidia; then
  say "WARNING: NVIDIA GPU found but no NVIDIA Vulkan ICD json; GPU rendering may fail (docs/troubleshooting.md)"
else
  setup_cpu_vulkan
fi

# ---------------------------------------------------------------- 2. Python environment
# pip, minus the per-package "Location ... is ignored" noise some pip configurations print
pip_install() {
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v "WARNING: Location" || true; }
  return "${PIPESTATUS[0]}"
}
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "Python >= 3.10 required (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.x"
WANT="$(sha1sum pyproject.toml | cut -d' ' -f1) torch=$TORCH_VERSION timm=$TIMM_VERSION"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/python" ]; then
  say "Python env: $VENV up to date"
else
  [ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
  PIP=(pip_install)
  if "$VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$TORCH_VERSION' else 1)" 2>/dev/null; then
    say "torch $TORCH_VERSION already installed"
  elif have_nvidia; then
    say "installing torch==$TORCH_VERSION (CUDA build)"
    "${PIP[@]}" "torch==$TORCH_VERSION"
  else
    # CPU wheel: from pip's configured sources (a local wheel dir, a mirror), else from the
    # PyTorch CPU index, else the default (CUDA) wheel, which also runs on CPU but is larger.
    say "installing torch==$TORCH_VERSION (CPU build)"
    "${PIP[@]}" "torch==$TORCH_VERSION+cpu" 2>/dev/null \
      || "${PIP[@]}" --extra-index-url https://download.pytorch.org/whl/cpu "torch==$TORCH_VERSION+cpu" 2>/dev/null \
      || { say "no CPU wheel reachable, installing the default torch==$TORCH_VERSION wheel"; "${PIP[@]}" "torch==$TORCH_VERSION"; }
  fi
  say "installing the project (editable, with dev extras)"
  "${PIP[@]}" -e ".[dev]"
  say "installing timm==$TIMM_VERSION (--no-deps: no torchvision, torch untouched)"
  "${PIP[@]}" --no-deps "timm==$TIMM_VERSION"
  "$VENV/bin/python" -c "from cleanrl_style.lib.timm_compat import import_timm; import torch; import_timm().create_model('resnet18', pretrained=False)" \
    || die "timm $TIMM_VERSION installed but cannot build a model beside torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'); see docs/encoders.md"
  echo "$WANT" > "$STAMP"
fi

# ---------------------------------------------------------------- 3. verify rendering
"$VENV/bin/python" - <<'PY' || exit 1
import sys
try:
    import sapien.render as r
    summary = r.get_device_summary()
except Exception as e:  # noqa: BLE001
    print(f"[setup] ERROR: SAPIEN could not query rendering devices: {e}. See docs/troubleshooting.md.", file=sys.stderr)
    sys.exit(1)
if "Supported: 1" not in summary:
    print(summary, file=sys.stderr)
    print("[setup] ERROR: SAPIEN found no usable Vulkan rendering device. See docs/troubleshooting.md.", file=sys.stderr)
    sys.exit(1)
dev = [l.strip() for l in summary.splitlines() if l.strip()]
print("[setup] rendering OK:", dev[0] if dev else summary.strip())
PY
say "done. Activate with: source $VENV/bin/activate"
