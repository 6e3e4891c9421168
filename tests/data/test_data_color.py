"""Colour jitter as one affine colour map: equal to torchvision's float formulas within rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from autotimm.data.color import (
    Uint8ColorJitter,
    apply_color_map,
    hue_matrix,
    jitter_map,
    mean_luma,
    pil_to_tensor,
    tensor_to_pil,
)

ADJUST = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
KEYS = ("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor")


def tiny_image(low: int = 70, high: int = 180) -> torch.Tensor:
    # mid-range values: no step of the jitters below clips, so the order cannot matter
    return torch.randint(low, high, (3, 5, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def float_reference(image: torch.Tensor, factors: tuple, order: list[int]) -> torch.Tensor:
    """torchvision's float kernels one after another, in 0..255."""
    x = image.float() / 255
    for k in order:
        if factors[k] is not None:
            x = ADJUST[k](x, factors[k])
    return x * 255


def jitter(image: torch.Tensor, factors: tuple, order: list[int]) -> torch.Tensor:
    params = dict(zip(KEYS, factors), fn_idx=torch.tensor(order))
    return Uint8ColorJitter().transform(tv_tensors.Image(image), params).as_subclass(torch.Tensor)


@pytest.mark.parametrize("factors", [(1.2, 0.8, 1.3, None), (0.8, 1.2, 0.7, None), (None, 1.3, None, None), (0.75, None, 1.4, None)])
@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]])
def test_one_map_equals_the_float_formulas_within_rounding(factors, order):
    image = tiny_image()[:, :4, :4]  # 4 x 4: the 1/16 sample of the contrast mean is its one top-left pixel
    image[:, 0, 0] = image.float().mean((1, 2)).round().to(torch.uint8)  # ... set to the mean (within rounding)
    out = jitter(image, factors, order)
    assert out.dtype == torch.uint8 and out.shape == image.shape
    assert (out.float() - float_reference(image, factors, order)).abs().max() <= 0.75  # 0.5 rounding + the mean's


def test_brightness_clips_like_torchvision():
    image = torch.tensor([[[0, 100, 250]], [[10, 128, 255]], [[200, 220, 240]]], dtype=torch.uint8)  # [3, 1, 3]
    out = jitter(image, (1.5, None, None, None), [0, 1, 2, 3])
    assert out[:, 0, :].tolist() == [[0, 150, 255], [15, 192, 255], [255, 255, 255]]


def test_hue_turn_keeps_greys_and_inverts():
    assert np.allclose(hue_matrix(0.0), np.eye(3))
    assert np.allclose(hue_matrix(0.1) @ hue_matrix(-0.1), np.eye(3))
    assert np.allclose(hue_matrix(0.2) @ np.ones(3), np.ones(3))  # greys stay grey
    red = tiny_image()[:, :1, :1] * 0 + torch.tensor([200, 40, 40], dtype=torch.uint8)[:, None, None]
    turned = jitter(red, (None, None, None, 0.05), [3, 2, 1, 0])[:, 0, 0].tolist()
    assert turned[1] > 40 > turned[2]  # a positive turn moves red towards green (and off blue), as adjust_hue does


def test_hue_turn_is_close_to_hsv_for_training_sized_turns():
    image = tiny_image()
    out = jitter(image, (None, None, None, 0.015), [3, 0, 1, 2]).float()
    ref = float_reference(image, (None, None, None, 0.015), [3])
    assert (out - ref).abs().max() <= 7.0 and (out - ref).abs().mean() <= 2.0


def test_mean_luma_by_hand():
    image = torch.tensor([[[255, 0]], [[0, 0]], [[0, 100]]], dtype=torch.uint8)  # [3, 1, 2]: red, dark blue
    assert mean_luma(image, stride=1) == pytest.approx((0.299 * 255 + 0.114 * 100) / 2)
    assert mean_luma(image, stride=2) == pytest.approx(0.299 * 255)  # every 2nd column: the red pixel


def test_jitter_map_by_hand():
    matrix, offset = jitter_map(100.0, brightness=2.0, contrast=0.5)
    assert np.allclose(matrix, np.eye(3)) and np.allclose(offset, [100.0] * 3)  # v -> 2 (0.5 v + 0.5 * 100)
    out = apply_color_map(Image.fromarray(np.full((1, 1, 3), 60, np.uint8)), matrix, offset)
    assert pil_to_tensor(out)[:, 0, 0].tolist() == [160, 160, 160]


def test_float_images_and_boxes_go_to_v2_color_jitter():
    image = tiny_image().float() / 255
    params = dict(zip(KEYS, (1.2, 0.8, 1.3, None)), fn_idx=torch.tensor([0, 1, 2, 3]))
    ours = Uint8ColorJitter().transform(tv_tensors.Image(image), params)
    assert torch.equal(ours, v2.ColorJitter().transform(tv_tensors.Image(image), params))


def test_pil_round_trip_is_lossless():
    image = tiny_image(0, 256)
    back = pil_to_tensor(tensor_to_pil(image))
    assert torch.equal(back, image) and back.dtype == torch.uint8


def _grey_canvas(region, pad):
    """A [3, 36, 48] canvas of ``pad`` grey and ``region`` (x1, y1, x2, y2) clipped to it."""
    canvas = torch.full((3, 36, 48), pad, dtype=torch.uint8)
    return canvas, (max(region[0], 0), max(region[1], 0), min(region[2], 48), min(region[3], 36))


@pytest.mark.parametrize("region", [(8, 4, 40, 30), (-5, -5, 100, 100), (20, 20, 20, 30)])
def test_colour_region_equals_jittering_the_whole_canvas(region):
    from autotimm.data.color import colour_region

    pad = 114
    g = torch.Generator().manual_seed(0)
    canvas, (x1, y1, x2, y2) = _grey_canvas(region, pad)
    canvas[:, y1:y2, x1:x2] = torch.randint(0, 256, (3, y2 - y1, x2 - x1), dtype=torch.uint8, generator=g)
    jitter = Uint8ColorJitter(brightness=0.3, contrast=0.3, saturation=0.4, hue=0.015)
    for seed in range(4):
        torch.manual_seed(seed)
        params = jitter.make_params([])
        expected = jitter.transform(tv_tensors.Image(canvas), params).as_subclass(torch.Tensor)
        got = colour_region(canvas, params, region, pad)
        assert got.shape == canvas.shape and got.dtype == torch.uint8
        diff = (got.int() - expected.int()).abs()
        assert diff.max() <= 2 and diff.float().mean() < 0.5, (seed, diff.max(), diff.float().mean())
        assert (got[:, :, :x1] == got[0, 0, 0]).all()  # the pad: one grey


def test_jitter_batch_by_hand():
    from autotimm.data.color import jitter_batch

    images = torch.tensor([[60, 140], [0, 250]], dtype=torch.uint8)[:, None, None, :].expand(2, 3, 1, 2).clone()  # greys
    factors = torch.tensor([[2.0, 0.5, 1.0, 0.0], [1.5, 1.0, 1.0, 0.0]])  # b=2, c=0.5 about the mean 100; b=1.5
    out = jitter_batch(images, factors)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert out[0, :, 0].tolist() == [[160, 240]] * 3  # 2 (0.5 v + 0.5 * 100) = v + 100
    assert out[1, :, 0].tolist() == [[0, 255]] * 3  # 1.5 * 250 clips


@pytest.mark.parametrize("region", [(8, 4, 40, 30), (-5, -5, 100, 100), (20, 20, 20, 30)])
def test_jitter_batch_matches_the_worker_maps(region):
    from autotimm.data.color import colour_region, jitter_batch, jitter_factors

    pad = 114
    g = torch.Generator().manual_seed(0)
    canvas, (x1, y1, x2, y2) = _grey_canvas(region, pad)
    noise = torch.randint(0, 256, (1, 3, y2 - y1 + 4, x2 - x1 + 4), generator=g).float()
    # a smooth texture, as photos are: the workers' 1/16 sample of the contrast pivot is then close to the mean
    if x2 > x1 and y2 > y1:
        canvas[:, y1:y2, x1:x2] = torch.nn.functional.avg_pool2d(noise, 5, 1)[0].round().to(torch.uint8)
    jitter = Uint8ColorJitter(brightness=0.3, contrast=0.3, saturation=0.4, hue=0.015)
    draws = []
    for seed in range(4):
        torch.manual_seed(seed)
        draws.append(jitter.make_params([]))
    draws.append(Uint8ColorJitter(brightness=0.3).make_params([]))  # steps that are off stay off
    worker = torch.stack([colour_region(canvas, p, region, pad) for p in draws])
    device = jitter_batch(canvas.expand(len(draws), -1, -1, -1).contiguous(), torch.stack([jitter_factors(p) for p in draws]))
    diff = (device.int() - worker.int()).abs()
    assert diff.max() <= 2 and diff.float().mean() < 0.5, (diff.max(), diff.float().mean())
    assert (device[:, :, :, :x1] == device[:, :, :1, :1]).all()  # the pad: the map's image of its grey


def test_jitter_batch_rejects_bad_input():
    from autotimm.data.color import jitter_batch

    with pytest.raises(ValueError, match=r"uint8 \[B, 3, H, W\] images; got torch.float32"):
        jitter_batch(torch.zeros(1, 3, 2, 2), torch.ones(1, 4))
    with pytest.raises(ValueError, match=r"factors of shape \[1, 4\]; got \(1, 3\)"):
        jitter_batch(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), torch.ones(1, 3))
