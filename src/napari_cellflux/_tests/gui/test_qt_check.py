"""The check that runs before the GUI tests: a missing display library is named, with the apt
package that provides it, instead of Qt aborting the interpreter."""

from __future__ import annotations

from ._qt_check import describe_missing, missing_libraries, xcb_plugin

# ldd on libqxcb.so of a machine with Xvfb, libEGL and libxkbcommon-x11 but not the rest
LDD = """\
\tlinux-vdso.so.1 (0x00007ffd5b1e6000)
\tlibQt6XcbQpa.so.6 => /venv/PyQt6/Qt6/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x7f1)
\tlibEGL.so.1 => /lib/x86_64-linux-gnu/libEGL.so.1 (0x00007f199b000000)
\tlibxkbcommon-x11.so.0 => /lib/x86_64-linux-gnu/libxkbcommon-x11.so.0 (0x00007f199a000000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-frobnicate.so.9 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f199bbe8000)
"""


def test_missing_libraries_are_read_from_ldd_output():
    assert missing_libraries(LDD) == [
        "libxcb-icccm.so.4",
        "libxcb-keysyms.so.1",
        "libxcb-frobnicate.so.9",
    ]
    assert missing_libraries(LDD.replace("not found", "/lib/x.so (0x1)")) == []


def test_message_names_the_library_and_the_package():
    assert describe_missing(["libxcb-icccm.so.4"]) == (
        "Qt cannot start: libxcb-icccm.so.4 is missing; install it with apt install "
        "libxcb-icccm4 (bash scripts/test.sh does this)."
    )
    several = describe_missing(missing_libraries(LDD))
    assert several.startswith(
        "Qt cannot start: libxcb-icccm.so.4, libxcb-keysyms.so.1 and "
        "libxcb-frobnicate.so.9 are missing; install them with apt "
        "install libxcb-icccm4 libxcb-keysyms1 "
    )
    assert "apt-file search libxcb-frobnicate.so.9" in several
    assert describe_missing([]) == ""


def test_the_xcb_plugin_of_the_installed_binding_is_found():
    import pytest

    pytest.importorskip("PyQt6", reason="the check looks for the Qt binding's own plugin")
    plugin = xcb_plugin()
    assert plugin is not None and plugin.name == "libqxcb.so" and plugin.is_file()
