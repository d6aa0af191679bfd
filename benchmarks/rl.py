"""Update steps per second of the off-policy RL algorithms at recnn's shapes (a script, not a test).

    python benchmarks/rl.py [--device cpu|cuda] [--batch-sizes 25 256] [--seconds 3] [--threads N]
                            [--algos ddpg td3 bcq reinforce] [--items 5000]

Networks as in recnn's examples: state 1290 (10 items x 128-d embeddings + 10 ratings), action 128,
``Actor(1290, 128, 256)``, ``Critic(1290, 128, 256)``, ``bcqGenerator(1290, 128, 256)``,
``bcqPerturbator(1290, 128, 256)``; REINFORCE's policy and behaviour policy are
``DiscreteActor(1290, items, 256)``. recnn's default params: DDPG updates its actor every 3rd step, TD3
every 10th, BCQ its perturbator every 30th (and draws 10 generator samples per next state), so a rate
averages over those schedules. Each cell: a seeded random batch, 5 warm-up updates, then updates until
``--seconds`` have passed (at least 30, one full BCQ cycle).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spark_recs.rl.algos import BCQ, DDPG, TD3, Reinforce  # noqa: E402
from spark_recs.rl.nets import Actor, Critic, DiscreteActor, bcqGenerator, bcqPerturbator  # noqa: E402

STATE, ACTION, HIDDEN = 1290, 128, 256


def build(name: str, items: int):
    if name == "ddpg":
        return DDPG(Actor(STATE, ACTION, HIDDEN), Critic(STATE, ACTION, HIDDEN))
    if name == "td3":
        return TD3(Actor(STATE, ACTION, HIDDEN), Critic(STATE, ACTION, HIDDEN), Critic(STATE, ACTION, HIDDEN))
    if name == "bcq":
        critics = Critic(STATE, ACTION, HIDDEN), Critic(STATE, ACTION, HIDDEN)
        return BCQ(bcqGenerator(STATE, ACTION, 256), bcqPerturbator(STATE, ACTION, HIDDEN), *critics)
    return Reinforce(DiscreteActor(STATE, items, HIDDEN), DiscreteActor(STATE, items, HIDDEN))


def make_batch(rows: int, items: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(rows)
    batch = {
        "state": torch.randn(rows, STATE, generator=g),
        "action": torch.randn(rows, ACTION, generator=g),
        "reward": torch.randn(rows, generator=g),
        "next_state": torch.randn(rows, STATE, generator=g),
        "done": (torch.rand(rows, generator=g) < 0.05).float(),
        "item": torch.randint(items, (rows,), generator=g),
        "user": torch.randint(100_000, (rows,), generator=g),
    }
    return {key: value.to(device) for key, value in batch.items()}


def steps_per_second(name: str, rows: int, items: int, device: torch.device, seconds: float) -> float:
    torch.manual_seed(0)
    algo = build(name, items).to(device)
    batch = make_batch(rows, items, device)
    for _ in range(5):
        algo.update(batch)
        algo.step()
    steps, start = 0, time.perf_counter()
    while steps < 30 or time.perf_counter() - start < seconds:
        algo.update(batch)  # returns floats: every step synchronises with the device
        algo.step()
        steps += 1
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[25, 256])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--algos", nargs="+", default=["ddpg", "td3", "bcq", "reinforce"])
    parser.add_argument(
        "--items", type=int, default=5000, help="REINFORCE's item count (recnn truncated to 5000)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {name}; torch {torch.__version__}; {args.seconds:g} s per cell")
    header = f"{'algorithm':<10}" + "".join(f"{f'batch {rows}':>26}" for rows in args.batch_sizes)
    print(header + "\n" + f"{'':<10}" + f"{'steps/s  transitions/s':>26}" * len(args.batch_sizes))
    for algo in args.algos:
        cells = []
        for rows in args.batch_sizes:
            rate = steps_per_second(algo, rows, args.items, device, args.seconds)
            cells.append(f"{rate:>11.1f} {rate * rows:>14,.0f}")
        print(f"{algo:<10}" + "".join(f"{cell:>26}" for cell in cells), flush=True)


if __name__ == "__main__":
    main()
