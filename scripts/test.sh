#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run it.
#   bash scripts/test.sh [extra pytest args]
# System packages (Xvfb and the GL/XCB libraries Qt needs) come from apt when missing;
# Python packages go into .venv, with torch pinned to the CPU build of 2.13.0 (constraints.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=0
command -v Xvfb >/dev/null 2>&1 || need_apt=1
ldconfig -p 2>/dev/null | grep -q libEGL.so.1 || need_apt=1
ldconfig -p 2>/dev/null | grep -q libxkbcommon-x11 || need_apt=1
if [ "$need_apt" = 1 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq xvfb libgl1 libegl1 \
    libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
    libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 \
    libdbus-1-3 libfontconfig1 >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# pip's index warnings about absent local mirrors are noise; its exit status is not.
.venv/bin/python -m pip install -q -c constraints.txt -e ".[testing]" 2>&1 \
  | { grep -v "^WARNING: Location" || true; }
[ "${PIPESTATUS[0]}" = 0 ] || { echo "pip install failed" >&2; exit 1; }
.venv/bin/npe2 validate napari-cellflux --imports
exec .venv/bin/python -m pytest -p xvfb "$@"
