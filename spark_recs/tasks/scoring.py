"""Batch scoring of a saved or registered model over Spark: ``recommend`` (session or user models) and
``predict`` (user models). Ids are read in the model's id types; rows that cannot be used are counted,
printed and kept with a reason beside the output (:func:`rejected_location`)."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from spark_recs.data.io import write_table
from spark_recs.data.schema import Validated, require_columns, validate
from spark_recs.data.sources import read_sessions, read_source
from spark_recs.progress import Steps

from .base import note, session_settings
from .gru4rec import SECTIONS


def rejected_location(output: str) -> str:
    """Where :func:`recommend`/:func:`predict` keep the input rows they could not use: ``<output>_rejected``."""
    return f"{output.rstrip('/')}_rejected"


def _checked_input(checked: Validated, source: str, output: str | None, what: str, types: str) -> DataFrame:
    """The usable rows of a validated ``recommend``/``predict`` input; rejected rows are counted, printed
    and written beside ``output``; no usable row at all is an error naming the model's id types."""
    if checked.n_rejected:
        note(checked.summary())
        if output:
            write_table(checked.rejected, rejected_location(output))
            note(f"rejected rows (with a reason) written to {rejected_location(output)}")
    if checked.rows_in and not checked.n_accepted:
        raise ValueError(
            f"{what} {source}: none of the {checked.rows_in:,} rows has ids of the model's types ({types}); "
            f"{checked.summary()}"
        )
    return checked.accepted


def no_rows(what: str, source: str, output: str | None = None) -> ValueError:
    """The error of a step that made no ``what`` for a ``source`` that has rows."""
    where = f" (an empty table was written to {output})" if output else ""
    return ValueError(
        f"no {what} for any row of {source}{where}: the model knows none of its ids and has no fallback for "
        "them; check that the input and the model come from the same data"
    )


def _written(result: DataFrame, n_input: int, what: str, source: str, output: str | None) -> DataFrame:
    """``result``; once written to ``output``, an empty one for a non-empty input is an error (a returned,
    unwritten frame is lazy: whoever computes it checks, as the CLI does for the rows it prints)."""
    if output and n_input and result.count() == 0:
        raise no_rows(what, source, output)
    return result


def recommend(
    spark: SparkSession,
    model: str,
    source: str,
    n: int | None = 20,
    *,
    output: str | None = None,
    config: dict | None = None,
    every_prefix: bool = False,
    user_col: str = "user",
    sep: str | None = None,
    model_dir: str | None = None,
    tracking_uri: str | None = None,
) -> DataFrame:
    """Top-``n`` recommendations from ``model`` (a path or MLflow URI) for ``source``.

    A session model (GRU4Rec) reads ``source`` as a session log (columns from the config's ``data``
    section) and recommends the next items after each session's last event (after every event with
    ``every_prefix``); a user model reads the users of ``source`` (column ``user_col``). Ids are read in
    the model's id types; rows that cannot be used (null ids, ids of another type) are counted, printed
    and written to :func:`rejected_location` of ``output``. Written to ``output`` (a table or path) when
    given; returns the recommendations as a DataFrame. Writing no recommendation at all for a non-empty
    input is an error.
    """
    from spark_recs import batch
    from spark_recs.models.base import Recommender
    from spark_recs.serving.references import load_reference

    steps = Steps(2)
    with steps.step(f"Load model {model}"):
        handle = load_reference(model, tracking_uri)
        loaded = handle.model
        note(f"{type(loaded).__name__}")
    what = f"Recommend the top {n} for {source}" + (f" into {output}" if output else "")
    with steps.step(what):
        if isinstance(loaded, Recommender):
            users = read_source(spark, source, "users", sep)
            require_columns(users, [user_col], f"users {source}", settings={user_col: "--user-col"})
            user_type = loaded.user_vocab.spark_type
            checked = validate(
                users, [user_col], id_type={user_col: user_type}, duplicates=False, what=f"users {source}"
            )
            users = _checked_input(checked, source, output, "users", f"{user_col} {user_type}")
            recs = batch.recommend(handle, users, n, user_col=user_col, output=output, model_dir=model_dir)
            return _written(recs, checked.n_accepted, "recommendations", source, output)
        keys = config["data"] if config else {k: v[0] for k, v in SECTIONS["data"].items()}
        vocabulary = getattr(loaded, "item_vocab", None)
        item_type = vocabulary.spark_type if vocabulary is not None else "long"
        checked = read_sessions(
            spark,
            source,
            "sessions",
            **keys,
            sep=sep,
            id_type={keys["item_key"]: item_type},
            settings=session_settings(keys),
        )
        events = _checked_input(checked, source, output, "sessions", f"{keys['item_key']} {item_type}")
        recs = batch.recommend_sessions(
            handle, events, n, every_prefix, **keys, output=output, model_dir=model_dir
        )
        return _written(recs, checked.n_accepted, "recommendations", source, output)


def predict(
    spark: SparkSession,
    model: str,
    source: str,
    *,
    output: str | None = None,
    user_col: str = "user",
    item_col: str = "item",
    sep: str | None = None,
    model_dir: str | None = None,
    tracking_uri: str | None = None,
) -> DataFrame:
    """Rating predictions of a user model for the ``user, item`` pairs of ``source`` (other columns, e.g.
    ``rating``, are kept; a ``prediction`` column is added). Ids are read in the model's id types; unusable
    rows go to :func:`rejected_location` of ``output``. Written to ``output`` when given."""
    from spark_recs import batch
    from spark_recs.models.base import Recommender
    from spark_recs.serving.references import load_reference

    steps = Steps(2)
    with steps.step(f"Load model {model}"):
        handle = load_reference(model, tracking_uri)
        loaded = handle.model
        if not isinstance(loaded, Recommender):
            raise ValueError(
                f"{model} is a session model ({type(loaded).__name__}) and predicts no ratings: "
                "use `spark-recs recommend` for it, or pass a user model (Bias, BiasedMF, ItemKNN, ...)"
            )
    with steps.step(f"Predict the pairs of {source}" + (f" into {output}" if output else "")):
        pairs = read_source(spark, source, "pairs", sep)
        require_columns(
            pairs,
            [user_col, item_col],
            f"pairs {source}",
            settings={user_col: "--user-col", item_col: "--item-col"},
        )
        types = {user_col: loaded.user_vocab.spark_type, item_col: loaded.item_vocab.spark_type}
        checked = validate(
            pairs, [user_col, item_col], id_type=types, duplicates=False, what=f"pairs {source}"
        )
        pairs = _checked_input(
            checked, source, output, "pairs", ", ".join(f"{c} {t}" for c, t in types.items())
        )
        preds = batch.predict(
            handle,
            pairs,
            user_col=user_col,
            item_col=item_col,
            output=output,
            model_dir=model_dir,
        )
        return _written(preds, checked.n_accepted, "predictions", source, output)
