"""``Detections``: one image's predictions, what ``ObjectDetector.predict`` returns.

It is a read-only mapping with exactly the keys of torchvision's detection contract, so code written
for plain dicts keeps working (``r["boxes"]``, ``set(r)``, ``{**r}``, ``r.get("scores")``), and it adds
what a user wants to do next with a prediction: look at it (``plot``), save it, or hand it on
(``to_json``, ``to_coco``, ``to_fiftyone``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from typing import TYPE_CHECKING

from autotimm.drawing import label_name

if TYPE_CHECKING:  # no torch at import: the torch-free ONNX runtime returns Detections of numpy arrays
    from torch import Tensor

KEYS: tuple[str, ...] = ("boxes", "scores", "labels")


@dataclass(eq=False)
class Detections(Mapping):
    """One image's detections, in the ORIGINAL frame (the image file's pixels after EXIF orientation).

    As a mapping it holds exactly ``boxes``, ``scores`` and ``labels`` (so ``len(r) == 3``, like the
    dict it replaces; the number of detections is ``r.num_detections``).

    The arrays are torch tensors from :meth:`ObjectDetector.predict` and numpy arrays (float32, int64)
    from :class:`autotimm.export.OnnxDetector`, which runs without torch; everything here works on
    both (drawing needs torch and torchvision installed).

    Attributes:
        boxes: float Tensor[N, 4], x1y1x2y2 in original-image pixels, sorted by score (highest first).
        scores: float Tensor[N] in [0, 1].
        labels: int64 Tensor[N], indices into ``names``.
        names: class names (``names[label]``), or None when the model has none.
        image_path: the file the image came from (a video for video frames), or None for in-memory images.
        image_size: (height, width) of the original image in pixels.
        frame_index: frame number (from 0) for video frames, else None.
        label_to_category_id: COCO category id of each label for :meth:`to_coco` (default: the label).
        image: uint8 Tensor (or array) [3, H, W] RGB, kept for in-memory images and streamed video frames so
            :meth:`plot` can draw them; None for files (re-read on demand, so a folder's results do
            not hold every image in memory).

    Example:
        >>> r = model.predict("images/")[0]  # doctest: +SKIP
        >>> r["boxes"], r.names[int(r["labels"][0])]  # doctest: +SKIP
        >>> r.plot(score_thresh=0.3)  # a PIL image; shows inline in Jupyter  # doctest: +SKIP
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    names: list[str] | None = None
    image_path: str | None = None
    image_size: tuple[int, int] | None = None
    frame_index: int | None = None
    label_to_category_id: dict[int, int] | None = None
    image: Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = self.boxes.shape[0] if self.boxes.ndim == 2 and self.boxes.shape[-1] == 4 else None
        if n is None or self.scores.shape != (n,) or self.labels.shape != (n,):
            raise ValueError(
                f"Detections: expected boxes [N, 4], scores [N] and labels [N]; got {tuple(self.boxes.shape)}, "
                f"{tuple(self.scores.shape)} and {tuple(self.labels.shape)}."
            )

    # ------------------------------------------------------------------ the dict contract
    def __getitem__(self, key: str) -> Tensor:
        if key not in KEYS:
            raise KeyError(f"{key!r}: Detections holds {list(KEYS)} (see also .names, .image_path, .image_size).")
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(KEYS)

    def __len__(self) -> int:
        return len(KEYS)

    def __repr__(self) -> str:
        where = self.image_path if self.frame_index is None else f"{self.image_path} frame {self.frame_index}"
        return f"Detections({self.num_detections} objects, image={where!r}, size(h, w)={self.image_size})"

    @property
    def num_detections(self) -> int:
        """N, the number of detections."""
        return int(self.boxes.shape[0])

    def filter(self, score_thresh: float) -> "Detections":
        """A copy with only the detections scoring at least ``score_thresh``."""
        keep = self.scores >= score_thresh  # [N]
        return replace(self, boxes=self.boxes[keep], scores=self.scores[keep], labels=self.labels[keep])

    # ------------------------------------------------------------------ looking at it
    def pixels(self) -> Tensor:
        """The original image, uint8 Tensor[3, H, W] RGB (re-read from ``image_path`` when not kept)."""
        if self.image is not None:
            import torch

            return torch.as_tensor(self.image)
        if self.image_path is None or self.frame_index is not None:
            raise ValueError(
                "These detections keep no image to draw on: "
                + ("video frames are kept only with predict(..., stream=True). " if self.frame_index is not None else "")
                + "Pass it: r.plot(image=...)."
            )
        from autotimm.data.image_io import load_image

        return load_image(self.image_path)

    def draw(self, score_thresh: float = 0.0, *, image: Any = None, line_width: int | None = None,
             font_size: int | None = None, show_labels: bool = True) -> Tensor:
        """The image with the detections drawn on it, uint8 Tensor[3, H, W] (see :func:`autotimm.drawing.draw_detections`)."""
        from autotimm.data.image_io import load_image
        from autotimm.drawing import draw_detections

        pixels = self.pixels() if image is None else load_image(image)
        if self.image_size is not None and tuple(pixels.shape[-2:]) != tuple(self.image_size):
            raise ValueError(
                f"The image to draw on is {tuple(pixels.shape[-2:])} (h, w) but these detections are for a "
                f"{tuple(self.image_size)} image; pass the image that was predicted on."
            )
        return draw_detections(pixels, self, self.names, score_thresh=score_thresh, line_width=line_width,
                               font_size=font_size, show_labels=show_labels)

    def plot(self, score_thresh: float = 0.0, *, image: Any = None, kind: Literal["pil", "figure"] = "pil",
             line_width: int | None = None, font_size: int | None = None, show_labels: bool = True) -> Any:
        """Draw the detections: a colour per class, "name score" tags.

        Args:
            score_thresh: draw only detections scoring at least this.
            image: the image to draw on (path, PIL, array, tensor); default: the predicted one.
            kind: "pil" returns a PIL image, "figure" a matplotlib Figure; both show inline in Jupyter.
            line_width / font_size: default: scaled to the image.
            show_labels: draw the tags.

        Returns:
            a PIL ``Image`` (RGB, original size) or a matplotlib ``Figure``.
        """
        if kind not in ("pil", "figure"):
            raise ValueError(f"plot(kind={kind!r}): expected 'pil' or 'figure'.")
        from autotimm.drawing import to_figure, to_pil

        drawn = self.draw(score_thresh, image=image, line_width=line_width, font_size=font_size, show_labels=show_labels)
        if kind == "figure":
            title = None if self.image_path is None else Path(self.image_path).name
            return to_figure(drawn, title)
        return to_pil(drawn)

    def save(self, path: str | os.PathLike, score_thresh: float = 0.0, **plot_kwargs: Any) -> Path:
        """Write the drawn image (format from the suffix: .png, .jpg, ...); returns the path.

        Parent folders are created; an existing file is replaced.
        """
        path = Path(path)
        if not path.suffix:
            raise ValueError(f"save({str(path)!r}): give a file name with an image suffix such as .png or .jpg.")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.plot(score_thresh, **plot_kwargs).save(path)
        return path

    # ------------------------------------------------------------------ handing it on
    def to_dict(self) -> dict[str, Any]:
        """Plain Python: image info and one record per detection (``box`` x1y1x2y2 pixels, ``score``,
        ``label``, ``name``)."""
        names = [label_name(c, self.names) for c in self.labels.tolist()]
        return {
            "image_path": self.image_path,
            "image_size": list(self.image_size) if self.image_size is not None else None,
            "frame_index": self.frame_index,
            "detections": [
                {"box": [float(v) for v in box], "score": float(score), "label": int(label), "name": name}
                for box, score, label, name in zip(self.boxes.tolist(), self.scores.tolist(), self.labels.tolist(), names)
            ],
        }

    def to_json(self, **json_kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), **json_kwargs)

    def to_coco(self, image_id: int, category_ids: Mapping[int, int] | None = None) -> list[dict[str, Any]]:
        """COCO result records (the format ``COCO.loadRes`` reads), one per detection.

        Args:
            image_id: the COCO image id of this image.
            category_ids: label -> COCO category id; default ``label_to_category_id`` (set from the
                training data), else the label itself.

        Returns:
            ``[{"image_id", "category_id", "bbox": [x, y, w, h] pixels, "score"}, ...]``.
        """
        mapping = category_ids if category_ids is not None else (self.label_to_category_id or {})
        corner, size = self.boxes[:, :2].tolist(), (self.boxes[:, 2:] - self.boxes[:, :2]).tolist()  # [N, 2] each
        records = []
        for xy, wh, score, label in zip(corner, size, self.scores.tolist(), self.labels.tolist()):
            records.append({"image_id": int(image_id), "category_id": int(mapping.get(label, label)),
                            "bbox": [float(v) for v in xy + wh], "score": float(score)})
        return records

    def to_fiftyone(self) -> Any:
        """A ``fiftyone.Detections`` (relative ``[x, y, w, h]`` boxes, ``confidence``); needs FiftyOne
        (``pip install 'autotimm[fiftyone]'``), imported now."""
        from autotimm.fiftyone.labels import to_fiftyone_detections

        if self.image_size is None:
            raise ValueError("to_fiftyone(): image_size is unknown; FiftyOne boxes are relative to it.")
        names = self.names
        if names is None:
            top = int(self.labels.max()) + 1 if self.num_detections else 0
            names = [str(i) for i in range(top)]
        height, width = self.image_size
        return to_fiftyone_detections(self, names, width, height, where=str(self.image_path or "detections"))

