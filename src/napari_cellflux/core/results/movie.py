"""Movies of a trajectory: MP4 (imageio's ffmpeg plugin) or GIF (Pillow), t burned in.

:func:`write_movie` writes (T, H, W, 3) RGB frames with a caption band under each frame
(``t = 0.50   cyclohexamide (forward)``), at a chosen frame rate. The widget passes
screenshots of the canvas (every grid panel, as the user sees them); Python callers use
:func:`render_frames`, which draws every panel of a :class:`.export.RunResult` side by side
in the widget's colours (DNA blue, tubulin green, actin red) with fixed contrast from the
start frame, so the change is not hidden by per-frame rescaling. MP4 needs the
``imageio-ffmpeg`` package (a dependency; it ships its own ffmpeg).

When the panels of a result differ in perturbation or direction (a forward and a reverse
run, two compounds), each panel's label above it names its own perturbation, dose, direction
and t, and the caption says so; panels that differ only in dose share one caption that lists
the doses in panel order. The suffix (:data:`FORMATS`), the frame rate (:func:`check_fps`)
and the folder are checked before anything is drawn; frames with NaN are refused.
"""

from __future__ import annotations

import math
import numbers
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cells.images import CHANNEL_RGB, channel_color
from ..formats.files import ExportError, check_writable, write_checked
from .export import RunResult

__all__ = [
    "FORMATS",
    "caption",
    "check_fps",
    "check_format",
    "export_movie",
    "render_frames",
    "write_movie",
]

FORMATS = ("mp4", "gif")
MAX_FPS = 60.0
#: A GIF stores each frame's duration in hundredths of a second, as a 16-bit number: 2 (the
#: shortest players honour) to 65535, i.e. 50 down to 100 / 65535 (about 0.0015) frames/s.
GIF_FPS = (100 / 65535, 50.0)
_BAND = 24  # caption band height, px
_LINE = 17  # height of one line of the panel labels, px
_MACRO = 16  # H.264 encoders want sides divisible by 16: frames are padded, never resized
_MIXED = "see each panel's label"


def _short(name: str) -> str:
    return name if len(name) <= 40 else name[:37] + "..."


def _condition_text(perturbation: str, doses: Sequence[float | None], direction: str) -> str:
    listed = [f"{d:g}" for d in dict.fromkeys(doses) if d]
    extra = f" {', '.join(listed)} uM" if listed else ""
    return f"{_short(perturbation)}{extra} ({direction})"


def _mixed(result: RunResult) -> bool:
    """Whether the panels differ in perturbation, direction or t (not only in dose)."""
    conditions = {(p, d) for p, _, d in map(result.condition, result.panels)}
    times = {tuple(result.panel_times(p)) for p in result.panels}
    return len(conditions) > 1 or len(times) > 1


def caption(t: float, result_or_text: Any, dose_uM: float | None = None) -> str:
    """The text burned into a frame: t, the perturbation, its dose(s) and the direction.

    For a :class:`.export.RunResult` whose panels differ only in dose the doses are listed
    in panel order; when they differ in perturbation, direction or t, ``t`` is the first
    panel's and the caption points at the panels' own labels (:func:`render_frames`)."""
    if isinstance(result_or_text, RunResult):
        result = result_or_text
        conditions = [result.condition(p) for p in result.panels] or [
            (result.perturbation, result.settings.get("dose_uM"), "forward")
        ]
        if result.panels and _mixed(result):
            return f"t = {t:.2f} (panel 1)   {_MIXED}"
        doses = [dose_uM] if dose_uM is not None else [c[1] for c in conditions]
        return f"t = {t:.2f}   {_condition_text(conditions[0][0], doses, conditions[0][2])}"
    return f"t = {t:.2f}   {result_or_text}"


def render_frames(result: RunResult, gap: int = 2, panel_gap: int = 8) -> np.ndarray:
    """Every panel of ``result`` as one RGB picture per frame: (T, H, W, 3) uint8."""
    from ..cells.crops import mosaic

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
    widths = [t.shape[2] + panel_gap for t in tiles]
    if _mixed(result):  # every panel names its own condition and t, frame by frame
        labels = [
            [
                [p.name, _condition_text(what, [dose], direction), f"t = {t:.2f}"]
                for t in result.panel_times(p)
            ]
            for p, (what, dose, direction) in zip(
                result.panels, map(result.condition, result.panels), strict=True
            )
        ]
        frames = _label_panels(frames, labels, widths)
    elif len(result.panels) > 1 or result.panels[0].name not in ("", "cells"):
        labels = [[[p.name]] * len(frames) for p in result.panels]
        frames = _label_panels(frames, labels, widths)
    return frames


def out_width(tiles: Sequence[np.ndarray], panel_gap: int) -> int:
    return sum(t.shape[2] for t in tiles) + panel_gap * (len(tiles) - 1)


def _label_panels(
    frames: np.ndarray, labels: Sequence[Sequence[Sequence[str]]], widths: Sequence[int]
) -> np.ndarray:
    """A band above the panels with each panel's label over it: ``labels[panel][frame]`` is
    a list of texts, each wrapped to the panel's width (never cut)."""
    from PIL import Image, ImageDraw

    font = _font()
    wrapped = [
        [[line for text in texts for line in _wrap(str(text), w - 6, font)] for texts in per_frame]
        for per_frame, w in zip(labels, widths, strict=True)
    ]
    rows = max(len(lines) for per_frame in wrapped for lines in per_frame)
    height = max(_BAND, 6 + _LINE * rows)
    bands = {}
    out = []
    for i in range(frames.shape[0]):
        key = tuple(tuple(per_frame[i]) for per_frame in wrapped)
        if key not in bands:
            band = Image.new("RGB", (frames.shape[2], height), "black")
            draw = ImageDraw.Draw(band)
            x = 0
            for lines, w in zip(key, widths, strict=True):
                for row, line in enumerate(lines):
                    draw.text((x + 2, 4 + _LINE * row), line, fill="white", font=font)
                x += w
            bands[key] = np.asarray(band)
        out.append(bands[key])
    return np.concatenate([np.stack(out), frames], axis=1)


def _wrap(text: str, width: int, font: Any) -> list[str]:
    """``text`` in lines at most ``width`` px wide in ``font`` (words kept whole where they
    fit, longer ones split), so a label never runs into the next panel."""
    fits = (lambda t: font.getlength(t) <= width) if hasattr(font, "getlength") else None
    if fits is None:  # a bitmap font without metrics: about 6 px a character
        return textwrap.wrap(text, max(4, width // 6)) or [""]
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if fits(candidate):
            line = candidate
            continue
        if line:
            lines.append(line)
        while not fits(word) and len(word) > 1:
            cut = 1  # the longest head of the word that fits (at least one character)
            while cut < len(word) and fits(word[: cut + 1]):
                cut += 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    return [*lines, line] if line else lines or [""]


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


def check_format(path: str | Path) -> str:
    """The movie format of ``path`` (``mp4`` or ``gif``, from its suffix), or a ValueError
    that says which suffixes are written."""
    suffix = Path(path).suffix.lower()
    fmt = suffix.lstrip(".")
    if fmt not in FORMATS:
        given = f"'{suffix}'" if suffix else "a file without a suffix"
        raise ValueError(
            f"Cannot write a movie as {given}: the movie format is MP4 (.mp4) or GIF (.gif). "
            f"Name the file e.g. {Path(path).stem or 'run'}.mp4. Nothing was written."
        )
    return fmt


def check_fps(fps: Any, fmt: str = "mp4") -> float:
    """The frame rate as a float, or a ValueError naming the range ``fmt`` can hold: MP4
    above 0 to :data:`MAX_FPS`, GIF :data:`GIF_FPS` (its frame durations are stored in
    hundredths of a second, at most 65535)."""
    low, high = GIF_FPS if fmt == "gif" else (0.0, MAX_FPS)
    number = isinstance(fps, numbers.Real) and not isinstance(fps, bool)
    value = float(fps) if number else math.nan
    if math.isfinite(value) and value > 0 and low <= value <= high:
        return value
    if fmt == "gif":
        allowed = (
            f"from {math.ceil(low * 1e4) / 1e4:g} (one frame per {1 / low:.0f} s) to {high:g} "
            "frames per second (a GIF stores how long each frame shows in hundredths of a "
            "second, 2 to 65535)"
        )
    else:
        allowed = f"above 0 and at most {high:g} frames per second"
    raise ValueError(
        f"The frame rate of a {fmt.upper()} movie must be a number {allowed}, got {fps!r}. "
        "8 is the default."
    )


def _check(frames: Any, captions: Sequence[str], fps: Any, fmt: str) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.size == 0 or arr.ndim != 4 or arr.shape[-1] not in (3, 4):
        raise ValueError(
            "There is nothing to export: the movie needs at least one (H, W, 3) frame, got "
            f"shape {arr.shape}. Run a simulation first."
        )
    if len(captions) != arr.shape[0]:
        raise ValueError(f"{len(captions)} captions for {arr.shape[0]} frames")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(
            "The movie frames hold NaN or infinite values: they come from a failed run and "
            "cannot be drawn. Run the simulation again; nothing was written."
        )
    return arr.astype(np.uint8, copy=False)


def _check_gif_stills(shown: np.ndarray, fps: float) -> None:
    """A GIF shows identical frames in a row as one frame of their summed duration (Pillow
    merges them), which must still fit the 655.35 s a GIF frame can last."""
    same = np.all(shown[1:] == shown[:-1], axis=(1, 2, 3))
    longest = run = 1
    for repeat in same:
        run = run + 1 if repeat else 1
        longest = max(longest, run)
    if longest * round(1000 / fps) > 655350:
        raise ValueError(
            f"{longest} identical frames in a row make one GIF frame of "
            f"{longest / fps:.0f} s at {fps:g} frames per second, longer than a GIF frame can "
            f"last (655 s). Choose a frame rate of at least {longest * 100 / 65535:.2g}."
        )


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
    divisible by 16 so the encoder never rescales them. Written whole or not at all. The
    suffix (:func:`check_format`), ``fps`` (:func:`check_fps`) and the folder
    (:func:`.files.check_writable`) are checked before any frame is encoded.
    """
    path = Path(path)
    fmt = check_format(path)
    fps = check_fps(fps, fmt)
    check_writable(path)
    arr = _check(frames, list(captions or [""] * len(np.asarray(frames))), fps, fmt)
    shown = np.stack(
        [_with_caption(f, c) for f, c in zip(arr, captions or [""] * len(arr), strict=True)]
    )
    if fmt == "gif":
        _check_gif_stills(shown, fps)
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
                duration=round(1000 / fps),
                loop=0,
            )

    return write_checked(path, write)


def export_movie(result: RunResult, path: str | Path, fps: float = 8.0, model: Any = None) -> Path:
    """Draw ``result`` (:func:`render_frames`), write it as MP4 / GIF with t and the
    perturbation burned in, and its provenance record beside it; returns the movie's path.

    The suffix, ``fps``, the result (frames, no NaN) and the folder are checked first, so a
    movie that cannot be written is refused before anything is drawn."""
    from ..formats.provenance import write_provenance

    check_fps(fps, check_format(path))
    result.check_not_empty()
    check_writable(path)
    frames = render_frames(result)
    if _mixed(result):  # each panel's label says its t
        count = len(result.times)
        captions = [f"frame {i + 1} of {count}   {_MIXED}" for i in range(count)]
    else:
        captions = [caption(float(t), result) for t in result.times]
    target = write_movie(frames, path, fps, captions)
    write_provenance(target, result, model, kind=f"movie ({target.suffix.lstrip('.')})")
    return target
