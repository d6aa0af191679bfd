"""GRU4Rec estimator: parameters, session-parallel training, checkpoints, scoring, save/load.

Training follows the official implementation (hidasib/GRU4Rec_PyTorch_Official): sessions played in
parallel lanes in order of their first event, hidden state reset per lane at session boundaries and
detached after every step, negatives = the batch's other targets plus one shared popularity**alpha sample
per step, Adagrad with momentum updating item rows only where a batch touched them. Deliberate
differences are fixes of the reference's bugs: the logQ split between in-batch and sampled columns uses
the actual number of lanes at the shrinking end of an epoch, compatibility initialisation works for layers
of different sizes, one-hot input works with several layers, and models are saved without pickling.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...core.params import check_params, declarations, help_text, signature
from ...core.ranking import session_rank_counts
from ...progress import LINE_EVERY, Progress
from ..base import Model, read_file, write_file
from ..vocabulary import Vocabulary
from . import persistence, scoring
from .iterator import Schedule, build_schedule, group_sessions
from .losses import logq_correction, sampled_loss
from .network import GRU4RecNet
from .optim import RowSparseOptimizer, clip_grad_norm
from .params import GRU4RecParams, normalised
from .sampling import NegativeSampler

log = logging.getLogger(__name__)

# Parameters that may change between a checkpoint and the run resuming from it.
RESUMABLE_CHANGES = ("n_epochs", "checkpoint_dir", "device")


class GRU4Rec(Model):
    """Session-based recommender with GRU layers (Hidasi et al. 2016, Hidasi & Karatzoglou 2018).

    Parameters are those of the official implementation plus recpack's training conveniences:
    ``optimization_algorithm`` (``"adagrad"``: Adagrad with momentum, or ``"sgd"``), ``clipnorm`` (joint
    L2 norm of all gradients), validation with early stopping on Recall@``stopping_cutoff`` or
    MRR@``stopping_cutoff`` (``stopping_criterion``), ``keep_last`` (else the best validated epoch is
    kept), ``validation_sample_size`` (sessions drawn once from the validation data) and
    ``predict_topK`` (default list length of ``recommend``). ``logq`` applies to cross-entropy only;
    ``elu_param`` is the final activation of the ranking losses (0 = linear).
    """

    Params = GRU4RecParams

    def __init__(self, **params):
        self.set_params(**params)
        self.net: GRU4RecNet | None = None
        self.history_: list[dict] = []

    __init__.__signature__ = signature(GRU4RecParams)
    __init__.__doc__ = f"Parameters (:class:`GRU4RecParams`):\n\n{help_text(GRU4RecParams)}"

    # ---- parameters -----------------------------------------------------------------------------------

    def get_params(self, deep: bool = True) -> dict:
        """Constructor parameters by name (sklearn style)."""
        return {name: copy.copy(getattr(self, name)) for name in declarations(self)}

    def set_params(self, **params) -> GRU4Rec:
        """Set constructor parameters (sklearn style); unknown names and invalid values raise ``ValueError``
        (a :class:`~spark_recs.core.params.ConfigError`) and leave the model as it was. Parameters not
        set yet take their default."""
        current = {name: getattr(self, name) for name in declarations(self) if hasattr(self, name)}
        for name, value in check_params(self, current | normalised(params)).items():
            setattr(self, name, value)
        return self

    def _build_net(self, n_items: int) -> GRU4RecNet:
        embedding = self.layers[0] if self.embedding == "layersize" else int(self.embedding)
        return GRU4RecNet(
            n_items,
            self.layers,
            embedding,
            self.constrained_embedding,
            self.dropout_p_embed,
            self.dropout_p_hidden,
        )

    # ---- items ----------------------------------------------------------------------------------------

    @property
    def item_ids(self) -> np.ndarray:
        """Raw item id of each item index."""
        self._check_fitted()
        return self.item_vocab.ids

    @property
    def n_items(self) -> int:
        """Number of items the model scores (what ``recommend_sessions(n=None)`` lists)."""
        self._check_fitted()
        return len(self.item_vocab)

    def item_indices(self, raw_ids) -> np.ndarray:
        """Item index of each raw id, -1 for items not seen in training."""
        self._check_fitted()
        return self.item_vocab.indices(raw_ids)

    def item_embeddings(self) -> torch.Tensor:
        """A float32 CPU copy of the input item embedding, row ``i`` for item ``item_ids[i]``: ``E`` with a
        separate embedding, else the output item weights ``Wy`` (also the input with ``constrained_embedding``)."""
        self._check_fitted()
        weight = self.net.E if self.net.input_mode == "separate" else self.net.Wy
        return weight.detach().to("cpu", torch.float32, copy=True)

    def evaluating(self):
        """A context in which the network scores with dropout off, its previous mode restored on exit: an
        ``epoch_callback`` that validates during :meth:`fit` leaves the next epoch training with dropout."""
        import contextlib

        @contextlib.contextmanager
        def scoring_mode():
            self._check_fitted()
            training = self.net.training
            self.net.eval()
            try:
                yield self
            finally:
                self.net.train(training)

        return scoring_mode()

    def _check_fitted(self) -> None:
        if self.net is None:
            raise RuntimeError("this GRU4Rec model is not trained yet: call fit() or GRU4Rec.load()")

    # ---- training -------------------------------------------------------------------------------------

    def fit(
        self,
        train: pd.DataFrame,
        sample_cache_max_size: int = 10_000_000,
        compatibility_mode: bool = True,
        session_key: str = "SessionId",
        item_key: str = "ItemId",
        time_key: str = "Time",
        valid: pd.DataFrame | None = None,
        checkpoint_dir: str | Path | None = None,
        epoch_callback: Callable[[int, GRU4Rec], None] | None = None,
        progress_every: float | None = LINE_EVERY,
    ) -> GRU4Rec:
        """Train on ``train`` (columns ``session_key``, ``item_key`` (int or str ids), ``time_key``).

        ``compatibility_mode`` draws the initial weights as the reference does (NumPy, seed 42).
        ``valid`` enables per-epoch validation (early stopping, best-epoch selection). With a
        ``checkpoint_dir`` (or the ``checkpoint_dir`` parameter) the state is saved after every epoch and
        a later ``fit`` with the same parameters and data resumes from it, ending with the same weights
        as an uninterrupted run. ``epoch_callback(epoch, model)`` runs after each epoch's checkpoint.
        ``progress_every``: seconds between progress lines on stderr inside an epoch (events done, events/s,
        running loss); an epoch shorter than that prints none; ``None``: never.
        """
        check_params(self, self.get_params())  # also attributes assigned directly
        _check_columns(train, (session_key, item_key, time_key), "training data")
        if len(train) == 0:
            raise ValueError("training data is empty")
        nulls = [c for c in (session_key, item_key, time_key) if train[c].isna().any()]
        if nulls:
            raise ValueError(f"training data has missing values in column(s) {nulls}")
        device = torch.device(self.device)
        keys = {"session_key": session_key, "item_key": item_key, "time_key": time_key}

        item_ids = pd.unique(train[item_key].to_numpy())
        self.item_vocab = Vocabulary(item_ids)
        items = self.item_vocab.indices(train[item_key].to_numpy())
        counts = np.bincount(items, minlength=len(item_ids))
        sessions = group_sessions(items, train[session_key].to_numpy(), train[time_key].to_numpy())
        schedule = build_schedule(
            sessions, self.batch_size, min_lanes=1 if self.n_sample > 0 else 2, device=device
        )

        seeds = np.random.SeedSequence(self.seed).spawn(4)
        init_gen = torch.Generator().manual_seed(_torch_seed(seeds[0]))
        self._dropout_gen = torch.Generator(device=device).manual_seed(_torch_seed(seeds[1]))
        self.net = self._build_net(len(item_ids))
        if compatibility_mode:
            self.net.reset_parameters_compatible()
        else:
            self.net.reset_parameters(init_gen)
        self.net.to(device)
        self._sampler = None
        if self.n_sample > 0:
            # Samples do not depend on the cache size, so a small run need not draw the whole cache.
            cache_size = min(sample_cache_max_size, self.n_sample * max(1, schedule.n_steps * self.n_epochs))
            self._sampler = NegativeSampler(
                counts, self.sample_alpha, self.n_sample, cache_size, seeds[2], device=device
            )
        self._log_counts = torch.as_tensor(np.log(counts), dtype=torch.float32, device=device)
        self._optimizer = RowSparseOptimizer(
            dict(self.net.named_parameters()), self.optimization_algorithm, self.learning_rate, self.momentum
        )
        valid_sample = self._validation_sample(valid, keys, np.random.default_rng(seeds[3]))

        self.history_ = []
        progress = {"epoch": 0, "best_score": None, "best_state": None, "no_change": 0, "stopped": False}
        checkpoint_dir = checkpoint_dir if checkpoint_dir is not None else self.checkpoint_dir
        run_id = persistence.fingerprint(
            {k: v for k, v in self.get_params().items() if k not in RESUMABLE_CHANGES}
            | {"compatibility_mode": compatibility_mode},
            item_ids,
            sessions.items,
        )
        checkpoint = Path(checkpoint_dir) / persistence.CHECKPOINT_NAME if checkpoint_dir else None
        if checkpoint is not None and checkpoint.exists():
            progress = self._restore_checkpoint(checkpoint, run_id)
            log.info("resuming GRU4Rec training from %s after epoch %d", checkpoint, progress["epoch"])

        self.net.train()
        while progress["epoch"] < self.n_epochs and not progress["stopped"]:
            epoch = progress["epoch"] + 1
            t0 = time.perf_counter()
            loss = self._train_epoch(schedule, progress_every, f"GRU4Rec epoch {epoch}/{self.n_epochs}")
            seconds = time.perf_counter() - t0
            if not np.isfinite(loss):
                raise FloatingPointError(f"GRU4Rec training diverged in epoch {epoch} (loss {loss})")
            record = {
                "epoch": epoch,
                "loss": loss,
                "seconds": seconds,
                "events_per_s": schedule.n_events / seconds,
            }
            if valid_sample is not None:
                record["validation"] = self._validate_epoch(valid_sample, keys, progress)
            progress["epoch"] = epoch
            self.history_.append(record)
            log.info("epoch %d: %s", epoch, record)
            if checkpoint is not None:
                self._write_checkpoint(checkpoint, run_id, progress)
            if epoch_callback is not None:
                epoch_callback(epoch, self)
        if progress["best_state"] is not None and not self.keep_last:
            self.net.load_state_dict(progress["best_state"])
        self.net.eval()
        return self

    def _train_epoch(self, schedule: Schedule, progress_every: float | None = None, desc: str = "") -> float:
        """One pass over the schedule; returns the mean loss per event (progress lines as in :meth:`fit`)."""
        net, opt, sampler = self.net, self._optimizer, self._sampler
        dense = net.dense_parameters()
        item_weights = {name: getattr(net, name) for name in net.item_weight_names}
        hidden = net.zero_hidden(schedule.bounds[1] - schedule.bounds[0])
        use_logq = self.loss == "cross-entropy" and self.logq > 0
        total = torch.zeros((), dtype=torch.float64, device=self._log_counts.device)
        bounds = schedule.bounds
        lines = Progress(
            schedule.n_events,
            desc,
            "events",
            enabled=progress_every is not None,
            every=progress_every or 0.0,
            bar=False,
            final=False,
        )

        def running_loss() -> float:  # read (a device sync) only when a line is printed
            return float(total) * self.batch_size / lines.done

        for t in range(schedule.n_steps):
            a, b = bounds[t], bounds[t + 1]
            if t in schedule.keep:
                hidden = [h[schedule.keep[t]] for h in hidden]
            fresh = schedule.fresh[a:b].unsqueeze(1)
            hidden = [h.masked_fill(fresh, 0.0) for h in hidden]
            inputs, targets = schedule.inputs[a:b], schedule.targets[a:b]
            outputs = targets if sampler is None else torch.cat([targets, sampler.next()])
            scores, gathered = net.training_scores(inputs, outputs, hidden, self._dropout_gen)
            log_q = None
            if use_logq:
                log_q = logq_correction(self._log_counts, outputs, b - a, self.sample_alpha, self.logq)
            loss = sampled_loss(scores, self.loss, bpreg=self.bpreg, elu_param=self.elu_param, log_q=log_q)
            loss = loss / self.batch_size
            loss.backward()
            hidden = [h.detach() for h in hidden]
            row_grads = [(g.name, *g.gradient()) for g in gathered]
            if self.clipnorm is not None:
                clip_grad_norm([p.grad for p in dense.values()] + [g for _, _, g in row_grads], self.clipnorm)
            for name, param in dense.items():
                opt.step_dense(name, param.data, param.grad)
                param.grad = None
            for name, rows, grad in row_grads:
                opt.step_rows(name, item_weights[name].data, rows, grad)
            total += loss.detach()
            lines.update(b - a, loss=running_loss)
        return float(total) * self.batch_size / max(schedule.n_events, 1)

    # ---- validation and early stopping ----------------------------------------------------------------

    def _validation_sample(self, valid, keys, rng) -> pd.DataFrame | None:
        if valid is None:
            return None
        _check_columns(valid, keys.values(), "validation data")
        if self.validation_sample_size is None:
            return valid
        session_ids = pd.unique(valid[keys["session_key"]].to_numpy())
        if self.validation_sample_size >= len(session_ids):
            return valid
        chosen = rng.choice(session_ids, size=self.validation_sample_size, replace=False)
        return valid[valid[keys["session_key"]].isin(chosen)]

    def _validate_epoch(self, valid: pd.DataFrame, keys: dict, progress: dict) -> float:
        """Score the epoch on validation data; update the best state and the early-stopping counter."""
        self.net.eval()
        counts, _, _ = session_rank_counts(self, valid, self.stopping_cutoff, **keys)
        self.net.train()
        score = (counts.recall if self.stopping_criterion == "recall" else counts.mrr)(self.stopping_cutoff)
        best = progress["best_score"]
        if best is None or score > best + self.min_improvement:
            progress["best_score"], progress["no_change"] = score, 0
            progress["best_state"] = {k: v.clone() for k, v in self.net.state_dict().items()}
        else:
            progress["no_change"] += 1
            if self.stop_early and progress["no_change"] >= self.max_iter_no_change:
                progress["stopped"] = True
                log.info("early stopping: no improvement in %d epochs", progress["no_change"])
        return score

    # ---- checkpoints ----------------------------------------------------------------------------------

    def _write_checkpoint(self, path: Path, run_id: str, progress: dict) -> None:
        payload = {
            "format": persistence.CHECKPOINT_FORMAT,
            "run_id": run_id,
            "progress": json.dumps({k: v for k, v in progress.items() if k != "best_state"}),
            "history": json.dumps(self.history_),
            "state_dict": self.net.state_dict(),
            "best_state": progress["best_state"] or {},
            "optimizer": self._optimizer.state_dict(),
            "dropout_rng": self._dropout_gen.get_state(),
            "sampler": self._sampler.state_dict() if self._sampler is not None else {},
        }
        write_file(payload, path)

    def _restore_checkpoint(self, path: Path, run_id: str) -> dict:
        payload = read_file(path, device=self.device, what="a GRU4Rec checkpoint (written by GRU4Rec.fit)")
        if payload.get("format") != persistence.CHECKPOINT_FORMAT or payload.get("run_id") != run_id:
            raise ValueError(
                f"checkpoint {path} belongs to a different training run (other parameters or data); "
                "remove it or use another checkpoint_dir"
            )
        self.net.load_state_dict(payload["state_dict"])
        self._optimizer.load_state_dict(payload["optimizer"])
        self._dropout_gen.set_state(payload["dropout_rng"].cpu())
        if self._sampler is not None:
            self._sampler.load_state_dict(payload["sampler"])
        self.history_ = json.loads(payload["history"])
        progress = json.loads(payload["progress"])
        progress["best_state"] = payload["best_state"] or None
        return progress

    # ---- scoring --------------------------------------------------------------------------------------

    def next_item_scores(self, items: np.ndarray, offsets: np.ndarray, batch_size: int = 512):
        """For sessions ``items[offsets[s]:offsets[s + 1]]`` (item indices), yield ``(scores, targets)``
        batches: the scores of all items after each event but a session's last, and the next item."""
        self._check_fitted()
        self.net.eval()
        return scoring.next_item_scores(self.net, items, offsets, batch_size)

    def score_sessions(
        self, sessions: Sequence[Sequence[int]], every_prefix: bool = False, batch_size: int = 512
    ) -> torch.Tensor:
        """Scores of all items after the last event of each session (a sequence of item indices), or
        after every event with ``every_prefix`` (rows: sessions in order, then events in order).

        Each session starts from a zero hidden state; dropout is off.
        """
        self._check_fitted()
        self.net.eval()
        return scoring.session_scores(self.net, sessions, batch_size, every_prefix)

    def recommend(
        self, sessions: Sequence[Sequence], n: int | None = None, batch_size: int = 512
    ) -> pd.DataFrame:
        """Top-``n`` next items for each session given as raw item ids (unknown ids skipped).

        ``n`` defaults to ``predict_topK`` (20 when unset). Returns ``session, rank, item, score`` with
        ``session`` the position in ``sessions``; sessions with no known item get no rows.
        """
        n = n or self.predict_topK or 20
        indexed = [self.item_indices(s) for s in sessions]
        indexed = [(i, s[s >= 0]) for i, s in enumerate(indexed)]
        kept = [(i, s) for i, s in indexed if len(s)]
        if not kept:
            return pd.DataFrame({"session": [], "rank": [], "item": [], "score": []})
        scores = self.score_sessions([s for _, s in kept], batch_size=batch_size)
        top = scores.topk(min(n, scores.shape[1]), dim=1)
        k = top.indices.shape[1]
        return pd.DataFrame(
            {
                "session": np.repeat([i for i, _ in kept], k),
                "rank": np.tile(np.arange(1, k + 1), len(kept)),
                "item": self.item_vocab.ids[top.indices.cpu().numpy().ravel()],
                "score": top.values.cpu().numpy().ravel(),
            }
        )

    # ---- save / load ----------------------------------------------------------------------------------

    def state(self) -> dict:
        self._check_fitted()
        return {"net": self.net.state_dict(), **self.item_vocab.state("item")}

    @classmethod
    def from_state(cls, config: dict, state: dict) -> GRU4Rec:
        model = cls(**config)
        model.item_vocab = Vocabulary.from_state(state, "item")
        model.net = model._build_net(len(model.item_vocab))
        model.net.load_state_dict(state["net"])
        model.net.to(torch.device(model.device)).eval()
        return model


def _torch_seed(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1))


def _check_columns(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")
