# Databricks notebook source
# MAGIC %md
# MAGIC # spark_recs quickstart: the demo job
# MAGIC
# MAGIC One job end to end, as `spark-recs demo` runs it: load and validate a session log (synthetic clicks
# MAGIC by default), apply GRU4Rec's preprocessing and time split, index the items, train the `Popular`
# MAGIC baseline, recommend the top 20 after every test event with a pandas UDF, compute Recall@20 and
# MAGIC MRR@20, and log the run to MLflow (experiment `spark_recs-demo`).
# MAGIC
# MAGIC Set the widgets, then *Run all*. On Databricks set **output** to a Volume path
# MAGIC (`/Volumes/<catalog>/<schema>/<volume>/demo`); locally it defaults to `.spark_recs/demo`.

# COMMAND ----------

dbutils.widgets.text("config", "../conf/demo.yaml", "Config (YAML)")
dbutils.widgets.text("sessions", "", "Sessions: file, path or table (empty: synthetic)")
dbutils.widgets.text("n_events", "200000", "Synthetic events")
dbutils.widgets.text("n_items", "2000", "Synthetic items")
dbutils.widgets.text("test_days", "1", "Test days")
dbutils.widgets.text("output", "", "Output folder (empty: work dir)")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Configuration
# MAGIC `conf/demo.yaml` holds every setting (defaults and rules: `DemoConfig` in `spark_recs/tasks/demo.py`);
# MAGIC the widgets override it, as `--set section.key=value` does on the command line.

# COMMAND ----------

import matplotlib.pyplot as plt
import pandas as pd

from spark_recs import tasks
from spark_recs.config import load_config, override
from spark_recs.runtime import get_spark

spark = get_spark()
widget = dbutils.widgets.get
overrides = [
    override("data.sessions", widget("sessions") or None),
    override("data.n_events", int(widget("n_events"))),
    override("data.n_items", int(widget("n_items"))),
    override("data.test_days", float(widget("test_days"))),
    override("paths.output", widget("output") or None),
]
config = load_config(widget("config"), overrides, schema="demo")
display(
    pd.DataFrame(
        [(s, k, v) for s in ("data", "evaluation") for k, v in config[s].items()],
        columns=["section", "key", "value"],
    )
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Run the job
# MAGIC Seven steps, each printing a progress line: load and validate, preprocess and split, index, train,
# MAGIC recommend (pandas UDF), evaluate, log to MLflow.

# COMMAND ----------

result = tasks.run("demo", spark, config)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Metrics and row counts
# MAGIC Every input row is accounted for: `rows_in = accepted + rejected`; the split counts what each step kept.
# MAGIC The same numbers are in the MLflow run (experiment `spark_recs-demo`, run `demo-popular`).

# COMMAND ----------

display(pd.DataFrame([result.metrics]))
display(pd.DataFrame(sorted(result.counts.items()), columns=["count", "rows"]))
print(f"MLflow run {result.run_id} in {result.tracking_uri}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## The recommendations
# MAGIC One list of 20 items after every test event (`position` = events seen). The plot shows how often each
# MAGIC item is recommended first: a popularity baseline recommends the same head items to everyone.

# COMMAND ----------

recs = spark.read.format(result.format).load(f"{result.output}/recommendations")
display(recs.orderBy(config["data"]["session_key"], "position", "rank").limit(20))
top = recs.where("rank = 1").groupBy("item").count().orderBy("count", ascending=False).limit(10).toPandas()
fig, ax = plt.subplots(figsize=(7, 3))
ax.bar(top["item"].astype(str), top["count"])
ax.set(xlabel="item", ylabel="lists it tops", title="Items recommended first")
display(fig)
