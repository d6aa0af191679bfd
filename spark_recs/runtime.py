"""Where Spark and MLflow come from: Databricks, a Spark Connect remote, or an embedded local session.

Library code never asks for "the active session": it takes the session from its input
DataFrame (``df.sparkSession``) or an explicit argument, so classic and Connect sessions
can live side by side in one process (the tests do exactly that).
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import re
import shutil
import sys
import uuid
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

_DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
_DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
_CATALOG_BUSY = "spark.spark_recs.catalogBusy"  # set on a session that runs without the persistent catalog
_formats: dict[int, str] = {}
_scratch_dir: Path | None = None
_catalog_locks: dict[Path, int | None] = {}  # work dir -> its held lock, None: another process has it


def on_databricks() -> bool:
    """True inside a Databricks runtime (notebook, job or serverless)."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def work_dir() -> Path:
    """The local work directory (``$SPARK_RECS_HOME``, default ``.spark_recs``), created on demand."""
    path = Path(os.environ.get("SPARK_RECS_HOME", ".spark_recs")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_connect(spark: SparkSession) -> bool:
    """True for a Spark Connect session (Databricks serverless, shared clusters, pysail)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def get_spark(
    remote: str | None = None, app_name: str = "spark_recs", conf: dict | None = None
) -> SparkSession:
    """Return a SparkSession.

    On Databricks the runtime's session; with ``remote`` (or ``$SPARK_REMOTE``) a Spark
    Connect session to that URL (``sc://host:port``); otherwise an embedded ``local[*]``
    session whose warehouse and temp dirs live under :func:`work_dir`. ``conf`` adds or
    overrides Spark settings of the embedded session.
    """
    if on_databricks():
        return SparkSession.builder.getOrCreate()
    remote = remote or os.environ.get("SPARK_REMOTE")
    if remote:
        log.info("Connecting to Spark Connect at %s", remote)
        return SparkSession.builder.remote(remote).getOrCreate()
    return _local_session(app_name, conf or {})


def _local_session(app_name: str, conf: dict) -> SparkSession:
    java_home = os.environ.get("JAVA_HOME")
    if not shutil.which("java") and not (java_home and Path(java_home, "bin", "java").exists()):
        raise RuntimeError(
            "Java not found: local Spark needs a Java 17+ runtime (e.g. 'apt-get install openjdk-17-jre-headless'); "
            "install it or set JAVA_HOME, or use Spark Connect with SPARK_REMOTE=sc://host:port"
        )
    root = work_dir()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    cores = os.cpu_count() or 2
    settings = {
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.shuffle.partitions": str(2 * cores),
        "spark.default.parallelism": str(2 * cores),
        "spark.sql.warehouse.dir": str(root / "warehouse"),
        "spark.local.dir": str(root / "tmp"),
        "spark.driver.memory": os.environ.get("SPARK_RECS_DRIVER_MEMORY", "4g"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={root / 'derby'}",
        **_catalog_settings(root),
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": str(sys.stderr.isatty()).lower(),
    }
    jars = os.environ.get("SPARK_RECS_DELTA_JARS")
    if jars:
        settings.update(
            {
                "spark.jars": jars,
                "spark.sql.extensions": _DELTA_EXTENSION,
                "spark.sql.catalog.spark_catalog": _DELTA_CATALOG,
            }
        )
    settings.update(conf)
    builder = SparkSession.builder.master(os.environ.get("SPARK_RECS_MASTER", "local[*]")).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SPARK_RECS_LOG_LEVEL", "WARN"))
    return spark


def _catalog_settings(root: Path) -> dict:
    """A Hive metastore (embedded Derby) in the work dir, so named tables outlive the process as on
    Databricks; a session-only catalog while another process holds it (embedded Derby admits one
    process, and fails at the first catalog use with a long Java trace otherwise)."""
    if not _hold_catalog(root):
        return {"spark.sql.catalogImplementation": "in-memory", _CATALOG_BUSY: str(root)}
    metastore = f"jdbc:derby:;databaseName={root / 'metastore_db'};create=true"
    return {
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": metastore,
        # Record the schema version when the metastore is created: later starts then skip Hive's warnings.
        "spark.hadoop.hive.metastore.schema.verification.record.version": "true",
    }


def _hold_catalog(root: Path) -> bool:
    """Lock the work dir's catalog for the life of this process; False (and one warning) when another
    process holds it.

    The lock is taken at session start, before Spark opens the metastore (lazily, at the first catalog
    use), so two processes cannot both pass the check.
    """
    if root not in _catalog_locks:
        handle: int | None = os.open(root / "metastore_db.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            handle = None
            log.warning(
                "another process is using the local catalog in %s: this session's named tables are refused "
                "(paths work); set SPARK_RECS_HOME to another folder for a catalog of its own",
                root,
            )
        _catalog_locks[root] = handle  # kept open: the lock goes with the process
    return _catalog_locks[root] is not None


def check_catalog(spark: SparkSession) -> None:
    """Raise a ValueError when ``spark`` runs without the work dir's catalog (another process holds it)."""
    busy = None if is_connect(spark) else spark.conf.get(_CATALOG_BUSY, None)
    if busy:
        raise ValueError(
            f"named tables need the local catalog in {busy}, which another process is using: wait for it "
            "to finish, or set SPARK_RECS_HOME to another folder (a catalog of its own), or write to a path"
        )


def cached(df: DataFrame) -> DataFrame:
    """``df`` computed once for all the actions that follow. ``df.cache()`` on classic Spark; on Spark
    Connect, where serverless Databricks refuses caching and pysail ignores it (recomputing the whole plan
    on every action), ``df`` is written once and read back: to Parquet under ``$SPARK_RECS_SCRATCH``
    (default ``<work dir>/scratch``, removed when the process ends), or on Databricks without that setting
    with ``df.localCheckpoint()``."""
    spark = df.sparkSession
    if not is_connect(spark):
        return df.cache()
    if on_databricks() and "SPARK_RECS_SCRATCH" not in os.environ:
        return df.localCheckpoint()
    path = str(_scratch() / uuid.uuid4().hex)
    df.write.parquet(path)
    return spark.read.schema(df.schema).parquet(path)


def _scratch() -> Path:
    """This process's folder for :func:`cached` results, removed at exit."""
    global _scratch_dir
    if _scratch_dir is None:
        root = Path(os.environ.get("SPARK_RECS_SCRATCH") or work_dir() / "scratch")
        _scratch_dir = root / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        _scratch_dir.mkdir(parents=True)
        atexit.register(shutil.rmtree, _scratch_dir, ignore_errors=True)
    return _scratch_dir


def task_slots(spark: SparkSession) -> int:
    """How many tasks ``spark`` runs at once: the cores of a ``local[N]`` master (``local[*]``: this
    machine's), else the default parallelism (a cluster's cores); on Spark Connect the server's
    ``spark.default.parallelism`` when it tells, else this machine's cores. Divided by ``spark.task.cpus``."""

    def setting(key: str) -> str | None:
        try:
            return spark.conf.get(key, None)
        except Exception:  # some Connect servers do not expose every setting
            return None

    cores = os.cpu_count() or 1
    if is_connect(spark):
        slots = int(setting("spark.default.parallelism") or cores)
    else:
        master = spark.sparkContext.master
        found = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master)
        if found:
            slots = cores if found.group(1) == "*" else int(found.group(1) or 1)
        else:
            slots = spark.sparkContext.defaultParallelism
    return max(1, slots // int(setting("spark.task.cpus") or 1))


def storage_format(spark: SparkSession) -> str:
    """``"delta"`` where Delta is available to ``spark``, else ``"parquet"``; decided once per session.

    ``$SPARK_RECS_STORAGE_FORMAT`` forces the choice. Databricks has Delta; classic Spark has it
    when the Delta extension is configured (``$SPARK_RECS_DELTA_JARS``); a Spark Connect
    server is probed once with a one-row Delta write.
    """
    key = id(spark)
    if key not in _formats:
        forced = os.environ.get("SPARK_RECS_STORAGE_FORMAT")
        if forced:
            if forced not in ("delta", "parquet"):
                raise ValueError(f"SPARK_RECS_STORAGE_FORMAT must be 'delta' or 'parquet', not {forced!r}")
            fmt, why = forced, "SPARK_RECS_STORAGE_FORMAT"
        elif on_databricks():
            fmt, why = "delta", "Databricks runtime"
        elif is_connect(spark):
            fmt, why = (
                ("delta", "Spark Connect server writes Delta")
                if _probe_delta(spark)
                else (
                    "parquet",
                    "Spark Connect server has no Delta",
                )
            )
        elif _DELTA_EXTENSION in (spark.conf.get("spark.sql.extensions", "") or ""):
            fmt, why = "delta", "Delta extension on the classpath"
        else:
            fmt, why = "parquet", "no Delta jars (set SPARK_RECS_DELTA_JARS to enable Delta)"
        _formats[key] = fmt
        log.info("Storage format: %s (%s)", fmt, why)
    return _formats[key]


def _probe_delta(spark: SparkSession) -> bool:
    path = work_dir() / "tmp" / f"delta-probe-{uuid.uuid4().hex}"
    try:
        spark.range(1).write.format("delta").mode("overwrite").save(str(path))
        return spark.read.format("delta").load(str(path)).count() == 1
    except Exception as exc:  # any failure means "no Delta here"; the reason is logged
        log.info("Delta probe failed: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return False


def default_tracking_uri() -> str:
    """MLflow tracking URI: ``$MLFLOW_TRACKING_URI``, else ``databricks`` on Databricks, else SQLite in the work dir."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if on_databricks():
        return "databricks"
    return f"sqlite:///{work_dir() / 'mlflow.db'}"


def configure_mlflow(tracking_uri: str | None = None, experiment: str | None = None) -> str:
    """Point MLflow at ``tracking_uri`` (default :func:`default_tracking_uri`) and pick the experiment."""
    import mlflow

    uri = tracking_uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    if uri != "databricks":  # Databricks keeps its own registry (Unity Catalog)
        mlflow.set_registry_uri(uri)
    if experiment:
        mlflow.set_experiment(experiment)
    return uri
