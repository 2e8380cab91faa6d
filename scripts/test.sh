#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run it.
#   bash scripts/test.sh [extra pytest args]
# System packages (Xvfb and the GL/XCB libraries Qt needs) come from apt when missing;
# Python packages go into .venv, with torch pinned to the CPU build of 2.13.0 (constraints.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

# Every system package the GUI tests need; any one missing (not just Xvfb, libEGL or
# libxkbcommon-x11) makes Qt abort. The GUI tests name a missing library themselves
# (src/napari_cellflux/_tests/gui/_qt_check.py) where apt is not available.
APT_PACKAGES="xvfb libgl1 libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0
  libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0
  libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1"
if command -v dpkg >/dev/null 2>&1; then
  missing=""
  for pkg in $APT_PACKAGES; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    echo "installing system packages:$missing"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086  # one word per package
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  fi
else
  echo "no dpkg: install Xvfb and Qt's xcb libraries yourself (see scripts/test.sh)" >&2
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# pip's index warnings about absent local mirrors are noise; its exit status is not.
.venv/bin/python -m pip install -q -c constraints.txt -e ".[testing]" 2>&1 \
  | { grep -v "^WARNING: Location" || true; }
[ "${PIPESTATUS[0]}" = 0 ] || { echo "pip install failed" >&2; exit 1; }
.venv/bin/npe2 validate napari-cellflux --imports
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -p xvfb "$@"
