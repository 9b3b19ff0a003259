"""The speed benchmark as a script: `python scripts/bench_speed.py RECIPE [key=value ...]` = `llmrec bench-speed`."""

import sys

from llmrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench-speed", *sys.argv[1:]]))
