"""Turn anything a user calls an image into an RGB uint8 tensor [3, H, W] in the ORIGINAL frame."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any, Callable

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:  # torch is imported by load_image only: load_array serves the torch-free ONNX runtime
    from torch import Tensor

ImageLike = Any  # str | os.PathLike | PIL.Image.Image | np.ndarray | Tensor


def read_pil(path: str | os.PathLike) -> Image.Image:
    """Open an image file as RGB with its EXIF orientation applied.

    Greyscale, RGBA, palette and CMYK files all come back as RGB. Raises ``FileNotFoundError`` or
    ``ValueError`` naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file not found: '{path}'.")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return pil_to_rgb(im)
    except Image.DecompressionBombError as err:
        raise too_large_error(path, err) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"Cannot decode image '{path}': {err}") from err


def too_large_error(path: Path, err: Exception) -> ValueError:
    """The error for an image file over PIL's decompression-bomb limit (``err``, PIL's own error): it names
    ``path`` and the limit, and says how to raise it or to tile the image instead."""
    return ValueError(
        f"Image '{path}' is larger than PIL's safety limit PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS} "
        f"pixels ({err}). If you trust the file, raise the limit (e.g. PIL.Image.MAX_IMAGE_PIXELS = None) before "
        "loading it, or cut the image into tiles; a detector sees it letterboxed to image_size anyway."
    )


def pil_to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparent pixels become white instead of black noise.

    16-bit greyscale (modes ``I;16*``, and ``I`` holding values above 255, as 16-bit PNGs of
    scientific and medical images open) is scaled to 8 bits (``x / 257``); PIL's own conversion
    clips it to 255, i.e. an all-white image.
    """
    if im.mode == "RGB":
        return im
    if im.mode.startswith("I;16") or im.mode == "I":
        values = np.asarray(im).astype(np.float64)  # [H, W]
        if im.mode.startswith("I;16") or (values.size and values.max() > 255):
            values = values / 257.0
        return Image.fromarray(np.clip(values.round(), 0, 255).astype(np.uint8), mode="L").convert("RGB")
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    return im.convert("RGB")


def load_array(image: ImageLike) -> np.ndarray:
    """Load one image as a uint8 numpy array [3, H, W] RGB (the layout of :func:`load_image`), without torch.

    Args:
        image: a file path, a PIL image, or an HxWxC (or HxW) uint8 numpy array; a torch tensor is
            read with :func:`load_image` (torch is then installed anyway).

    Raises:
        ValueError / TypeError naming what was received and what is accepted.
    """
    if _is_tensor(image):
        return load_image(image).numpy()
    if isinstance(image, (str, os.PathLike)):
        image = read_pil(image)
    if isinstance(image, Image.Image):
        image = np.asarray(pil_to_rgb(ImageOps.exif_transpose(image)))
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise ValueError(
                f"A numpy image must be HxW or HxWxC with C in (1, 3, 4); got shape {image.shape}."
            )
        if image.dtype != np.uint8:
            raise ValueError(f"A numpy image must be uint8 (0..255); got dtype {image.dtype}.")
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        return np.array(image[:, :, :3], copy=True).transpose(2, 0, 1)  # [3, H, W] view of an HxWx3 copy
    raise TypeError(
        f"Cannot read an image from {type(image).__name__}; pass a path, a PIL image, an HxWxC "
        "uint8 numpy array or a CxHxW tensor."
    )


def _is_tensor(value: Any) -> bool:
    """A torch tensor? (Without importing torch: a tensor exists only where torch was imported.)"""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def load_image(image: ImageLike) -> Tensor:
    """Load one image as Tensor[3, H, W] uint8 RGB.

    Args:
        image: a file path, a PIL image, an HxWxC (or HxW) uint8 numpy array, or a CxHxW tensor
            (uint8 0..255 or float 0..1).

    Raises:
        ValueError / TypeError naming what was received and what is accepted.
    """
    import torch

    if not isinstance(image, torch.Tensor):
        return torch.from_numpy(load_array(image)).contiguous()
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(
            f"An image tensor must be CxHxW with C in (1, 3); got shape {tuple(image.shape)}."
        )
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    if image.dtype == torch.uint8:
        return image.contiguous()
    if image.is_floating_point():
        if image.numel() and (image.min() < 0 or image.max() > 1):
            raise ValueError(
                "A float image tensor must hold values in [0, 1] (un-normalised); got range "
                f"[{float(image.min()):.3g}, {float(image.max()):.3g}]. Pass raw pixels: "
                "predict() applies the model's own normalisation."
            )
        return (image * 255).round().to(torch.uint8).contiguous()
    raise ValueError(f"Image tensor dtype must be uint8 or float; got {image.dtype}.")


EXIF_ORIENTATION = 0x0112  # the EXIF tag holding the orientation (1 = upright), as read by ``Image.getexif()``
_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file in the ORIGINAL frame, i.e. after its EXIF orientation.

    Reads the header only, so it is cheap; it does not prove that the pixel data decodes.

    Raises:
        FileNotFoundError / ValueError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file not found: '{path}'.")
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(EXIF_ORIENTATION, 1)
    except Image.DecompressionBombError as err:
        raise too_large_error(path, err) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"Cannot read the header of image '{path}': {err}") from err
    return (height, width) if orientation in _TRANSPOSED else (width, height)


def read_pil_reduced(
    path: str | os.PathLike, min_hw: tuple[int, int] | Callable[[tuple[int, int]], tuple[int, int]]
) -> tuple[Image.Image, tuple[float, float]]:
    """Like :func:`read_pil`, but a JPEG may decode at 1/2, 1/4 or 1/8 size (PIL's ``draft``).

    The reduced image is never smaller than ``min_hw``, so a caller that resizes down to
    ``min_hw`` (or less) loses nothing it would keep, and decoding costs a fraction of a full decode.

    Args:
        path: the image file.
        min_hw: (H, W) the caller needs at least, in the ORIGINAL frame (after EXIF orientation);
            or a function of the original frame's (H, W) that returns it, called once the header is
            read (so a caller that needs the size first opens the file once, not twice).

    Returns:
        (RGB image, (W_e, H_e)): the original frame ``[0, W] x [0, H]`` spans ``[0, W_e] x [0, H_e]``
        of the returned image's pixels (``(W, H)`` itself when nothing was reduced). So
        ``x_returned = x_original * W_e / W``, exactly, also when W is not a multiple of the factor.

    Raises:
        FileNotFoundError / ValueError naming the file, as :func:`read_pil`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file not found: '{path}'.")
    try:
        # one read of the whole file: PIL's decoder would read it in many small chunks. The image
        # reads from memory, so it holds no file open and is returned as is (no copy).
        im = Image.open(io.BytesIO(path.read_bytes()))
        orientation = im.getexif().get(EXIF_ORIENTATION, 1)
        swapped = orientation in _TRANSPOSED
        if callable(min_hw):
            width, height = im.size  # stored frame
            min_hw = min_hw((width, height) if swapped else (height, width))
        want_h, want_w = (max(1, int(v)) for v in min_hw)
        if swapped:
            want_h, want_w = want_w, want_h  # draft sees the stored, untransposed frame
        drafted = im.draft("RGB", (want_w, want_h)) if im.format == "JPEG" else None
        im.load()
        extent = drafted[1][2:] if drafted else im.size  # stored frame
        if swapped:
            extent = extent[::-1]
        if orientation not in (None, 1):  # exif_transpose copies even an upright image: only when needed
            im = ImageOps.exif_transpose(im)
        return pil_to_rgb(im), (float(extent[0]), float(extent[1]))
    except Image.DecompressionBombError as err:
        raise too_large_error(path, err) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"Cannot decode image '{path}': {err}") from err
