"""ObjectDetector: every constructor parameter honoured, predict() inputs and frames, bad input."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from autotimm import FeatureBackboneConfig, LoggingConfig, MetricConfig, ObjectDetector, TransformConfig
from autotimm.losses.functional import BCELoss, FocalLoss, GIoULoss

from synthetic import collate, make_samples


def build(kw, **over):
    return ObjectDetector(**{**kw, **over})


def test_forward_returns_three_lists_per_level(tiny_detector_kwargs):
    model = build(tiny_detector_kwargs, num_classes=5)
    cls, reg, ctr = model(torch.randn(2, 3, 128, 160))
    assert [tuple(c.shape) for c in cls] == [(2, 5, 16, 20), (2, 5, 8, 10), (2, 5, 4, 5), (2, 5, 2, 3), (2, 5, 1, 2)]
    assert all(r.shape[1] == 4 and (r >= 0).all() for r in reg)
    assert all(c.shape[1] == 1 for c in ctr)


def test_head_width_and_depth(tiny_detector_kwargs):
    model = build(tiny_detector_kwargs, fpn_channels=48, head_num_convs=3)
    head = model.detection_head.head
    assert sum(isinstance(m, nn.Conv2d) for m in head.cls_subnet) == 3
    assert head.cls_logits.in_channels == 48
    assert all(m.num_groups == 16 for m in head.modules() if isinstance(m, nn.GroupNorm))  # gcd(32, 48)


@pytest.mark.parametrize("arch", ["fcos", "yolox"])
def test_head_conv_depthwise_reaches_the_head_and_trains(tiny_detector_kwargs, arch):
    dense = build(tiny_detector_kwargs, detection_arch=arch, strides=(8, 16, 32))
    model = build(tiny_detector_kwargs, detection_arch=arch, strides=(8, 16, 32), head_conv="depthwise")
    assert (dense.hparams.head_conv, model.hparams.head_conv) == ("dense", "depthwise")
    assert model.detection_head.head_conv == model.detection_head.head.head_conv == "depthwise"
    grouped = [m for m in model.detection_head.head.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert grouped and all(m.groups == m.in_channels == 32 and m.kernel_size == (3, 3) for m in grouped)
    assert not any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in dense.detection_head.modules())
    head_params = [sum(p.numel() for p in m.detection_head.parameters()) for m in (dense, model)]
    assert head_params[1] < head_params[0] / 2  # the prediction convs stay dense
    cls, reg, third = model(torch.randn(2, 3, 64, 96))
    assert [tuple(c.shape) for c in cls] == [(2, 3, 8, 12), (2, 3, 4, 6), (2, 3, 2, 3)]
    assert [r.shape[1] for r in reg] == [4] * 3 and [q.shape[1] for q in third] == [1] * 3
    images, targets = collate(make_samples(2, size=64))
    losses = model.compute_loss(model.normalize(images), targets)
    losses["loss"].backward()
    # every depthwise conv of the box towers learns (they feed centerness / objectness, scored at many points)
    box_dw = [m for n, m in model.detection_head.head.named_modules() if ("bbox_subnet" in n or "reg_convs" in n) and m in grouped]
    assert torch.isfinite(losses["loss"]) and box_dw and all(float(m.weight.grad.abs().sum()) > 0 for m in box_dw)


def test_head_conv_survives_a_checkpoint(tiny_detector_kwargs, tmp_path):
    model = build(tiny_detector_kwargs, head_conv="depthwise").eval()
    path = tmp_path / "dw.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": L.__version__}, path)
    loaded = ObjectDetector.load_from_checkpoint(path).eval()
    assert loaded.hparams.head_conv == "depthwise" and loaded.detection_head.head.head_conv == "depthwise"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x)[0], loaded(x)[0]))
    # A checkpoint from before head_conv existed (no such hyperparameter) loads as the dense head it holds.
    dense = build(tiny_detector_kwargs)
    hparams = {k: v for k, v in dense.hparams.items() if k != "head_conv"}
    torch.save({"state_dict": dense.state_dict(), "hyper_parameters": hparams, "pytorch-lightning_version": L.__version__}, path)
    assert ObjectDetector.load_from_checkpoint(path).hparams.head_conv == "dense"


def test_loss_functions_and_weights(tiny_detector_kwargs):
    model = build(tiny_detector_kwargs, focal_alpha=0.5, focal_gamma=1.5, cls_loss_weight=0.5, reg_loss_weight=2.0, centerness_loss_weight=0.0)
    crit = model.detection_head.criterion
    assert isinstance(crit.cls_loss, FocalLoss) and (crit.cls_loss.alpha, crit.cls_loss.gamma) == (0.5, 1.5)
    assert isinstance(crit.reg_loss, GIoULoss)
    images, targets = collate(make_samples(2, 64))
    losses = model.compute_loss(model.normalize(images), targets)
    assert losses["loss"].item() == pytest.approx(0.5 * losses["cls_loss"].item() + 2.0 * losses["reg_loss"].item(), rel=1e-5)
    custom = nn.SmoothL1Loss(reduction="none")
    model = build(tiny_detector_kwargs, cls_loss_fn="bce", reg_loss_fn=custom)
    assert isinstance(model.detection_head.criterion.cls_loss, BCELoss)
    assert model.detection_head.criterion.reg_loss is custom


def test_empty_targets_give_finite_loss_with_gradients(tiny_detector_kwargs):
    model = build(tiny_detector_kwargs)
    images = torch.randn(2, 3, 64, 64)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    losses = model.compute_loss(images, [empty, empty])
    assert torch.isfinite(losses["loss"]) and losses["cls_loss"] > 0
    losses["loss"].backward()
    grad = model.detection_head.head.cls_logits.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_inference_settings(tiny_detector_kwargs):
    image = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    loose = build(tiny_detector_kwargs, score_thresh=0.0, max_detections_per_image=7, nms_thresh=1.0)
    assert len(loose.predict(image, image_size=64)[0]["boxes"]) == 7
    strict = build(tiny_detector_kwargs, score_thresh=0.99)
    assert len(strict.predict(image, image_size=64)[0]["boxes"]) == 0
    # Per-call overrides win over the constructor's settings.
    assert len(loose.predict(image, image_size=64, max_detections=2)[0]["boxes"]) == 2


def test_predict_accepts_every_image_kind_and_returns_original_pixels(tiny_detector_kwargs, tmp_path):
    model = build(tiny_detector_kwargs, score_thresh=0.0, nms_thresh=1.0)
    array = np.random.default_rng(1).integers(0, 255, (90, 180, 3), dtype=np.uint8)  # H=90, W=180
    path = tmp_path / "img.png"
    Image.fromarray(array).save(path)
    inputs = [str(path), Image.fromarray(array), array, torch.from_numpy(array).permute(2, 0, 1)]
    # fp32: with an untrained head many scores nearly tie, and bf16 rounding could pick different ones
    results = model.predict(inputs, image_size=64, precision="fp32")
    assert len(results) == 4
    for r in results:
        assert set(r) == {"boxes", "scores", "labels"}
        assert r["labels"].dtype == torch.int64
        boxes = r["boxes"]
        assert len(boxes) > 0
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 180).all() and (boxes[:, 3] <= 90).all()
    # All four are the same pixels, so the same detections.
    for r in results[1:]:
        assert torch.allclose(r["boxes"], results[0]["boxes"], atol=1e-3)
    # Letterboxed at 64 px, the image's wide side spans the canvas: boxes reach beyond 64 px.
    assert results[0]["boxes"][:, 2].max() > 64
    single = model.predict(array, image_size=64)
    assert len(single) == 1


def test_transform_config_sets_normalisation_and_size(tiny_detector_kwargs):
    cfg = TransformConfig(image_size=96, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    model = build(tiny_detector_kwargs, transform_config=cfg)
    data = model.get_data_config()
    assert data["mean"] == (0.5, 0.5, 0.5) and data["std"] == (0.25, 0.25, 0.25)
    assert data["input_size"] == (3, 96, 96)
    tensor = model.preprocess(Image.new("RGB", (50, 100), (255, 255, 255)))
    assert tuple(tensor.shape) == (1, 3, 96, 96)
    assert tensor[0, :, 0, 0].tolist() == [2.0, 2.0, 2.0]  # (1 - 0.5) / 0.25
    # Default: timm's data config of the backbone.
    assert build(tiny_detector_kwargs).get_data_config()["mean"] == pytest.approx((0.485, 0.456, 0.406))


def test_optimizer_and_scheduler_options(tiny_detector_kwargs):
    model = build(tiny_detector_kwargs, lr=0.02, weight_decay=0.3, optimizer="sgd", optimizer_kwargs={"momentum": 0.9, "nesterov": True},
                  scheduler="multistep", scheduler_kwargs={"milestones": [8, 11], "gamma": 0.1})
    conf = model.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9 and opt.defaults["nesterov"]
    assert opt.param_groups[0]["lr"] == 0.02 and opt.param_groups[0]["weight_decay"] == 0.3
    assert opt.param_groups[1]["weight_decay"] == 0.0  # norms and biases
    assert sched["interval"] == "epoch"  # milestones are epochs, not optimizer steps
    assert isinstance(sched["scheduler"], torch.optim.lr_scheduler.MultiStepLR)
    assert dict(sched["scheduler"].milestones) == {8: 1, 11: 1}
    dict_opt = build(tiny_detector_kwargs, optimizer={"class": "torch.optim.NAdam", "params": {"betas": (0.8, 0.9)}}, scheduler=None)
    opt = dict_opt.configure_optimizers()
    assert isinstance(opt, torch.optim.NAdam) and opt.defaults["betas"] == (0.8, 0.9)
    warm = build(tiny_detector_kwargs, scheduler="cosine", scheduler_kwargs={"warmup_epochs": 2}).configure_optimizers()
    assert isinstance(warm["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.SequentialLR)
    for name, cls in [("step", "StepLR"), ("plateau", "ReduceLROnPlateau"), ("cosine", "CosineAnnealingLR")]:
        out = build(tiny_detector_kwargs, scheduler=name).configure_optimizers()
        assert type(out["lr_scheduler"]["scheduler"]).__name__ == cls


def test_freeze_backbone_and_unfreeze(tiny_detector_kwargs):
    model = build(tiny_detector_kwargs, freeze_backbone=True)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    model.train()
    assert not model.backbone.training and model.fpn.training  # BatchNorm statistics stay frozen
    n_frozen = len(model.configure_optimizers()["optimizer"].param_groups[0]["params"])
    model.unfreeze_backbone()
    model.train()
    assert model.backbone.training
    assert len(model.configure_optimizers()["optimizer"].param_groups[0]["params"]) > n_frozen


def test_strides_and_regress_ranges(tiny_detector_kwargs):
    model = build(tiny_detector_kwargs, strides=(8, 16, 32), regress_ranges=((-1, 32), (32, 96), (96, 10_000)))
    cls, _, _ = model(torch.randn(1, 3, 64, 64))
    assert len(cls) == 3
    assert model.detection_head.assigner.regress_ranges.tolist() == [[-1, 32], [32, 96], [96, 10_000]]


def test_seed_makes_weights_reproducible_without_touching_global_state(tiny_detector_kwargs):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = build(tiny_detector_kwargs, seed=7)
    b = build(tiny_detector_kwargs, seed=7)
    c = build(tiny_detector_kwargs, seed=8, deterministic=True)
    assert torch.equal(torch.rand(3), expected_next)  # seeded builds left the global RNG where it was
    assert not torch.are_deterministic_algorithms_enabled()  # ... and torch's flags as they were
    wa, wb, wc = (m.detection_head.head.cls_logits.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


class _FlagProbe(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())


def _fit_one_step(model, **trainer_kwargs):
    probe = _FlagProbe()
    loader = torch.utils.data.DataLoader(make_samples(2, 64), batch_size=2, collate_fn=collate)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, callbacks=[probe], **trainer_kwargs)
    trainer.fit(model, train_dataloaders=loader)
    return probe.seen


def test_deterministic_holds_during_fit_only(tiny_detector_kwargs):
    assert not torch.are_deterministic_algorithms_enabled()
    model = build(tiny_detector_kwargs, deterministic=True, scheduler=None)
    assert _fit_one_step(model) == (True, True)  # warn-only: never crashes on ops without a deterministic kernel
    assert not torch.are_deterministic_algorithms_enabled()  # restored after fit
    assert _fit_one_step(build(tiny_detector_kwargs, deterministic=False, scheduler=None)) == (False, False)


def test_seed_seeds_fit_and_the_trainer_seed_wins(tiny_detector_kwargs):
    from autotimm import AutoTrainer

    def first_batch_loss(model_seed, trainer_seed=None):
        model = build(tiny_detector_kwargs, seed=0, scheduler=None)
        model.seed = model_seed
        seen = []
        probe = L.Callback()
        probe.on_train_batch_start = lambda trainer, pl_module, batch, batch_idx: seen.append(torch.rand(()).item())
        loader = torch.utils.data.DataLoader(make_samples(2, 64), batch_size=2, collate_fn=collate)
        trainer = AutoTrainer(max_epochs=1, max_steps=1, accelerator="cpu", precision="32-true", logger=False, enable_checkpointing=False,
                              enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, callbacks=[probe],
                              seed=trainer_seed, csv_log=False, live_plot=False)
        trainer.fit(model, train_dataloaders=loader)
        return seen[0]

    assert first_batch_loss(5) == first_batch_loss(5) != first_batch_loss(6)
    assert first_batch_loss(5, trainer_seed=9) == first_batch_loss(6, trainer_seed=9)


def test_compile_model_runs_and_falls_back(tiny_detector_kwargs):
    x = torch.randn(1, 3, 64, 64)
    eager = build(tiny_detector_kwargs, seed=0)
    compiled = build(tiny_detector_kwargs, seed=0, compile_model=True, compile_kwargs={"backend": "eager"})
    out = compiled(x)
    assert compiled._compiled not in (None, False)
    assert torch.allclose(out[0][0], eager(x)[0][0], atol=1e-5)
    broken = build(tiny_detector_kwargs, seed=0, compile_model=True, compile_kwargs={"backend": "no_such_backend"})
    with pytest.warns(UserWarning, match="running eagerly"):
        out = broken(x)
    assert broken._compiled is False
    assert torch.allclose(out[0][0], eager(x)[0][0], atol=1e-5)


def test_metrics_and_logging_config_are_held(tiny_detector_kwargs):
    model = build(tiny_detector_kwargs)
    assert model.metrics.has_stage("val") and model.metrics.has_stage("test")  # default mAP
    cfg = MetricConfig(name="mAP", backend="torchmetrics", metric_class="MeanAveragePrecision", params={}, stages=["test"])
    model = build(tiny_detector_kwargs, metrics=[cfg], logging_config=LoggingConfig(log_gradient_norm=True))
    assert not model.metrics.has_stage("val") and model.metrics.has_stage("test")
    assert model.logging_config.log_gradient_norm


@pytest.mark.parametrize(
    "override, match",
    [
        ({"num_classes": 0}, "num_classes"),
        ({"detection_arch": "retina"}, "detection_arch"),
        ({"optimizer": "adamx"}, "Unknown optimizer 'adamx'"),
        ({"scheduler": "cosinus"}, "Unknown scheduler 'cosinus'"),
        ({"cls_loss_fn": "hinge"}, "Unknown cls loss 'hinge'"),
        ({"regress_ranges": ((-1, 64), (64, 1e8))}, "2 ranges but strides"),
        ({"score_thresh": 1.5}, "score_thresh"),
        ({"focal_gamma": -1.0}, "focal_gamma"),
        ({"head_conv": "separable"}, r"ObjectDetector\(head_conv='separable'\): expected one of \['dense', 'depthwise'\]"),
    ],
)
def test_bad_constructor_arguments(tiny_detector_kwargs, override, match):
    with pytest.raises(ValueError, match=match):
        model = build(tiny_detector_kwargs, **override)
        model.configure_optimizers()


def test_bad_images_and_targets(tiny_detector_kwargs):
    model = build(tiny_detector_kwargs)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\], got \(3, 64, 64\)"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    good = {"boxes": torch.tensor([[1.0, 1.0, 20.0, 20.0]]), "labels": torch.tensor([0])}
    flipped = {"boxes": torch.tensor([[30.0, 5.0, 10.0, 20.0]]), "labels": torch.tensor([0]), "image_id": torch.tensor(42)}
    with pytest.raises(ValueError, match=r"targets\[1\] \(image_id 42\) box 0 = \[30.0, 5.0, 10.0, 20.0\]"):
        model.compute_loss(torch.randn(2, 3, 64, 64), [good, flipped])
    outside = {"boxes": torch.tensor([[10.0, 10.0, 200.0, 20.0]]), "labels": torch.tensor([0])}
    with pytest.raises(ValueError, match="inside the 64x64 input"):
        model.compute_loss(torch.randn(1, 3, 64, 64), [outside])
    with pytest.raises(ValueError, match=r"labels in \[0, 2\]"):
        model.compute_loss(torch.randn(1, 3, 64, 64), [{"boxes": good["boxes"], "labels": torch.tensor([3])}])
    with pytest.raises(TypeError, match="Cannot predict on int 5; pass an image path, a folder"):
        model.predict(5)


def test_string_backbone_asks_for_pretrained_weights(tiny_detector_kwargs):
    # Offline (as in every test): a plain name means pretrained=True, which fails with a hint.
    with pytest.raises(RuntimeError, match="weights_file"):
        build(tiny_detector_kwargs, backbone="resnet18")


def test_bf16_channels_last_gradients_match_fp32(tiny_detector_kwargs):
    # Regression: at 64 px the top levels are 1x1, where oneDNN's bf16 weight gradient once returned 1e28.
    model = build(tiny_detector_kwargs, seed=0)
    images, targets = collate(make_samples(4, 64))
    x = model.normalize(images)
    model.compute_loss(x, targets)["loss"].backward()
    fp32 = {n: p.grad.abs().max() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.compute_loss(x.contiguous(memory_format=torch.channels_last), targets)["loss"].backward()
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert p.grad.abs().max() <= 2 * fp32[name] + 1e-3, name


def test_predict_keeps_the_models_mode_and_gives_the_same_boxes_in_either(tiny_detector_kwargs):
    model = build(tiny_detector_kwargs, score_thresh=0.0, nms_thresh=1.0)
    image = torch.from_numpy(np.random.default_rng(2).integers(0, 255, (3, 64, 80), dtype=np.uint8))
    model.train()
    from_training = model.predict(image, image_size=64, precision="fp32")[0]
    assert model.training and all(m.training for m in model.modules())  # given back in training mode
    model.eval()
    from_eval = model.predict(image, image_size=64, precision="fp32")[0]
    assert not any(m.training for m in model.modules())  # and left in eval mode
    assert torch.equal(from_training["boxes"], from_eval["boxes"]) and torch.equal(from_training["scores"], from_eval["scores"])
