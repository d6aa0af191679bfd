# Databricks notebook source
# MAGIC %md
# MAGIC # Batch recommendations from a registered model
# MAGIC
# MAGIC Score a whole table over Spark with a trained model, as `spark-recs recommend` and the bundle's
# MAGIC `batch_recommend` task do. **model** is an MLflow URI (`models:/<name>@<alias>`, `runs:/<id>/model`) or
# MAGIC a model file. A session model (GRU4Rec) recommends the next items after the last event of every session
# MAGIC of **input**; a user model (Popular, Bias, BiasedMF, ...) recommends for every user of **input**.
# MAGIC On serverless set **model_dir** to a Volume folder the workers can read.

# COMMAND ----------

dbutils.widgets.text("model", "models:/main.recs.gru4rec@challenger", "Model (MLflow URI or file)")
dbutils.widgets.text("input", "main.recs.sessions_test", "Sessions or users (file, path or table)")
dbutils.widgets.text("n", "20", "List length")
dbutils.widgets.text("output", "", "Output table or path (empty: show only)")
dbutils.widgets.text("config", "../conf/example.yaml", "Config (session column names)")
dbutils.widgets.text("model_dir", "", "Model folder for Spark Connect workers (empty: default)")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Recommend
# MAGIC The model travels to the workers once; each worker scores batches of sessions (or users) with one
# MAGIC matrix product and an exact top-N. With **output** set the lists are written as a table.

# COMMAND ----------

import matplotlib.pyplot as plt
from pyspark.sql import functions as F

from spark_recs.config import load_config
from spark_recs.runtime import get_spark
from spark_recs.tasks.scoring import recommend

spark = get_spark()
widget = dbutils.widgets.get
config = load_config(widget("config"), schema="gru4rec")
recs = recommend(
    spark,
    widget("model"),
    widget("input"),
    int(widget("n")),
    output=widget("output") or None,
    config=config,
    model_dir=widget("model_dir") or None,
)
display(recs.limit(20))

# COMMAND ----------

# MAGIC %md
# MAGIC ## What gets recommended
# MAGIC Catalogue coverage (distinct items in any list) and the items that appear in the most lists.

# COMMAND ----------

coverage = recs.agg(F.countDistinct("item").alias("items"), F.count("*").alias("rows")).toPandas()
display(coverage)
top = recs.groupBy("item").count().orderBy("count", ascending=False).limit(15).toPandas()
fig, ax = plt.subplots(figsize=(8, 3))
ax.bar(top["item"].astype(str), top["count"])
ax.set(xlabel="item", ylabel="lists", title="Most recommended items")
ax.tick_params(axis="x", labelrotation=60)
display(fig)
