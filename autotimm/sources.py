"""What ``predict`` accepts, turned into a stream of RGB uint8 images in the ORIGINAL frame.

Accepted sources:
    * an image file path; a folder (its images, sorted by name, not recursive); a glob pattern
      (``"data/**/*.jpg"``, sorted); a video file (frames decoded with OpenCV, see below);
    * a PIL image; a numpy array HxWxC (or HxW, or a BxHxWxC batch) uint8; a torch tensor CxHxW (or
      BxCxHxW), uint8 or float in [0, 1];
    * a list or tuple of any of these.

Arrays and tensors are RGB unless ``channels="bgr"`` (OpenCV's order) is given; files and PIL images
are always decoded as RGB.

Video: OpenCV (``opencv-python-headless``, the ``[video]`` extra) decodes the frames. torchvision's
video API is gone in recent torchvision (0.29 has no ``torchvision.io.read_video``), and OpenCV's wheels
bundle FFmpeg for Linux, macOS and Windows, encode as well as decode (``autotimm predict`` writes the
drawn video with it), and are already pulled in by the FiftyOne extra.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from autotimm.data.image_io import _is_tensor, load_array, load_image

if TYPE_CHECKING:  # no torch at import: the torch-free ONNX runtime reads its sources here too
    from torch import Tensor
from autotimm.data.readers.yolo import IMAGE_SUFFIXES

Channels = Literal["rgb", "bgr"]
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
ACCEPTED = (
    "an image path, a folder of images, a glob pattern, a video file (.mp4, .avi, ...), a PIL image, an HxWxC "
    "uint8 numpy array, a CxHxW tensor (uint8, or float in [0, 1]), or a list of these"
)


@dataclass
class Frame:
    """One image to predict on.

    Attributes:
        image: uint8 Tensor[3, H, W] RGB, original frame (a uint8 numpy array [3, H, W] from
            ``frames(as_array=True)``).
        path: the file it came from (the video for a video frame), else None.
        frame_index: frame number in the video, else None.
    """

    image: Tensor
    path: str | None = None
    frame_index: int | None = None


@dataclass
class Source:
    """A resolved source: the items to read, in order, and whether it is a video.

    ``items`` holds image paths (read lazily, one batch at a time) and in-memory images; a video source
    has one item, its path, and ``total`` is its frame count as the container reports it (None if unknown).
    """

    items: list[Any]
    video: bool = False
    total: int | None = None

    def frames(self, channels: Channels = "rgb", as_array: bool = False) -> Iterator[Frame]:
        """The images, one at a time, decoded only when reached; numpy arrays (no torch) with ``as_array``."""
        if self.video:
            yield from read_video(self.items[0], as_array=as_array)
            return
        load = load_array if as_array else load_image
        for item in self.items:
            if isinstance(item, Path):
                yield Frame(load(item), path=str(item))
            else:
                yield Frame(load(to_rgb(item, channels)))


def check_channels(channels: Any) -> Channels:
    if channels not in ("rgb", "bgr"):
        raise ValueError(f"channels={channels!r}: expected 'rgb' (the default) or 'bgr' (OpenCV's order).")
    return channels


def to_rgb(image: Any, channels: Channels) -> Any:
    """Flip an array's (HxWxC) or tensor's (CxHxW) first three channels when ``channels == "bgr"``."""
    if channels == "rgb":
        return image
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] >= 3:
        return np.concatenate([image[:, :, 2::-1], image[:, :, 3:]], axis=2)
    if _is_tensor(image) and image.ndim == 3 and image.shape[0] == 3:
        return image.flip(0)
    return image  # greyscale has no channel order; PIL images and files are decoded as RGB


def resolve(source: Any) -> Source:
    """Expand a source into items (see the module docstring for what is accepted).

    Raises:
        FileNotFoundError: a path that is no file, folder or matching glob.
        ValueError: an empty folder, or a video inside a list.
        TypeError: anything else, naming what is accepted.
    """
    if isinstance(source, (list, tuple)):
        items: list[Any] = []
        for i, element in enumerate(source):
            sub = resolve(element)
            if sub.video:
                raise ValueError(f"source[{i}] = {str(element)!r} is a video; pass a video on its own, not in a list.")
            items += sub.items
        return Source(items, total=len(items))
    if isinstance(source, (str, os.PathLike)):
        return _resolve_path(str(source))
    if isinstance(source, np.ndarray) and source.ndim == 4:  # B x H x W x C
        return Source(list(source), total=len(source))
    if _is_tensor(source) and source.ndim == 4:  # B x C x H x W
        return Source(list(source.unbind(0)), total=source.shape[0])
    if isinstance(source, (Image.Image, np.ndarray)) or _is_tensor(source):
        return Source([source], total=1)
    raise TypeError(f"Cannot predict on {type(source).__name__} {repr(source)[:60]}; pass {ACCEPTED}.")


def _resolve_path(text: str) -> Source:
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(
                f"Folder '{path}' holds no images (looked for {', '.join(IMAGE_SUFFIXES)}; sub-folders are not "
                "searched: use a glob such as 'folder/**/*.jpg')."
            )
        return Source(list(files), total=len(files))
    if path.is_file():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return Source([path], video=True, total=video_frame_count(path))
        return Source([path], total=1)
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"The glob {text!r} matches no image files ({', '.join(IMAGE_SUFFIXES)}).")
        return Source(files, total=len(files))
    raise FileNotFoundError(f"'{path}': no such image file, folder, glob match or video. Accepted: {ACCEPTED}.")


# ---------------------------------------------------------------------- video (OpenCV)
def require_cv2() -> Any:
    """The ``cv2`` module, or an ImportError naming the extra to install."""
    try:
        import cv2
    except ImportError as err:
        raise ImportError(
            "Reading and writing video needs OpenCV: pip install 'autotimm[video]' (opencv-python-headless)."
        ) from err
    return cv2


def video_frame_count(path: str | os.PathLike) -> int | None:
    """Frames in a video as its container reports them (None when it does not say)."""
    cv2 = require_cv2()
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"Cannot open video '{path}' (OpenCV/FFmpeg could not decode it).")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        return count if count > 0 else None
    finally:
        cap.release()


def video_fps(path: str | os.PathLike, default: float = 25.0) -> float:
    """Frames per second of a video (``default`` when the container does not say)."""
    cv2 = require_cv2()
    cap = cv2.VideoCapture(str(path))
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
    finally:
        cap.release()
    return fps if fps > 0 else default


def read_video(path: str | os.PathLike, as_array: bool = False) -> Iterator[Frame]:
    """Decode a video one frame at a time (never the whole video in memory), as RGB uint8 [3, H, W]
    tensors (numpy arrays with ``as_array``)."""
    cv2 = require_cv2()
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"Cannot open video '{path}' (OpenCV/FFmpeg could not decode it).")
    try:
        index = 0
        while True:
            ok, bgr = cap.read()  # HxWx3 uint8, BGR
            if not ok:
                break
            rgb = np.ascontiguousarray(bgr[:, :, ::-1]).transpose(2, 0, 1)  # [3, H, W]
            if not as_array:
                import torch

                rgb = torch.from_numpy(rgb)
            yield Frame(rgb, path=str(path), frame_index=index)
            index += 1
    finally:
        cap.release()


class VideoWriter:
    """Write RGB uint8 [3, H, W] frames to a video file with OpenCV (mp4v for .mp4, MJPG for .avi).

    Use as a context manager; the size is taken from the first frame.
    """

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        self.cv2 = require_cv2()
        self.path = Path(path)
        self.fps = fps
        self._writer: Any = None

    def write(self, frame: Tensor) -> None:
        height, width = frame.shape[-2:]
        if self._writer is None:
            codec = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = self.cv2.VideoWriter(str(self.path), self.cv2.VideoWriter_fourcc(*codec), self.fps, (width, height))
            if not self._writer.isOpened():
                raise ValueError(f"OpenCV cannot write video '{self.path}' with codec {codec}; use a .mp4 or .avi name.")
        bgr = frame.permute(1, 2, 0).numpy()[:, :, ::-1]  # HxWx3 BGR
        self._writer.write(np.ascontiguousarray(bgr))

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._writer is not None:
            self._writer.release()
