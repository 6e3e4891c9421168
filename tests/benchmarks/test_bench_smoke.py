"""Smoke tests of the benchmark suite: it runs at tiny sizes and produces the expected tables.

Nothing here asserts a speed: timings on a shared CPU are noise at these sizes. What is checked is
that every section runs, names every contender, writes RESULTS.md without losing other sections,
and that the pieces with exact answers (round-robin order, FLOP formula, evaluator agreement) hold.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `benchmarks` lives at the repository root, beside `autotimm`
    sys.path.insert(0, str(REPO))

from benchmarks.__main__ import main  # noqa: E402
from benchmarks.config import BenchConfig, full, quick  # noqa: E402
from benchmarks.contenders import ContenderSpec, build_torchvision, synthetic_batch  # noqa: E402
from benchmarks.evaluator import run_report_overhead, synthetic_detections  # noqa: E402
from benchmarks.flops import DenseConv, conv3x3_flops, count_flops  # noqa: E402
from benchmarks.memory import rss_mib  # noqa: E402
from benchmarks.report import Table, replace_section  # noqa: E402
from benchmarks.runner import run_all  # noqa: E402
from benchmarks.timing import Stats, interleave  # noqa: E402

TINY = dict(
    mode="custom", backbones=("resnet18",), image_size=128, batch_size=1, num_classes=3, fpn_channels=64,
    head_num_convs=1, repeats=1, warmup=0, memory_backbones=("resnet18",), memory_steps=1,
    memory_contenders=("autotimm:fcos:auto", "torchvision:fcos:fp32"),
    accuracy_image_size=128, accuracy_batch_size=2, accuracy_steps=1, accuracy_val_images=2,
    accuracy_contenders=("autotimm:fcos:auto", "torchvision:fcos:auto"), eval_images=4, eval_detections=5,
    onnx_backbones=("resnet18",),
)  # fmt: skip
DATA_LOADER = "## Data loader\n\nloader table kept as it was\n"


# ---------------------------------------------------------------- exact pieces
def test_interleave_runs_round_robin_with_rotating_start() -> None:
    calls: list[str] = []
    fns = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    stats = interleave(fns, repeats=2, warmup=1)
    # round 0 (warm-up): a b c; round 1: b c a; round 2: c a b
    assert calls == list("abc" "bca" "cab")
    assert {name: len(s.times) for name, s in stats.items()} == {"a": 2, "b": 2, "c": 2}


def test_stats_min_and_median() -> None:
    stats = Stats((3.0, 1.0, 2.0, 10.0))
    assert stats.min == 1.0
    assert stats.median == 2.5


def test_dense_conv_flops_match_the_hand_formula_and_the_counter() -> None:
    # 2 FLOPs per multiply-add: 2 * B * C_out * H * W * C_in * 3 * 3 = 2 * 1 * 64 * 8 * 8 * 64 * 9
    assert conv3x3_flops(1, 64, 8, 8) == 4_718_592
    conv = DenseConv(64, 1, 8, bf16=False)
    assert conv.flops == 4_718_592
    assert count_flops(conv) == 4_718_592
    assert conv().shape == (1, 64, 8, 8)


def test_synthetic_batch_follows_the_data_contract() -> None:
    images, targets = synthetic_batch(2, 128, num_classes=5, boxes_per_image=3, seed=1)
    again, _ = synthetic_batch(2, 128, num_classes=5, boxes_per_image=3, seed=1)
    assert images.dtype == torch.uint8 and images.shape == (2, 3, 128, 128)
    assert torch.equal(images, again)
    for t in targets:
        assert t["boxes"].dtype == torch.float32 and t["boxes"].shape == (3, 4)
        assert t["labels"].dtype == torch.int64 and t["labels"].shape == (3,)
        assert bool(((t["labels"] >= 0) & (t["labels"] < 5)).all())
        assert bool((t["boxes"][:, 2:] > t["boxes"][:, :2]).all())
        assert bool(((t["boxes"] >= 0) & (t["boxes"] <= 128)).all())


def test_synthetic_detections_shapes() -> None:
    preds, targets = synthetic_detections(3, 6, num_classes=4, seed=0)
    assert len(preds) == len(targets) == 3
    for p, t in zip(preds, targets):
        assert p["boxes"].shape == (6, 4) and p["scores"].shape == (6,) and p["labels"].dtype == torch.int64
        assert bool((p["boxes"][:, 2:] > p["boxes"][:, :2]).all())
        assert t["boxes"].shape[0] == t["labels"].shape[0] >= 1


def test_report_overhead_runs_both_and_they_agree() -> None:
    preds, targets = synthetic_detections(4, 10, num_classes=80, seed=0)
    table, result = run_report_overhead(BenchConfig(**{**TINY, "eval_images": 4, "eval_detections": 10}), preds, targets)
    assert table.column("computation") == ["mAP only (pycocotools COCOeval)", "EvaluationReport (mAP + per-class, curves, confusion)"]
    assert result["map_diff"] < 1e-9 and result["report_s"] > 0 and result["map_only_s"] > 0


def test_torchvision_twin_matches_autotimm_head_depth_and_width() -> None:
    model = build_torchvision("retinanet", "resnet18", num_classes=3, image_size=128, fpn_channels=64, head_num_convs=2)
    assert len(model.head.classification_head.conv) == 2
    assert len(model.head.regression_head.conv) == 2
    assert model.backbone.out_channels == 64
    fcos = build_torchvision("fcos", "resnet18", num_classes=3, image_size=128, fpn_channels=64, head_num_convs=3)
    convs = [m for m in fcos.head.classification_head.conv.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3


def test_contender_keys_round_trip_and_name_their_variant() -> None:
    spec = ContenderSpec.parse("autotimm:fcos:fp32:zeroinit")
    assert (spec.library, spec.arch, spec.precision, spec.variant) == ("autotimm", "fcos", "fp32", "zeroinit")
    assert spec.key == "autotimm:fcos:fp32:zeroinit"
    assert spec.name == "autotimm FCOS fp32 (timm zero_init_last)"
    assert ContenderSpec.parse("torchvision:retinanet").key == "torchvision:retinanet:auto"


def test_zeroinit_variant_zeroes_the_residual_batchnorms() -> None:
    from benchmarks.contenders import build_autotimm

    def last_bn_weights(model: torch.nn.Module) -> torch.Tensor:
        return torch.cat([m.bn2.weight.detach() for m in model.backbone.modules() if hasattr(m, "bn2") and hasattr(m, "conv2")])

    assert bool((last_bn_weights(build_autotimm("fcos", "resnet18", 3, 64, 1)) == 1).all())  # autotimm from scratch
    assert bool((last_bn_weights(build_autotimm("fcos", "resnet18", 3, 64, 1, variant="zeroinit")) == 0).all())


def test_rss_is_read() -> None:
    peak, now = rss_mib("VmHWM"), rss_mib("VmRSS")
    assert now > 10
    assert peak >= now


def test_replace_section_keeps_the_other_sections() -> None:
    notes = "## Notes on the detector results\n\nhand-written\n"
    text = "# Benchmark results\n\n" + DATA_LOADER + "\n" + notes
    once = replace_section(text, "Detectors (quick run)", "## Detectors (quick run)\n\nfirst\n")
    # a new section goes after the loader section and before the notes
    assert once.index("## Data loader") < once.index("## Detectors (quick run)") < once.index("## Notes")
    assert "loader table kept as it was" in once and "first" in once and "hand-written" in once
    twice = replace_section(once, "Detectors (quick run)", "## Detectors (quick run)\n\nsecond\n")
    assert twice.count("## Detectors (quick run)") == 1
    assert "second" in twice and "first" not in twice
    assert twice.startswith("# Benchmark results\n\n" + DATA_LOADER) and twice.endswith(notes)
    appended = replace_section("# Benchmark results\n\n" + DATA_LOADER, "Detectors (full run)", "## Detectors (full run)\n\nx\n")
    assert appended == "# Benchmark results\n\n" + DATA_LOADER + "\n## Detectors (full run)\n\nx\n"


def test_table_formats_rows_and_rejects_wrong_width() -> None:
    table = Table("t", ["name", "value"])
    table.add("a", 1234.56)
    table.add("b", None)
    table.add("c", True)
    assert table.markdown().splitlines()[-3:] == ["| a | 1234.6 |", "| b | - |", "| c | yes |"]
    with pytest.raises(ValueError, match=r"row \('x',\) has 1 cells"):
        table.add("x")
    with pytest.raises(ValueError, match="no column 'missing'"):
        table.column("missing")


# ---------------------------------------------------------------- bad input
def test_bad_settings_are_refused_with_the_value_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"interleave\(repeats=0\): expected an int >= 1"):
        interleave({"a": lambda: None}, repeats=0)
    with pytest.raises(ValueError, match=r"image_size=200.*multiple of 128"):
        BenchConfig(image_size=200)
    # 160 suits the detectors (a multiple of 32): the rule is the benchmarks' own, and the message says so
    with pytest.raises(ValueError, match=r"accuracy_image_size=160\): expected a multiple of 128 .*benchmarks keep every "
                                         r"pyramid level P3-P7 exact; the models take any multiple of 32"):
        BenchConfig(accuracy_image_size=160)
    with pytest.raises(ValueError, match=r"unknown \['bogus'\]; valid sections: \['speed'"):
        BenchConfig(sections=("speed", "bogus"))
    with pytest.raises(ValueError, match=r"fpn_channels=48.*multiple of 32"):
        BenchConfig(fpn_channels=48)
    with pytest.raises(ValueError, match=r"arch='yolox'\) for library 'torchvision': expected one of \['fcos', 'retinanet'\]"):
        ContenderSpec.parse("torchvision:yolox")
    with pytest.raises(ValueError, match=r"contender 'autotimm': expected 'library:arch\[:precision\[:variant\]\]'"):
        ContenderSpec.parse("autotimm")
    with pytest.raises(ValueError, match=r"variant='zeroinit'\) for library 'torchvision': expected ''"):
        ContenderSpec.parse("torchvision:fcos:fp32:zeroinit")
    with pytest.raises(ValueError, match=r"backbone 'convnext_tiny' has no torchvision twin.*resnet50"):
        build_torchvision("fcos", "convnext_tiny", 3, 128, 64, 1)
    with pytest.raises(ValueError, match=r"no setting \['repeat'\]"):
        quick().with_overrides(repeat=3)


def test_presets_are_valid_and_full_is_bigger() -> None:
    q, f = quick(), full()
    assert q.image_size == f.image_size == 512 and q.batch_size == f.batch_size == 2
    assert q.backbones == f.backbones == ("resnet18", "resnet50")
    assert f.repeats > q.repeats and f.accuracy_steps > q.accuracy_steps
    assert f.accuracy_fp32_check and not q.accuracy_fp32_check


# ---------------------------------------------------------------- end to end
def test_equal_budget_batches_repeat_exactly() -> None:
    from benchmarks.accuracy import seeded_batches, shapes_datamodule

    dm = shapes_datamodule(BenchConfig(**{**TINY, "accuracy_batch_size": 2}))
    loader = dm.train_dataloader()
    first = [(images.clone(), [t["boxes"].clone() for t in targets]) for _, (images, targets) in seeded_batches(loader, 2, seed=3)]
    second = [(images, [t["boxes"] for t in targets]) for _, (images, targets) in seeded_batches(loader, 2, seed=3)]
    assert len(first) == len(second) == 2
    for (a_img, a_boxes), (b_img, b_boxes) in zip(first, second):
        assert torch.equal(a_img, b_img)
        assert all(torch.equal(a, b) for a, b in zip(a_boxes, b_boxes))


def test_every_section_runs_and_reports_every_contender(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n" + DATA_LOADER)
    cfg = BenchConfig(**TINY)
    report = run_all(cfg, "pytest smoke", results)

    names = [ContenderSpec.parse(k).name for k in cfg.speed_contenders]
    assert len(set(names)) == 6
    speed = report.table("Speed")
    assert speed.column("contender") == names
    assert all(t > 0 for t in speed.column("train median ms") + speed.column("infer median ms"))
    # each torchvision FCOS row is its own reference: ratio exactly 1
    for name, fp32_ratio in zip(names, speed.column("train x tv FCOS fp32")):
        if name == "torchvision FCOS fp32":
            assert fp32_ratio == 1.0

    efficiency = report.table("Efficiency")
    whats = efficiency.column("what")
    assert set(names) < set(whats)
    assert {"timm resnet18 backbone fp32", "dense conv3x3 fp32", "dense conv3x3 bf16+CL"} < set(whats)
    # equal backbone, FPN width and head depth: autotimm FCOS and torchvision FCOS count the same forward FLOPs
    gflop = dict(zip(whats, efficiency.column("forward GFLOP")))
    at, tv = gflop[ContenderSpec.parse("autotimm:fcos:auto").name], gflop["torchvision FCOS fp32"]
    assert abs(at - tv) / tv < 0.02
    assert gflop["dense conv3x3 fp32"] == pytest.approx(conv3x3_flops(1, 64, 16, 16) / 1e9)

    memory = report.table("Peak memory")
    assert memory.column("contender") == [names[0], "torchvision FCOS fp32"]  # names[0]: autotimm FCOS
    assert all(peak >= base > 0 for peak, base in zip(memory.column("peak RSS MiB"), memory.column("after build MiB")))

    accuracy = report.table("Accuracy")
    assert accuracy.column("contender") == [ContenderSpec.parse(k).name for k in cfg.accuracy_contenders]
    assert all(0.0 <= m <= 1.0 for m in accuracy.column("val mAP@[.5:.95]"))

    evaluator = report.table("mAP computation time")
    assert len(evaluator.rows) == 3
    assert all(diff < 1e-6 for diff in evaluator.column("mAP diff vs pycocotools"))
    assert len(report.table("EvaluationReport overhead").rows) == 2

    onnx = report.table("onnxruntime")
    assert onnx.column("runtime")[-1] == "onnxruntime end-to-end"
    assert len(set(onnx.column("detections / image"))) == 1  # same post-processing settings everywhere

    targets = report.table("Targets").column("target")
    assert "resnet18 training step: autotimm FCOS vs torchvision FCOS fp32" in targets
    assert any(t.startswith("equal-budget mAP") for t in targets)

    written = results.read_text()
    assert written.count("## Detectors (custom run)") == 1
    assert written.index("## Data loader") < written.index("## Detectors (custom run)")
    assert "loader table kept as it was" in written
    assert "- command: `pytest smoke`" in written
    for title in ("### Speed", "### Efficiency", "### Peak memory", "### Accuracy", "### mAP computation time", "### onnxruntime", "### Targets"):
        assert title in written


def test_command_line_writes_a_custom_section(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    argv = ["--sections", "evaluator", "--eval-images", "3", "--eval-detections", "4", "--repeats", "1", "--results", str(results)]
    assert main(argv) == 0
    written = results.read_text()
    assert "## Detectors (custom run)" in written
    assert "python -m benchmarks --sections evaluator --eval-images 3" in written
    assert "pycocotools COCOeval (autotimm.metrics.coco_map)" in written
    with pytest.raises(SystemExit):
        main(["--quick", "--full"])
