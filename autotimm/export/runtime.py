"""Run an exported detector with ONNX Runtime, numpy and PIL only: no torch needed to deploy.

:class:`OnnxDetector` letterboxes and normalises images as the model did, runs the graph, and maps
the boxes back to the original pixels; ``predict`` takes the sources and returns the
:class:`~autotimm.results.Detections` of :meth:`ObjectDetector.predict` (holding numpy arrays).

End-to-end graphs (``include_postprocess=True``) need nothing else. Raw graphs are decoded and
NMS-ed with autotimm's PyTorch post-processing (the same code as ``model.detect``), so they need
torch; export end-to-end for a torch-free deployment.

Resizing: PIL's bilinear resize with antialiasing, where ``model.predict`` uses torchvision's
(``antialias=True``) on uint8 tensors. The two differ by at most 1 grey level on about 0.1 % of
pixels, so detections agree with ``model.predict`` to about 1e-2 in score, not bit for bit; on the
same letterboxed tensor (:meth:`OnnxDetector.run`) the graph matches the model exactly (see
:mod:`autotimm.export.parity`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from PIL import Image

from autotimm.data.image_io import ImageLike, load_array
from autotimm.export.metadata import ExportMetadata


class OnnxDetector:
    """An ONNX file written by ``model.to_onnx()``, used like ``model.predict``.

    The file's metadata supplies the input size, mean/std, letterbox padding, class names, strides
    and architecture, so nothing but the file is needed.

    Args:
        path: the ``.onnx`` file.
        providers: onnxruntime execution providers; default ``["CPUExecutionProvider"]`` (e.g.
            ``["CUDAExecutionProvider", "CPUExecutionProvider"]`` for a ``half=True`` file on a GPU).
        session_options: an ``onnxruntime.SessionOptions`` (threads, graph optimisation level).

    Attributes:
        metadata: the file's :class:`~autotimm.export.metadata.ExportMetadata`.
        class_names: class names (index = label) or None.
        input_size: (H, W) the images are letterboxed to by default (input frame).
        dynamic: the file takes any H and W that are multiples of ``size_multiple``.
        end_to_end: whether the graph contains decode + NMS.

    Example:
        >>> detector = OnnxDetector("detector.onnx")
        >>> detector.predict("image.jpg")[0]["boxes"]  # float32 array [N, 4], original pixels
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None, session_options: Any = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file not found: '{path}'. Export one with model.to_onnx('{path.name}').")
        self.path = str(path)
        try:
            self.session = ort.InferenceSession(self.path, sess_options=session_options, providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as err:  # onnxruntime's own exception types (InvalidProtobuf, InvalidArgument, Fail)
            if path.stat().st_size == 0 or "Load model from" in str(err) or "Protobuf" in str(err):
                raise ValueError(
                    f"'{path}' is not a readable ONNX file ({type(err).__name__}: {str(err)[:200]}). It may be "
                    "truncated (an interrupted copy or a full disk) or not an ONNX model; export it again with "
                    f"model.to_onnx('{path.name}')."
                ) from err
            raise
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = ExportMetadata.from_props(props, source=f"'{path}'")
        meta = self.metadata
        self.class_names = meta.class_names
        self.num_classes = meta.num_classes
        self.detection_arch = meta.detection_arch
        self.strides = tuple(meta.strides)
        self.input_size: tuple[int, int] = (int(meta.input_size[0]), int(meta.input_size[1]))
        self.dynamic = bool(meta.dynamic)
        self.size_multiple = int(meta.size_multiple or max(self.strides))
        self.end_to_end = meta.end_to_end
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.pixel_mean = np.asarray(meta.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self.pixel_std = np.asarray(meta.std, dtype=np.float32).reshape(1, 3, 1, 1)
        self._decoder: Any = None

    def __repr__(self) -> str:
        kind = "end-to-end" if self.end_to_end else "raw"
        size = f"input {self.input_size[0]}x{self.input_size[1]}" + (" (dynamic)" if self.dynamic else "")
        return f"OnnxDetector('{self.path}', {self.detection_arch}, {kind}, {size}, {self.num_classes} classes)"

    # ------------------------------------------------------------------ preprocessing
    def resolve_size(self, image_size: int | None = None) -> tuple[int, int]:
        """(H, W) to letterbox to: the file's size, or ``image_size`` for a dynamic file."""
        if image_size is None:
            return self.input_size
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size <= 0:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}.")
        size = int(image_size)
        if not self.dynamic and (size, size) != self.input_size:
            raise ValueError(
                f"image_size={size}: '{self.path}' was exported for {self.input_size[0]}x{self.input_size[1]} inputs "
                "only; leave image_size out, or export with dynamic=True to choose the size at run time."
            )
        if size % self.size_multiple:
            lower = max(self.size_multiple, size // self.size_multiple * self.size_multiple)
            raise ValueError(
                f"image_size={size} is not a multiple of {self.size_multiple} (the backbone's deepest stride); "
                f"use {lower} or {lower + self.size_multiple}."
            )
        return size, size

    def preprocess(self, inputs: ImageLike | Sequence[ImageLike], image_size: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Load, letterbox and normalise images as the exported model did.

        Returns:
            float32 array [B, 3, H, W] (input frame), letterbox params float32 [B, 3] (scale, pad_x,
            pad_y) and original sizes int64 [B, 2] (H, W).
        """
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not items:
            raise ValueError("No images given: pass a path, a PIL image, an array, a tensor or a list of them.")
        size = self.resolve_size(image_size)
        canvases, params, sizes = [], [], []
        for item in items:
            image = item if isinstance(item, np.ndarray) and item.ndim == 3 and item.shape[0] == 3 else load_array(item)
            canvas, lb = letterbox_array(image, size, self.metadata.pad_value)
            canvases.append(canvas)
            params.append(lb)
            sizes.append(image.shape[-2:])
        batch = np.stack(canvases).astype(np.float32) / 255.0  # [B, 3, H, W]
        images = (batch - self.pixel_mean) / self.pixel_std  # as model.normalize
        return images.astype(np.float32), np.stack(params).astype(np.float32), np.asarray(sizes, dtype=np.int64)

    # ------------------------------------------------------------------ inference
    def run(self, images: Any) -> dict[str, np.ndarray]:
        """Run the graph on a normalised float batch [B, 3, H, W]; returns ``{output name: array}``."""
        array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
        h, w = self.input_size
        shape_ok = array.ndim == 4 and array.shape[1] == 3
        if self.dynamic:
            shape_ok = shape_ok and all(s > 0 and s % self.size_multiple == 0 for s in array.shape[-2:])
            want = f"[B, 3, H, W] with H and W multiples of {self.size_multiple}"
        else:
            shape_ok = shape_ok and tuple(array.shape[-2:]) == (h, w)
            want = f"[B, 3, {h}, {w}]"
        if not shape_ok:
            raise ValueError(
                f"'{self.path}' takes normalised images of shape {want}; got {tuple(array.shape)}. "
                "Use predict() for raw images, or preprocess() to letterbox them."
            )
        outputs = self.session.run(None, {self.input_name: array.astype(np.float32, copy=False)})
        return dict(zip(self.output_names, outputs))

    def detect(
        self,
        outputs: dict[str, np.ndarray],
        score_thresh: float | None = None,
        nms_thresh: float | None = None,
        max_detections: int | None = None,
        image_size: tuple[int, int] | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """Graph outputs -> one dict per image (``boxes`` float32 [N, 4] x1y1x2y2, ``scores`` float32
        [N], ``labels`` int64 [N]) in the input frame, sorted by score.

        ``image_size``: (H, W) of the batch that was run (raw graphs clip to it; default ``input_size``).
        """
        meta = self.metadata
        score = meta.score_thresh if score_thresh is None else float(score_thresh)
        nms = meta.nms_thresh if nms_thresh is None else float(nms_thresh)
        top = meta.max_detections if max_detections is None else int(max_detections)
        if self.end_to_end:
            return self._unpad(outputs, score, nms, top)
        return self._decode_raw(outputs, score, nms, top, image_size or self.input_size)

    def predict(
        self,
        inputs: Any,
        image_size: int | None = None,
        batch_size: int = 8,
        score_thresh: float | None = None,
        nms_thresh: float | None = None,
        max_detections: int | None = None,
        precision: Literal["auto", "fp32", "fp16"] = "auto",
        *,
        channels: Literal["rgb", "bgr"] = "rgb",
        stream: bool = False,
        progress: bool | None = None,
        tile: int | str | None = None,
        overlap: float = 0.2,
        merge: str = "nms",
        full_image: bool = False,
    ) -> Any:
        """Detect objects, like :meth:`ObjectDetector.predict` (same arguments, same sources, same results).

        Args:
            inputs: an image path, a folder, a glob, a video file, a PIL image, an HxWxC uint8 array,
                a CxHxW tensor, or a list of these (see :mod:`autotimm.sources`).
            image_size: letterbox size; default: the export size. Other sizes only for a file
                exported with ``dynamic=True`` (multiples of ``size_multiple``).
            batch_size: images per graph run.
            score_thresh / nms_thresh / max_detections: override the exported settings. An
                end-to-end graph has them baked in: it accepts a higher score threshold and fewer
                detections, but no other NMS threshold.
            precision: the file's precision is fixed at export (``half=True``); "auto" or that one.
            channels: "rgb" (default) or "bgr" for arrays and tensors.
            stream: return a generator (for videos and large folders).
            progress: show a progress bar; default: for 16 images or more.
            tile / overlap / merge / full_image: tiled prediction of large images, as
                :meth:`ObjectDetector.predict`; the tile side must be the graph's input size
                (``tile="auto"`` uses it). Tiling runs in torch (its results hold tensors).

        Returns:
            a list (or generator) of :class:`autotimm.results.Detections`: ``r["boxes"]`` float32
            array [N, 4] x1y1x2y2 in ORIGINAL image pixels, ``r["scores"]`` float32 [N],
            ``r["labels"]`` int64 [N] (indices into ``r.names``), plus ``to_json()``, ``to_coco()``,
            and ``plot()`` / ``save()`` where torch is installed.
        """
        from autotimm.inference import run_source
        from autotimm.sources import check_channels, resolve

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        if precision not in ("auto", self.metadata.precision):
            raise ValueError(
                f"precision={precision!r}: '{self.path}' holds a {self.metadata.precision} graph; pass 'auto' "
                "(or export again with half=True for fp16, half=False for fp32)."
            )
        check_channels(channels)
        size = self.resolve_size(image_size)
        source = resolve(inputs)

        def detect_batch(images: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
            batch, params, sizes = self.preprocess(images, size[0])
            dets = self.detect(self.run(batch), score_thresh, nms_thresh, max_detections, image_size=size)
            return [{**det, "boxes": boxes_to_original(det["boxes"], lb, hw)} for det, lb, hw in zip(dets, params, sizes)]

        if tile is not None:
            return self._predict_tiled(source, detect_batch, tile, overlap, merge, full_image, score_thresh, nms_thresh,
                                       max_detections, size=size, channels=channels, batch_size=batch_size,
                                       progress=progress, stream=stream)
        mapping = self.metadata.label_to_category_id
        results = run_source(source, detect_batch, channels=channels, batch_size=batch_size,
                             names=list(self.class_names) if self.class_names else None,
                             label_to_category_id={int(k): int(v) for k, v in mapping.items()} if mapping else None,
                             progress=progress, keep_video_frames=stream, as_array=True)
        return results if stream else list(results)

    def _predict_tiled(self, source: Any, detect_batch: Any, tile: Any, overlap: float, merge: str, full_image: bool,
                       score_thresh: float | None, nms_thresh: float | None, max_detections: int | None, *,
                       size: tuple[int, int], channels: str, batch_size: int, progress: bool | None, stream: bool) -> Any:
        """``predict(tile=...)`` through :func:`autotimm.inference.run_tiled` (torch, like all tiling), tiles
        of the graph's input size."""
        import torch

        from autotimm.inference import run_tiled
        from autotimm.tiling import resolve_tiling

        h, w = size
        if tile != "auto" and tile != h or h != w:
            raise ValueError(
                f"tile={tile!r}: '{self.path}' takes {h} x {w} inputs, so its tiles must be {h} px (pass tile={h} "
                "or tile='auto'); export with to_onnx(..., image_size=...) for another tile size."
            )
        config, auto = resolve_tiling(tile, overlap, merge, full_image, h)

        def as_tensors(dets: list[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
            return [{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in d.items()} for d in dets]

        def detect_canvases(canvas: Any) -> list[dict[str, Any]]:
            images = (canvas.numpy().astype(np.float32) / 255.0 - self.pixel_mean) / self.pixel_std  # as preprocess
            return as_tensors(self.detect(self.run(images.astype(np.float32)), score_thresh, nms_thresh, max_detections, image_size=size))

        def detect_images(images: list[Any]) -> list[dict[str, Any]]:
            return as_tensors(detect_batch([np.asarray(image) for image in images]))

        results = run_tiled(
            source, config, auto=auto, detect_canvases=detect_canvases, detect_images=detect_images, train_size=h,
            nms_thresh=self.metadata.nms_thresh if nms_thresh is None else nms_thresh, max_detections=max_detections,
            pad_value=self.metadata.pad_value, channels=channels, batch_size=batch_size,
            names=list(self.class_names) if self.class_names else None, progress=progress, keep_video_frames=stream,
        )
        return results if stream else list(results)

    # ------------------------------------------------------------------ post-processing
    def _unpad(self, outputs: dict[str, np.ndarray], score: float, nms: float, top: int) -> list[dict[str, np.ndarray]]:
        meta = self.metadata
        if nms != meta.nms_thresh:
            raise ValueError(
                f"nms_thresh={nms} differs from the nms_thresh={meta.nms_thresh} baked into the end-to-end "
                f"graph '{self.path}'; export again with to_onnx(..., include_postprocess=True, "
                f"nms_thresh={nms}), or export a raw graph to choose it at run time."
            )
        if score < meta.score_thresh or top > meta.max_detections:
            raise ValueError(
                f"score_thresh={score}, max_detections={top}: the end-to-end graph '{self.path}' already "
                f"dropped scores <= {meta.score_thresh} and kept at most {meta.max_detections} boxes; "
                "choose a score_thresh at least that high and max_detections at most that many, or export again."
            )
        results = []
        for b, s, l, n in zip(outputs["boxes"], outputs["scores"], outputs["labels"], outputs["num_detections"].tolist()):
            keep = np.flatnonzero(s[:n] > score)[:top]  # rows are sorted by score
            results.append({"boxes": b[keep].astype(np.float32), "scores": s[keep].astype(np.float32), "labels": l[keep].astype(np.int64)})
        return results

    def _decode_raw(self, outputs: dict[str, np.ndarray], score: float, nms: float, top: int, image_size: tuple[int, int]) -> list[dict[str, np.ndarray]]:
        """Raw maps -> detections with autotimm's own post-processing (needs torch)."""
        try:
            import torch
        except ImportError as err:
            raise ImportError(
                f"'{self.path}' is a raw graph: its decode and NMS run in autotimm's PyTorch post-processing, which "
                "needs torch. Export with include_postprocess=True for a graph that runs with onnxruntime alone."
            ) from err
        from autotimm.ops.points import make_points
        from autotimm.postprocess import PostprocessConfig, detect_padded, unpad

        maps = [torch.from_numpy(outputs[name]) for name in self.metadata.output_names]
        n = len(self.strides)
        grouped = tuple(maps[i * n : (i + 1) * n] for i in range(len(maps) // n))  # (cls, reg, ctr/obj) per level
        points, _ = make_points([tuple(m.shape[-2:]) for m in grouped[0]], self.strides)
        config = PostprocessConfig(score, nms, top, self.metadata.topk_per_level)
        dets = unpad(detect_padded(self._arch(), grouped, points, image_size, config))
        return [{k: v.numpy() for k, v in d.items()} for d in dets]

    def _arch(self) -> Any:
        """The architecture's own decoder (its ``decode`` uses no learned weights), built small once."""
        if self._decoder is None:
            from autotimm.arch.registry import build_arch

            self._decoder = build_arch(
                self.detection_arch, in_channels=8, num_classes=self.num_classes, strides=self.strides, num_convs=0
            ).eval()
        return self._decoder


def letterbox_array(image: np.ndarray, size: tuple[int, int], pad_value: int) -> tuple[np.ndarray, np.ndarray]:
    """Letterbox a uint8 image [3, H, W] into a (H_out, W_out) canvas, as :mod:`autotimm.data.letterbox`
    does (same scale ``min(H_out / H, W_out / W)``, same rounding, top-left placement), with PIL's resize.

    Returns:
        (canvas uint8 [3, H_out, W_out], params float32 [3] (scale, pad_x, pad_y)).
    """
    h, w = image.shape[-2:]
    out_h, out_w = size
    scale = min(out_h / h, out_w / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    hwc = np.ascontiguousarray(image.transpose(1, 2, 0))  # [H, W, 3]
    if (new_h, new_w) != (h, w):
        hwc = np.asarray(Image.fromarray(hwc).resize((new_w, new_h), Image.Resampling.BILINEAR))
    canvas = np.full((3, out_h, out_w), pad_value, dtype=np.uint8)
    canvas[:, :new_h, :new_w] = hwc.transpose(2, 0, 1)
    return canvas, np.asarray([scale, 0.0, 0.0], dtype=np.float32)


def boxes_to_original(boxes: np.ndarray, params: np.ndarray, orig_size: np.ndarray) -> np.ndarray:
    """Boxes [N, 4] x1y1x2y2 from the input frame back to the original frame, clipped to the image
    (numpy twin of :func:`autotimm.data.letterbox.boxes_to_original`)."""
    scale, pad_x, pad_y = (float(v) for v in params)
    out = (boxes.astype(np.float32) - np.asarray([pad_x, pad_y, pad_x, pad_y], np.float32)) / np.float32(scale)
    h, w = (float(v) for v in orig_size)
    return np.minimum(np.maximum(out, 0), np.asarray([w, h, w, h], np.float32)).astype(np.float32)
