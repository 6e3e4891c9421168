"""``ObjectDetector.predict``: any source -> batches -> letterbox -> network -> decode + NMS ->
:class:`~autotimm.results.Detections` in the ORIGINAL frame."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from autotimm.data.letterbox import boxes_to_original
from autotimm.results import Detections
from autotimm.sources import Channels, Frame, Source, check_channels, resolve
from autotimm.utils.precision import resolve_precision

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
) -> list[Detections] | Iterator[Detections]:
    """See :meth:`autotimm.ObjectDetector.predict` (this is its body)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    check_channels(channels)
    resolved = resolve(source)  # fails now, not at the first next() of a stream
    use_bf16 = resolve_precision(precision, model.device.type) == "bf16"
    settings = dict(image_size=image_size, score_thresh=score_thresh, nms_thresh=nms_thresh,
                    max_detections=max_detections, use_bf16=use_bf16)
    names = list(model.class_names) if getattr(model, "class_names", None) else None
    mapping = dict(model.label_to_category_id) if getattr(model, "label_to_category_id", None) else None
    results = run_source(resolved, lambda images: _detect_batch(model, images, **settings), channels=channels,
                         batch_size=batch_size, names=names, label_to_category_id=mapping, progress=progress,
                         keep_video_frames=stream)
    return results if stream else list(results)


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
) -> Iterator[Detections]:
    """Read a resolved source in batches, run ``detect_batch`` on each and yield one Detections per image.

    Shared by :meth:`ObjectDetector.predict` and :meth:`OnnxDetector.predict`.

    Args:
        source: from :func:`autotimm.sources.resolve`.
        detect_batch: uint8 RGB images [3, H, W] (original frame) -> one dict per image with ``boxes``
            (ORIGINAL frame), ``scores`` and ``labels`` on the CPU.
        keep_video_frames: keep each video frame's pixels in its result (for streams).
    """
    from tqdm.auto import tqdm

    show = (source.total is None or source.total >= PROGRESS_MIN_IMAGES) if progress is None else bool(progress)
    with tqdm(total=source.total, disable=not show, desc="predict", unit="img") as bar:
        for batch in _batches(source.frames(channels), batch_size):
            for frame, det in zip(batch, detect_batch([f.image for f in batch])):
                keep_image = frame.path is None or (frame.frame_index is not None and keep_video_frames)
                yield Detections(
                    det["boxes"], det["scores"], det["labels"], names=names, image_path=frame.path,
                    image_size=tuple(frame.image.shape[-2:]), frame_index=frame.frame_index,
                    label_to_category_id=label_to_category_id, image=frame.image if keep_image else None,
                )
            bar.update(len(batch))


def _detect_batch(model: Any, images: list[torch.Tensor], image_size: int | None, score_thresh: float | None,
                  nms_thresh: float | None, max_detections: int | None, use_bf16: bool) -> list[dict[str, torch.Tensor]]:
    """One forward pass; detections per image in the ORIGINAL frame, on the CPU."""
    was_training = model.training
    model.eval()
    device = model.device
    try:
        with torch.inference_mode():
            batch, params, sizes = model.letterbox_batch(images, image_size)
            inputs = model.normalize(batch.to(device))
            if use_bf16:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                outputs = model.raw_outputs(inputs) if use_bf16 or not model.compile_model else model(inputs)
            dets = model.detect(outputs, tuple(inputs.shape[-2:]), score_thresh, nms_thresh, max_detections)
            return [
                {"boxes": boxes_to_original(d["boxes"].float().cpu(), lb, size), "scores": d["scores"].float().cpu(),
                 "labels": d["labels"].cpu()}
                for d, lb, size in zip(dets, params, sizes)
            ]
    finally:
        model.train(was_training)
