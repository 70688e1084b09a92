#!/usr/bin/python3
"""Firmware flashing through a Supermicro BMC's web interface, end to end: labctl against the
web interface double tests/peers/bmc_web.py (session cookie and expiry, upload lock, multipart
field names, the image verified, a start request that never answers, rising progress, a stretch of
connection refused) tied to an OpenIPMI ipmi_sim BMC (tests/peers/ipmi/bmc_sim.py) that it
restarts with the new firmware -- with factory settings after a flash that did not keep them.
ipmitool is the independent client that checks the BMC afterwards; `labctl history` shows the
journal.

  test_flash.py --labctl PATH --source DIR [unittest args]

- Apply (X8 profile, unconfirmed): blocked in the plan until the inventory accepts the profile;
  then verify-image .. verify-version, set-credentials, disable-factory-login, set-lan; the BMC
  runs 2.60, the inventory's login works, ADMIN/ADMIN is refused, the LAN is static again; the
  warning names the profile; a second apply does nothing.
- The verb, X10/X11 profile over HTTPS with a self-signed certificate: refused until the
  inventory accepts the certificate (nothing uploaded), then `--preserve-config` keeps the users;
  without --preserve-config/--factory-reset nothing happens.
- `labctl bmc --host` with --model, --web-port and a profile file of one's own (the X8 profile with
  short timings), --factory-reset: refused without a board model, refused while unconfirmed and
  not accepted, then flashed and the --user login set again.
- labctl SIGKILLed while the BMC flashes, then resumed: one upload, one start, every step done.
- Injected failures, each ending with a clear error and no step done past the failure: lock
  contention, truncated upload, a wrong version for the upload, a stalled flash (timeout), a BMC
  that never returns.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "peers"))
sys.path.insert(0, os.path.join(HERE, "..", "peers", "ipmi"))
sys.path.insert(0, HERE)
import aten  # noqa: E402
import bmc_sim  # noqa: E402
import bmc_web  # noqa: E402
import harness  # noqa: E402
import test_bmc  # noqa: E402

ARGS = None
User = bmc_sim.User
LAN = test_bmc.LAN
FLASH_STEPS = ["verify-image", "identify", "upload", "check-upload", "start-flash", "flash-progress",
               "wait-offline", "wait-online", "verify-version"]
TIMINGS = ("{request: 3s, upload: 10s, start-wait: 500ms, poll-interval: 100ms, flash: 8s, "
           "offline: 8s, online: 10s, session: 2s}")
CATALOG = """version: 1
families:
  - name: supermicro-x8-bmc
    models: [X8SIL-F]
    scheme: major-minor
    quirks: {bmc-product-ids: [2312]}
    releases:
      - {version: "2.50", files: []}
      - version: "2.60"
        options: {reset-to-factory: recommended, flasher-profile: x8-aten-web}
        files: [{name: SMT_X8_260.bin, sha256: pin}]
"""


def keys(steps):
    return [s["key"].split("@")[0] for s in steps]


class Rig:
    """A provisioned BMC (user 3 labadmin, ADMIN with a random password) with its web interface
    double, a lab directory with a catalog that has 2.60, and the 2.60 image in labctl's store."""

    def __init__(self, tc, name, generation="x8", failures=(), tls=False, **web_kw):
        self.tc = tc
        self.pw = test_bmc.password(16)
        self.bmc = bmc_sim.start(name=name, users=[User(2, "ADMIN", test_bmc.password(12)),
                                                   User(3, "labadmin", self.pw)])
        self.lab = test_bmc.Lab(name)
        self.tls = bmc_web.self_signed(self.lab.tmp) if tls else None
        self.web = bmc_web.BmcWeb(self.bmc, generation=generation, failures=failures, tls=self.tls,
                                  **web_kw).start()
        catalog = os.path.join(self.lab.tmp, "catalog.yaml")
        with open(catalog, "w") as f:
            f.write(CATALOG)
        self.lab.env.update(LABCTL_CATALOG=catalog, BMC_PW=self.pw)
        img, _ = aten.build(major=2, minor_bcd=0x60)
        self.image = os.path.join(self.lab.tmp, "SMT_X8_260.bin")
        with open(self.image, "wb") as f:
            f.write(img)
        self.lab.labctl("firmware", "import", self.image, check=0)

    def inventory(self, web="", lan=True, target="2.60", timings=TIMINGS):
        extra = (f'    model: X8SIL-F\n    firmware: {{target: "{target}"}}\n    security-checks: false\n'
                 f"    web: {{scheme: {'https' if self.tls else 'http'}, port: {self.web.port}, "
                 f"timings: {timings}{', ' + web if web else ''}}}\n")
        return self.lab.write(test_bmc.bmc_device("srv1", self.bmc.port, "labadmin", "BMC_PW",
                                                  lan=LAN if lan else None, extra=extra))

    def apply(self, *args, timeout=120):
        return self.lab.labctl("apply", self.lab.inv, "--yes", "--retry-delay", "100ms", *args, timeout=timeout)

    def journal(self, r):
        m = re.findall(r"Run (\d+):", r.stdout)
        self.tc.assertTrue(m, r.stdout + r.stderr)
        return self.lab.json("history", m[-1], "--json")

    def firmware(self, user="labadmin", password=None):
        r = self.bmc.ipmitool("mc", "info", user=user, password=password or self.pw)
        return test_bmc.field(r.stdout, "Firmware Revision") if r.returncode == 0 else None

    def close(self):
        self.web.stop()
        self.bmc.stop()
        self.lab.cleanup()


def requirements():
    for tool in ("ipmi_sim", "ipmitool", "openssl"):
        if not test_bmc.has(tool):
            raise unittest.SkipTest(f"{tool} not installed")


def setUpModule():
    test_bmc.ARGS = ARGS
    requirements()


class Flash(unittest.TestCase):
    def rig(self, *a, **kw):
        r = Rig(self, *a, **kw)
        self.addCleanup(r.close)
        return r

    def test_01_apply_factory_reset_with_unconfirmed_profile(self):
        rig = self.rig("apply")
        lab = rig.lab
        rig.inventory()
        # The X8 profile is unconfirmed: the plan says so and nothing reaches the BMC.
        j = lab.json("plan", lab.inv, "--json", check=2)
        dev = j["devices"][0]
        self.assertEqual(dev["status"], "blocked", dev)
        self.assertIn("x8-aten-web is UNCONFIRMED", dev["problem"]["message"])
        self.assertIn("accept-unconfirmed-profile", dev["problem"]["message"])
        self.assertEqual(rig.web.texts(), [])

        rig.inventory(web="accept-unconfirmed-profile: true")
        j = lab.json("plan", lab.inv, "--json")
        dev = j["devices"][0]
        self.assertEqual(keys(dev["steps"]), FLASH_STEPS + ["set-credentials", "disable-factory-login", "set-lan"])
        start = dev["steps"][4]
        self.assertIn("reset to factory settings", start["title"])
        self.assertIn("catalog recommends", start["reason"])
        self.assertIn("UNCONFIRMED", dev["steps"][2]["reason"])
        self.assertEqual(start["args"]["image"]["name"], "SMT_X8_260.bin")

        r = rig.apply()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("WARNING: flasher profile x8-aten-web is UNCONFIRMED", r.stderr)
        # ipmitool: the new firmware, the inventory's login back, the factory one refused, LAN set.
        self.assertEqual(rig.firmware(), "2.60")
        self.assertFalse(test_bmc.login_ok(rig.bmc, "ADMIN", "ADMIN"), "ADMIN/ADMIN accepted after apply")
        lp = rig.bmc.ipmitool("lan", "print", "1", user="labadmin", password=rig.pw).stdout
        self.assertEqual((test_bmc.field(lp, "IP Address Source"), test_bmc.field(lp, "IP Address")),
                         ("Static Address", LAN["address"]))
        # The BMC saw the sequence: one login first, the lock, the upload of a verified image in
        # field fw_image, the version check, the start without preserving, rising progress, the
        # restart with factory settings.
        t = rig.web.texts()
        self.assertEqual(t[0], "login labadmin")
        order = [next(i for i, x in enumerate(t) if x.startswith(p)) for p in
                 ("lock granted", "upload 65536 bytes fw_image version 2.60 problems []",
                  "version check NEW='0260'", "start preserve_config=0", "restart",
                  "offline", "online 2.60 factory")]
        self.assertEqual(order, sorted(order), t)
        # Progress rises after the start (before it, labctl's "already flashing?" check sees 0).
        started = t.index("start preserve_config=0")
        self.assertEqual([x for x in t[:started] if x.startswith("progress") and x != "progress 0"], [])
        progress = [int(x.split()[1]) for x in t[started:] if x.startswith("progress")]
        self.assertEqual(progress, sorted(progress))
        self.assertGreater(len(set(progress)), 3, progress)
        self.assertEqual(progress[-1], 100)
        self.assertEqual((rig.web.uploads, rig.web.starts), (1, 1))
        hist = rig.journal(r)
        self.assertEqual(hist["status"], "done")
        self.assertEqual([s["status"] for s in hist["steps"]], ["done"] * 12)
        # Converged: nothing left to do.
        self.assertIn("Nothing to do", rig.apply().stdout)
        lab.assert_secret_kept(self, rig.pw)

    def test_02_verb_https_x11_preserve_config(self):
        rig = self.rig("verb", generation="x10-x11", tls=True)
        lab = rig.lab
        rig.inventory(web="profile: x10-x11", lan=False)
        verb = ("bmc", "srv1", "firmware", "flash", rig.image, "-i", lab.inv)
        r = lab.labctl(*verb)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--preserve-config", r.stderr)
        self.assertEqual(rig.web.texts(), [])
        # A self-signed certificate the inventory does not accept: no login is sent.
        j = lab.json(*verb, "--preserve-config", "--json", check=1)
        self.assertEqual(j["status"], "failed")
        st = {s["key"].split("@")[0]: s for s in j["steps"]}
        self.assertEqual([st[k]["status"] for k in FLASH_STEPS],
                         ["done", "done", "failed"] + ["pending"] * 6)
        self.assertEqual(st["upload"]["error_code"], "precondition-failed")
        self.assertIn("accept-self-signed", st["upload"]["error"])
        self.assertEqual([x for x in rig.web.texts() if x.startswith("login")], [])
        # Accepted: flashed, keeping the configuration (no reconcile steps).
        rig.inventory(web="profile: x10-x11, accept-self-signed: true", lan=False)
        j = lab.json(*verb, "--preserve-config", "--json")
        self.assertEqual(j["status"], "done", j)
        self.assertEqual(keys(j["steps"]), FLASH_STEPS)
        self.assertTrue(all(s["status"] == "done" for s in j["steps"]), j["steps"])
        self.assertEqual(j["profile"], {"name": "x10-x11", "confirmed": True, "origin": "built-in"})
        t = rig.web.texts()
        self.assertIn("start preserve_config=1", t)
        self.assertIn("online 2.60 preserved", t)
        self.assertFalse([x for x in t if "csrf refused" in x or "upload refused" in x], t)
        self.assertEqual(rig.firmware(), "2.60")
        self.assertFalse(test_bmc.login_ok(rig.bmc, "ADMIN", "ADMIN"))
        info = lab.json("bmc", "srv1", "info", "-i", lab.inv, "--json")
        self.assertIn("web-tls-unverified", test_bmc.codes(info["findings"]))
        # Again: the BMC runs the image's version, nothing to do.
        j = lab.json(*verb, "--preserve-config", "--json")
        self.assertEqual(j["status"], "up-to-date")
        lab.assert_secret_kept(self, rig.pw)

    def test_09_adhoc_host_with_own_profile_file(self):
        """`labctl bmc --host` with a profile file of the operator's own (the X8 profile with short
        timings), --factory-reset: the --user login is set again afterwards."""
        rig = self.rig("adhoc")
        lab = rig.lab
        with open(os.path.join(ARGS.source, "plugins", "supermicro_bmc", "profiles", "x8-aten-web.yaml")) as f:
            text = f.read()
        text = re.sub(r"\ntimings:.*", "\ntimings: " + TIMINGS + "\n", text, flags=re.S)
        prof = os.path.join(lab.tmp, "my-x8.yaml")
        with open(prof, "w") as f:
            f.write(text)
        base = ["bmc", "--host", f"127.0.0.1:{rig.bmc.port}", "--user", "labadmin", "--password-env", "BMC_PW"]
        flash = ["firmware", "flash", rig.image, "--factory-reset", "--profile", prof, "--web-scheme", "http",
                 "--web-port", str(rig.web.port)]
        # Without a board model there is nothing to check the image against.
        r = lab.labctl(*base, *flash, "--accept-unconfirmed-profile")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("board model", r.stderr)
        # Unconfirmed, not accepted: refused before anything is sent.
        r = lab.labctl(*base, "--model", "X8SIL-F", *flash)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("UNCONFIRMED", r.stderr)
        self.assertEqual(rig.web.texts(), [])
        j = lab.json(*base, "--model", "X8SIL-F", *flash, "--accept-unconfirmed-profile", "--json")
        self.assertEqual(j["status"], "done", j)
        self.assertEqual(keys(j["steps"]), FLASH_STEPS + ["set-credentials", "disable-factory-login"])
        self.assertEqual(j["profile"]["origin"], prof)
        self.assertIn("online 2.60 factory", rig.web.texts())
        self.assertEqual(rig.firmware(), "2.60")
        self.assertFalse(test_bmc.login_ok(rig.bmc, "ADMIN", "ADMIN"))
        lab.assert_secret_kept(self, rig.pw)

    def test_03_kill_mid_flash_and_resume(self):
        rig = self.rig("kill", flash_time=2.0)
        lab = rig.lab
        rig.inventory(web="accept-unconfirmed-profile: true")
        argv = [ARGS.labctl, "--state-dir", lab.state, "apply", lab.inv, "--yes"]
        p = subprocess.Popen(argv, env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                    x.startswith("progress") and int(x.split()[1]) >= 30 for x in rig.web.texts()):
                time.sleep(0.05)
            p.send_signal(signal.SIGKILL)
        finally:
            p.wait(timeout=10)
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(p.returncode, -signal.SIGKILL)
        self.assertEqual(rig.web.starts, 1, rig.web.texts())
        r = rig.apply()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("Resuming run", r.stdout)
        self.assertEqual((rig.web.uploads, rig.web.starts), (1, 1), rig.web.texts())
        hist = rig.journal(r)
        self.assertEqual([s["status"] for s in hist["steps"]], ["done"] * 12)
        self.assertEqual(rig.firmware(), "2.60")
        self.assertFalse(test_bmc.login_ok(rig.bmc, "ADMIN", "ADMIN"))

    def test_10_ctrl_c_during_a_flash_verb_waits_for_the_step_then_resumes(self):
        """SIGINT while the BMC writes its flash: the running step is waited out, not cut; the run
        is left interrupted (exit 130) and the same command resumes it without a second upload."""
        # 3.2 s from 20% to 100%: the signal lands in the flash step even on a loaded machine
        rig = self.rig("sigint", generation="x10-x11", flash_time=4.0)
        lab = rig.lab
        rig.inventory(web="profile: x10-x11", lan=False)
        verb = ["bmc", "srv1", "firmware", "flash", rig.image, "-i", lab.inv, "--preserve-config"]
        argv = [ARGS.labctl, "--state-dir", lab.state, *verb]

        def flashing_at(pct):
            return any(x.startswith("progress") and int(x.split()[1]) >= pct for x in rig.web.texts())

        p = subprocess.Popen(argv, env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not flashing_at(20):
                time.sleep(0.05)
            self.assertTrue(flashing_at(20), rig.web.texts())
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(p.returncode, 130, out + err)
        self.assertIn("stopping after the running steps finish", err)
        self.assertIn("interrupted", out)
        # The step that watched the flash ran to 100%; what follows it did not run.
        self.assertTrue(flashing_at(100), rig.web.texts())
        hist = rig.journal(subprocess.CompletedProcess(argv, 0, out, err))
        self.assertEqual(hist["status"], "interrupted")
        st = {s["key"].split("@")[0]: s["status"] for s in hist["steps"]}
        self.assertEqual([st[k] for k in FLASH_STEPS], ["done"] * 6 + ["pending"] * 3, hist["steps"])
        # The same command resumes: no second upload, no second start.
        r = lab.labctl(*verb, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("Resuming run", r.stdout)
        self.assertEqual((rig.web.uploads, rig.web.starts), (1, 1), rig.web.texts())
        self.assertEqual(rig.firmware(), "2.60")

    def failure(self, name, failures, done, failed, code, words, *apply_args, timings=TIMINGS):
        rig = self.rig(name, failures=failures)
        rig.inventory(web="accept-unconfirmed-profile: true", timings=timings)
        t0 = time.monotonic()
        r = rig.apply(*apply_args)
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        hist = rig.journal(r)
        self.assertEqual(hist["status"], "failed")
        st = {s["key"].split("@")[0]: s for s in hist["steps"]}
        rig.journal_steps = st
        # Exactly the steps before the failure are done; nothing after it ran.
        self.assertEqual([k for k in st if st[k]["status"] == "done"], FLASH_STEPS[:FLASH_STEPS.index(failed)],
                         (r.stdout, r.stderr))
        self.assertEqual(st[failed]["status"], "failed", (r.stdout, r.stderr))
        self.assertEqual(st[failed]["error_code"], code, st[failed])
        for w in words:
            self.assertIn(w, st[failed]["error"])
            self.assertIn(w, r.stdout)
        after = FLASH_STEPS[FLASH_STEPS.index(failed) + 1:] + ["set-credentials", "disable-factory-login", "set-lan"]
        self.assertEqual([st[k]["status"] for k in after], ["pending"] * len(after))
        self.assertEqual(FLASH_STEPS.index(failed), len(done))
        rig.lab.assert_secret_kept(self, rig.pw)
        return rig, took

    def test_04_lock_contention(self):
        rig, _ = self.failure("lock", {"lock-contention"}, FLASH_STEPS[:2], "upload", "precondition-failed",
                              ["another web session holds the BMC's firmware upload lock", "uploaded nothing"])
        self.assertEqual(rig.web.uploads, 0)
        self.assertIn("lock held", rig.web.texts())
        self.assertEqual(rig.firmware(), "2.50")

    def test_05_truncated_upload(self):
        rig, _ = self.failure("trunc", {"truncate-upload"}, FLASH_STEPS[:2], "upload", "unreachable",
                              ["bytes of the request were sent (the image is 65536 bytes)"], "--attempts", "2")
        # Two attempts (libcurl itself sends a request again once when a kept-alive connection
        # dies under it, so the BMC may see more).
        cuts = [x for x in rig.web.texts() if x.startswith("upload cut")]
        self.assertGreaterEqual(len(cuts), 2, rig.web.texts())
        self.assertEqual(rig.journal_steps["upload"]["attempts"], 2)
        self.assertEqual((rig.web.uploads, rig.web.starts), (0, 0))
        self.assertEqual(rig.firmware(), "2.50")

    def test_06_wrong_version_for_the_upload(self):
        rig, _ = self.failure("wrongv", {"wrong-version"}, FLASH_STEPS[:3], "check-upload", "verify-mismatch",
                              ["reads version 2.61 from the uploaded image, but the image is 2.60",
                               "will not start"])
        self.assertEqual((rig.web.uploads, rig.web.starts), (1, 0))
        self.assertEqual(rig.firmware(), "2.50")

    def test_07_stalled_flash_times_out(self):
        rig, took = self.failure("stall", {"stall"}, FLASH_STEPS[:5], "flash-progress", "timeout",
                                 ["has reported 40%", "Do not cut its power"], "--attempts", "1",
                                 timings=TIMINGS.replace("flash: 8s", "flash: 2s"))
        self.assertEqual(rig.web.starts, 1)
        self.assertLess(took, 40)

    def test_08_bmc_never_returns(self):
        rig, took = self.failure("gone", {"never-returns"}, FLASH_STEPS[:7], "wait-online", "timeout",
                                 ["did not answer IPMI within 2 s"], "--attempts", "1",
                                 timings=TIMINGS.replace("online: 10s", "online: 2s"))
        self.assertIn("offline", rig.web.texts())
        self.assertLess(took, 60)


if __name__ == "__main__":
    harness.run(globals())
