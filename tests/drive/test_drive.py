#!/usr/bin/python3
"""The optical-drive plugin end to end: labctl against emulated UJ240AS drives
(labctl-drive-emulator, one process per drive on a Unix socket, tests/peers/drive/drive_emulator.py),
reached through the inventory's `device: emulator:SOCKET` or `labctl drive --device`.

  test_drive.py --labctl PATH --source DIR [unittest args]
  (the emulator: $LABCTL_DRIVE_EMULATOR, else next to labctl's build)

- identify / audit, in an inventory and outside one; INQUIRY cross-checked both ways with
  sg3_utils' independent decoder (`sg_inq --inhex`): sg3_utils' own canned response served by the
  emulator is read by labctl as sg_inq reads it, and the bytes labctl read from the UJ240AS decode
  with sg_inq to the same vendor, product and revision.
- plan: the 1.01 -> 1.04 -> 1.12 path with six steps per hop; blocked without consent; blocked with
  the shipped catalog (vendor updaters without the image's place), saying what is missing.
- apply: images imported (a raw image, an updater the image is extracted from), both hops through
  WRITE BUFFER modes 5 and 7 (chunks at increasing offsets seen by the drive), then nothing to do.
- kill and resume: apply SIGKILLed while the drive reboots after hop 1; the resumed run re-checks
  and goes on, the 1.04 image was downloaded exactly once.
- failures, each ending in a clear state: the drive gone mid-write (the process exits), a disc in
  the tray, a timeout, a CHECK CONDITION; nothing is journaled done that the drive does not show,
  and after the cause is gone a new apply finishes.
- `labctl drive NAME flash FILE`: consent, the catalog's rule refusing 1.01 -> 1.12, success;
  the same on `--device`.
- `labctl drive scan` on fake sysfs trees; scsi_debug when the kernel allows it (skipped here with
  the reason otherwise).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "peers", "drive"))
import drive_emulator  # noqa: E402
import harness  # noqa: E402
import labctl_run  # noqa: E402

ARGS = None
PRODUCT = "BD-MLT UJ240AS"


def emulator_binary():
    if os.environ.get("LABCTL_DRIVE_EMULATOR"):
        return os.environ["LABCTL_DRIVE_EMULATOR"]
    build = os.path.dirname(os.path.dirname(os.path.abspath(ARGS.labctl)))
    return os.path.join(build, "plugins", "optical_drive", "labctl-drive-emulator")


def sha256(data):
    import hashlib
    return hashlib.sha256(data).hexdigest()


class Lab:
    """A temp dir with a state dir, a test catalog whose images are the emulator's format, the
    image files, and an inventory of drives."""

    IMAGE_AT = 8192

    def __init__(self, prefix):
        self.tmp = tempfile.mkdtemp(prefix=f"labctl-drive-{prefix}-")
        self.state = os.path.join(self.tmp, "state")
        self.inv = os.path.join(self.tmp, "lab.yaml")
        self.image104 = drive_emulator.microcode(PRODUCT, "1.04", 60_000, seed=104)
        self.image112 = drive_emulator.microcode(PRODUCT, "1.12", 100_000, seed=112)
        self.updater112 = drive_emulator.windows_updater(self.image112, at=self.IMAGE_AT)
        self.raw104 = self.write_file("UJ240AS-1.04.bin", self.image104)
        self.exe112 = self.write_file("uj240as_v112.exe", self.updater112)
        self.catalog = os.path.join(self.tmp, "catalog.yaml")
        with open(self.catalog, "w") as f:
            f.write(f"""version: 1
families:
  - name: panasonic-uj240as
    models: [UJ240AS]
    scheme: dotted
    quirks: {{inquiry-vendor: MATSHITA}}
    releases:
      - {{version: "1.01", files: []}}
      - version: "1.04"
        options: {{write-buffer-mode: 5}}
        files: [{{name: UJ240AS-1.04.bin, sha256: pin}}]
      - version: "1.12"
        options:
          write-buffer-mode: 7
          chunk-size: 32768
          image: {{offset: {self.IMAGE_AT}, length: {len(self.image112)}, sha256: {sha256(self.image112)}}}
        files: [{{name: uj240as_v112.exe, sha256: pin}}]
        requires:
          - installed: {{min: "1.04"}}
            reason: the seed's owner went 1.01 -> 1.04 but could not go directly to 1.12
""")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LABCTL_")}
        self.env.update(NO_COLOR="1", LABCTL_CATALOG=self.catalog)
        self.drives = []

    def write_file(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def drive(self, name="d", **kw):
        d = drive_emulator.start(emulator_binary(), os.path.join(self.tmp, name), **kw)
        self.drives.append(d)
        return d

    def write_inventory(self, *devices):
        with open(self.inv, "w") as f:
            f.write("version: 1\nsite: drive-test\ndevices:\n" + "".join(devices))
        return self.inv

    @staticmethod
    def device(name, drive, target="1.12", consent=True, extra=""):
        return f"""  - name: {name}
    type: optical-drive
    model: UJ240AS
    device: {drive.device}
    firmware: {{target: "{target}"}}
    accept-brick-risk: {"true" if consent else "false"}
    reboot-timeout: 10s
    poll-interval: 50ms
{extra}"""

    def labctl(self, *args, check=None, timeout=90, env=None):
        return labctl_run.run(ARGS.labctl, self.state, args, env or self.env, check=check, timeout=timeout)

    def json(self, *args, check=0, timeout=90, env=None):
        return labctl_run.run_json(ARGS.labctl, self.state, args, env or self.env, check=check, timeout=timeout)

    def import_images(self):
        self.labctl("firmware", "import", self.raw104, self.exe112, check=0)

    def journal(self, device):
        return self.json("history", "--device", device, "--json", "--limit", "100")["steps"]

    def close(self):
        for d in self.drives:
            d.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def downloads(state, mode=None):
    return [w for w in state["writes"] if w["mode"] != 15 and (mode is None or w["mode"] == mode)]


class Identify(unittest.TestCase):
    def setUp(self):
        self.lab = Lab("identify")

    def tearDown(self):
        self.lab.close()

    def test_identify_and_audit_in_and_out_of_an_inventory(self):
        d = self.lab.drive(medium="bd")
        inv = self.lab.write_inventory(Lab.device("htpc-bd", d))
        self.lab.labctl("validate", inv, check=0)
        j = self.lab.json("drive", "-i", inv, "htpc-bd", "identify", "--json")
        self.assertEqual((j["vendor"], j["product"], j["revision"]), ("MATSHITA", PRODUCT, "1.01"))
        self.assertEqual(j["serial"], "HM12345678")
        self.assertEqual(j["profile"]["name"], "BD-ROM")
        self.assertEqual(j["profile"]["class"], "BD")
        self.assertEqual(j["readiness"]["state"], "ready")
        self.assertEqual(j["problem"], "")
        text = self.lab.labctl("drive", "-i", inv, "htpc-bd", "identify", check=0).stdout
        self.assertIn("MATSHITA BD-MLT UJ240AS 1.01 (serial HM12345678)", text)
        d.control({"op": "medium", "medium": "none", "tray-open": True})
        j = self.lab.json("drive", "--device", d.device, "identify", "--json")
        self.assertEqual(j["readiness"]["text"], "no disc (tray open)")
        self.assertEqual(j["family"], "panasonic-uj240as")
        self.assertIn("UNIT ATTENTION: NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED (28/00)",
                      j["unit_attentions"])
        a = self.lab.json("drive", "-i", inv, "htpc-bd", "audit", "--json")
        self.assertEqual(a["installed"], "1.01")
        self.assertTrue(a["drift"])
        self.assertEqual([(h["from"], h["to"]) for h in a["hops"]], [("1.01", "1.04"), ("1.04", "1.12")])
        self.assertFalse(a["hops"][0]["installable"])  # nothing imported yet
        self.assertIn("not", a["hops"][0]["status"])
        self.lab.import_images()
        a = self.lab.json("drive", "--device", d.device, "audit", "--json")
        self.assertEqual(a["target_source"], "catalog (newest release)")
        self.assertTrue(all(h["installable"] for h in a["hops"]), a)
        self.assertEqual(a["hops"][1]["image_sha256"], sha256(self.lab.image112))

    def sg_inq(self, path):
        if not shutil.which("sg_inq"):
            self.skipTest("sg_inq (sg3-utils) is not installed")
        r = subprocess.run(["sg_inq", f"--inhex={path}"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = {}
        for line in r.stdout.splitlines():
            for key, name in (("Vendor identification:", "vendor"), ("Product identification:", "product"),
                              ("Product revision level:", "revision")):
                if key in line:
                    out[name] = line.split(":", 1)[1].strip()
            if "Peripheral device type:" in line:
                out["type"] = line.split("Peripheral device type:", 1)[1].strip()
        return out

    def test_inquiry_agrees_with_sg_inq_both_ways(self):
        # sg3_utils' canned response, served by the emulator, read by labctl.
        canned = os.path.join(ARGS.source, "tests", "drive", "data", "inq_std.hex")
        want = self.sg_inq(canned)
        d = self.lab.drive(inquiry_hex=canned)
        j = self.lab.json("drive", "--device", d.device, "identify", "--json")
        self.assertEqual((j["vendor"], j["product"], j["revision"]),
                         (want["vendor"], want["product"], want["revision"]))
        self.assertEqual(want["type"], "disk")
        self.assertEqual(j["device_type_name"], "disk")
        self.assertIn("not an optical drive", j["problem"])
        # The UJ240AS's bytes as labctl read them, decoded by sg_inq.
        d2 = self.lab.drive("d2")
        j2 = self.lab.json("drive", "--device", d2.device, "identify", "--json")
        hexfile = self.lab.write_file("uj240as.hex", j2["inquiry_hex"].encode())
        got = self.sg_inq(hexfile)
        self.assertEqual((got["vendor"], got["product"], got["revision"]),
                         (j2["vendor"], j2["product"], j2["revision"]))
        self.assertEqual(got["type"], "cd/dvd")

    def test_errors_are_clear(self):
        r = self.lab.labctl("drive", "--device", "emulator:" + os.path.join(self.lab.tmp, "none.sock"),
                            "identify", check=1)
        self.assertIn("no drive answers", r.stderr)
        self.assertIn("[unreachable]", r.stderr)
        r = self.lab.labctl("drive", "--device", "/tmp/not-a-dev", "identify", check=1)
        self.assertIn("is not a device node", r.stderr)
        r = self.lab.labctl("drive", "--device", "/dev/sg200", "identify", check=1)
        self.assertIn("/dev/sg200: cannot open", r.stderr)
        bad = self.lab.write_inventory("""  - name: x
    type: optical-drive
    model: UJ240AS
    device: sg1
""")
        r = self.lab.labctl("validate", bad, check=1)
        self.assertIn("'sg1' is not a device node", r.stderr)


class Upgrade(unittest.TestCase):
    def setUp(self):
        self.lab = Lab("upgrade")

    def tearDown(self):
        self.lab.close()

    def test_plan_shows_both_hops_and_refuses_without_consent(self):
        d = self.lab.drive()
        inv = self.lab.write_inventory(Lab.device("htpc-bd", d))
        plan = self.lab.json("plan", "--json", inv)
        dev = plan["devices"][0]
        self.assertEqual(dev["status"], "changes")
        self.assertEqual([(h["from"], h["to"]) for h in dev["firmware"]["hops"]], [("1.01", "1.04"), ("1.04", "1.12")])
        self.assertIn("requires installed >= 1.04", dev["firmware"]["hops"][0]["reason"])
        self.assertEqual([s["key"] for s in dev["steps"]][:6],
                         ["verify-image@1.04", "identify@1.04", "check-idle@1.04", "write@1.04",
                          "wait-online@1.04", "verify@1.04"])
        self.assertEqual(len(dev["steps"]), 12)
        self.assertEqual([s["key"] for s in dev["steps"] if s["writes"]], ["write@1.04", "write@1.12"])
        inv = self.lab.write_inventory(Lab.device("htpc-bd", d, consent=False))
        plan = self.lab.json("plan", "--json", inv, check=2)
        self.assertEqual(plan["devices"][0]["status"], "blocked")
        self.assertIn("can brick it", plan["devices"][0]["problem"]["message"])
        # The shipped catalog: vendor updaters without the image's place are refused, saying what
        # is missing.
        env = dict(self.lab.env)
        env["LABCTL_CATALOG"] = os.path.join(ARGS.source, "catalog", "catalog.yaml")
        inv = self.lab.write_inventory(Lab.device("htpc-bd", d))
        plan = self.lab.json("plan", "--json", inv, check=2, env=env)
        msg = plan["devices"][0]["problem"]["message"]
        self.assertIn("uj240as_v104.exe is a vendor updater", msg)
        self.assertIn("offset, length and sha256", msg)
        self.assertEqual(d.state()["counts"].get("write-buffer", 0), 0)

    def test_apply_both_hops_then_nothing_to_do(self):
        d = self.lab.drive()
        inv = self.lab.write_inventory(Lab.device("htpc-bd", d))
        self.lab.import_images()
        r = self.lab.labctl("apply", "--yes", inv, check=0, timeout=120)
        self.assertIn("1 of 1 devices converged, 12 steps run", r.stdout)
        st = d.state()
        self.assertEqual(st["revision"], "1.12")
        self.assertEqual(st["activations"], 2)
        mode5 = downloads(st, 5)
        mode7 = downloads(st, 7)
        self.assertEqual([(w["offset"], w["length"]) for w in mode5], [(0, len(self.lab.image104))])
        self.assertEqual([w["offset"] for w in mode7], list(range(0, len(self.lab.image112), 32768)))
        self.assertEqual(mode7[-1]["result"], "activated 1.12")
        r = self.lab.labctl("apply", "--yes", inv, check=0)
        self.assertIn("Nothing to do", r.stdout)
        self.assertEqual(len(downloads(d.state())), len(mode5) + len(mode7))
        audit = self.lab.json("audit", "--format", "json", inv, check=0)
        self.assertEqual(audit["devices"][0]["firmware"]["installed"], "1.12")
        self.assertFalse(audit["devices"][0]["firmware"]["drift"])

    def test_kill_during_the_reboot_and_resume(self):
        d = self.lab.drive(reboot_ms=2500)
        inv = self.lab.write_inventory(Lab.device("htpc-bd", d))
        self.lab.import_images()
        p = subprocess.Popen([ARGS.labctl, "--state-dir", self.lab.state, "apply", "--yes", inv],
                             env=self.lab.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = d.state()
            if st["activations"] >= 1:
                break
            time.sleep(0.02)
        else:
            p.kill()
            self.fail("hop 1 was never activated")
        time.sleep(0.3)  # inside wait-online, the drive still rebooting
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        steps = {s["key"]: s["status"] for s in self.lab.journal("htpc-bd")}
        self.assertEqual(steps["write@1.04"], "done")
        self.assertEqual(steps["wait-online@1.04"], "running")
        self.assertEqual(steps["write@1.12"], "pending")
        r = self.lab.labctl("apply", "--yes", inv, check=0, timeout=120)
        self.assertIn("Resuming run", r.stdout)
        st = d.state()
        self.assertEqual(st["revision"], "1.12")
        self.assertEqual(len(downloads(st, 5)), 1, "the 1.04 image was written once")
        self.assertTrue(all(s["status"] == "done" for s in self.lab.journal("htpc-bd")))

    def test_drive_gone_mid_write(self):
        vanish = {"on": "write-buffer", "mode": 7, "nth": 2, "action": "vanish"}
        d = self.lab.drive(faults=[vanish])
        inv = self.lab.write_inventory(Lab.device("htpc-bd", d))
        self.lab.import_images()
        r = self.lab.labctl("apply", "--yes", "--attempts", "2", "--retry-delay", "100ms", inv, check=1,
                            timeout=120)
        self.assertEqual(d.wait_exit(), 70)
        self.assertIn("the drive is gone", r.stdout)
        steps = {s["key"]: s for s in self.lab.journal("htpc-bd")}
        self.assertEqual(steps["verify@1.04"]["status"], "done")
        self.assertEqual(steps["write@1.12"]["status"], "failed")
        self.assertEqual(steps["write@1.12"]["error_code"], "unreachable")
        self.assertEqual(steps["verify@1.12"]["status"], "pending")
        # The drive comes back (power cycle, no fault): the partial image did not survive.
        d.power_cycle(["--revision", "1.01", "--reboot-ms", "300"])
        self.assertEqual(d.state()["revision"], "1.04")
        plan = self.lab.json("plan", "--json", inv)
        self.assertEqual([s["key"] for s in plan["devices"][0]["steps"]][0], "verify-image@1.12")
        self.lab.labctl("apply", "--yes", inv, check=0, timeout=120)
        st = d.state()
        self.assertEqual(st["revision"], "1.12")
        offsets = [w["offset"] for w in downloads(st, 7)]
        self.assertEqual(offsets[-4:], [0, 32768, 65536, 98304])

    def test_disc_in_the_tray_timeout_and_check_condition(self):
        refuse = {"on": "write-buffer", "action": "check-condition", "key": 5, "asc": 0x26, "ascq": 0}
        hang = {"on": "write-buffer", "nth": 2, "action": "timeout", "hang-ms": 3000}
        d = self.lab.drive(medium="bd", faults=[refuse, hang])
        inv = self.lab.write_inventory(Lab.device("htpc-bd", d, target="1.04", extra="    write-timeout: 500ms\n"))
        self.lab.import_images()
        r = self.lab.labctl("apply", "--yes", "--attempts", "1", inv, check=1)
        self.assertIn("a disc is in the drive; eject it before flashing", r.stdout)
        self.assertEqual(d.state()["counts"].get("write-buffer", 0), 0)
        d.control({"op": "medium", "medium": "none"})
        r = self.lab.labctl("apply", "--yes", "--attempts", "1", inv, check=1)
        self.assertIn("ILLEGAL REQUEST: INVALID FIELD IN PARAMETER LIST (26/00)", r.stdout)
        t0 = time.monotonic()
        r = self.lab.labctl("apply", "--yes", "--attempts", "1", inv, check=1)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertIn("timeout", r.stdout)
        st = d.state()
        self.assertEqual(st["revision"], "1.01")
        self.assertEqual(st["activations"], 0)
        for s in self.lab.journal("htpc-bd"):
            if s["key"] in ("write@1.04", "wait-online@1.04", "verify@1.04"):
                self.assertNotEqual(s["status"], "done", s)
        time.sleep(3)  # the hung command is dropped
        self.lab.labctl("apply", "--yes", inv, check=0)
        self.assertEqual(d.state()["revision"], "1.04")


class FlashVerb(unittest.TestCase):
    def setUp(self):
        self.lab = Lab("flash")

    def tearDown(self):
        self.lab.close()

    def test_flash_consent_rules_and_success(self):
        d = self.lab.drive()
        inv = self.lab.write_inventory(Lab.device("htpc-bd", d, consent=False))
        self.lab.import_images()
        r = self.lab.labctl("drive", "-i", inv, "htpc-bd", "flash", self.lab.raw104, check=1)
        self.assertIn("can brick it", r.stderr)
        self.assertIn("nothing was sent", r.stderr)
        r = self.lab.labctl("drive", "-i", inv, "htpc-bd", "flash", self.lab.exe112, "--accept-brick-risk", check=1)
        self.assertIn("requires installed >= 1.04", r.stderr)
        stray = self.lab.write_file("other.bin", drive_emulator.microcode(PRODUCT, "1.04", 5000, seed=9))
        r = self.lab.labctl("drive", "-i", inv, "htpc-bd", "flash", stray, "--accept-brick-risk", check=1)
        self.assertIn("labctl firmware import", r.stderr)
        self.assertEqual(d.state()["counts"].get("write-buffer", 0), 0)
        j = self.lab.json("drive", "-i", inv, "htpc-bd", "flash", self.lab.raw104, "--accept-brick-risk", "--json")
        self.assertEqual(j["status"], "done")
        self.assertEqual([s["status"] for s in j["steps"]], ["done"] * 6)
        self.assertEqual(d.state()["revision"], "1.04")
        # Outside any inventory.
        r = self.lab.labctl("drive", "--device", d.device, "flash", self.lab.exe112, "--accept-brick-risk", check=0)
        self.assertIn("now runs 1.12", r.stdout)
        self.assertEqual(d.state()["revision"], "1.12")


class Scan(unittest.TestCase):
    def setUp(self):
        self.lab = Lab("scan")

    def tearDown(self):
        self.lab.close()

    def fake_sysfs(self, devices, name="sys"):
        root = os.path.join(self.lab.tmp, name)
        for sg, hctl, typ, vendor, model, rev, block in devices:
            dev = os.path.join(root, "devices", "pci0000:00", "host" + hctl[0], hctl)
            os.makedirs(os.path.join(dev, "scsi_generic", sg), exist_ok=True)
            for name, value in (("type", typ), ("vendor", vendor), ("model", model), ("rev", rev)):
                with open(os.path.join(dev, name), "w") as f:
                    f.write(value + "\n")
            if block:
                os.makedirs(os.path.join(dev, "block", block))
            os.symlink(dev, os.path.join(dev, "scsi_generic", sg, "device"))
            os.makedirs(os.path.join(root, "class", "scsi_generic"), exist_ok=True)
            os.symlink(os.path.join(dev, "scsi_generic", sg), os.path.join(root, "class", "scsi_generic", sg))
        return root

    def test_scan(self):
        root = self.fake_sysfs([("sg0", "0:0:0:0", "0", "ATA", "Samsung SSD 860", "4B6Q", None),
                                ("sg1", "1:0:0:0", "5", "MATSHITA", "BD-MLT UJ240AS", "1.01", "sr0")])
        r = self.lab.labctl("drive", "scan", "--sysfs", root, check=0)
        self.assertIn("/dev/sg1", r.stdout)
        self.assertIn("/dev/sr0", r.stdout)
        self.assertIn("MATSHITA", r.stdout)
        self.assertNotIn("/dev/sg0", r.stdout)
        j = self.lab.json("drive", "scan", "--sysfs", root, "--json")
        self.assertEqual(j["devices"], 2)
        self.assertEqual([(x["sg"], x["hctl"], x["model"]) for x in j["drives"]],
                         [("/dev/sg1", "1:0:0:0", "BD-MLT UJ240AS")])
        disks = self.fake_sysfs([], name="empty")
        os.makedirs(os.path.join(disks, "class", "scsi_generic"), exist_ok=True)
        r = self.lab.labctl("drive", "scan", "--sysfs", disks, check=0)
        self.assertIn("no optical drives: 0 SCSI generic devices", r.stdout)
        r = self.lab.labctl("drive", "scan", "--sysfs", os.path.join(self.lab.tmp, "nosys"), check=0)
        self.assertIn("no SCSI generic driver", r.stdout)

    def test_scsi_debug(self):
        """Against the kernel's scsi_debug (a CD-ROM with ptype=5) where it can be loaded."""
        loaded = os.path.isdir("/sys/bus/pseudo/drivers/scsi_debug")
        if not loaded:
            modprobe = shutil.which("modprobe") or shutil.which("modprobe", path="/sbin:/usr/sbin")
            if not modprobe:
                self.skipTest("scsi_debug: no modprobe here (a container without kernel modules), "
                              "so the drive cannot be tested against the kernel's SCSI stack")
            if os.geteuid() != 0:
                self.skipTest("scsi_debug: loading a kernel module needs root")
            r = subprocess.run([modprobe, "scsi_debug", "ptype=5", "num_tgts=1"], capture_output=True,
                               text=True, timeout=60)
            if r.returncode != 0:
                self.skipTest("scsi_debug: the kernel refused it (" + (r.stderr.strip() or r.stdout.strip()) + ")")
            self.addCleanup(subprocess.run, [modprobe, "-r", "scsi_debug"], capture_output=True, timeout=60)
            time.sleep(1)
        j = self.lab.json("drive", "scan", "--json")
        drives = [x for x in j["drives"] if "scsi_debug" in x["model"]]
        if not drives:
            self.skipTest("scsi_debug is loaded without a CD-ROM (ptype=5) device")
        ident = self.lab.json("drive", "--device", drives[0]["sg"], "identify", "--json")
        self.assertEqual(ident["vendor"], "Linux")
        self.assertEqual(ident["device_type"], 5)


if __name__ == "__main__":
    harness.run(globals())
