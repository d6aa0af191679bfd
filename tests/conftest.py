"""Shared fixtures: one classic local SparkSession, one pysail Spark Connect server, a temp MLflow store,
and paths to the real data sets in ../shared/data (tests that need them skip when absent)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run: a failure is reproducible, never a one-off.
settings.register_profile("spark_recs", derandomize=True)
settings.load_profile("spark_recs")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def reads_during(read: Callable[[], int], writes: Callable[[], None]) -> tuple[list[int], list[Exception]]:
    """Run ``read`` in a loop on a thread while ``writes`` runs; return what the reads saw and their errors."""
    seen, errors, done = [], [], threading.Event()

    def read_in_a_loop():
        while not done.is_set():
            try:
                seen.append(read())
            except Exception as exc:  # what such tests are about: no read may fail
                errors.append(exc)

    reader = threading.Thread(target=read_in_a_loop)
    reader.start()
    try:
        writes()
    finally:
        done.set()
        reader.join()
    return seen, errors


def shared_data(relative: str) -> Path:
    """Path to a file or folder under ../shared/data, or skip the test with a clear message."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real data set not found at {path} (expected ../shared/data beside the project)")
    return path


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spark_recs_home")
    os.environ["SPARK_RECS_HOME"] = str(path)
    return path


@pytest.fixture(scope="session")
def spark(work_dir):
    """The classic local SparkSession, one per test run."""
    from spark_recs.runtime import get_spark

    session = get_spark(conf={"spark.sql.shuffle.partitions": "4", "spark.driver.memory": "2g"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def _connect_session(work_dir):
    pysail = pytest.importorskip("pysail.spark", reason="pysail (dev extra) is needed for the Connect leg")
    from pyspark.sql import SparkSession

    server = pysail.SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    host, port = server.listening_address
    session = SparkSession.builder.remote(f"sc://{host}:{port}").create()
    # Creating a Connect session switches pyspark.sql.functions to Connect columns process-wide;
    # switch it back so classic tests keep working, and let `connect_spark` switch it on per test.
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    yield session
    session.stop()
    server.stop()


@pytest.fixture
def connect_spark(_connect_session, monkeypatch):
    """A Spark Connect session on a local pysail server (the Databricks serverless code path)."""
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    return _connect_session


@pytest.fixture(params=["classic", "connect"])
def any_spark(request):
    """Runs a test twice: on classic local Spark and on Spark Connect (pysail)."""
    return request.getfixturevalue("spark" if request.param == "classic" else "connect_spark")


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: extra threads only add synchronisation (and stall on a busy machine)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch):
    """A real MLflow tracking store (SQLite) in a temp dir, set as the tracking URI for the test."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)
