"""Running labctl from an end-to-end test: one call, a bounded time, the output kept for the
message when something is off, and no sanitizer report or crash let through."""
import json
import subprocess

SANITIZER = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "Traceback", "terminate called")


def run(labctl, state, args, env, check=None, timeout=90):
    """labctl --state-dir STATE ARGS...; `check` is the exit status it must have (None: any)."""
    argv = [labctl, "--state-dir", state, *[str(a) for a in args]]
    shown = " ".join(map(str, args))
    try:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"labctl {shown}: no exit after {timeout} s: {e.stdout!r} {e.stderr!r}") from None
    where = f"labctl {shown}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    for bad in SANITIZER:
        if bad in r.stderr:
            raise AssertionError(where)
    if check is not None and r.returncode != check:
        raise AssertionError(where)
    return r


def run_json(labctl, state, args, env, check=0, timeout=90):
    """run(), then its standard output as JSON."""
    r = run(labctl, state, args, env, check=check, timeout=timeout)
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"labctl {' '.join(map(str, args))}: not JSON:\n{r.stdout}\n{r.stderr}") from None
