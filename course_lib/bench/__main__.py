"""python -m course_lib.bench NAME [--json] [--mode quick|lecture|full] [benchmark args...]"""
import argparse
import json
import sys

from course_lib import runtime
from course_lib.bench import available, measure


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.bench", description=__doc__)
    p.add_argument("name", help=f"one of: {', '.join(available())}")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--mode", choices=runtime.MODES, help="course mode (default: $COURSE_MODE or lecture)")
    args, rest = p.parse_known_args(argv)
    if args.mode:
        runtime.set_mode(args.mode)
    result = measure(args.name, rest)
    if args.json:
        print(json.dumps(result, indent=2, default=float))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
