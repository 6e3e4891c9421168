"""``ThresholdExplorer``: move score / NMS / max-detection sliders and see the boxes change at once.

The network runs once per image when the explorer is made; its raw outputs are cached, and every
slider move only re-runs the cheap part, ``model.detect`` (decode, top-k, threshold, NMS), then maps
the boxes to the original frame and redraws.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from autotimm.data.image_io import ImageLike, load_image
from autotimm.data.letterbox import boxes_to_original
from autotimm.widgets._ipywidgets import widgets
from autotimm.widgets.drawing import draw_detections, figure_png, new_figure

def _style() -> dict[str, Any]:
    # A fresh Layout per widget: a shared one would hide every slider when one is hidden.
    return {"continuous_update": True, "style": {"description_width": "110px"}, "layout": widgets.Layout(width="420px")}


@dataclass
class CachedImage:
    """One image's network outputs and what is needed to draw them.

    Attributes:
        outputs: the model's raw per-level outputs for a batch of one (input frame).
        input_hw: (H, W) of the letterboxed input.
        letterbox: Tensor[3] (scale, pad_x, pad_y).
        orig_size: Tensor[2] (H, W) of the original image.
        pixels: uint8 array[H, W, 3], the original image.
    """

    outputs: tuple[list[Tensor], ...]
    input_hw: tuple[int, int]
    letterbox: Tensor
    orig_size: Tensor
    pixels: np.ndarray


@torch.inference_mode()
def run_once(model: Any, image: ImageLike, image_size: int | None = None) -> CachedImage:
    """Run ``model`` on one image and keep its raw outputs (fp32, eager)."""
    pixels = load_image(image)  # uint8 [3, H, W], original frame
    batch, params, sizes = model.letterbox_batch([pixels], image_size)
    inputs = model.normalize(batch.to(model.device))
    # Eager on purpose: one forward per image is not worth a torch.compile.
    outputs = model.raw_outputs(inputs) if getattr(model, "compile_model", False) else model(inputs)
    return CachedImage(outputs, tuple(inputs.shape[-2:]), params[0], sizes[0], pixels.permute(1, 2, 0).numpy())


def detections_for(model: Any, cached: CachedImage, score_thresh: float, nms_thresh: float, max_detections: int) -> dict[str, Tensor]:
    """Detections of a cached image in the ORIGINAL frame (boxes, scores, labels), on the CPU."""
    det = model.detect(cached.outputs, cached.input_hw, score_thresh, nms_thresh, max_detections)[0]
    return {
        "boxes": boxes_to_original(det["boxes"].cpu(), cached.letterbox, cached.orig_size),
        "scores": det["scores"].cpu(),
        "labels": det["labels"].cpu(),
    }


class ThresholdExplorer(widgets.VBox):
    """Sliders for ``score_thresh``, ``nms_thresh`` and ``max_detections`` over cached model outputs.

    Args:
        model: a trained :class:`autotimm.ObjectDetector`.
        images: images to explore (paths, PIL images, HxWxC arrays, CxHxW tensors).
        image_size: letterbox size; default: the size the model was trained at.
        class_names: label names; default ``model.class_names``.
        figsize / dpi: size of the drawing.
        report: an :class:`autotimm.evaluation.EvaluationReport` of this model (``model.evaluate(data)``):
            its F1-vs-confidence curve is shown beside the image with the score slider marked on it.

    Attributes:
        score, nms, max_detections, index: the slider widgets.
        figure: the matplotlib Figure last drawn.
        drawn: uint8 Tensor[3, H, W], the image with the boxes drawn (:func:`autotimm.drawing.draw_detections`).
        image: the ipywidgets Image showing it.
        detections: the current image's detections (original frame).

    Example:
        >>> explorer = ThresholdExplorer(model, ["a.jpg", "b.jpg"]); explorer  # doctest: +SKIP
        >>> explorer.score.value = 0.3; len(explorer.detections["boxes"])  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any,
        images: ImageLike | Sequence[ImageLike],
        image_size: int | None = None,
        class_names: Sequence[str] | None = None,
        figsize: tuple[float, float] = (6.0, 6.0),
        dpi: int = 90,
        report: Any = None,
    ) -> None:
        for attr in ("detect", "letterbox_batch", "normalize"):
            if not hasattr(model, attr):
                raise ValueError(f"ThresholdExplorer(model=...): expected an autotimm ObjectDetector, got {type(model).__name__} without .{attr}().")
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        if not items:
            raise ValueError("ThresholdExplorer(images=[]): give at least one image (path, PIL image, array or tensor).")
        self.model = model
        self.class_names = list(class_names) if class_names is not None else getattr(model, "class_names", None)
        was_training = model.training
        model.eval()
        try:
            self.cache = [run_once(model, item, image_size) for item in items]
        finally:
            model.train(was_training)
        max_dets = max(300, int(model.max_detections_per_image))
        self.score = widgets.FloatSlider(value=float(model.score_thresh), min=0.0, max=0.99, step=0.01, description="score_thresh", **_style())
        self.nms = widgets.FloatSlider(value=float(model.nms_thresh), min=0.05, max=1.0, step=0.05, description="nms_thresh", **_style())
        self.max_detections = widgets.IntSlider(value=int(model.max_detections_per_image), min=1, max=max_dets, description="max_detections", **_style())
        self.index = widgets.IntSlider(value=0, min=0, max=len(items) - 1, description="image", **_style())
        self.index.layout.display = None if len(items) > 1 else "none"
        self.summary = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.report = report
        self.curves = widgets.Image(format="png")  # the report's F1 curve, the slider marked
        self.figsize, self.dpi = figsize, dpi
        self.figure: Any = None
        self.drawn: Tensor | None = None
        self.detections: dict[str, Tensor] = {}
        self._hold = False
        pictures = widgets.HBox([self.image, self.curves]) if report is not None else self.image
        super().__init__([self.index, self.score, self.nms, self.max_detections, self.summary, pictures])
        for slider in (self.score, self.nms, self.max_detections, self.index):
            slider.observe(self._on_change, "value")
        self.redraw()

    def set(self, score_thresh: float | None = None, nms_thresh: float | None = None,
            max_detections: int | None = None, index: int | None = None) -> None:
        """Move several sliders at once and redraw once."""
        self._hold = True
        try:
            for slider, value in ((self.score, score_thresh), (self.nms, nms_thresh),
                                  (self.max_detections, max_detections), (self.index, index)):
                if value is not None:
                    if not slider.min <= value <= slider.max:
                        raise ValueError(f"ThresholdExplorer.set: {slider.description}={value!r} is outside [{slider.min}, {slider.max}].")
                    slider.value = value
        finally:
            self._hold = False
        self.redraw()

    def _on_change(self, change: dict[str, Any]) -> None:
        if not self._hold:
            self.redraw()

    def redraw(self) -> None:
        """Recompute the current image's detections from the cache and draw them."""
        cached = self.cache[self.index.value]
        self.detections = detections_for(self.model, cached, self.score.value, self.nms.value, self.max_detections.value)
        fig = new_figure(self.figsize, self.dpi)
        self.drawn = draw_detections(fig.add_subplot(), cached.pixels, self.detections, self.class_names)
        self.figure = fig
        self.image.value = figure_png(fig)
        if self.report is not None:
            self.curves.value = figure_png(self.report.plot_f1(mark=self.score.value, figsize=self.figsize, dpi=self.dpi))
        n = len(self.detections["boxes"])
        self.summary.value = html.escape(
            f"{n} detection{'s' if n != 1 else ''} (score > {self.score.value:.2f}, NMS IoU {self.nms.value:.2f}, "
            f"at most {self.max_detections.value})"
        )
