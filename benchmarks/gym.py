"""Benchmark: the MovieLens rating Gym's evaluation table, PPO (``conf/gym.yaml``) against the baselines.

For each split (official folds ``1``..``5``, ``temporal``): PPO trained on the training rows as the config
says, then every method scored on the test rows (see :mod:`spark_recs.rl.gym_agent`). PPO's training time
is reported as wall seconds and as this process's CPU seconds (``ppo.threads`` torch threads; the CPU time
is the fairer number on a shared machine). No MLflow: ``spark-recs train --config conf/gym.yaml`` logs one
split's run.

Run:  .venv/bin/python benchmarks/gym.py --splits 1 2 3 4 5 temporal [--set ppo.total_timesteps=500000]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch

from spark_recs.config import load_config
from spark_recs.rl.gym import RatingData
from spark_recs.rl.gym_agent import evaluate, policy_from_ppo, train_ppo

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["accuracy", "mean_reward", "rmse", "mae", "rmse_expected", "mae_expected"]
SHARES = [f"share_{k}" for k in range(1, 6)]


def run_split(config: dict, split: str) -> pd.DataFrame:
    """The evaluation table of one split, with PPO's training wall and CPU seconds."""
    fold, kind = (None, "temporal") if split == "temporal" else (int(split), "fold")
    data = RatingData.load(config["data"]["path"], fold=fold, split=kind)
    wall, cpu = time.perf_counter(), time.process_time()
    agent, _ = train_ppo(data, config["env"], config["ppo"], progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    policy = policy_from_ppo(agent, data, config["ppo"]["hidden"])
    table = evaluate(data, policy, config["baselines"], config["ppo"]["seed"])
    return table.assign(split=split, ppo_wall_s=round(wall, 1), ppo_cpu_s=round(cpu, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", nargs="+", default=["1"], help="folds 1..5 and/or 'temporal'")
    parser.add_argument("--config", default=str(ROOT / "conf" / "gym.yaml"))
    parser.add_argument("--set", action="append", default=[], help="section.key=value overrides")
    args = parser.parse_args()
    config = load_config(args.config, args.set, schema=None)
    torch.set_num_threads(config["ppo"]["threads"])
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; PPO {config['ppo']['total_timesteps']} steps"
    )
    tables = []
    for split in args.splits:
        table = run_split(config, split)
        tables.append(table)
        ppo = table.iloc[0]
        print(f"\n== split {split}: PPO trained in {ppo.ppo_wall_s} s wall, {ppo.ppo_cpu_s} s CPU")
        print(table.set_index("method")[COLUMNS + SHARES].round(3).to_string())
    folds = [t for t in tables if t["split"].iloc[0] != "temporal"]
    if len(folds) > 1:
        mean = pd.concat(folds).groupby("method", sort=False)[COLUMNS + SHARES].mean()
        print(f"\n== mean over folds {[t['split'].iloc[0] for t in folds]}")
        print(mean.round(3).to_string())
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
