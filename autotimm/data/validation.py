"""Up-front check that every image of a split decodes, so bad files never stop a run halfway.

Each image is decoded once (JPEGs at 1/8 scale through libjpeg's DCT scaling, which still reads
the whole entropy-coded stream and so still catches truncation) in a thread pool. Unreadable files
and files whose decoded size differs from the size the annotations give are skipped with ONE
warning that names them, or raise with ``strict=True``.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, Sequence

from PIL import Image

from autotimm.data.records import DetectionRecord, listing

ImageCheck = Literal["decode", "header", "none"]


def check_image(path: Path, expected_wh: tuple[int, int], mode: ImageCheck = "decode") -> str | None:
    """Why ``path`` cannot be used, or None when it is fine.

    Args:
        path: the image file.
        expected_wh: (width, height) the annotations give, original frame (after EXIF orientation).
        mode: "decode" decodes the pixels, "header" only parses the header.
    """
    try:
        with Image.open(path) as im:
            full_wh = im.size  # before draft(), which shrinks it
            if mode == "decode":
                if im.format == "JPEG":
                    im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
            orientation = im.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return f"cannot decode ({err})"
    width, height = full_wh[::-1] if orientation in (5, 6, 7, 8) else full_wh
    if (width, height) != tuple(expected_wh):
        return (
            f"is {width}x{height} px (after EXIF orientation) but the annotations say "
            f"{expected_wh[0]}x{expected_wh[1]}"
        )
    return None


def validate_records(
    records: Sequence[DetectionRecord],
    strict: bool = False,
    mode: ImageCheck = "decode",
    source: str = "",
    num_threads: int | None = None,
) -> list[DetectionRecord]:
    """Drop records whose image cannot be used, warning once (or raising with ``strict``).

    Args:
        records: the split's records.
        strict: raise a ValueError instead of skipping.
        mode: "decode" (default, catches truncated files), "header" (fast, catches only files that
            are not images at all) or "none".
        source: the annotation file, named in the message.
        num_threads: decoding threads; default ``min(8, cpu count)``.

    Returns:
        The usable records, in their original order.
    """
    if mode == "none" or not records:
        return list(records)
    threads = num_threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(threads) as pool:
        problems = list(
            pool.map(lambda r: check_image(r.image_path, (r.width, r.height), mode), records)
        )
    bad = [f"'{r.image_path}' {why}" for r, why in zip(records, problems) if why]
    if bad:
        where = f"{source}: " if source else ""
        message = f"{where}{len(bad)} of {len(records)} image(s) are unusable: {listing(bad)}."
        if strict:
            raise ValueError(message + " Fix or remove them, or pass strict=False to skip them.")
        warnings.warn(message + " They are skipped.", stacklevel=2)
    return [r for r, why in zip(records, problems) if why is None]
