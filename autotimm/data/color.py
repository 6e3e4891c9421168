"""Colour jitter on uint8 RGB images as ONE affine colour map, applied in one pass of C code.

Brightness, contrast, saturation and hue (torchvision's ``adjust_*`` definitions) are each an
affine map of the RGB vector ``v`` that sends greys to greys and keeps the mean luma ``m`` in step:

* brightness ``b``: ``b * v``
* contrast ``c``: ``c * v + (1 - c) * m * 1`` (``m`` the image's mean luma, from a 1/16 sample)
* saturation ``s``: ``s * v + (1 - s) * (w . v) * 1`` (``w`` the luma weights)
* hue ``h``: a turn of the chroma plane by ``h`` of a full turn around the grey axis (YIQ), in
  place of torchvision's HSV round trip, which costs ~25x more; for the small turns used in
  training (|h| <= 0.05) the two agree within a few levels.

These maps commute (up to the clipping to [0, 255] between steps), so any order of them is the
single map ``v -> A v + t`` with ``A = b c H(h) S(s)`` and ``t = b (1 - c) m 1``. Fast detection kits
do colour jitter as lookup tables on uint8 for the same reason; here one ``Image.convert`` with a
3x4 matrix (rounded, clipped) does all four at the cost of one, with no float copy of the image. The
only difference from running the steps one by one is at pixels that an intermediate step would
clip: they are clipped once, at the end.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as PIL's "L" and torchvision's grayscale
_TO_YIQ = np.array([GRAY_WEIGHTS, (0.595716, -0.274453, -0.321263), (0.211456, -0.522591, 0.311135)])
_FROM_YIQ = np.linalg.inv(_TO_YIQ)


def pil_to_tensor(image: Image.Image) -> Tensor:
    """RGB PIL image -> uint8 Tensor[3, H, W] in channels-last memory (one copy of the pixels).

    Channels-last is what torch's vectorised uint8 antialiased resize runs fastest on, several
    times faster than on planar [3, H, W] memory or PIL's own resize.
    """
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


def tensor_to_pil(image: Tensor) -> Image.Image:
    """uint8 Tensor[3, H, W] -> RGB PIL image (no extra copy when the tensor is channels-last)."""
    return Image.fromarray(image.permute(1, 2, 0).contiguous().numpy(), "RGB")


def saturation_matrix(factor: float) -> np.ndarray:
    """float64 [3, 3] ``S`` with ``S v = factor * v + (1 - factor) * luma(v)`` (``adjust_saturation``)."""
    return factor * np.eye(3) + (1.0 - factor) * np.tile(np.asarray(GRAY_WEIGHTS), (3, 1))


def hue_matrix(factor: float) -> np.ndarray:
    """float64 [3, 3] ``H`` that turns the hue by ``factor`` of a turn around the grey axis.

    The chroma plane (I, Q of YIQ) is rotated; luma and chroma magnitude are kept, greys stay grey.
    A positive factor turns red towards green, as a positive ``adjust_hue`` does.
    """
    angle = 2.0 * np.pi * factor
    cos, sin = np.cos(angle), np.sin(angle)
    rotate = np.array([(1.0, 0.0, 0.0), (0.0, cos, sin), (0.0, -sin, cos)])
    return _FROM_YIQ @ rotate @ _TO_YIQ


def mean_luma(image: Tensor, stride: int = 4) -> float:
    """Mean luma ``w . v`` of a uint8 Tensor[3, H, W], over every ``stride``-th row and column.

    The contrast pivot: a 1/16 sample moves it by a fraction of a level on photos, which moves the
    output by ``(1 - contrast)`` times that, at a fraction of the cost of a full pass.
    """
    sample = image[:, ::stride, ::stride].float()  # [3, H / stride, W / stride]
    return float(torch.tensor(GRAY_WEIGHTS) @ sample.mean((1, 2)))


def jitter_map(
    mean: float, brightness: float | None = None, contrast: float | None = None,
    saturation: float | None = None, hue: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The affine colour map of one draw of the four factors (None: that step is off).

    Args:
        mean: the image's mean luma (used by contrast).
        brightness, contrast, saturation, hue: ``adjust_*`` factors.

    Returns:
        (A float64 [3, 3], t float64 [3]) with ``v_out = A @ v + t``.
    """
    b = 1.0 if brightness is None else brightness
    c = 1.0 if contrast is None else contrast
    matrix = b * c * np.eye(3)
    if saturation is not None:
        matrix = matrix @ saturation_matrix(saturation)
    if hue is not None:
        matrix = hue_matrix(hue) @ matrix
    return matrix, np.full(3, b * (1.0 - c) * mean)


def apply_color_map(image: Image.Image, matrix: np.ndarray, offset: np.ndarray) -> Image.Image:
    """``clip(round(matrix @ v + offset))`` for every pixel of an RGB image, in PIL's C code."""
    return image.convert("RGB", tuple(np.concatenate([matrix, offset[:, None]], 1).ravel().tolist()))


def map_grey(matrix: np.ndarray, offset: np.ndarray, value: float) -> int:
    """Where the colour map sends the grey ``(value, value, value)`` (greys stay grey), as uint8."""
    return int(np.clip(np.rint(matrix[0].sum() * value + offset[0]), 0, 255))


class Uint8ColorJitter(v2.ColorJitter):
    """``v2.ColorJitter`` whose four adjustments run as one affine colour map on uint8 RGB.

    The factors are drawn by ``v2.ColorJitter.make_params`` (same ranges, same distributions); the
    random order no longer matters (see the module docstring). uint8 3-channel images take the fast
    path; other inputs (float images, boxes) go to ``v2.ColorJitter`` itself.
    """

    @staticmethod
    def color_map(params: dict[str, Any], mean: float) -> tuple[np.ndarray, np.ndarray]:
        """The affine map ``(A [3, 3], t [3])`` of one draw of ``make_params``, for an image of
        mean luma ``mean``."""
        return jitter_map(mean, params["brightness_factor"], params["contrast_factor"],
                          params["saturation_factor"], params["hue_factor"])

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        fast = isinstance(inpt, tv_tensors.Image) and inpt.dtype == torch.uint8 and inpt.ndim == 3 and inpt.shape[0] == 3
        if not fast:
            return super().transform(inpt, params)
        plain = inpt.as_subclass(Tensor)
        matrix, offset = self.color_map(params, mean_luma(plain) if params["contrast_factor"] is not None else 0.0)
        return tv_tensors.wrap(pil_to_tensor(apply_color_map(tensor_to_pil(plain), matrix, offset)), like=inpt)


def colour_region(
    image: Tensor, params: dict[str, Any], region: tuple[int, int, int, int], pad_value: int
) -> Tensor:
    """``Uint8ColorJitter.transform`` of a canvas that is ``pad_value`` grey outside ``region``,
    computed on the region only (the rest gets the map's image of the grey).

    The contrast pivot is the canvas's mean luma, from the region's and the pad's shares; so the
    result equals jittering the whole canvas up to the 1/16 sampling of the mean and rounding.

    Args:
        image: uint8 Tensor[3, H, W], ``pad_value`` everywhere outside ``region``.
        params: a ``Uint8ColorJitter.make_params`` draw.
        region: ``(x1, y1, x2, y2)`` pixels that may differ from the pad grey (clipped to the image).
        pad_value: the grey of the rest.

    Returns:
        uint8 Tensor[3, H, W] (channels-last memory).
    """
    height, width = image.shape[-2:]
    x1, y1, x2, y2 = max(region[0], 0), max(region[1], 0), min(region[2], width), min(region[3], height)
    if x2 <= x1 or y2 <= y1:  # nothing but pad
        x1 = y1 = x2 = y2 = 0
    window = image[:, y1:y2, x1:x2]
    share = (x2 - x1) * (y2 - y1) / (height * width)
    mean = 0.0
    if params["contrast_factor"] is not None:
        mean = (share * mean_luma(window) if share else 0.0) + (1.0 - share) * pad_value
    matrix, offset = Uint8ColorJitter.color_map(params, mean)
    if share == 1.0:
        return pil_to_tensor(apply_color_map(tensor_to_pil(window), matrix, offset))
    out = image.new_full((height, width, image.shape[0]), map_grey(matrix, offset, pad_value))  # [H, W, 3]
    if share:  # one copy of the coloured pixels, straight from PIL's bytes into place
        out.numpy()[y1:y2, x1:x2] = np.asarray(apply_color_map(tensor_to_pil(window), matrix, offset))
    return out.permute(2, 0, 1)


# -- colour jitter of a whole batch, on the model's device -----------------------------------------
JITTER_KEY = "colour_jitter"  # target key of a sample whose colour jitter is left to the device


def jitter_factors(params: dict[str, Any]) -> Tensor:
    """float32 Tensor[4] ``(brightness, contrast, saturation, hue)`` of one ``make_params`` draw,
    with the neutral ``(1, 1, 1, 0)`` for the steps that are off."""
    neutral = (1.0, 1.0, 1.0, 0.0)
    keys = ("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor")
    return torch.tensor([n if params[k] is None else float(params[k]) for k, n in zip(keys, neutral)], dtype=torch.float32)


def color_maps(factors: Tensor, means: Tensor) -> tuple[Tensor, Tensor]:
    """The affine colour maps of a batch of draws (``jitter_map``, vectorised).

    Args:
        factors: float Tensor[B, 4] ``(brightness, contrast, saturation, hue)`` (``jitter_factors``).
        means: float Tensor[B], each image's mean luma (the contrast pivot).

    Returns:
        (A float32 [B, 3, 3], t float32 [B, 3]) with ``v_out = A @ v + t`` per image.
    """
    device = factors.device
    factors, means = factors.float(), means.float()
    b, c, s, h = factors.unbind(1)
    to_yiq = torch.as_tensor(_TO_YIQ, dtype=torch.float32, device=device)
    from_yiq = torch.as_tensor(_FROM_YIQ, dtype=torch.float32, device=device)
    weights = to_yiq[0]  # the luma weights
    angle = 2.0 * torch.pi * h
    cos, sin, one, zero = angle.cos(), angle.sin(), torch.ones_like(h), torch.zeros_like(h)
    rotate = torch.stack([one, zero, zero, zero, cos, sin, zero, -sin, cos], 1).view(-1, 3, 3)
    eye = torch.eye(3, device=device)
    saturation = s[:, None, None] * eye + (1.0 - s)[:, None, None] * weights.expand(3, 3)  # [B, 3, 3]
    matrix = (b * c)[:, None, None] * (from_yiq @ rotate @ to_yiq) @ saturation
    return matrix, (b * (1.0 - c) * means)[:, None].expand(-1, 3)


def jitter_batch(images: Tensor, factors: Tensor) -> Tensor:
    """Colour jitter of a uint8 batch, one affine map per image, vectorised (any device).

    The same maps as ``Uint8ColorJitter`` / ``colour_region`` on the workers: contrast pivots on
    the image's mean luma (here over every pixel, pad included, so a pad grey is mapped as the map
    maps that grey), and each pixel becomes ``clip(floor(A v + t + 0.5))`` as in PIL's conversion.

    Args:
        images: uint8 Tensor[B, 3, H, W].
        factors: float Tensor[B, 4] (``jitter_factors`` of each image's draw).

    Returns:
        uint8 Tensor[B, 3, H, W] on the images' device.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"jitter_batch takes uint8 [B, 3, H, W] images; got {images.dtype} {tuple(images.shape)}.")
    if factors.shape != (images.shape[0], 4):
        raise ValueError(f"jitter_batch needs factors of shape [{images.shape[0]}, 4]; got {tuple(factors.shape)}.")
    pixels = images.float()
    weights = torch.tensor(GRAY_WEIGHTS, device=images.device)
    means = torch.einsum("c,bchw->b", weights, pixels) / (images.shape[-2] * images.shape[-1])
    matrix, offset = color_maps(factors.to(images.device), means)
    out = torch.einsum("bij,bjhw->bihw", matrix, pixels) + offset[:, :, None, None]
    return out.add_(0.5).floor_().clamp_(0, 255).to(torch.uint8)
