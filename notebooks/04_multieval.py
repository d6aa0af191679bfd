# Databricks notebook source
# MAGIC %md
# MAGIC # Comparing user models with MultiEval
# MAGIC
# MAGIC LensKit-style evaluation, as `spark-recs multieval` runs it: cut the ratings into user crossfolds, fit
# MAGIC every algorithm of the config on every fold, recommend and predict over Spark, and compute LensKit's
# MAGIC metrics. MLflow gets one parent run with comparison plots and a nested run per RunId.
# MAGIC
# MAGIC **ratings** (optional) replaces `data.ratings`: a MovieLens folder, a `user, item, rating, timestamp`
# MAGIC file or a table. On Databricks set `evaluation.path` to a Volume folder through **overrides**.

# COMMAND ----------

dbutils.widgets.text("config", "../conf/multieval-ml-latest-small.yaml", "MultiEval config (YAML)")
dbutils.widgets.text("ratings", "", "Ratings (empty: the config's data.ratings)")
dbutils.widgets.text("overrides", "", "Overrides: section.key=value; ...")
dbutils.widgets.text("runs", "", "Only these RunIds (space separated; empty: all)")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Configuration
# MAGIC The algorithms, the split (`partitions`, `holdout`) and the evaluation settings come from the config.

# COMMAND ----------

import matplotlib.pyplot as plt
import pandas as pd

from spark_recs import tasks
from spark_recs.config import load_config, override
from spark_recs.runtime import get_spark
from spark_recs.tasks.multieval import multieval_summary

spark = get_spark()
widget = dbutils.widgets.get
overrides = [item.strip() for item in widget("overrides").split(";") if item.strip()]
if widget("ratings"):
    overrides.append(override("data.ratings", widget("ratings")))
config = load_config(widget("config"), overrides, schema="multieval")
display(pd.DataFrame(config["algorithms"]))

# COMMAND ----------

# MAGIC %md
# MAGIC ## Run every (dataset, partition, algorithm)
# MAGIC Completed runs are skipped when the notebook runs again; a failed fit is recorded and the others go on.

# COMMAND ----------

runs = [int(r) for r in widget("runs").split()] or None
results = tasks.run("multieval", spark, config, runs=runs)
display(results)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Mean metrics per algorithm
# MAGIC Averaged over the partitions; `TrainTime` and `RecTime` in seconds.

# COMMAND ----------

summary = multieval_summary(results)
display(summary.reset_index())
metrics = [c for c in summary.columns if c not in ("TrainTime", "RecTime")]
fig, axes = plt.subplots(1, len(metrics), figsize=(3 * len(metrics), 3), squeeze=False)
for ax, metric in zip(axes[0], metrics):
    ax.bar(summary.index, summary[metric])
    ax.set_title(metric)
    ax.tick_params(axis="x", labelrotation=45)
fig.tight_layout()
display(fig)
