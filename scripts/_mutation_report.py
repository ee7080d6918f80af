"""
Print the mutation score of each module from `mutmut results --all true`:
mutants killed (a test failed, or the mutant timed out) out of all.
"""

import sys
from collections import Counter, defaultdict

KILLED = {"killed", "timeout"}


def main(path):
    counts = defaultdict(Counter)
    for line in open(path):
        name, sep, status = line.strip().rpartition(": ")
        if not sep or "__mutmut_" not in name:
            continue
        # gateway.router.xǁRouterǁpolled__mutmut_3, gateway.router.x_f__mutmut_1
        counts[name.split(".x", 1)[0]][status] += 1
    total = Counter()
    print(f"{'module':40} {'mutants':>8} {'killed':>7} {'survived':>9} {'other':>6} {'score':>6}")
    for module in sorted(counts):
        c = counts[module]
        all_ = sum(c.values())
        killed = sum(c[s] for s in KILLED)
        survived = c["survived"]
        total.update(c)
        print(
            f"{module:40} {all_:8} {killed:7} {survived:9} {all_ - killed - survived:6} "
            f"{killed / all_:6.1%}"
        )
    all_ = sum(total.values())
    killed = sum(total[s] for s in KILLED)
    if all_:
        print(
            f"{'all':40} {all_:8} {killed:7} {total['survived']:9} "
            f"{all_ - killed - total['survived']:6} {killed / all_:6.1%}"
        )


if __name__ == "__main__":
    main(sys.argv[1])
