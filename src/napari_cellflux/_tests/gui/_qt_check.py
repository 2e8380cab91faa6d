"""Can Qt open a window on this machine? A cheap check run before the GUI tests.

When a library that Qt's xcb platform plugin links against is missing (for example
libxcb-icccm4 on a minimal Debian image), Qt does not raise: it prints "no Qt platform plugin
could be initialized" and aborts the interpreter, so every GUI test dies without saying what
to install. :func:`qt_platform_problem` runs ``ldd`` on the plugin (a few milliseconds, no Qt
import) and names the missing libraries and the apt packages that provide them.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "APT_PACKAGES",
    "describe_missing",
    "missing_libraries",
    "qt_platform_problem",
    "xcb_plugin",
]

#: Libraries Qt's xcb plugin needs -> the Debian/Ubuntu package (what scripts/test.sh installs).
APT_PACKAGES = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libGLX.so.0": "libglx0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libfontconfig.so.1": "libfontconfig1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxcb.so.1": "libxcb1",
    # pulled in by the packages above; named in case one was removed by hand
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-render.so.0": "libxcb-render0",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.MULTILINE)
_PLUGIN_DIRS = (
    ("PyQt6", "Qt6/plugins/platforms"),
    ("PyQt5", "Qt5/plugins/platforms"),
    ("PySide6", "Qt/plugins/platforms"),
)


def missing_libraries(ldd_output: str) -> list[str]:
    """The libraries ``ldd`` reports as 'not found', in order, each once."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def describe_missing(libraries: Sequence[str]) -> str:
    """What to tell the user about missing libraries: which, and how to install them."""
    if not libraries:
        return ""
    names = " and ".join(
        [", ".join(libraries[:-1]), libraries[-1]] if len(libraries) > 1 else libraries
    )
    verb = "are" if len(libraries) > 1 else "is"
    known = [APT_PACKAGES[lib] for lib in libraries if lib in APT_PACKAGES]
    unknown = [lib for lib in libraries if lib not in APT_PACKAGES]
    how = []
    if known:
        them = "them" if len(libraries) > 1 else "it"
        how.append(
            f"install {them} with apt install {' '.join(dict.fromkeys(known))} "
            "(bash scripts/test.sh does this)"
        )
    if unknown:
        how.append(
            "find the package for " + ", ".join(unknown) + " with apt-file search " + unknown[0]
        )
    return f"Qt cannot start: {names} {verb} missing; " + "; ".join(how) + "."


def xcb_plugin() -> Path | None:
    """Qt's xcb platform plugin of the installed Qt binding, found without importing Qt."""
    for package, sub in _PLUGIN_DIRS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            plugin = Path(root) / sub / "libqxcb.so"
            if plugin.is_file():
                return plugin
    return None


@functools.cache
def qt_platform_problem() -> str | None:
    """Why Qt's xcb platform cannot load here (None: it can, or this cannot be checked).

    Checked only on Linux with the xcb platform (the default, and what Xvfb serves), and
    only where ``ldd`` exists.
    """
    if not sys.platform.startswith("linux"):
        return None
    if os.environ.get("QT_QPA_PLATFORM", "xcb").split(":")[0] != "xcb":
        return None
    plugin, ldd = xcb_plugin(), shutil.which("ldd")
    if plugin is None or ldd is None:
        return None
    try:
        out = subprocess.run(
            [ldd, str(plugin)], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return describe_missing(missing_libraries(out)) or None
