"""Jittered letterbox, flip, colour jitter and presets."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from autotimm.data.letterbox import PAD_VALUE, boxes_to_original, letterbox_image, letterbox_params
from autotimm.data.transforms import (
    PRESETS,
    AugmentConfig,
    apply_v2,
    place_boxes,
    place_image,
    resolve_augment,
    sample_placement,
)


@pytest.mark.parametrize("hw", [(417, 650), (1333, 2000), (283, 178), (64, 64)])
def test_letterbox_then_inverse_recovers_boxes_within_one_pixel(hw):
    g = torch.Generator().manual_seed(0)
    h, w = hw
    xy = torch.rand(20, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
    wh = torch.rand(20, 2, generator=g) * torch.tensor([w * 0.2, h * 0.2]) + 1
    boxes = torch.cat([xy, xy + wh], 1)
    canvas, params = letterbox_image(torch.zeros(3, h, w, dtype=torch.uint8), 320)
    assert canvas.shape == (3, 320, 320)
    mapped = boxes * params[0]  # top-left placement: no offset
    back = boxes_to_original(mapped, params, torch.tensor(hw))
    assert (back - boxes).abs().max() <= 1.0


def test_place_image_crops_and_pads_by_hand():
    image = torch.arange(16, dtype=torch.uint8).reshape(1, 4, 4)  # rows 0..3, values 4*r + c
    params = torch.tensor([1.0, -1.0, 2.0])  # no resize, shift left by 1 and down by 2
    out = place_image(image, params, 4)
    expected = torch.full((1, 4, 4), PAD_VALUE, dtype=torch.uint8)
    expected[0, 2:, :3] = torch.tensor([[1, 2, 3], [5, 6, 7]], dtype=torch.uint8)
    assert torch.equal(out, expected)


def test_place_image_with_scale_one_and_no_offset_is_the_letterbox():
    image = torch.randint(0, 255, (3, 50, 80), dtype=torch.uint8)
    params = letterbox_params((50, 80), 64)
    assert torch.equal(place_image(image, params, 64), letterbox_image(image, 64)[0])


def test_place_boxes_clips_and_filters_by_visibility():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [8.0, 0.0, 18.0, 10.0], [2.0, 2.0, 4.0, 4.0]])
    params = torch.tensor([2.0, -10.0, 0.0])  # x2, then left by 10 -> x in [-10, 10], [6, 26], [-6, -2]
    out, keep = place_boxes(boxes, params, 20, min_visibility=0.5, min_size=1.0)
    assert torch.allclose(out, torch.tensor([[0.0, 0.0, 10.0, 20.0], [6.0, 0.0, 20.0, 20.0], [0.0, 4.0, 0.0, 8.0]]))
    # visible fractions: 10/20 = 0.5 (kept), 14/20 = 0.7 (kept), 0 (dropped)
    assert keep.tolist() == [True, True, False]
    _, keep = place_boxes(boxes, params, 20, min_visibility=0.6)
    assert keep.tolist() == [False, True, False]


def test_sample_placement_stays_within_reach():
    torch.manual_seed(0)
    for _ in range(200):
        scale, pad_x, pad_y = sample_placement((300, 500), 256, (0.5, 1.5), translate=True).tolist()
        base = 256 / 500
        assert 0.5 * base - 1e-6 <= scale <= 1.5 * base + 1e-6
        new_w, new_h = round(500 * scale), round(300 * scale)
        assert min(0, 256 - new_w) <= pad_x <= max(0, 256 - new_w)
        assert min(0, 256 - new_h) <= pad_y <= max(0, 256 - new_h)
    assert torch.equal(sample_placement((300, 500), 256, (1.0, 1.0), translate=False), torch.tensor([256 / 500, 0.0, 0.0]))


def test_flip_twice_is_identity():
    image = torch.randint(0, 255, (3, 32, 48), dtype=torch.uint8)
    boxes = torch.tensor([[1.0, 2.0, 10.0, 20.0], [30.0, 5.0, 48.0, 32.0]])
    extra = {"labels": torch.tensor([0, 1]), "iscrowd": torch.tensor([0, 1])}
    flip = v2.RandomHorizontalFlip(p=1.0)
    once = apply_v2(flip, image, boxes, extra)
    assert torch.allclose(once[1], torch.tensor([[38.0, 2.0, 47.0, 20.0], [0.0, 5.0, 18.0, 32.0]]))
    twice = apply_v2(flip, *once)
    assert torch.equal(twice[0], image)
    assert torch.allclose(twice[1], boxes)
    assert torch.equal(twice[2]["labels"], extra["labels"]) and torch.equal(twice[2]["iscrowd"], extra["iscrowd"])


def test_apply_v2_drops_boxes_a_user_transform_empties_with_their_labels():
    image = torch.zeros(3, 40, 40, dtype=torch.uint8)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [30.0, 30.0, 40.0, 40.0]])
    extra = {"labels": torch.tensor([3, 4]), "iscrowd": torch.tensor([0, 1])}

    def crop_top_left(im, target):  # a user transform: v2 functional ops on tv_tensors
        crop = lambda x: v2.functional.crop(x, 0, 0, 20, 20)  # noqa: E731
        return crop(im), {**target, "boxes": crop(target["boxes"])}

    out_image, out_boxes, out_extra = apply_v2(crop_top_left, image, boxes, extra)
    assert out_image.shape == (3, 20, 20)
    assert torch.allclose(out_boxes, torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    assert out_extra["labels"].tolist() == [3] and out_extra["iscrowd"].tolist() == [0]


def test_presets_and_resolution():
    assert resolve_augment("none") == AugmentConfig()
    assert resolve_augment("strong").mosaic_prob == 1.0
    assert not PRESETS["default"].uses_strong and PRESETS["strong"].uses_strong
    custom = AugmentConfig(hflip_prob=1.0)
    assert resolve_augment(custom) is custom
    user = v2.RandomHorizontalFlip()
    assert resolve_augment(user) is user
    with pytest.raises(ValueError, match=r"Unknown augment 'heavy'; use one of \['default', 'none', 'strong'\]"):
        resolve_augment("heavy")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale_range": (1.5, 0.5)}, r"scale_range must satisfy 0 < low <= high; got \(1.5, 0.5\)"),
        ({"hflip_prob": 1.5}, r"hflip_prob must be in \[0, 1\]; got 1.5"),
        ({"mosaic_scale": (0, 1)}, r"mosaic_scale must satisfy"),
        ({"hue": 0.7}, r"hue must be in \[0, 0.5\]; got 0.7"),
    ],
)
def test_augment_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AugmentConfig(**kwargs)


def test_reduced_placement_by_hand():
    from autotimm.data.transforms import reduced_placement

    # a 1001 x 600 original decoded at 1/4: 251 x 150 pixels, the original spans 250.25 x 150 of them
    params = torch.tensor([0.2, 3.0, -4.0])
    draw, content_hw = reduced_placement(params, (600, 1001), (150, 251), (250.25, 150.0))
    assert torch.allclose(draw, torch.tensor([0.8, 3.0, -4.0]))  # 4 original pixels per decoded pixel
    assert content_hw == (120, 200)  # round(600 * 0.2), round(1001 * 0.2): what the original would show
    canvas = place_image(torch.full((3, 150, 251), 9, dtype=torch.uint8), draw, 256, content_hw=content_hw)
    assert (canvas[:, :116, 3:203] == 9).all() and (canvas[:, :, 203:] == PAD_VALUE).all()  # no sliver past 200


def test_hflip_by_hand():
    from autotimm.data.transforms import hflip

    image = torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4)
    boxes = torch.tensor([[0.0, 1.0, 1.5, 3.0], [2.0, 0.0, 4.0, 2.0]])
    flipped, flipped_boxes = hflip(image, boxes)
    assert torch.equal(flipped, image[:, :, [3, 2, 1, 0]])
    assert flipped_boxes.tolist() == [[2.5, 1.0, 4.0, 3.0], [0.0, 0.0, 2.0, 2.0]]
    assert torch.equal(hflip(*hflip(image, boxes))[1], boxes)


def test_place_boxes_per_box_params_and_regions_equal_one_call_per_group():
    g = torch.Generator().manual_seed(0)
    groups = [torch.rand(n, 2, generator=g).mul(50).repeat(1, 2) + torch.tensor([0.0, 0.0, 8.0, 6.0]) for n in (3, 0, 4)]
    params = [torch.tensor([0.5, 3.0, -2.0]), torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.75, -10.0, 4.0])]
    regions = [(0, 0, 20, 30), (5, 5, 10, 10), (-4, 2, 60, 25)]
    expected = [place_boxes(b, p, r, 0.25, 2.0) for b, p, r in zip(groups, params, regions)]
    counts = torch.tensor([len(b) for b in groups])
    placed, keep = place_boxes(torch.cat(groups), torch.stack(params).repeat_interleave(counts, 0),
                               torch.tensor(regions).repeat_interleave(counts, 0), 0.25, 2.0)
    assert torch.equal(placed, torch.cat([e[0] for e in expected]))  # the same float ops, bit for bit
    assert torch.equal(keep, torch.cat([e[1] for e in expected]))
    assert 0 < int(keep.sum()) < len(keep)  # some kept, some not: the case is not trivial
