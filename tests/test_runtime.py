"""Runtime: where the session, the storage format, the work dir and the MLflow store come from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spark_recs import runtime
from spark_recs.runtime import default_tracking_uri, get_spark, is_connect, storage_format, work_dir


@pytest.fixture
def fresh_formats(monkeypatch):
    """Forget the per-session storage format decisions for this test (they are cached per session)."""
    monkeypatch.setattr(runtime, "_formats", {})
    monkeypatch.delenv("SPARK_RECS_STORAGE_FORMAT", raising=False)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)


def test_work_dir_defaults_to_dot_spark_recs(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARK_RECS_HOME", raising=False)
    monkeypatch.chdir(tmp_path)

    assert work_dir() == tmp_path / ".spark_recs"
    assert (tmp_path / ".spark_recs").is_dir()


def test_work_dir_honours_spark_recs_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARK_RECS_HOME", str(tmp_path / "home"))

    assert work_dir() == tmp_path / "home"
    assert (tmp_path / "home").is_dir()


def test_tracking_uri_from_environment(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")

    assert default_tracking_uri() == "http://mlflow.example:5000"


def test_tracking_uri_defaults_to_sqlite_in_the_work_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    monkeypatch.setenv("SPARK_RECS_HOME", str(tmp_path))

    assert default_tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"


def test_tracking_uri_on_databricks(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")

    assert default_tracking_uri() == "databricks"


def test_configure_mlflow_uses_the_default_uri(mlflow_uri):
    import mlflow

    assert runtime.configure_mlflow(experiment="runtime-test") == mlflow_uri
    assert mlflow.get_tracking_uri() == mlflow_uri
    assert mlflow.get_experiment_by_name("runtime-test") is not None


def test_local_session_settings(spark, work_dir):
    same = get_spark(conf={"spark.sql.shuffle.partitions": spark.conf.get("spark.sql.shuffle.partitions")})

    assert same is spark
    assert not is_connect(spark)
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert Path(spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:")) == work_dir / "warehouse"
    assert spark.conf.get("spark.sql.catalogImplementation") == "hive"  # persistent, in the work dir
    assert Path(sys.executable) == Path(os.environ["PYSPARK_PYTHON"])


def test_remote_gives_a_connect_session(connect_spark):
    # A fresh process, as in production: pyspark refuses a remote session beside a classic one.
    parsed = connect_spark.client._builder.url  # the pysail server the fixture started
    url = f"sc://{parsed.hostname}:{parsed.port}"
    code = (
        "from pyspark.sql import functions as F\n"
        "from spark_recs.runtime import get_spark, is_connect\n"
        "s = get_spark()\n"
        "print(is_connect(s), s.range(3).select((F.col('id') * 2).alias('x')).collect()[-1].x)\n"
    )
    env = {**os.environ, "SPARK_REMOTE": url}
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "4"]


def test_storage_format_defaults(spark, connect_spark, fresh_formats):
    assert storage_format(connect_spark) == "delta"  # pysail writes Delta: the probe succeeds
    assert storage_format(spark) == "parquet"  # classic local Spark without Delta jars


@pytest.mark.parametrize("forced", ["delta", "parquet"])
def test_storage_format_forced_by_environment(any_spark, fresh_formats, monkeypatch, forced):
    monkeypatch.setenv("SPARK_RECS_STORAGE_FORMAT", forced)

    assert storage_format(any_spark) == forced


def test_storage_format_decided_once_per_session(spark, fresh_formats, monkeypatch):
    assert storage_format(spark) == "parquet"
    monkeypatch.setenv("SPARK_RECS_STORAGE_FORMAT", "delta")

    assert storage_format(spark) == "parquet"


def test_storage_format_rejects_bad_values(spark, fresh_formats, monkeypatch):
    monkeypatch.setenv("SPARK_RECS_STORAGE_FORMAT", "orc")

    with pytest.raises(
        ValueError, match=r"SPARK_RECS_STORAGE_FORMAT must be 'delta' or 'parquet', not 'orc'"
    ):
        storage_format(spark)


_SESSION = (
    "import pandas as pd\n"
    "from spark_recs.data.io import read_table, write_table\n"
    "from spark_recs.runtime import get_spark\n"
    "s = get_spark()\n"
    "def ids(n):\n"
    "    return s.createDataFrame(pd.DataFrame({'id': list(range(n))}))\n"
)


def _in_a_fresh_process(code: str, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
    env["SPARK_RECS_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-c", _SESSION + code], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_named_tables_outlive_the_process(tmp_path):
    """The embedded catalog is a Hive metastore in the work dir: the next process finds the table and
    can overwrite it (an in-memory catalog forgot it, and its leftover folder blocked the name)."""
    first = _in_a_fresh_process("write_table(ids(3), 'default.t')\n", tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]

    second = _in_a_fresh_process(
        "print(sorted(r.id for r in read_table(s, 'default.t').collect()))\n"
        "write_table(ids(1), 'default.t')\n"
        "print(sorted(r.id for r in read_table(s, 'default.t').collect()))\n",
        tmp_path,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.splitlines() == ["[0, 1, 2]", "[0]"]
    assert (tmp_path / "metastore_db").is_dir()


@pytest.mark.slow
def test_a_second_process_on_a_work_dir_in_use_gets_a_warning_not_a_java_trace(spark, work_dir, tmp_path):
    """Embedded Derby admits one process. This process holds the work dir's catalog (the session fixture
    opened it), so another process on the same work dir runs with a session-only catalog: paths work,
    named tables are a one-line error naming SPARK_RECS_HOME."""
    spark.catalog.listDatabases()  # the metastore is open, not only locked
    done = _in_a_fresh_process(
        f"write_table(ids(3), {str(tmp_path / 'ids')!r})\n"
        f"print(read_table(s, {str(tmp_path / 'ids')!r}).count())\n"
        "try:\n"
        "    write_table(ids(3), 'default.t')\n"
        "except ValueError as exc:\n"
        "    print(exc)\n",
        work_dir,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "3",
        f"named tables need the local catalog in {work_dir}, which another process is using: wait for it to "
        "finish, or set SPARK_RECS_HOME to another folder (a catalog of its own), or write to a path",
    ]
    warnings = [
        line for line in done.stderr.splitlines() if "another process is using the local catalog" in line
    ]
    assert len(warnings) == 1 and "SPARK_RECS_HOME" in warnings[0]
    assert "XSDB6" not in done.stderr and "\tat org." not in done.stderr  # Derby's lock error, Java frames


def test_cached_computes_a_connect_frame_once_and_the_scratch_goes_at_exit(
    connect_spark, tmp_path, monkeypatch
):
    # pysail ignores cache(): a frame used by several actions is written once and read back instead.
    monkeypatch.setenv("SPARK_RECS_SCRATCH", str(tmp_path / "scratch"))
    monkeypatch.setattr(runtime, "_scratch_dir", None)
    df = connect_spark.createDataFrame([(1, "a"), (2, None)], "id long, name string").where("id > 0")
    kept = runtime.cached(df)
    assert sorted(kept.collect()) == sorted(df.collect()) and kept.schema == df.schema
    files = [Path(f.removeprefix("file://")) for f in kept.inputFiles()]
    assert files and all((tmp_path / "scratch") in f.parents for f in files)
    empty = runtime.cached(df.where("id > 5"))  # no rows: still the schema
    assert empty.count() == 0 and empty.schema == df.schema
    # The scratch folder belongs to this process and is removed when it ends.
    script = (
        "import os, sys; sys.path.insert(0, os.getcwd()); from spark_recs import runtime; "
        "print(runtime._scratch())"
    )
    env = {**os.environ, "SPARK_RECS_SCRATCH": str(tmp_path / "child")}
    made = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert Path(made.stdout.strip()).parent == tmp_path / "child" and not Path(made.stdout.strip()).exists()
