"""The accuracy-vs-time benchmark: its arithmetic (budgets to steps, steps to the evaluation they reach,
the combined table) and the configs it builds. (Training and timing are run by hand; see the module docstring.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `benchmarks` lives at the repository root, beside `autotimm`
    sys.path.insert(0, str(REPO))

from benchmarks.time_to_accuracy import ALL_CONFIGS, CONFIGS, budget_map, build, epochs_for_budget, main, make_table  # noqa: E402

CURVE = [
    {"epoch": 1, "step": 20, "map": 0.10, "map_50": 0.30},
    {"epoch": 2, "step": 40, "map": 0.20, "map_50": 0.50},
    {"epoch": 3, "step": 60, "map": 0.25, "map_50": 0.60},
]


def test_epochs_for_budget():
    assert epochs_for_budget(4, 0.5, 20) == 24  # 480 steps
    assert epochs_for_budget(1, 2.0, 20) == 2  # 30 steps -> 2 whole epochs
    assert epochs_for_budget(0.01, 10.0, 20) == 1
    with pytest.raises(ValueError, match="all must be positive"):
        epochs_for_budget(1, 0, 20)


def test_budget_map_takes_the_last_evaluation_within_the_steps():
    assert budget_map(CURVE, 19.9) is None
    assert budget_map(CURVE, 20)["map"] == 0.10
    assert budget_map(CURVE, 59)["map"] == 0.20
    assert budget_map(CURVE, 1000)["map"] == 0.25


def test_table_reads_budgets_through_each_configs_step_time():
    accuracy = {"fast": {"epochs": 3, "steps_per_epoch": 20, "curve": CURVE},
                "slow": {"epochs": 2, "steps_per_epoch": 20, "curve": CURVE[:2]}}
    timing = {"fast": {"s_per_step": 1.0, "infer_ms_per_image": 5.0}, "slow": {"s_per_step": 3.0, "infer_ms_per_image": 20.0}}
    lines = make_table(accuracy, timing, budgets=[1, 2]).splitlines()
    assert lines[0] == "| config | s/step | infer ms/img | mAP / mAP50 at 1 min | mAP / mAP50 at 2 min | mAP / mAP50 at epoch 2 |"
    # fast: 60 and 120 steps -> steps 60 and 60 (its run ended at 60); slow: 20 and 40 steps
    assert lines[2] == "| fast | 1.000 | 5.0 | 0.250 / 0.600 (step 60) | 0.250 / 0.600 (step 60) (run ended first) | 0.200 / 0.500 |"
    assert lines[3] == "| slow | 3.000 | 20.0 | 0.100 / 0.300 (step 20) | 0.200 / 0.500 (step 40) | 0.200 / 0.500 |"


def test_table_command_combines_the_two_files(tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps({"image_size": 256, "nano": {"epochs": 3, "steps_per_epoch": 20, "curve": CURVE}}))
    (tmp_path / "t.json").write_text(json.dumps({"nano": {"s_per_step": 0.5, "infer_ms_per_image": 4.0}, "_machine": {}}))
    (tmp_path / "u.json").write_text(json.dumps({"yolov8n": {"epochs": 2, "steps_per_epoch": 20, "curve": CURVE[:2]}, "seed": 0}))
    (tmp_path / "v.json").write_text(json.dumps({"yolov8n": {"s_per_step": 0.25}, "_machine": {}}))
    main(["table", "--accuracy", str(tmp_path / "a.json"), str(tmp_path / "u.json"),
          "--timing", str(tmp_path / "t.json"), str(tmp_path / "v.json"), "--budgets", "0.25"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("| mAP / mAP50 at 0.25 min | mAP / mAP50 at epoch 2 |")
    assert out[2] == "| nano | 0.500 | 4.0 | 0.100 / 0.300 (step 20) | 0.200 / 0.500 |"  # 0.25 min = 30 steps -> step 20
    # 60 steps > the 40 it trained: marked; no inference time in its timing file: "-"
    assert out[3] == "| yolov8n | 0.250 | - | 0.200 / 0.500 (step 40) (run ended first) | 0.200 / 0.500 |"


def test_accuracy_refuses_a_timing_file_without_the_config(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"nano": {"s_per_step": 0.5, "infer_ms_per_image": 4.0}}))
    with pytest.raises(SystemExit, match=r"no s/step for \['small'\]"):
        main(["accuracy", "--configs", "small", "--timing", str(tmp_path / "t.json"), "--out", str(tmp_path / "a.json")])


def test_nano_dw_is_the_nano_preset_with_a_depthwise_head():
    assert "nano_dw" in ALL_CONFIGS and "nano_dw" not in CONFIGS  # an ablation, not in the default run
    nano, dw = build("nano", epochs=1, num_workers=0), build("nano_dw", epochs=1, num_workers=0)
    hp_nano, hp_dw = dict(nano.model.hparams), dict(dw.model.hparams)
    assert (hp_nano.pop("head_conv"), hp_dw.pop("head_conv")) == ("dense", "depthwise")
    assert hp_dw == hp_nano and dw.model.detection_head.head.head_conv == "depthwise"
    assert (dw.datamodule.image_size, dw.datamodule.batch_size) == (nano.datamodule.image_size, nano.datamodule.batch_size)
