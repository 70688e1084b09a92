"""A lab for one end-to-end test: a temp dir with labctl's state dir and an inventory, and labctl
run against them (output kept, sanitizer reports refused)."""
import json
import os
import shutil
import subprocess
import tempfile

# What a labctl built with ASan/UBSan (or a Python peer) prints when something went wrong.
SANITIZER = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "Traceback", "terminate called")


class Lab:
    """args: the test's --labctl and --source (harness.run). Runs labctl with the secrets in `env`
    and keeps everything labctl printed (for the password checks)."""

    def __init__(self, args, prefix, site="test"):
        self.args = args
        self.site = site
        self.tmp = tempfile.mkdtemp(prefix=f"labctl-{prefix}-")
        self.state = os.path.join(self.tmp, "state")
        self.inv = os.path.join(self.tmp, "lab.yaml")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LABCTL_")}
        self.env.update(NO_COLOR="1", LABCTL_CATALOG=os.path.join(args.source, "catalog", "catalog.yaml"))
        self.printed = []

    def write(self, *devices, site=None, path=None):
        path = path or self.inv
        with open(path, "w") as f:
            f.write(f"version: 1\nsite: {site or self.site}\ndevices:\n" + "".join(devices))
        return path

    def labctl(self, *args, timeout=60, check=None, env=None):
        argv = [self.args.labctl, "--state-dir", self.state, *[str(a) for a in args]]
        try:
            r = subprocess.run(argv, env=env or self.env, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"labctl {' '.join(map(str, args))}: no exit after {timeout} s: "
                                 f"{e.stdout!r} {e.stderr!r}") from None
        self.printed.append(r.stdout + r.stderr)
        where = f"labctl {' '.join(map(str, args))}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        for bad in SANITIZER:
            assert bad not in r.stderr, where
        if check is not None:
            assert r.returncode == check, where
        return r

    def json(self, *args, check=0, **kw):
        r = self.labctl(*args, check=check, **kw)
        try:
            return json.loads(r.stdout)
        except ValueError:
            raise AssertionError(f"labctl {' '.join(map(str, args))}: not JSON:\n{r.stdout}\n{r.stderr}") from None

    def assert_secret_kept(self, tc, secret):
        """The secret is in nothing labctl printed and in no file of the state dir."""
        for out in self.printed:
            tc.assertNotIn(secret, out)
        for root, _, files in os.walk(self.state):
            for fn in files:
                with open(os.path.join(root, fn), "rb") as f:
                    tc.assertNotIn(secret.encode(), f.read(), os.path.join(root, fn))

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
