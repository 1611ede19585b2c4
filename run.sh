#!/usr/bin/env bash
# Set up everything LiSER needs on a Debian/Ubuntu machine, then run it.
#
#   ./run.sh demo           install, then `dvc repro` the embedded demo and show its metrics
#   ./run.sh test [ARGS]    install, then lint and format-check (ruff) and run the test suite (ARGS go to pytest),
#                           the browser test included (Chromium from Debian, playwright-core from npm)
#
# Safe to run again: each step does nothing when it is already done.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON=${PYTHON:-python3}
VENV=.venv
APT_PACKAGES=()

need_apt() { APT_PACKAGES+=("$1"); }

system_packages() {
  command -v ffmpeg >/dev/null || need_apt ffmpeg
  command -v espeak-ng >/dev/null || need_apt espeak-ng
  command -v git >/dev/null || need_apt git
  # the web page's packages come from npm; the browser test drives Debian's Chromium
  command -v node >/dev/null || need_apt nodejs
  command -v npm >/dev/null || need_apt npm
  command -v chromium >/dev/null || need_apt chromium
  command -v chromedriver >/dev/null || need_apt chromium-driver
  command -v "$PYTHON" >/dev/null || need_apt python3
  if command -v "$PYTHON" >/dev/null && ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    need_apt python3-venv
  fi
  [ ${#APT_PACKAGES[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "==> installing system packages: ${APT_PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}"
  else
    echo "LiSER needs these system packages: ${APT_PACKAGES[*]}" >&2
    echo "Run this once, then run ./run.sh again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${APT_PACKAGES[*]}" >&2
    exit 1
  fi
}

python_environment() {
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "LiSER needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
    exit 1
  fi
  [ -x "$VENV/bin/python" ] || { echo "==> creating $VENV"; "$PYTHON" -m venv "$VENV"; }
  local stamp="$VENV/.liser-installed" wanted
  wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "==> installing LiSER and its dependencies into $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e '.[dev]'
    echo "$wanted" > "$stamp"
  fi
}

web_packages() {
  # ONNX Runtime Web (bundled by `liser export --web`) and playwright-core (the browser test), as web/package-lock.json pins them
  local stamp=web/node_modules/.liser-installed wanted
  wanted=$(sha256sum web/package-lock.json | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "==> installing the web page's npm packages into web/node_modules"
    npm ci --prefix web --ignore-scripts --no-audit --no-fund --loglevel=error
    echo "$wanted" > "$stamp"
  fi
}

dvc_project() {
  # DVC needs a git repository; a download of the sources without .git gets a fresh one.
  [ -d .git ] || git init --quiet
}

case "${1:-}" in
  demo)
    system_packages
    python_environment
    web_packages
    dvc_project
    export HF_HUB_OFFLINE=1 PATH="$PWD/$VENV/bin:$PATH"  # the stages' `python` is the venv's
    dvc repro
    dvc metrics show
    echo "==> results table: reports/results.md"
    ;;
  test)
    shift
    system_packages
    python_environment
    web_packages
    export HF_HUB_OFFLINE=1 PATH="$PWD/$VENV/bin:$PATH"
    echo "==> ruff check and ruff format --check"
    ruff check .
    ruff format --check .
    exec python -m pytest "$@"
    ;;
  *)
    echo "usage: ./run.sh demo | ./run.sh test [pytest arguments]" >&2
    exit 2
    ;;
esac
