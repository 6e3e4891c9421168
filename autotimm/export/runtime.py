"""Run an exported detector in onnxruntime, with the model's own preprocessing and post-processing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from autotimm.data.image_io import ImageLike, load_image
from autotimm.data.letterbox import boxes_to_original, letterbox_image
from autotimm.export.metadata import ExportMetadata
from autotimm.ops.points import make_points
from autotimm.postprocess import PostprocessConfig, detect_padded, unpad


class OnnxDetector:
    """An ONNX file written by ``model.to_onnx()``, used like ``model.predict``.

    The file's metadata supplies the input size, mean/std, letterbox padding, class names, strides
    and architecture, so nothing but the file is needed. Raw graphs are decoded and NMS-ed here with
    the same code as :meth:`ObjectDetector.detect`; end-to-end graphs already end in NMS.

    Args:
        path: the ``.onnx`` file.
        providers: onnxruntime execution providers; default ``["CPUExecutionProvider"]``.
        session_options: an ``onnxruntime.SessionOptions`` (threads, graph optimisation level).

    Attributes:
        metadata: the file's :class:`~autotimm.export.metadata.ExportMetadata`.
        class_names: class names (index = label) or None.
        input_size: (H, W) of the input tensor (input frame).
        end_to_end: whether the graph contains decode + NMS.

    Example:
        >>> detector = OnnxDetector("detector.onnx")
        >>> detector.predict("image.jpg")[0]["boxes"]  # Tensor[N, 4], original pixels
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
        self.end_to_end = meta.end_to_end
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.pixel_mean = torch.tensor(meta.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.pixel_std = torch.tensor(meta.std, dtype=torch.float32).view(1, 3, 1, 1)
        self._decoder: Any = None

    def __repr__(self) -> str:
        kind = "end-to-end" if self.end_to_end else "raw"
        return f"OnnxDetector('{self.path}', {self.detection_arch}, {kind}, input {self.input_size[0]}x{self.input_size[1]}, {self.num_classes} classes)"

    # ------------------------------------------------------------------ preprocessing
    def preprocess(self, inputs: ImageLike | Sequence[ImageLike]) -> tuple[Tensor, Tensor, Tensor]:
        """Load, letterbox and normalise images exactly as the exported model did.

        Returns:
            float Tensor[B, 3, H, W] (input frame), letterbox params Tensor[B, 3] (scale, pad_x,
            pad_y) and original sizes int64 Tensor[B, 2] (H, W).
        """
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not items:
            raise ValueError("No images given: pass a path, a PIL image, an array, a tensor or a list of them.")
        canvases, params, sizes = [], [], []
        for item in items:
            image = load_image(item)
            canvas, lb = letterbox_image(image, self.input_size, pad_value=self.metadata.pad_value)
            canvases.append(canvas)
            params.append(lb)
            sizes.append(torch.tensor(image.shape[-2:], dtype=torch.int64))
        batch = torch.stack(canvases)
        images = (batch.float() / 255.0 - self.pixel_mean) / self.pixel_std  # as model.normalize
        return images, torch.stack(params), torch.stack(sizes)

    # ------------------------------------------------------------------ inference
    def run(self, images: Tensor | np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph on a normalised float batch [B, 3, H, W]; returns ``{output name: array}``."""
        array = images.detach().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
        h, w = self.input_size
        if array.ndim != 4 or array.shape[1] != 3 or tuple(array.shape[-2:]) != (h, w):
            raise ValueError(
                f"'{self.path}' takes normalised images of shape [B, 3, {h}, {w}]; got {tuple(array.shape)}. "
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
    ) -> list[dict[str, Tensor]]:
        """Graph outputs -> one dict per image (``boxes`` x1y1x2y2, ``scores``, ``labels``) in the
        input frame, sorted by score."""
        meta = self.metadata
        score = meta.score_thresh if score_thresh is None else float(score_thresh)
        nms = meta.nms_thresh if nms_thresh is None else float(nms_thresh)
        top = meta.max_detections if max_detections is None else int(max_detections)
        if self.end_to_end:
            return self._unpad(outputs, score, nms, top)
        return self._decode_raw(outputs, score, nms, top)

    def predict(
        self,
        inputs: Any,
        batch_size: int = 8,
        score_thresh: float | None = None,
        nms_thresh: float | None = None,
        max_detections: int | None = None,
        *,
        channels: str = "rgb",
        stream: bool = False,
        progress: bool | None = None,
        tile: int | str | None = None,
        overlap: float = 0.2,
        merge: str = "nms",
        full_image: bool = False,
    ) -> Any:
        """Detect objects, like :meth:`ObjectDetector.predict` (same sources, same results).

        Args:
            inputs: an image path, a folder, a glob, a video file, a PIL image, an HxWxC uint8 array,
                a CxHxW tensor, or a list of these (see :mod:`autotimm.sources`).
            batch_size: images per graph run.
            score_thresh / nms_thresh / max_detections: override the exported settings. An
                end-to-end graph has them baked in: it accepts a higher score threshold and fewer
                detections, but no other NMS threshold.
            channels: "rgb" (default) or "bgr" for arrays and tensors.
            stream: return a generator (for videos and large folders).
            progress: show a progress bar; default: for 16 images or more.
            tile / overlap / merge / full_image: tiled prediction of large images, as
                :meth:`ObjectDetector.predict`; the tile side must be the graph's input size
                (``tile="auto"`` uses it).

        Returns:
            a list (or generator) of :class:`autotimm.results.Detections`: ``r["boxes"]`` Tensor[N, 4]
            x1y1x2y2 in ORIGINAL image pixels, ``r["scores"]`` Tensor[N], ``r["labels"]`` int64
            Tensor[N] (indices into ``class_names``), plus ``plot()``, ``save()``, ``to_coco()``, ...
        """
        from autotimm.inference import run_source
        from autotimm.sources import check_channels, resolve

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        check_channels(channels)
        source = resolve(inputs)

        def detect_batch(images: list[Tensor]) -> list[dict[str, Tensor]]:
            batch, params, sizes = self.preprocess(images)
            dets = self.detect(self.run(batch), score_thresh, nms_thresh, max_detections)
            return [{**det, "boxes": boxes_to_original(det["boxes"], lb, size)} for det, lb, size in zip(dets, params, sizes)]

        if tile is not None:
            return self._predict_tiled(source, detect_batch, tile, overlap, merge, full_image, score_thresh, nms_thresh,
                                       max_detections, channels=channels, batch_size=batch_size, progress=progress,
                                       stream=stream)
        results = run_source(source, detect_batch, channels=channels, batch_size=batch_size,
                             names=list(self.class_names) if self.class_names else None, progress=progress,
                             keep_video_frames=stream)
        return results if stream else list(results)

    def _predict_tiled(self, source: Any, detect_batch: Any, tile: Any, overlap: float, merge: str, full_image: bool,
                       score_thresh: float | None, nms_thresh: float | None, max_detections: int | None, *,
                       channels: str, batch_size: int, progress: bool | None, stream: bool) -> Any:
        """``predict(tile=...)`` through :func:`autotimm.inference.run_tiled`, tiles of the graph's input size."""
        from autotimm.inference import run_tiled
        from autotimm.tiling import resolve_tiling

        h, w = self.input_size
        if tile != "auto" and tile != h or h != w:
            raise ValueError(
                f"tile={tile!r}: '{self.path}' takes {h} x {w} inputs, so its tiles must be {h} px (pass tile={h} "
                "or tile='auto'); export with to_onnx(..., image_size=...) for another tile size."
            )
        config, auto = resolve_tiling(tile, overlap, merge, full_image, h)

        def detect_canvases(canvas: Tensor) -> list[dict[str, Tensor]]:
            images = (canvas.float() / 255.0 - self.pixel_mean) / self.pixel_std  # as model.normalize
            return self.detect(self.run(images), score_thresh, nms_thresh, max_detections)

        results = run_tiled(
            source, config, auto=auto, detect_canvases=detect_canvases, detect_images=detect_batch, train_size=h,
            nms_thresh=self.metadata.nms_thresh if nms_thresh is None else nms_thresh, max_detections=max_detections,
            pad_value=self.metadata.pad_value, channels=channels, batch_size=batch_size,
            names=list(self.class_names) if self.class_names else None, progress=progress, keep_video_frames=stream,
        )
        return results if stream else list(results)

    # ------------------------------------------------------------------ post-processing
    def _unpad(self, outputs: dict[str, np.ndarray], score: float, nms: float, top: int) -> list[dict[str, Tensor]]:
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
        padded = tuple(torch.from_numpy(outputs[name]) for name in ("boxes", "scores", "labels", "num_detections"))
        return unpad(padded, score_thresh=score, max_detections=top)

    def _decode_raw(self, outputs: dict[str, np.ndarray], score: float, nms: float, top: int) -> list[dict[str, Tensor]]:
        maps = [torch.from_numpy(outputs[name]) for name in self.metadata.output_names]
        n = len(self.strides)
        grouped = tuple(maps[i * n : (i + 1) * n] for i in range(len(maps) // n))  # (cls, reg, ctr/obj) per level
        points, _ = make_points([tuple(m.shape[-2:]) for m in grouped[0]], self.strides)
        config = PostprocessConfig(score, nms, top, self.metadata.topk_per_level)
        return unpad(detect_padded(self._arch(), grouped, points, self.input_size, config))

    def _arch(self) -> Any:
        """The architecture's own decoder (its ``decode`` uses no learned weights), built small once."""
        if self._decoder is None:
            from autotimm.arch.registry import build_arch

            self._decoder = build_arch(
                self.detection_arch, in_channels=8, num_classes=self.num_classes, strides=self.strides, num_convs=0
            ).eval()
        return self._decoder
