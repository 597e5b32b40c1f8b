"""Video clips and poster images of rendered segments, for people to compare in a browser.

Clips are MP4 files any browser plays: H.264 video (libx264, from the ffmpeg binary that
imageio-ffmpeg ships), yuv420p pixels with even width and height (what H.264 decoders in
browsers accept), and the moov atom at the front (-movflags +faststart) so playback starts
before the whole file has arrived. Both writers are pure functions of a path; each writes a
temporary file beside the target and renames it, so a half-written file is never seen.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np


@contextmanager
def _atomic_target(path: Path, *, suffix: str) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (with the same suffix, which ffmpeg and
    imageio read the format from); rename it onto ``path`` when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def pad_to_even(frames: np.ndarray) -> np.ndarray:
    """Repeat the last row / column where height or width is odd: (T, H, W, 3) uint8."""
    _, height, width, _ = frames.shape
    pad_h, pad_w = height % 2, width % 2
    if not (pad_h or pad_w):
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def write_clip(frames: np.ndarray, *, path: str | os.PathLike, fps: float = 30.0) -> Path:
    """Write frames (T, H, W, 3) uint8 RGB as an H.264 MP4 at ``path``; returns the path."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be (T, H, W, 3) with T >= 1, got shape {frames.shape}.")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB, got dtype {frames.dtype}.")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    frames = pad_to_even(frames)
    _, height, width, _ = frames.shape
    path = Path(path)
    with _atomic_target(path, suffix=".mp4") as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            (width, height),
            fps=fps,
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            quality=None,  # set by -crf below
            macro_block_size=1,  # already even; never let the writer rescale
            output_params=["-crf", "23", "-preset", "veryfast", "-movflags", "+faststart"],
        )
        writer.send(None)  # start ffmpeg
        try:
            for frame in frames:
                writer.send(np.ascontiguousarray(frame))
        finally:
            writer.close()
    return path


def write_poster(frame: np.ndarray, *, path: str | os.PathLike) -> Path:
    """Write one frame (H, W, 3) uint8 RGB as a PNG at ``path``; returns the path."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"frame must be (H, W, 3) uint8 RGB, got shape {frame.shape} dtype {frame.dtype}."
        )
    path = Path(path)
    with _atomic_target(path, suffix=".png") as tmp:
        iio.imwrite(tmp, frame, extension=".png")
    return path
