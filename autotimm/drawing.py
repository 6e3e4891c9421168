"""The one way autotimm draws detections: ``torchvision.utils.draw_bounding_boxes`` with a colour per
class, "name score" tags on a filled background and a score threshold.

``Detections.plot()``, the demo, the ThresholdExplorer widget, the ``autotimm predict`` command and the
notebooks all draw through :func:`draw_detections`, so a box looks the same everywhere.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where pixels are drawn, so label_name / class_colour need none
    from torch import Tensor

# Okabe-Ito + tab10-like colours: distinct, readable on photos, and stable per class index.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178),
    (213, 94, 0), (204, 121, 167), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (23, 190, 207), (188, 189, 34), (127, 127, 127), (31, 119, 180), (255, 127, 14),
)  # fmt: skip


def class_colour(label: int) -> tuple[int, int, int]:
    """The RGB colour of class ``label`` (the palette repeats after 15 classes)."""
    return PALETTE[int(label) % len(PALETTE)]


def label_name(label: int, class_names: Sequence[str] | None) -> str:
    """The class name of a label index, or the index itself when names are unknown."""
    if class_names is not None and 0 <= label < len(class_names):
        return str(class_names[label])
    return str(label)


@functools.lru_cache(maxsize=1)
def _font_path() -> str | None:
    """A scalable TrueType font: the DejaVu Sans that matplotlib (a dependency) ships."""
    try:
        from matplotlib import font_manager

        return font_manager.findfont("DejaVu Sans", fallback_to_default=True)
    except Exception:  # noqa: BLE001 - no font: torchvision falls back to PIL's built-in one
        return None


def draw_detections(
    image: Tensor,
    detections: Mapping[str, Tensor],
    class_names: Sequence[str] | None = None,
    *,
    score_thresh: float = 0.0,
    line_width: int | None = None,
    font_size: int | None = None,
    show_labels: bool = True,
    colors: Sequence[tuple[int, int, int]] | None = None,
) -> Tensor:
    """Draw boxes (a colour per class) and "name score" tags on an image.

    Args:
        image: uint8 Tensor[3, H, W], RGB, ORIGINAL frame (what :func:`autotimm.data.image_io.load_image`
            returns).
        detections: ``boxes`` Tensor[N, 4] x1y1x2y2 in ORIGINAL pixels, ``labels`` int64[N], optional
            ``scores`` Tensor[N] (ground truth has none: tags show the name only).
        class_names: names indexed by label; unknown labels are drawn as their index.
        score_thresh: draw only detections with a score >= this (ignored without scores).
        line_width: box line width in pixels; default scales with the image (2 px at 640 px).
        font_size: tag font size; default scales with the image (13 px at 640 px).
        show_labels: draw the tags.
        colors: one RGB colour per detection instead of the class colours (e.g. green / red / orange
            for true positives, false positives and misses).

    Returns:
        uint8 Tensor[3, H, W], a new image (the input is not modified).

    Example:
        >>> img = torch.zeros(3, 40, 60, dtype=torch.uint8)
        >>> det = {"boxes": torch.tensor([[5.0, 5.0, 30.0, 20.0]]), "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}
        >>> draw_detections(img, det, ["cat", "dog"]).shape
        torch.Size([3, 40, 60])
    """
    import torch
    from torch import Tensor

    if not isinstance(image, Tensor) or image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        got = f"{image.dtype} {tuple(image.shape)}" if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"draw_detections(image=...): expected a uint8 Tensor[3, H, W] (RGB), got {got}.")
    boxes = torch.as_tensor(detections["boxes"]).detach().cpu().float().reshape(-1, 4)  # [N, 4]; numpy too
    labels = torch.as_tensor(detections["labels"]).detach().cpu().long().reshape(-1)  # [N]
    scores = detections.get("scores")
    scores = torch.as_tensor(scores).detach().cpu().float().reshape(-1) if scores is not None else None  # [N] or None
    if len(labels) != len(boxes) or (scores is not None and len(scores) != len(boxes)):
        raise ValueError(
            f"draw_detections: {len(boxes)} boxes, {len(labels)} labels and "
            f"{'no' if scores is None else len(scores)} scores; give one of each per detection."
        )
    if colors is not None and len(colors) != len(boxes):
        raise ValueError(f"draw_detections: {len(colors)} colors for {len(boxes)} boxes; give one per detection.")
    if scores is not None:
        keep = scores >= score_thresh  # [N]
        boxes, labels, scores = boxes[keep], labels[keep], scores[keep]
        colors = [c for c, k in zip(colors, keep.tolist()) if k] if colors is not None else None
    if len(boxes) == 0:
        return image.clone()
    height, width = image.shape[-2:]
    side = max(height, width)
    line_width = max(1, round(side / 320)) if line_width is None else int(line_width)
    font_size = max(8, round(side / 50)) if font_size is None else int(font_size)
    # Clip to the canvas so a box partly outside still shows its visible edges and its tag.
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height - 1)
    colours = [tuple(int(v) for v in c) for c in colors] if colors is not None else [class_colour(c) for c in labels.tolist()]
    tags = None
    if show_labels:
        names = [label_name(c, class_names) for c in labels.tolist()]
        tags = names if scores is None else [f"{n} {s:.2f}" for n, s in zip(names, scores.tolist())]
    font = _font_path()
    from torchvision.utils import draw_bounding_boxes

    return draw_bounding_boxes(
        image, boxes, labels=tags, colors=colours, width=line_width,
        font=font, font_size=font_size if font else None,
        label_colors=[_text_colour(c) for c in colours], fill_labels=True,
    )


def _text_colour(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light colours, white on dark ones (relative luminance)."""
    r, g, b = rgb
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def to_pil(image: Tensor) -> Any:
    """uint8 Tensor[3, H, W] -> PIL RGB image."""
    from PIL import Image

    return Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())


def to_figure(image: Tensor, title: str | None = None, dpi: int = 100) -> Any:
    """uint8 Tensor[3, H, W] -> a matplotlib Figure showing it at its pixel size (not registered with
    pyplot; in Jupyter a Figure as the last expression of a cell shows inline)."""
    from autotimm.plotting import new_figure

    height, width = image.shape[-2:]
    fig = new_figure((width / dpi, height / dpi), dpi, layout=None)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image.permute(1, 2, 0).numpy())
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig
