"""``python -m napari_cellflux``: open napari with the CellFlux widget and its sample data.

The demo set (two control fields from two procedural batches and one treated field) is
loaded and the widget docked, on the bundled demo weights: a newcomer can try forward,
reverse and batch comparison without files of their own.
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m napari_cellflux", description=__doc__)
    parser.add_argument("--no-sample", action="store_true", help="open without sample data")
    parser.add_argument("images", nargs="*", help="TIFF files of control cells to open")
    args = parser.parse_args(argv)

    import napari

    viewer = napari.Viewer(title="napari-cellflux")
    if not args.no_sample and not args.images:
        viewer.open_sample("napari-cellflux", "demo_set")
    for path in args.images:
        viewer.open(path)
    viewer.window.add_plugin_dock_widget("napari-cellflux", "CellFlux simulator")
    napari.run()


if __name__ == "__main__":
    main()
