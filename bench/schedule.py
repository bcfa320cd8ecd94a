#!/usr/bin/python3
"""The order of a benchmark's measurements, shared by bench/run-bench.sh and
bench/rbd.sh. Usage: schedule.py SEED ROUNDS "CONFIGS" "WORKLOADS" [TRIES].

Prints "ROUND WORKLOAD POS CONFIG" per line, round by round. Each
workload's order in a round is the permutation (of TRIES, default 2000,
drawn from the seed) that repeats least what earlier rounds did: a
configuration at a place it held before, or right after the one it followed
before, and never the previous round's order when there is another. So over
n rounds each of n configurations takes each place about once (a Latin
square), none follows the same one every round, and no two rounds run
alike."""
import random
import sys
from collections import Counter

seed, rounds = int(sys.argv[1]), int(sys.argv[2])
cfg, wls = sys.argv[3].split(), sys.argv[4].split()
tries = int(sys.argv[5]) if len(sys.argv) > 5 else 2000
plan = {}
for wi, w in enumerate(wls):
    rng = random.Random(seed * 1000 + wi)
    place, after, orders = Counter(), Counter(), []
    for r in range(rounds):
        def cost(o):
            return (sum(place[c, i] for i, c in enumerate(o)) +
                    sum(after[p] for p in zip(o, o[1:])) +
                    100 * (orders[-1:] == [o]))
        best = min((rng.sample(cfg, len(cfg)) for _ in range(tries)), key=cost)
        place.update((c, i) for i, c in enumerate(best))
        after.update(zip(best, best[1:]))
        orders.append(best)
    plan[w] = orders
for r in range(rounds):
    for w in wls:
        for pos, c in enumerate(plan[w][r]):
            print(r + 1, w, pos, c)
