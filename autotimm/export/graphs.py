"""What goes into an ONNX file: the raw network, or the network plus decode and NMS.

Both wrappers run the detector's own modules (``backbone -> fpn -> detection_head``); the
end-to-end one then runs the architecture's own ``decode`` and :func:`autotimm.postprocess.detect_padded`,
the same post-processing that eager ``predict`` uses, so a new ``detection_arch`` exports without
changes here.
"""

from __future__ import annotations

from torch import Tensor, nn

from autotimm.arch.registry import get_architecture
from autotimm.ops.points import points_like
from autotimm.postprocess import PostprocessConfig, detect_padded

INPUT_NAME = "images"
E2E_OUTPUT_NAMES = ("boxes", "scores", "labels", "num_detections")


def raw_output_names(detection_arch: str, num_levels: int) -> list[str]:
    """``cls_l0..cls_l{L-1}, reg_l0.., ctr_l0..`` (``obj_l*`` for YOLOX), grouped by kind."""
    prefixes = get_architecture(detection_arch).output_prefixes
    return [f"{p}_l{i}" for p in prefixes for i in range(num_levels)]


class RawOutputs(nn.Module):
    """The detector's network with its per-level lists flattened into one tuple of tensors.

    Input: normalised float Tensor[B, 3, H, W] (input frame). Output, in the order of
    :func:`raw_output_names`: L class-logit maps [B, K, H_l, W_l], L box-distance maps
    [B, 4, H_l, W_l] (input-frame pixels), L centerness (FCOS) or objectness (YOLOX) maps
    [B, 1, H_l, W_l].
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        outputs = self.model.raw_outputs(_as_network_dtype(self.model, images))  # eager: no torch.compile, no checks
        return tuple(t.float() for kind in outputs for t in kind)  # float32 also from a float16 network


class EndToEnd(nn.Module):
    """Network + decode + score threshold + class-aware NMS + top-K, with fixed output shapes.

    Input: normalised float Tensor[B, 3, H, W] (input frame, as :meth:`ObjectDetector.preprocess`
    makes it). Outputs (K = ``max_detections``), padded past ``num_detections``:
        boxes: float Tensor[B, K, 4] x1y1x2y2 in input-frame pixels (0 in padding).
        scores: float Tensor[B, K] sorted descending (0 in padding).
        labels: int64 Tensor[B, K] contiguous class ids (-1 in padding).
        num_detections: int64 Tensor[B] valid rows per image.

    Args:
        model: an :class:`~autotimm.detector.ObjectDetector`.
        score_thresh / nms_thresh / max_detections / topk_per_level: as in ``model.detect``.
    """

    def __init__(self, model: nn.Module, score_thresh: float, nms_thresh: float, max_detections: int, topk_per_level: int = 1000) -> None:
        super().__init__()
        self.model = model
        self.config = PostprocessConfig(float(score_thresh), float(nms_thresh), int(max_detections), int(topk_per_level))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        outputs = self.model.raw_outputs(_as_network_dtype(self.model, images))  # decode casts them to float32
        points = points_like(outputs[0], self.model.strides)  # [P, 2] from the maps' sizes: dynamic H, W work
        image_size = (images.shape[-2], images.shape[-1])  # graph values when H and W are dynamic
        return detect_padded(self.model.detection_head, outputs, points, image_size, self.config)


def _as_network_dtype(model: nn.Module, images: Tensor) -> Tensor:
    """The float32 input cast to the network's dtype (a Cast node in a ``half=True`` graph)."""
    dtype = next(model.parameters()).dtype
    return images if images.dtype == dtype else images.to(dtype)
