import pytest
import torch

from autotimm.models.neck import FPN


def test_custom_strides_including_stride_4():
    fpn = FPN([16, 32, 64, 128], [4, 8, 16, 32], (4, 8, 16, 32, 64), 8)
    feats = [torch.randn(1, c, 64 // (r // 4), 64 // (r // 4)) for c, r in zip([16, 32, 64, 128], [4, 8, 16, 32])]
    assert [p.shape[-1] for p in fpn(feats)] == [64, 32, 16, 8, 4]


@pytest.mark.parametrize("strides", [(8, 12, 32), (16, 8), ()])
def test_bad_strides_are_refused(strides):
    with pytest.raises(ValueError, match="strides"):
        FPN([8, 16, 32], [8, 16, 32], strides, 8)


def test_stride_the_backbone_cannot_give():
    with pytest.raises(ValueError, match="strides"):
        FPN([8, 16], [16, 32], (64, 256), 8)
