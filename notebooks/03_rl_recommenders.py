# Databricks notebook source
# MAGIC %md
# MAGIC # RL recommenders: train an actor, compare it, serve it
# MAGIC
# MAGIC recnn's off-policy recommenders on Spark-prepared data, as `spark-recs train --config conf/rl-ddpg.yaml`
# MAGIC runs them: Spark builds each user's time-ordered history, item embeddings come from matrix
# MAGIC factorisation (or genre/tag features), `FrameEnv` turns histories into (state, action, reward, next
# MAGIC state) transitions, and DDPG / TD3 / BCQ / REINFORCE train the policy. The trained policy is a model
# MAGIC like any other: it is evaluated on a per-user temporal holdout (last rating = test), registered in
# MAGIC MLflow, and scored over Spark by `batch.recommend`.
# MAGIC
# MAGIC **config** is one of `conf/rl-ddpg.yaml`, `rl-td3.yaml`, `rl-bcq.yaml`, `rl-reinforce.yaml`; on
# MAGIC Databricks **registered_model** must be `catalog.schema.model`.

# COMMAND ----------

dbutils.widgets.text("config", "../conf/rl-ddpg.yaml", "RL config (YAML)")
dbutils.widgets.text("overrides", "", "Overrides: section.key=value; ...")
dbutils.widgets.text("ratings", "../../shared/data/ml-latest-small", "Ratings (MovieLens folder, file or table)")
dbutils.widgets.text("registered_model", "main.recs.rl_ddpg", "Registered model (empty: do not register)")
dbutils.widgets.text("users", "1, 2, 3, 4, 5", "Users to show recommendations for")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Configuration
# MAGIC Validated on load: an unknown key or an out-of-range value stops here with the key and the fix.

# COMMAND ----------

import matplotlib.pyplot as plt
import pandas as pd

from spark_recs import batch, tasks
from spark_recs.config import load_config
from spark_recs.runtime import get_spark

spark = get_spark()
widget = dbutils.widgets.get
overrides = [item.strip() for item in widget("overrides").split(";") if item.strip()]
config = load_config(widget("config"), [f"data.ratings={widget('ratings')}", *overrides], schema="rl")
display(pd.DataFrame([(s, k, v) for s, keys in config.items() if isinstance(keys, dict) for k, v in keys.items()],
                     columns=["section", "key", "value"]))  # fmt: skip

# COMMAND ----------

# MAGIC %md
# MAGIC ## Train, evaluate on the holdout, register
# MAGIC One MLflow run: the config as params, per-update and per-epoch losses as step metrics, the holdout's
# MAGIC HR@k / nDCG@k (the log2(rank + 1) discount) / MRR / coverage, the item embeddings (Parquet) and the
# MAGIC registered recommender.

# COMMAND ----------

trained = tasks.run("train", spark, config, register_as=widget("registered_model"))
display(trained.evaluation if trained.evaluation is not None else pd.DataFrame())
print(f"MLflow run {trained.run_id}; model {trained.model_uri}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Training curves
# MAGIC Mean losses per epoch on the training users, and on the held-out test users (no updates there).

# COMMAND ----------

history = trained.history.set_index("epoch")
losses = [c for c in history.columns if c.startswith(("train_", "test_")) and "seconds" not in c]
figure, axis = plt.subplots(figsize=(7, 3.5))
history[losses].plot(ax=axis, marker="o")
axis.set_xlabel("epoch")
axis.set_ylabel("mean loss")
display(figure)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Batch recommendations from the registry
# MAGIC The registered model (or this run's model when not registered) is shipped to the Spark workers once
# MAGIC and scores each user's last frame against every item embedding; rated items are excluded.

# COMMAND ----------

users = [int(u) for u in widget("users").split(",") if u.strip()]
recs = batch.recommend(trained.model_uri, users, 10, spark=spark).toPandas()
display(recs)
