"""Movies of a trajectory: MP4 (imageio's ffmpeg plugin) or GIF (Pillow), t burned in.

:func:`write_movie` writes (T, H, W, 3) RGB frames with a caption band under each frame
(``t = 0.50   cyclohexamide (forward)``), at a chosen frame rate. The widget passes
screenshots of the canvas (every grid panel, as the user sees them); Python callers use
:func:`render_frames`, which draws every panel of a :class:`.export.RunResult` side by side
in the widget's colours (DNA blue, tubulin green, actin red) with fixed contrast from the
start frame, so the change is not hidden by per-frame rescaling. MP4 needs the
``imageio-ffmpeg`` package (a dependency; it ships its own ffmpeg).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .export import RunResult
from .files import ExportError, write_checked
from .images import CHANNEL_RGB, channel_color

__all__ = ["FORMATS", "caption", "export_movie", "render_frames", "write_movie"]

FORMATS = ("mp4", "gif")
MAX_FPS = 60.0
_BAND = 24  # caption band height, px
_MACRO = 16  # H.264 encoders want sides divisible by 16: frames are padded, never resized


def caption(t: float, result_or_text: Any, dose_uM: float | None = None) -> str:
    """The text burned into a frame: t, the perturbation, its dose and the direction."""
    if isinstance(result_or_text, RunResult):
        s = result_or_text.settings
        dose = dose_uM if dose_uM is not None else s.get("dose_uM")
        what = result_or_text.perturbation
        what = what if len(what) <= 40 else what[:37] + "..."
        extra = f" {dose:g} uM" if dose else ""
        return f"t = {t:.2f}   {what}{extra} ({s.get('direction', 'forward')})"
    return f"t = {t:.2f}   {result_or_text}"


def render_frames(result: RunResult, gap: int = 2, panel_gap: int = 8) -> np.ndarray:
    """Every panel of ``result`` as one RGB picture per frame: (T, H, W, 3) uint8."""
    from .crops import mosaic

    result.check_not_empty()
    start = np.concatenate([p.frames[0].reshape(-1, p.frames.shape[-1]) for p in result.panels])
    low = np.percentile(start, 0.5, axis=0)
    high = np.percentile(start, 99.5, axis=0)
    high = np.where(high > low, high, low + 1)
    colors = np.array(
        [CHANNEL_RGB[channel_color(c, i)] for i, c in enumerate(result.channels)], np.float32
    )
    tiles = []
    for p in result.panels:
        m = mosaic(p.frames, gap=gap)  # (T, Hm, Wm, C)
        unit = np.clip((m - low) / (high - low), 0, 1)
        tiles.append(np.clip(np.einsum("thwc,ck->thwk", unit, colors), 0, 1))
    height = max(t.shape[1] for t in tiles)
    padded = [np.pad(t, ((0, 0), (0, height - t.shape[1]), (0, panel_gap), (0, 0))) for t in tiles]
    out = np.concatenate(padded, axis=2)[:, :, : out_width(tiles, panel_gap)]
    frames = (out * 255).round().astype(np.uint8)
    if len(result.panels) > 1 or result.panels[0].name not in ("", "cells"):
        names = [p.name for p in result.panels]
        widths = [t.shape[2] + panel_gap for t in tiles]
        frames = _label_panels(frames, names, widths)
    return frames


def out_width(tiles: Sequence[np.ndarray], panel_gap: int) -> int:
    return sum(t.shape[2] for t in tiles) + panel_gap * (len(tiles) - 1)


def _label_panels(frames: np.ndarray, names: Sequence[str], widths: Sequence[int]) -> np.ndarray:
    """A band above the panels with each panel's name over it."""
    from PIL import Image, ImageDraw

    band = Image.new("RGB", (frames.shape[2], _BAND), "black")
    draw = ImageDraw.Draw(band)
    x = 0
    for name, w in zip(names, widths, strict=True):
        draw.text((x + 2, 4), str(name)[: max(4, w // 7)], fill="white", font=_font())
        x += w
    top = np.broadcast_to(np.asarray(band), (frames.shape[0], _BAND, frames.shape[2], 3))
    return np.concatenate([top, frames], axis=1)


def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _with_caption(frame: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    h, w = frame.shape[:2]
    out_h = -(-(h + _BAND) // _MACRO) * _MACRO
    out_w = max(-(-w // _MACRO) * _MACRO, _MACRO)
    canvas = Image.new("RGB", (out_w, out_h), "black")
    canvas.paste(Image.fromarray(frame[..., :3]), (0, 0))
    ImageDraw.Draw(canvas).text((4, h + 5), text, fill="white", font=_font())
    return np.asarray(canvas)


def _check(frames: Any, captions: Sequence[str], fps: float, fmt: str) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.size == 0 or arr.ndim != 4 or arr.shape[-1] not in (3, 4):
        raise ValueError(
            "There is nothing to export: the movie needs at least one (H, W, 3) frame, got "
            f"shape {arr.shape}. Run a simulation first."
        )
    if len(captions) != arr.shape[0]:
        raise ValueError(f"{len(captions)} captions for {arr.shape[0]} frames")
    if not (0 < float(fps) <= MAX_FPS):
        raise ValueError(f"the frame rate must be above 0 and at most {MAX_FPS:g}, got {fps!r}")
    if fmt not in FORMATS:
        raise ValueError(f"movie format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return arr.astype(np.uint8, copy=False)


def _ffmpeg() -> Any:
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise ExportError(
            "MP4 export needs the imageio-ffmpeg package (pip install imageio-ffmpeg), "
            f"which is missing or has no ffmpeg ({exc}). Export a GIF instead, or install it."
        ) from None
    return imageio_ffmpeg


def write_movie(
    frames: Any, path: str | Path, fps: float = 8.0, captions: Sequence[str] | None = None
) -> Path:
    """Write RGB ``frames`` (T, H, W, 3) uint8 as MP4 or GIF (from the suffix of ``path``).

    Each frame gets its caption burned in below it; frames are padded (black) to sides
    divisible by 16 so the encoder never rescales them. Written whole or not at all.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    arr = _check(frames, list(captions or [""] * len(np.asarray(frames))), fps, fmt)
    shown = np.stack(
        [_with_caption(f, c) for f, c in zip(arr, captions or [""] * len(arr), strict=True)]
    )
    if fmt == "mp4":
        ffmpeg = _ffmpeg()

        def write(tmp: Path) -> None:
            # the temporary name does not end in .mp4: name the container
            out = ffmpeg.write_frames(
                str(tmp),
                (shown.shape[2], shown.shape[1]),
                fps=float(fps),
                codec="libx264",
                quality=8,
                pix_fmt_out="yuv420p",
                macro_block_size=_MACRO,
                output_params=["-f", "mp4"],
            )
            out.send(None)
            try:
                for frame in shown:
                    out.send(np.ascontiguousarray(frame))
            finally:
                out.close()

    else:
        from PIL import Image

        def write(tmp: Path) -> None:
            images = [Image.fromarray(f) for f in shown]
            images[0].save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=images[1:],
                duration=max(20, round(1000 / float(fps))),
                loop=0,
            )

    return write_checked(path, write)


def export_movie(result: RunResult, path: str | Path, fps: float = 8.0, model: Any = None) -> Path:
    """Draw ``result`` (:func:`render_frames`), write it as MP4 / GIF with t and the
    perturbation burned in, and its provenance record beside it; returns the movie's path."""
    from .provenance import write_provenance

    frames = render_frames(result)
    captions = [caption(float(t), result) for t in result.times]
    target = write_movie(frames, path, fps, captions)
    write_provenance(target, result, model, kind=f"movie ({target.suffix.lstrip('.')})")
    return target
