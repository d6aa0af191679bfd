"""Cross-check against LensKit 0.14 itself on one fold: Bias predictions, Popular lists and the top-N metrics.

LensKit is not a dependency: download its 0.14.4 wheel and point ``--lenskit`` at the unpacked folder
(``pip download lenskit==0.14.4 --no-deps && unzip lenskit-0.14.4-py3-none-any.whl -d lk``). The fold is
read from a MultiEval folder written with ``persist_data()`` (``<path>/data/<DataSet>/<Partition>``).

Run:  .venv/bin/python benchmarks/lenskit_check.py --fold .spark_recs/multieval/ml-latest-small/data/ml-latest-small/1 --lenskit lk
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fold", required=True, help="folder holding train/ and test/ (Parquet)")
    parser.add_argument("--lenskit", required=True, help="folder with the unpacked lenskit 0.14 package")
    args = parser.parse_args()
    sys.path.insert(0, args.lenskit)
    from lenskit import batch as lk_batch
    from lenskit import topn as lk_topn
    from lenskit.algorithms import Recommender as LkRecommender
    from lenskit.algorithms.basic import Popular as LkPopular
    from lenskit.algorithms.bias import Bias as LkBias

    from spark_recs.evaluation.accuracy import RecListAnalysis
    from spark_recs.models.bias import Bias
    from spark_recs.models.popular import Popular

    train = pd.read_parquet(f"{args.fold}/train")[["user", "item", "rating"]]
    test = pd.read_parquet(f"{args.fold}/test")[["user", "item", "rating"]]
    print(
        f"fold {args.fold}: {len(train):,} train rows, {len(test):,} test rows, {test.user.nunique()} test users"
    )

    ours = Bias(damping=5.0).fit(train)
    theirs = LkBias(damping=5.0).fit(train)
    mine = ours.predict_pairs(
        ours.user_vocab.indices(test["user"].to_numpy()), ours.item_vocab.indices(test["item"].to_numpy())
    )
    lk = lk_batch.predict(theirs, test)["prediction"].to_numpy()
    known = ~np.isnan(lk)  # LensKit gives unknown items no prediction; ours falls back to mu + b_u
    print(
        f"Bias(damping=5) predictions: max |ours - LensKit| = {np.abs(mine[known] - lk[known]).max():.2e} "
        f"over {known.sum()} pairs ({(~known).sum()} with an item unknown to training)"
    )

    users = test["user"].unique()
    pop = Popular().fit(train)
    ours_recs = pd.concat([pop.recommend(u, 20).assign(user=u, rank=np.arange(1, 21)) for u in users])
    lk_pop = LkRecommender.adapt(LkPopular()).fit(train)
    lk_recs = lk_batch.recommend(lk_pop, users, 20)
    same = sum(
        ours_recs[ours_recs.user == u]["item"].tolist() == lk_recs[lk_recs.user == u]["item"].tolist()
        for u in users
    )
    print(f"Popular top-20 lists identical for {same} of {len(users)} users")

    analysis = RecListAnalysis()
    lk_analysis = lk_topn.RecListAnalysis()
    for name, k in (("precision", 10), ("recall", 10), ("ndcg", 10), ("recip_rank", None), ("hit", 10)):
        # LensKit 0.14's nDCG takes the truth's rating column as the gain when there is one; ours is
        # binary unless asked (gain="rating"), so ask.
        analysis.add_metric(name, k=k, gain="rating" if name == "ndcg" else None)
        lk_fn = getattr(lk_topn, name)
        lk_analysis.add_metric(
            lk_fn, k=k, name=name if k is None else f"{name}@{k}"
        ) if k else lk_analysis.add_metric(lk_fn)
    ours_table = analysis.compute(ours_recs[["user", "rank", "item"]], test).set_index("user")
    lk_table = lk_analysis.compute(lk_recs[["user", "rank", "item"]], test, include_missing=True).fillna(0)
    lk_table = lk_table.reset_index().set_index("user")
    for column in analysis.metric_names:
        lk_column = column if column in lk_table else column.split("@")[0]
        diff = (ours_table[column] - lk_table.loc[ours_table.index, lk_column]).abs().max()
        print(
            f"  {column:<12} mean ours {ours_table[column].mean():.6f}  LensKit {lk_table[lk_column].mean():.6f}  max diff {diff:.1e}"
        )


if __name__ == "__main__":
    main()
