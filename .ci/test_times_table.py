"""Print a markdown table of a .ci/time_tests.sh file (``results/test_times/*.tsv``), with the CPU-second total.

usage: .venv/bin/python .ci/test_times_table.py results/test_times/slow.tsv [--select .ci/slow_tests.txt]
CPU seconds (all threads) estimate the wall time on an idle 2-core machine (XLA runs on both cores, so the wall time
there lies between half of them and all of them); the wall seconds were taken on a shared machine (load column)."""
import sys
from pathlib import Path


def rows(path):
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            test, wall, cpu, load, *outcome = line.split("\t")
            yield test, float(wall), float(cpu), float(load), (outcome or ["unknown"])[0]


def main(argv):
    path, selected = argv[0], None
    if "--select" in argv:
        selected = {line.strip() for line in Path(argv[argv.index("--select") + 1]).read_text().splitlines()
                    if line.strip() and not line.lstrip().startswith("#")}
    table = [row for row in rows(path) if selected is None or row[0] in selected]
    print("| test | CPU s | wall s (load) | outcome |\n|---|---:|---:|---|")
    for test, wall, cpu, load, outcome in table:
        print(f"| `{test}` | {cpu:.0f} | {wall:.0f} ({load:.0f}) | {outcome} |")
    print(f"\n{len(table)} tests, {sum(r[2] for r in table) / 60:.1f} CPU minutes in all.")


if __name__ == "__main__":
    main(sys.argv[1:])
