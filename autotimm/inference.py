"""``ObjectDetector.predict``: any source -> batches -> letterbox -> network -> decode + NMS ->
:class:`~autotimm.results.Detections` in the ORIGINAL frame."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from autotimm.results import Detections
from autotimm.sources import Channels, Frame, Source, check_channels, resolve, to_rgb

if TYPE_CHECKING:  # torch is imported inside the functions that use it: run_source also serves the torch-free ONNX runtime
    import torch

    from autotimm.ops.tiles import MergeMode
    from autotimm.tiling import DetectFn, TileConfig

PROGRESS_MIN_IMAGES = 16  # below this many images no progress bar is shown by default


def predict(
    model: Any,
    source: Any,
    *,
    image_size: int | None = None,
    batch_size: int = 8,
    score_thresh: float | None = None,
    nms_thresh: float | None = None,
    max_detections: int | None = None,
    precision: str = "auto",
    channels: Channels = "rgb",
    stream: bool = False,
    progress: bool | None = None,
    tile: int | Literal["auto"] | None = None,
    overlap: float = 0.2,
    merge: MergeMode = "nms",
    full_image: bool = False,
) -> list[Detections] | Iterator[Detections]:
    """See :meth:`autotimm.ObjectDetector.predict` (this is its body)."""
    from autotimm.tiling import resolve_tiling
    from autotimm.utils.precision import resolve_precision

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    check_channels(channels)
    tiling = resolve_tiling(tile, overlap, merge, full_image, model.resolved_image_size(image_size))  # checked first
    resolved = resolve(source)  # fails now, not at the first next() of a stream
    use_bf16 = resolve_precision(precision, model.device.type) == "bf16"
    settings = dict(image_size=image_size, score_thresh=score_thresh, nms_thresh=nms_thresh,
                    max_detections=max_detections, use_bf16=use_bf16)
    names = list(model.class_names) if getattr(model, "class_names", None) else None
    mapping = dict(model.label_to_category_id) if getattr(model, "label_to_category_id", None) else None
    if tiling is not None:
        forward = {k: v for k, v in settings.items() if k != "image_size"}
        results = run_tiled(
            resolved, tiling[0], auto=tiling[1], detect_canvases=functools.partial(_detect_canvases, model, **forward),
            detect_images=functools.partial(_detect_batch, model, **settings),
            train_size=model.resolved_image_size(image_size), max_detections=max_detections,
            nms_thresh=model.nms_thresh if nms_thresh is None else nms_thresh,
            pad_value=getattr(model.transform_config, "pad_value", 114), channels=channels, batch_size=batch_size,
            names=names, label_to_category_id=mapping, progress=progress, keep_video_frames=stream,
        )
        return results if stream else list(results)
    results = run_source(resolved, lambda images: _detect_batch(model, images, **settings), channels=channels,
                         batch_size=batch_size, names=names, label_to_category_id=mapping, progress=progress,
                         keep_video_frames=stream)
    return results if stream else list(results)


def run_tiled(
    source: Source,
    config: TileConfig,
    *,
    detect_canvases: DetectFn,
    detect_images: Callable[[list[torch.Tensor]], list[dict[str, torch.Tensor]]],
    train_size: int,
    nms_thresh: float,
    max_detections: int | None = None,
    pad_value: int = 114,
    auto: bool = False,
    channels: Channels = "rgb",
    batch_size: int = 8,
    names: list[str] | None = None,
    label_to_category_id: dict[int, int] | None = None,
    progress: bool | None = None,
    keep_video_frames: bool = False,
) -> Iterator[Detections]:
    """``predict(tile=...)``: each image tiled, one Detections per image in the ORIGINAL frame.

    Shared by :meth:`ObjectDetector.predict` and :meth:`OnnxDetector.predict`.

    Args:
        detect_canvases: uint8 tiles [B, 3, S, S] -> detections per tile in its frame (CPU).
        detect_images: uint8 images [3, H, W] -> letterboxed detections in the ORIGINAL frame (for
            images ``auto`` does not tile).
        train_size: the size the model was trained at; ``auto`` tiles only images whose long side
            exceeds ``AUTO_FACTOR`` times it, and says so once.
        nms_thresh: IoU of the merge across tiles; max_detections: cap of the merged boxes (None: all).

    Files are read a window at a time (:class:`autotimm.tiling.TileReader`); video frames and
    in-memory images are sliced.
    """
    import torch

    from autotimm.tiling import AUTO_FACTOR, TileReader, detect_tiled, needs_tiling

    announced = False
    for item, path, frame_index in _tiled_items(source, channels):
        reader = TileReader(item)
        try:
            tiled = not auto or needs_tiling(reader.height, reader.width, train_size)
            if auto and tiled and not announced:
                print(f"predict(tile='auto'): images longer than {AUTO_FACTOR:g} x {train_size} px are cut into "
                      f"{config.tile} px tiles (overlap {config.overlap:g}); the first is {reader.height} x "
                      f"{reader.width} px.", flush=True)
                announced = True
            if tiled:
                det = detect_tiled(reader, detect_canvases, config, batch_size=batch_size, iou_thresh=nms_thresh,
                                   max_detections=max_detections, pad_value=pad_value, progress=progress,
                                   desc=Path(path).name if path else "tiles")
            else:
                det = detect_images([reader.crop(torch.tensor([0, 0, reader.width, reader.height]))])[0]
            keep = _keeps_image(path, frame_index, keep_video_frames)
            yield Detections(
                det["boxes"], det["scores"], det["labels"], names=names, image_path=path,
                image_size=(reader.height, reader.width), frame_index=frame_index,
                label_to_category_id=label_to_category_id, image=reader.image() if keep else None,
            )
        finally:
            reader.close()


def _keeps_image(path: str | None, frame_index: int | None, keep_video_frames: bool) -> bool:
    """Whether a result holds its image's pixels: in-memory images always (nothing to reload them
    from), video frames when streaming asks for them, files never (``Detections.image()`` re-reads the file)."""
    return path is None or (frame_index is not None and keep_video_frames)


def _tiled_items(source: Source, channels: Channels) -> Iterator[tuple[Any, str | None, int | None]]:
    """(item for a TileReader, file path or None, video frame index or None): files stay paths, so
    they are decoded lazily, one at a time."""
    if source.video:
        for frame in source.frames(channels):
            yield frame.image, frame.path, frame.frame_index
        return
    for item in source.items:
        if isinstance(item, Path):
            yield item, str(item), None
        else:
            yield to_rgb(item, channels), None, None


def _batches(frames: Iterator[Frame], batch_size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_source(
    source: Source,
    detect_batch: Callable[[list[torch.Tensor]], list[dict[str, torch.Tensor]]],
    *,
    channels: Channels = "rgb",
    batch_size: int = 8,
    names: list[str] | None = None,
    label_to_category_id: dict[int, int] | None = None,
    progress: bool | None = None,
    keep_video_frames: bool = False,
    as_array: bool = False,
) -> Iterator[Detections]:
    """Read a resolved source in batches, run ``detect_batch`` on each and yield one Detections per image.

    Shared by :meth:`ObjectDetector.predict` and :meth:`OnnxDetector.predict`.

    Args:
        source: from :func:`autotimm.sources.resolve`.
        detect_batch: uint8 RGB images [3, H, W] (original frame) -> one dict per image with ``boxes``
            (ORIGINAL frame), ``scores`` and ``labels`` on the CPU.
        keep_video_frames: keep each video frame's pixels in its result (for streams).
        as_array: images as uint8 numpy arrays [3, H, W] instead of tensors (no torch needed).
    """
    from tqdm.auto import tqdm

    show = (source.total is None or source.total >= PROGRESS_MIN_IMAGES) if progress is None else bool(progress)
    with tqdm(total=source.total, disable=not show, desc="predict", unit="img") as bar:
        for batch in _batches(source.frames(channels, as_array=as_array), batch_size):
            for frame, det in zip(batch, detect_batch([f.image for f in batch])):
                keep = _keeps_image(frame.path, frame.frame_index, keep_video_frames)
                yield Detections(
                    det["boxes"], det["scores"], det["labels"], names=names, image_path=frame.path,
                    image_size=tuple(frame.image.shape[-2:]), frame_index=frame.frame_index,
                    label_to_category_id=label_to_category_id, image=frame.image if keep else None,
                )
            bar.update(len(batch))


def _detect_batch(model: Any, images: list[torch.Tensor], image_size: int | None, score_thresh: float | None,
                  nms_thresh: float | None, max_detections: int | None, use_bf16: bool) -> list[dict[str, torch.Tensor]]:
    """One forward pass; detections per image in the ORIGINAL frame, on the CPU."""
    from autotimm.data.letterbox import boxes_to_original

    batch, params, sizes = model.letterbox_batch(images, image_size)
    dets = _detect_canvases(model, batch, score_thresh=score_thresh, nms_thresh=nms_thresh,
                            max_detections=max_detections, use_bf16=use_bf16)
    return [{**d, "boxes": boxes_to_original(d["boxes"], lb, size)} for d, lb, size in zip(dets, params, sizes)]


def _detect_canvases(model: Any, batch: torch.Tensor, *, score_thresh: float | None, nms_thresh: float | None,
                     max_detections: int | None, use_bf16: bool) -> list[dict[str, torch.Tensor]]:
    """One forward pass over uint8 canvases Tensor[B, 3, S, S]; detections per canvas in the INPUT frame
    (the canvas's pixels), on the CPU (what letterboxed batches and tiles share)."""
    import torch

    # eval() and train() each set every module's flag (~3 ms apiece for a mobile backbone; walking the
    # modules to look costs ~1.6 ms): switch only a model in training mode
    was_training = model.training
    if was_training:
        model.eval()
    device = model.device
    try:
        with torch.inference_mode():
            inputs = model.normalize(batch.to(device))
            if use_bf16:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                outputs = model.raw_outputs(inputs) if use_bf16 or not model.compile_model else model(inputs)
            dets = model.detect(outputs, tuple(inputs.shape[-2:]), score_thresh, nms_thresh, max_detections)
            return [{"boxes": d["boxes"].float().cpu(), "scores": d["scores"].float().cpu(), "labels": d["labels"].cpu()}
                    for d in dets]
    finally:
        if was_training:
            model.train()
