"""What the end-to-end test scripts share: command-line arguments and the closing summary line."""
import argparse
import sys
import unittest


def run(module_globals, extra=()):
    """Parses --labctl and --source (and the options named in `extra`, each required) into
    module_globals["ARGS"], runs the module's tests, prints 'N passed, N failed' and exits
    non-zero when any failed."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--labctl", required=True)
    ap.add_argument("--source", required=True)
    for name in extra:
        ap.add_argument(name, required=True)
    args, rest = ap.parse_known_args()
    module_globals["ARGS"] = args
    result = unittest.main(module=module_globals["__name__"], argv=[sys.argv[0]] + rest, exit=False,
                           verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
