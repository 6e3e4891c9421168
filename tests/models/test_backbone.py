import pytest
import torch

from autotimm import FeatureBackboneConfig, list_backbones
from autotimm.models.backbone import Backbone
from autotimm.models.neck import FPN

STRIDES = (8, 16, 32, 64, 128)


@pytest.mark.parametrize(
    "name, channels",
    [
        ("resnet18", [128, 256, 512]),
        ("efficientnet_b3", [48, 136, 384]),
        ("convnext_tiny", [192, 384, 768]),  # 4 stages
        ("swin_tiny_patch4_window7_224", [192, 384, 768]),  # NHWC, fixed 224 by default
        ("vit_base_patch16_224", [768]),  # one stride: simple feature pyramid
    ],
)
def test_backbones_feed_a_p3_p7_pyramid(name, channels):
    backbone = Backbone(FeatureBackboneConfig(name, pretrained=False), STRIDES)
    assert backbone.channels == channels
    fpn = FPN(backbone.channels, backbone.reductions, STRIDES, 32)
    with torch.no_grad():
        levels = fpn(backbone(torch.randn(1, 3, 192, 256)))  # not 224, a multiple of 32
    assert [tuple(p.shape) for p in levels] == [
        (1, 32, 24, 32), (1, 32, 12, 16), (1, 32, 6, 8), (1, 32, 3, 4), (1, 32, 2, 2)]


def test_resnet50_channels_from_feature_info():
    assert Backbone(FeatureBackboneConfig("resnet50", pretrained=False)).channels == [512, 1024, 2048]


def test_config_fields_are_honoured():
    cfg = FeatureBackboneConfig("resnet18", pretrained=False, out_indices=(3, 4), drop_path_rate=0.2,
                                extra_kwargs={"output_stride": 16})
    backbone = Backbone(cfg)
    assert backbone.config.out_indices == (3, 4)
    assert backbone.reductions == [16, 16]  # output_stride=16 dilates the last stage
    drop_paths = [m for m in backbone.modules() if type(m).__name__ == "DropPath"]
    assert drop_paths and max(m.drop_prob for m in drop_paths) == pytest.approx(0.2)


def _zeroed_norms(module):
    norms = (torch.nn.BatchNorm2d, torch.nn.GroupNorm)
    return [m for m in module.modules() if isinstance(m, norms) and not m.weight.detach().any()]


@pytest.mark.parametrize("name", ["resnet18", "regnety_002"])
def test_scratch_residual_blocks_start_with_their_last_norm_at_one(name):
    # timm's classification default (zero_init_last=True) zeroes the last norm of every residual
    # block; from scratch a detector learns much faster without it (benchmarks/RESULTS.md).
    assert not _zeroed_norms(Backbone(FeatureBackboneConfig(name, pretrained=False)))
    asked = Backbone(FeatureBackboneConfig(name, pretrained=False, extra_kwargs={"zero_init_last": True}))
    assert len(_zeroed_norms(asked)) >= 4  # the user's choice wins


def test_families_without_zero_init_last_still_build():
    backbone = Backbone(FeatureBackboneConfig("efficientnet_b0", pretrained=False))  # no such argument
    assert backbone.channels == [40, 112, 320]
    with pytest.raises(TypeError, match="not_a_timm_argument"):
        Backbone(FeatureBackboneConfig("resnet18", pretrained=False, extra_kwargs={"not_a_timm_argument": 1}))


def test_local_weights_file_is_loaded(tmp_path):
    import timm

    source = timm.create_model("resnet18", pretrained=False)
    torch.nn.init.constant_(source.conv1.weight, 0.123)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    backbone = Backbone(FeatureBackboneConfig("resnet18", weights_file=str(path)))
    assert torch.allclose(backbone.model.conv1.weight, torch.full_like(backbone.model.conv1.weight, 0.123))


def test_unreachable_pretrained_weights_fail_clearly_or_fall_back(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # no network in tests
    with pytest.raises(RuntimeError, match="weights_file"):
        Backbone(FeatureBackboneConfig("resnet18", pretrained=True))
    with pytest.warns(UserWarning, match="from scratch"):
        backbone = Backbone(FeatureBackboneConfig("resnet18", pretrained=True, fallback_to_scratch=True))
    assert backbone.channels == [128, 256, 512]


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(ValueError, match="Unknown backbone 'resnet181'.*resnet18"):
        Backbone(FeatureBackboneConfig("resnet181", pretrained=False))


def test_list_backbones_filters_by_pattern():
    names = list_backbones("convnext_t*")
    assert "convnext_tiny" in names and all(n.startswith("convnext_t") for n in names)
    assert not any("mixer" in n for n in list_backbones("*mixer*"))


def test_bad_config_values():
    with pytest.raises(ValueError, match="drop_path_rate"):
        FeatureBackboneConfig("resnet18", drop_path_rate=1.5)
    with pytest.raises(ValueError, match="weights_file"):
        FeatureBackboneConfig("resnet18", weights_file="/no/such/file.pth")


def test_families_without_drop_path_build_and_a_set_rate_is_still_required():
    # GhostNet takes no drop_path_rate: the default 0 must not be passed to it, a set rate must not be dropped.
    backbone = Backbone(FeatureBackboneConfig("ghostnet_100", pretrained=False), (8, 16, 32))
    feats = backbone(torch.zeros(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [8, 4, 2]
    with pytest.raises(TypeError, match="drop_path_rate"):
        Backbone(FeatureBackboneConfig("ghostnet_100", pretrained=False, drop_path_rate=0.1), (8, 16, 32))
