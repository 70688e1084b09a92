#!/usr/bin/env python3
"""End-to-end tests of the engine: apply (journal, resume, retries, isolation), audit, schedule.

Every device is simulated (sim-* types): each keeps its state in a JSON file under the state
directory and counts every write, so the tests can check that a step ran exactly once even when
labctl was killed in the middle of it.

Usage: test_engine.py --labctl PATH --source DIR
"""
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

ARGS = None


def sim_state(state_dir):
    """{device: state} for every simulated device that has been written to."""
    out = {}
    for path in glob.glob(os.path.join(state_dir, "plugins", "sim-*", "*.json")):
        with open(path) as f:
            out[os.path.basename(path)[:-5]] = json.load(f)
    return out


def writes(state_dir):
    return {d: s.get("writes", {}) for d, s in sim_state(state_dir).items()}


class Engine(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="labctl-engine-")
        self.state = os.path.join(self.tmp, "state")
        self.env = dict(os.environ, NO_COLOR="1", LAB_BMC_PASSWORD="demo-bmc-pass")
        self.env.pop("LABCTL_STATE_DIR", None)
        for i in range(1000, 1006):
            self.env[f"LAB_SIP_{i}"] = "s1p-pass"

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def cmd(self, *args):
        return [ARGS.labctl, "--state-dir", self.state] + list(args)

    def run_labctl(self, *args, timeout=120, input=None):
        p = subprocess.run(self.cmd(*args), capture_output=True, text=True, env=self.env, timeout=timeout,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def lab(self, delays=True):
        """The example lab with short, fixed delays (so kills land inside steps)."""
        with open(os.path.join(ARGS.source, "examples", "sim-lab.yaml")) as f:
            text = f.read()
        if delays:
            text = text.replace("flash-delay: 2s", "flash-delay: 300ms").replace("flash-delay: 1500ms", "flash-delay: 250ms")
            text = text.replace("step-delay: 200ms", "step-delay: 40ms")
        path = os.path.join(self.tmp, "lab.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def planned_writes(self, inv):
        """{device: {action: n}} of the writing steps a fresh plan holds."""
        code, out, err = self.run_labctl("plan", "--json", inv)
        self.assertEqual(code, 0, err)
        want = {}
        for d in json.loads(out)["devices"]:
            for s in d["steps"]:
                if s["writes"]:
                    want.setdefault(d["name"], {}).setdefault(s["action"], 0)
                    want[d["name"]][s["action"]] += 1
        return want

    # apply ---------------------------------------------------------------------------------
    def test_apply_converges_then_does_nothing(self):
        inv = self.lab(delays=False)
        want = self.planned_writes(inv)
        code, out, err = self.run_labctl("apply", "--yes", inv)
        self.assertEqual(code, 0, out + err)
        self.assertIn("10 of 10 devices converged, 71 steps run", out)
        self.assertEqual(writes(self.state), want)
        before = writes(self.state)
        code, out, err = self.run_labctl("apply", "--yes", inv)
        self.assertEqual(code, 0, out + err)
        self.assertIn("Nothing to do: 11 devices match", out)
        self.assertEqual(writes(self.state), before)  # zero device writes
        code, out, _ = self.run_labctl("plan", "--json", inv)
        self.assertEqual(json.loads(out)["summary"]["changes"], 0)

    def test_kill_and_resume_writes_each_thing_once(self):
        inv = self.lab()
        # More phones and drives, so the lab cannot converge before the 20th kill.
        with open(inv, "a") as f:
            for i in range(20):
                f.write(f"  - {{name: extra-phone{i}, type: sim-phone, model: CP-7906G, "
                        f"sip: {{server: 192.168.0.195, password: {{env: LAB_SIP_1001}}}}, "
                        f"firmware: SIP11.9-4-2SR1-1S, sim: {{firmware: SCCP11.8-0-3S, flash-delay: 250ms, step-delay: 40ms}}}}\n")
            for i in range(5):
                f.write(f"  - {{name: extra-drive{i}, type: sim-drive, model: UJ240AS, firmware: \"1.12\", "
                        f"accept-brick-risk: true, sim: {{firmware: \"1.01\", flash-delay: 300ms, step-delay: 40ms}}}}\n")
        want = self.planned_writes(inv)
        rng = random.Random(20261124)
        kills = 0
        deadline = time.monotonic() + 180
        for i in range(20):
            self.assertLess(time.monotonic(), deadline, "kill loop ran too long")
            parallel = rng.choice(["1", "2", "4"])
            p = subprocess.Popen(self.cmd("apply", "--yes", "--parallel", parallel, inv), env=self.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.05, 1.2))
            if p.poll() is None:
                p.kill()
                kills += 1
            p.wait(timeout=30)
        self.assertEqual(kills, 20, "every run should have been killed mid-way")
        code, out, err = self.run_labctl("apply", "--yes", inv, timeout=300)
        self.assertEqual(code, 0, out + err)
        self.assertEqual(writes(self.state), want, "every write exactly once")
        code, out, _ = self.run_labctl("apply", "--yes", inv)
        self.assertIn("Nothing to do", out)
        # The journal shows runs that were resumed, none superseded.
        code, out, _ = self.run_labctl("history", "--json")
        statuses = [r["status"] for r in json.loads(out)["runs"]]
        self.assertNotIn("running", statuses)
        self.assertNotIn("superseded", statuses)

    def test_sigint_stops_cleanly_and_resumes(self):
        inv = self.lab()
        p = subprocess.Popen(self.cmd("apply", "--yes", "--parallel", "2", inv), env=self.env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        # Interrupted once a step runs (its signal handling is in place by then), however slow the
        # machine is; a fixed 0.6 s sleep sometimes hit it before that in CI (exit by SIGINT).
        seen = []
        deadline = time.monotonic() + 60
        for line in p.stdout:
            seen.append(line)
            if ": started" in line or time.monotonic() > deadline:
                break
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        out = "".join(seen) + out
        self.assertEqual(p.returncode, 130, out + err)
        self.assertIn("stopping after the running steps finish", err)
        self.assertRegex(out, r"Run 'labctl apply .*lab.yaml' again to resume run \d+")
        code, out, err = self.run_labctl("apply", "--yes", inv)
        self.assertEqual(code, 0, out + err)
        self.assertRegex(out, r"Resuming run \d+ \(interrupted\)")
        self.assertEqual(writes(self.state), self.planned_writes_fresh_copy(inv))

    def planned_writes_fresh_copy(self, inv):
        """What a never-interrupted apply of the same lab writes (in a separate state dir)."""
        saved = self.state
        self.state = os.path.join(self.tmp, "reference-state")
        try:
            return self.planned_writes(inv)
        finally:
            self.state = saved

    def test_failure_isolation_by_error_class(self):
        inv = self.write("f.yaml", """\
            version: 1
            site: t
            devices:
              - {name: ok1, type: sim-drive, model: UJ240AS, firmware: "1.04", accept-brick-risk: true, sim: {firmware: "1.01"}}
              - {name: flaky, type: sim-drive, model: UJ240AS, firmware: "1.04", accept-brick-risk: true,
                 sim: {firmware: "1.01", fail: [{action: flash, error: timeout, times: 1}]}}
              - {name: gone, type: sim-drive, model: UJ240AS, firmware: "1.04", accept-brick-risk: true,
                 sim: {firmware: "1.01", fail: [{action: flash, error: unreachable, times: 9}]}}
              - {name: locked, type: sim-drive, model: UJ240AS, firmware: "1.04", accept-brick-risk: true,
                 sim: {firmware: "1.01", fail: [{action: flash, error: auth-failed, times: 9}]}}
              - {name: liar, type: sim-drive, model: UJ240AS, firmware: "1.04", accept-brick-risk: true,
                 sim: {firmware: "1.01", fail: [{action: verify, error: verify-mismatch, times: 9}]}}
              - {name: later, type: sim-drive, model: UJ240AS, firmware: "1.04", accept-brick-risk: true,
                 after: [locked], sim: {firmware: "1.01"}}
              - {name: ok2, type: sim-drive, model: UJ240AS, firmware: "1.04", accept-brick-risk: true, sim: {firmware: "1.01"}}
            """)
        code, out, err = self.run_labctl("apply", "--yes", "--retry-delay", "10ms", inv)
        self.assertEqual(code, 1, out + err)
        self.assertIn("3 of 7 devices converged", out)
        self.assertIn("4 devices not converged:", out)
        self.assertIn("gone: write firmware 1.04 (hop 1/1): unreachable: simulated unreachable during flash (after 3 attempts)", out)
        self.assertIn("locked: write firmware 1.04 (hop 1/1): auth-failed: simulated auth-failed during flash\n", out)
        self.assertIn("liar: verify firmware 1.04 (hop 1/1): verify-mismatch: simulated verify-mismatch during verify\n", out)
        self.assertIn("later: skipped: it comes after 'locked', which did not finish", out)
        st = sim_state(self.state)
        for d in ("ok1", "ok2", "flaky"):
            self.assertEqual(st[d]["version"], "1.04", d)
        self.assertEqual(st["flaky"]["writes"]["flash"], 1)
        self.assertEqual(st["locked"]["version"], "1.01")
        self.assertNotIn("later", st)  # never touched
        # Attempts per class, from the journal.
        code, out, _ = self.run_labctl("history", "--json")
        run = json.loads(out)["runs"][0]
        self.assertEqual(run["status"], "failed")
        code, out, _ = self.run_labctl("history", "--json", str(run["id"]))
        steps = {(s["device"], s["action"]): s for s in json.loads(out)["steps"]}
        self.assertEqual(steps[("gone", "flash")]["attempts"], 3)
        self.assertEqual(steps[("gone", "flash")]["error_code"], "unreachable")
        self.assertEqual(steps[("locked", "flash")]["attempts"], 1)
        self.assertEqual(steps[("flaky", "flash")]["attempts"], 2)
        self.assertEqual(steps[("flaky", "flash")]["status"], "done")
        self.assertEqual(steps[("later", "flash")]["status"], "pending")

    def test_step_timeout_is_a_retryable_timeout(self):
        inv = self.write("t.yaml", """\
            version: 1
            site: t
            devices:
              - {name: slow, type: sim-drive, model: UJ240AS, firmware: "1.04", accept-brick-risk: true,
                 sim: {firmware: "1.01", flash-delay: 5s}}
            """)
        t0 = time.monotonic()
        code, out, err = self.run_labctl("apply", "--yes", "--step-timeout", "200ms", "--retry-delay", "10ms", inv)
        self.assertLess(time.monotonic() - t0, 4, "the limit must cut the 5 s flash short")
        self.assertEqual(code, 1, out + err)
        self.assertIn("slow: write firmware 1.04 (hop 1/1): timeout: no result within the step's limit of 200 ms "
                      "(after 3 attempts)", out)
        self.assertEqual(sim_state(self.state).get("slow", {}).get("version", "1.01"), "1.01")

    def test_terminal_progress(self):
        import pty
        inv = self.lab()
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(ARGS.labctl, self.cmd("apply", "--yes", "--parallel", "4", inv), self.env)
        chunks = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        _, status = os.waitpid(pid, 0)
        text = b"".join(chunks).decode(errors="replace")
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, text[-2000:])
        self.assertIn("\x1b[1A\x1b[2K", text)            # lines redrawn in place
        self.assertRegex(text, r"\[#*\.*\] \d+/71 steps, 10 devices")  # the overall bar
        self.assertRegex(text, r"phone\d: \[\d/8\] .*\(hop [12]/2\)  \d+% flash  \d+s")  # live: step, hop, progress, elapsed
        self.assertIn("\u2713 htpc-bd: 8 steps run", text)
        self.assertNotIn("\\x1b[32m", text)  # NO_COLOR: no colour, still live

    def test_dependencies_are_honoured(self):
        inv = self.lab()
        code, out, err = self.run_labctl("apply", "--yes", "--parallel", "8", inv)
        self.assertEqual(code, 0, out + err)
        lines = out.splitlines()

        def first(pred):
            return next(i for i, l in enumerate(lines) if pred(l))

        def last(pred):
            return max(i for i, l in enumerate(lines) if pred(l))

        self.assertLess(last(lambda l: " server1-bmc: done:" in l), first(lambda l: " esx1: [1/" in l))
        self.assertLess(last(lambda l: " esx1: done:" in l), first(lambda l: " esx2: [1/" in l))
        self.assertLess(first(lambda l: "esx1: start VM dns: done" in l), first(lambda l: "esx1: [6/9] start VM vcenter" in l))

    def test_dry_run_and_only(self):
        inv = self.lab(delays=False)
        code, out, err = self.run_labctl("apply", "--dry-run", inv)
        self.assertEqual(code, 0, err)
        self.assertIn("Dry run: nothing was executed.", out)
        self.assertEqual(writes(self.state), {})
        code, out, err = self.run_labctl("apply", "--yes", "--only", "htpc-bd", inv)
        self.assertEqual(code, 0, out + err)
        self.assertEqual(set(writes(self.state)), {"htpc-bd"})
        code, out, err = self.run_labctl("apply", "--yes", "--only", "nope", inv)
        self.assertEqual(code, 1)

    def test_confirmation(self):
        inv = self.lab(delays=False)
        code, out, err = self.run_labctl("apply", inv)
        self.assertEqual(code, 1)
        self.assertIn("standard input is not a terminal; pass --yes", err)
        self.assertEqual(writes(self.state), {})

    def test_one_apply_at_a_time(self):
        inv = self.lab()
        p = subprocess.Popen(self.cmd("apply", "--yes", "--parallel", "1", inv), env=self.env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            # The first apply holds the lock once it runs steps, however slow the machine is.
            deadline = time.monotonic() + 60
            for line in p.stdout:
                if ": started" in line or time.monotonic() > deadline:
                    break
            code, out, err = self.run_labctl("apply", "--yes", inv)
            self.assertEqual(code, 1)
            self.assertIn("another labctl apply is running", err)
        finally:
            p.kill()
            p.wait(timeout=30)
            p.stdout.close()

    def test_changed_inventory_replans(self):
        inv = self.lab()
        p = subprocess.Popen(self.cmd("apply", "--yes", inv), env=self.env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        # Killed once its run is journaled (a step has started), however slow the machine is.
        deadline = time.monotonic() + 60
        try:
            for line in p.stdout:
                if ": started" in line or time.monotonic() > deadline:
                    break
        finally:
            p.kill()
            p.wait(timeout=30)
            p.stdout.close()
        with open(inv, "a") as f:
            f.write("\n# edited\n")
        code, out, err = self.run_labctl("apply", "--yes", inv)
        self.assertEqual(code, 0, out + err)
        self.assertIn("changed since; planning afresh", out)

    # audit ---------------------------------------------------------------------------------
    def audit_json(self, inv):
        code, out, err = self.run_labctl("audit", "--format", "json", inv)
        doc = json.loads(out)
        import jsonschema
        with open(os.path.join(ARGS.source, "docs", "schemas", "audit.schema.json")) as f:
            jsonschema.validate(doc, json.load(f))
        return code, doc

    def test_audit_exit_codes_and_formats(self):
        inv = self.lab(delays=False)
        code, doc = self.audit_json(inv)
        self.assertEqual(code, 2)
        self.assertFalse(doc["compliant"])
        byname = {d["name"]: d for d in doc["devices"]}
        self.assertEqual(byname["phone1"]["firmware"]["path"], ["SCCP 8.5(2)", "SIP 9.4(2)SR1"])
        self.assertTrue(byname["htpc-bd"]["firmware"]["drift"])
        codes = {(f["device"], f["code"]) for f in doc["findings"]}
        self.assertIn(("server1-bmc", "default-credentials"), codes)
        self.assertIn(("server1-bmc", "fan-full-speed"), codes)

        self.assertEqual(self.run_labctl("apply", "--yes", inv)[0], 0)
        code, doc = self.audit_json(inv)
        # Converged, but the loud fan is still there: a finding, exit 2.
        self.assertEqual(code, 2)
        self.assertEqual([f["code"] for f in doc["findings"]], ["fan-full-speed"])
        self.assertEqual(doc["summary"]["firmware_drift"], 0)

        quiet = inv.replace("lab.yaml", "quiet.yaml")
        with open(inv) as f, open(quiet, "w") as g:
            g.write(f.read().replace("fan-full-speed: true", "fan-full-speed: false"))
        code, doc = self.audit_json(quiet)
        self.assertEqual(code, 0, doc["findings"])
        self.assertTrue(doc["compliant"])

        bad = self.write("bad.yaml", "version: 1\nsite: t\ndevices: 3\n")
        code, out, err = self.run_labctl("audit", bad)
        self.assertEqual(code, 1)

        unreachable = self.write("u.yaml", """\
            version: 1
            site: t
            devices:
              - {name: d1, type: sim-drive, model: UJ240AS, sim: {unreachable: true}}
            """)
        code, doc = self.audit_json(unreachable)
        self.assertEqual(code, 2)
        self.assertFalse(doc["devices"][0]["reachable"])

        code, out, _ = self.run_labctl("history", "--json")
        self.assertGreaterEqual(len(json.loads(out)["audits"]), 4)

    def test_audit_secret_findings(self):
        secret = os.path.join(self.tmp, "bmc.pass")
        with open(secret, "w") as f:
            f.write("pw\n")
        os.chmod(secret, 0o644)
        inv = self.write("s.yaml", f"""\
            version: 1
            site: t
            devices:
              - name: b1
                type: sim-bmc
                model: X8SIL-F
                credentials: {{user: admin, password: {{file: {secret}}}}}
                sim: {{default-credentials: false}}
              - name: b2
                type: sim-bmc
                model: X8SIL-F
                credentials: {{user: admin, password: plain-text-password}}
                sim: {{default-credentials: false}}
              - name: p1
                type: sim-phone
                model: CP-7906G
                sip: {{server: 10.0.0.1, password: {{env: LONG_SIP}}}}
            """)
        self.env["LONG_SIP"] = "x" * 32
        code, doc = self.audit_json(inv)
        self.assertEqual(code, 2)
        byc = {f["code"]: f for f in doc["findings"]}
        self.assertIn("mode 0644", byc["secret-file"]["message"])
        self.assertEqual(byc["literal-secret"]["device"], "b2")
        self.assertIn("32 characters; the CP-7906G accepts at most 15", byc["sip-password-too-long"]["message"])
        code, out, err = self.run_labctl("audit", "--format", "table", inv)
        self.assertNotIn("plain-text-password", out + err)
        self.assertNotIn("x" * 32, out + err)
        os.chmod(secret, 0o600)
        self.env["LONG_SIP"] = "short"
        code, doc = self.audit_json(inv)
        self.assertEqual([f["code"] for f in doc["findings"]], ["literal-secret"])

    def test_audit_prometheus_output_file(self):
        inv = self.lab(delays=False)
        out_file = os.path.join(self.tmp, "labctl.prom")
        code, out, err = self.run_labctl("audit", "--format", "prometheus", "--output", out_file, inv)
        self.assertEqual(code, 2, err)
        self.assertIn("report written to", out)
        p = subprocess.run(["promtool", "check", "metrics"], input=open(out_file).read(), capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        text = open(out_file).read()
        self.assertIn('labctl_device_firmware_drift{site="tickett-lab",device="phone1"} 1', text)
        self.assertIn('labctl_device_upgrade_hops{site="tickett-lab",device="htpc-bd"} 2', text)
        self.assertIn('labctl_audit_compliant{site="tickett-lab"} 0', text)
        self.assertEqual([f for f in os.listdir(self.tmp) if ".tmp" in f], [])

    # schedule ----------------------------------------------------------------------------------
    def test_schedule_cron(self):
        inv = self.lab(delays=False)
        code, out, err = self.run_labctl("audit", "schedule", inv, "--cron", "17 3 * * mon-fri")
        self.assertEqual(code, 0, err)
        line = out.strip()
        from croniter import croniter
        fields = line.split()
        self.assertTrue(croniter.is_valid(" ".join(fields[:5])), line)
        self.assertIn("flock -n", line)
        self.assertIn("--format prometheus --output /var/lib/prometheus/node-exporter/labctl.prom", line)
        # The command part runs as-is in a shell (here with the output redirected to a temp file).
        cmd = " ".join(fields[5:]).replace("/var/lib/prometheus/node-exporter/labctl.prom",
                                           os.path.join(self.tmp, "cron.prom"))
        p = subprocess.run(["sh", "-c", cmd], env=self.env, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "cron.prom")))
        for bad, msg in (("61 3 * * *", "minute field '61'"), ("* * *", "has 3"), ("0 0 30-2 * *", "ends before"),
                         ("*/0 * * * *", "bad step"), ("@sometimes", "not a cron shortcut")):
            code, out, err = self.run_labctl("audit", "schedule", inv, "--cron", bad)
            self.assertEqual(code, 1, bad)
            self.assertIn(msg, err, bad)
        # --install through the user's crontab command (a stand-in that keeps the table in a file).
        bindir = os.path.join(self.tmp, "bin")
        os.makedirs(bindir)
        table = os.path.join(self.tmp, "crontab.txt")
        with open(os.path.join(bindir, "crontab"), "w") as f:
            f.write(f'#!/bin/sh\nif [ "$1" = -l ]; then cat {table} 2>/dev/null || exit 1; else cat > {table}; fi\n')
        os.chmod(os.path.join(bindir, "crontab"), 0o755)
        self.env["PATH"] = bindir + ":" + self.env["PATH"]
        for expect in ("added to the crontab", "already installed"):
            code, out, err = self.run_labctl("audit", "schedule", inv, "--cron", "17 3 * * *", "--install")
            self.assertEqual(code, 0, err)
            self.assertIn(expect, out)
        code, out, err = self.run_labctl("audit", "schedule", inv, "--cron", "5 4 * * *", "--install")
        self.assertEqual(code, 1)
        self.assertIn("already has a different labctl audit", err)
        self.assertEqual(len([l for l in open(table).read().splitlines() if " audit " in l]), 1)

    def test_schedule_systemd(self):
        inv = self.lab(delays=False)
        units = os.path.join(self.tmp, "units")
        code, out, err = self.run_labctl("audit", "schedule", inv, "--systemd", "--install", "--unit-dir", units)
        self.assertEqual(code, 0, err)
        svc = os.path.join(units, "labctl-audit.service")
        timer = os.path.join(units, "labctl-audit.timer")
        p = subprocess.run(["systemd-analyze", "verify", svc, timer], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("SuccessExitStatus=2", open(svc).read())
        self.assertIn("OnCalendar=*-*-* 03:17:00", open(timer).read())
        code, out, err = self.run_labctl("audit", "schedule", inv, "--systemd", "--install", "--unit-dir", units)
        self.assertIn("already installed", out)
        code, out, err = self.run_labctl("audit", "schedule", inv, "--systemd", "--on-calendar", "hourly",
                                         "--install", "--unit-dir", units)
        self.assertEqual(code, 1)
        self.assertIn("exists with different contents", err)


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
    import harness
    harness.run(globals())
