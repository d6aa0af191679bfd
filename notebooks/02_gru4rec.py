# Databricks notebook source
# MAGIC %md
# MAGIC # GRU4Rec: prepare, train, evaluate
# MAGIC
# MAGIC The steps of the GRU4Rec task (`spark_recs.tasks.gru4rec`), as the bundle's job runs them: validate a `SessionId, ItemId, Time` log
# MAGIC and split whole sessions by time (`spark-recs prepare`), train GRU4Rec with per-epoch validation and
# MAGIC register it in MLflow (`spark-recs train`), and measure Recall@N / MRR@N on the test sessions
# MAGIC (`spark-recs evaluate`). The config is GRU4Rec's own schema (`conf/example.yaml`).
# MAGIC
# MAGIC **prepared** is where the split is written: a schema (`main.recs` -> tables `main.recs.sessions_train`,
# MAGIC ...) or a folder path. On Databricks **register_as** must be `catalog.schema.model`.

# COMMAND ----------

dbutils.widgets.text("config", "../conf/example.yaml", "GRU4Rec config (YAML)")
dbutils.widgets.text("overrides", "", "Overrides: section.key=value; ...")
dbutils.widgets.text("input", "main.recs.clicks", "Session log (file, path or table)")
dbutils.widgets.text("prepared", "main.recs", "Prepared sessions (schema or folder)")
dbutils.widgets.text("experiment", "spark_recs-gru4rec", "MLflow experiment")
dbutils.widgets.text("register_as", "main.recs.gru4rec", "Registered model (empty: do not register)")
dbutils.widgets.text("alias", "challenger", "Alias of the new version")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Configuration
# MAGIC Validated on load: an unknown key or an out-of-range value stops here with the key and the fix.

# COMMAND ----------

import matplotlib.pyplot as plt
import pandas as pd

from spark_recs import tasks
from spark_recs.config import load_config
from spark_recs.runtime import get_spark

spark = get_spark()
widget = dbutils.widgets.get
overrides = [item.strip() for item in widget("overrides").split(";") if item.strip()]
config = load_config(widget("config"), overrides, schema="gru4rec")
display(
    pd.DataFrame(
        [(s, k, str(v)) for s in ("model", "data_split", "evaluation") for k, v in config[s].items()],
        columns=["section", "key", "value"],
    )
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 1. Prepare
# MAGIC Rows that fail validation (null ids, unparseable times, exact duplicates) go to `sessions_rejected`
# MAGIC with a `reason`; the rest is split by session end time into train, valid and test.

# COMMAND ----------

prepared = tasks.run("prepare", spark, config, widget("input"), widget("prepared"))
display(pd.DataFrame([prepared.counts]))

# COMMAND ----------

# MAGIC %md
# MAGIC ## 2. Train
# MAGIC Each epoch logs the training loss and the validation Recall/MRR at the evaluation cutoffs to MLflow
# MAGIC (step = epoch); the model is logged, registered and given the alias.

# COMMAND ----------

trained = tasks.run(
    "train",
    spark,
    config,
    widget("prepared"),
    experiment=widget("experiment"),
    register_as=widget("register_as") or None,
    alias=widget("alias") or None,
)
history = trained.history[["epoch", "loss", "validation", "seconds"]]
display(history)
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
left.plot(history["epoch"], history["loss"], marker="o")
left.set(xlabel="epoch", ylabel="training loss")
right.plot(history["epoch"], history["validation"], marker="o")
right.set(xlabel="epoch", ylabel=f"valid recall@{trained.model.stopping_cutoff}")
display(fig)
print(f"model: {trained.model_uri} (MLflow run {trained.run_id})")

# COMMAND ----------

# MAGIC %md
# MAGIC ## 3. Evaluate
# MAGIC Next-item Recall@N and MRR@N on the test sessions (GRU4Rec's evaluation, tie mode from the config),
# MAGIC computed on the Spark workers and logged to an `evaluate` run.

# COMMAND ----------

evaluation = tasks.run(
    "evaluate", spark, config, widget("prepared"), trained.model_uri, experiment=widget("experiment")
)
display(pd.DataFrame([evaluation.metrics | evaluation.counts]))

# COMMAND ----------

# MAGIC %md
# MAGIC ## Where to look in MLflow
# MAGIC Experiment **experiment**: the `train-gru4rec` run has the parameters (`model.*`, `data_split.*`, ...),
# MAGIC the per-epoch charts (`train_loss`, `valid_recall_at_20`, `valid_mrr_at_20`) and the logged model;
# MAGIC the `evaluate` run has `recall_at_20` and `mrr_at_20`. *Models* shows the registered version and its alias.
