"""One preprocessing for training, validation, predict() and export.

The network sees letterboxed images (see :mod:`autotimm.data.letterbox`) normalised with the
backbone's timm mean/std. Data loaders hand the model uint8 images and the model normalises them on
its own device, so a model trained through a data module carries its preprocessing with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from autotimm.data.image_io import ImageLike, load_image
from autotimm.data.letterbox import letterbox_image

DEFAULT_IMAGE_SIZE = 640


@dataclass
class TransformConfig:
    """Inference-time preprocessing of a model.

    Args:
        image_size: side of the square letterbox canvas; ``None`` uses the size the model was trained
            at (from its data module), else 640.
        mean / std: per-channel normalisation in 0..1 units; ``None`` takes the backbone's timm data
            config.
        pad_value: uint8 value of the letterbox padding.
    """

    image_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    pad_value: int = 114

    def __post_init__(self) -> None:
        if self.image_size is not None and (not isinstance(self.image_size, int) or self.image_size < 32):
            raise ValueError(f"TransformConfig.image_size must be an int >= 32 or None, got {self.image_size!r}.")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                raise ValueError(f"TransformConfig.{name} must have 3 values (RGB), got {value!r}.")


class PreprocessingMixin:
    """``preprocess()`` and ``get_data_config()`` for a module with ``pixel_mean``/``pixel_std`` buffers."""

    pixel_mean: Tensor
    pixel_std: Tensor
    image_size: int | None
    transform_config: TransformConfig | None
    _timm_data_config: dict[str, Any]

    def resolved_image_size(self, image_size: int | None = None) -> int:
        """The canvas size used by predict(): argument > training data > TransformConfig > 640."""
        for size in (image_size, self.image_size, getattr(self.transform_config, "image_size", None)):
            if size is not None:
                return int(size)
        return DEFAULT_IMAGE_SIZE

    def get_data_config(self) -> dict[str, Any]:
        """Normalisation and input size, like timm's data config: keys ``mean``, ``std``,
        ``input_size`` (3, S, S), ``interpolation``, ``resize_mode`` and ``pad_value``."""
        size = self.resolved_image_size()
        return {
            "mean": tuple(float(v) for v in self.pixel_mean.flatten()),
            "std": tuple(float(v) for v in self.pixel_std.flatten()),
            "input_size": (3, size, size),
            "interpolation": "bilinear",
            "resize_mode": "letterbox",
            "pad_value": getattr(self.transform_config, "pad_value", 114),
        }

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 Tensor[B, 3, H, W] (0..255) -> normalised float Tensor[B, 3, H, W]."""
        if images.dtype != torch.uint8:
            raise ValueError(f"normalize() expects uint8 images, got {images.dtype}.")
        mean = self.pixel_mean.to(images.device)
        std = self.pixel_std.to(images.device)
        return (images.float() / 255.0 - mean) / std

    def letterbox_batch(self, images: ImageLike | Sequence[ImageLike], image_size: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Load and letterbox images.

        Returns:
            uint8 Tensor[B, 3, S, S], letterbox params Tensor[B, 3] and original sizes int64 Tensor[B, 2].
        """
        size = self.resolved_image_size(image_size)
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        if not items:
            raise ValueError("No images given: pass a path, a PIL image, an array, a tensor or a list of them.")
        pad = getattr(self.transform_config, "pad_value", 114)
        canvases, params, sizes = [], [], []
        for item in items:
            img = load_image(item)
            canvas, lb = letterbox_image(img, size, pad_value=pad)
            canvases.append(canvas)
            params.append(lb)
            sizes.append(torch.tensor(img.shape[-2:], dtype=torch.int64))
        return torch.stack(canvases), torch.stack(params), torch.stack(sizes)

    def preprocess(self, images: ImageLike | Sequence[ImageLike], image_size: int | None = None) -> Tensor:
        """Images -> the normalised, letterboxed batch Tensor[B, 3, S, S] that ``forward`` takes.

        Example:
            >>> tensor = model.preprocess(Image.open("test.jpg"))
            >>> cls, reg, ctr = model(tensor)
        """
        batch, _, _ = self.letterbox_batch(images, image_size)
        return self.normalize(batch)
