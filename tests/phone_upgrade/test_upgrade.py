#!/usr/bin/python3
"""Staged Cisco phone upgrades end to end: `labctl apply` takes emulated phones from an old SCCP
load to SIP 9.4(2) through SCCP 8.5(2), through `labctl serve`'s real TFTP service.

Everything on loopback: `labctl serve` answers TFTP on 127.0.0.1:PORT; each phone emulator
(tests/peers/phone_emulator.py) has an address of its own (127.0.0.11 ...), which is how labctl
tells the phones apart, and answers DeviceInformationX over HTTP (the probe) and SIP. The two
firmware bundles are built here with the structure of Cisco's `.cop.sgn` (a TLV signing header,
then a gzip'd tar): text `.loads` files naming the load and its `.sbn` files, and random `.sbn`
payloads. No Cisco file is used.

  test_upgrade.py --labctl PATH --source DIR [unittest args]

- Fleet: five 7906s and one 7911 on SCCP 8.3(0) (no bootloader for 9.x). The first apply is
  killed (SIGKILL) as soon as some phone reaches its second hop; the phones go on fetching from
  `labctl serve` meanwhile. The second apply resumes the journaled run, and each phone ends on
  SIP 9.4(2) with the SCCP 8.5(2) hop installed before it. A third apply has nothing to do.
- Loop: a phone whose TFTP root offers SIP 9.x directly (the operator copied the bundle there,
  as in the seed) loops on its term file; `labctl phone doctor --log` on labctl's own event log,
  and `labctl phone NAME doctor`, name the SCCP 8.5(2) hop.
"""
import gzip
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import harness  # noqa: E402

ARGS = None
SCCP = "SCCP11.8-5-2S"
SIP = "SIP11.9-4-2SR1-1S"
OLD = "SCCP11.8-3-0S"
SBN = {
    SCCP: ["jar11sccp.8-5-2TH1-9.sbn", "cnu11.8-5-2TH1-9.sbn", "apps11.8-5-2TH1-9.sbn",
           "dsp11.8-5-2TH1-9.sbn", "cvm11sccp.8-5-2TH1-9.sbn"],
    SIP: ["jar11sip.9-4-2ES9.sbn", "cnu11.9-4-2ES9.sbn", "apps11.9-4-2ES9.sbn",
          "dsp11.9-4-2ES9.sbn", "cvm11sip.9-4-2ES9.sbn"],
}
BUNDLE = {SCCP: "cmterm-7911_7906-sccp.8-5-2.cop.sgn", SIP: "cmterm-7911_7906-sip.9-4-2SR1-1.cop.sgn"}
PASSWORD = "fifteen-chars15"  # at the catalog's limit (15)


def load_text(load):
    return (load + "\n" + "\n".join(SBN[load]) + "\n").encode()


def load_files(load, sbn_size):
    rnd = random.Random(load)
    files = {f"{load}.loads": load_text(load), "term06.default.loads": load_text(load),
             "term11.default.loads": load_text(load)}
    for name in SBN[load]:
        files[name] = bytes(rnd.getrandbits(8) for _ in range(sbn_size))
    return files


def cop_sgn(files):
    """A `.cop.sgn`-shaped bundle: TLV header (tag 1 version, tag 2 header length), gzip'd tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
    payload = gzip.compress(buf.getvalue())
    header = bytes([1, 0, 2, 1, 0, 2, 0, 2, 0, 10])
    return header + payload


def free_port(ips):
    """A UDP+TCP port free on every address in ips."""
    for _ in range(200):
        port = random.randint(20000, 60000)
        socks = []
        try:
            for ip in ips:
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port")


def read(path):
    with open(path) as f:
        return f.read()


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Lab:
    """A state dir, a TFTP root, an inventory, `labctl serve`, and phone emulators."""

    def __init__(self, tmp, phones, static_root=None):
        self.tmp = tmp
        self.state = os.path.join(tmp, "state")
        self.root = os.path.join(tmp, "root")
        os.makedirs(self.root, exist_ok=True)
        for name, data in (static_root or {}).items():
            with open(os.path.join(self.root, name), "wb") as f:
                f.write(data)
        self.phones = phones  # [(name, model, mac, ip)]
        ips = ["127.0.0.1"] + [p[3] for p in phones]
        self.tftp_port = free_port(ips)
        self.http_port = free_port(ips)
        self.sip_port = free_port(ips)
        self.inv = os.path.join(tmp, "lab.yaml")
        with open(self.inv, "w") as f:
            f.write(self.inventory())
        self.env = dict(os.environ, LABCTL_TEST_SIP=PASSWORD, NO_COLOR="1",
                        LABCTL_CATALOG=os.path.join(ARGS.source, "catalog", "catalog.yaml"))
        self.procs = []
        self.emulators = {}

    def inventory(self):
        devs = ""
        for i, (name, model, mac, ip) in enumerate(self.phones):
            devs += f"""  - name: {name}
    type: cisco-phone
    model: {model}
    mac: "{mac}"
    ip: {ip}
    segment: lab
    extension: "{1001 + i}"
    sip:
      server: 127.0.0.1
      password: {{env: LABCTL_TEST_SIP}}
    sip-port: {self.sip_port}
    web-port: {self.http_port}
    upgrade-timeout: 3m
    firmware: {{target: {SIP}}}
"""
        return f"""version: 1
site: phone-upgrade-test
segments:
  - name: lab
    interface: lo
    subnet: 127.0.0.0/8
    tftp:
      root: {self.root}
      servers: [127.0.0.1]
devices:
{devs}"""

    def labctl(self, *args, timeout=120, check=None):
        r = subprocess.run([ARGS.labctl, "--state-dir", self.state, *args], env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        if check is not None:
            assert r.returncode == check, f"labctl {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def import_bundles(self, sbn_size):
        for load in (SCCP, SIP):
            path = os.path.join(self.tmp, BUNDLE[load])
            with open(path, "wb") as f:
                f.write(cop_sgn(load_files(load, sbn_size)))
            self.labctl("firmware", "import", path, check=0)

    def serve(self):
        self.serve_log = os.path.join(self.tmp, "serve.err")
        with open(self.serve_log, "w") as log:
            p = subprocess.Popen([ARGS.labctl, "--state-dir", self.state, "serve", self.inv,
                                  "--tftp-port", str(self.tftp_port)], env=self.env,
                                 stdout=subprocess.DEVNULL, stderr=log)
        self.procs.append(p)
        wait_for(lambda: "running" in read(self.serve_log) or p.poll() is not None, 20, "labctl serve")
        assert p.poll() is None, read(self.serve_log)
        return p

    def phone(self, name, model, mac, ip, extra=()):
        events = os.path.join(self.tmp, f"{name}.events")
        cmd = [sys.executable, os.path.join(ARGS.source, "tests", "peers", "phone_emulator.py"),
               "--model", model, "--mac", mac, "--state", os.path.join(self.tmp, f"{name}.json"),
               "--tftp", "127.0.0.1", "--tftp-port", str(self.tftp_port), "--bind", ip,
               "--http-port", str(self.http_port), "--sip-port", str(self.sip_port),
               "--initial-load", OLD, "--tftp-timeout", "0.5", "--timeout", "400", *extra]
        with open(events, "w") as out, open(os.path.join(self.tmp, f"{name}.err"), "w") as err:
            p = subprocess.Popen(cmd, stdout=out, stderr=err)
        self.procs.append(p)
        self.emulators[name] = (p, events)
        return p

    def events(self, name):
        with open(self.emulators[name][1]) as f:
            return [json.loads(line) for line in f if line.strip()]

    def phone_state(self, name):
        with open(os.path.join(self.tmp, f"{name}.json")) as f:
            return json.load(f)

    def publications(self):
        d = os.path.join(self.state, "plugins", "cisco-phone", "published")
        out = {}
        for fn in os.listdir(d) if os.path.isdir(d) else []:
            if fn.endswith(".json"):
                try:
                    with open(os.path.join(d, fn)) as f:
                        out[fn[:-5]] = json.load(f)
                except (OSError, ValueError):
                    pass
        return out

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


FLEET = [("desk1", "CP-7906G", "00:0B:82:01:FC:11", "127.0.0.11"),
         ("desk2", "CP-7906G", "00:0B:82:01:FC:12", "127.0.0.12"),
         ("desk3", "CP-7906G", "00:0B:82:01:FC:13", "127.0.0.13"),
         ("desk4", "CP-7906G", "00:0B:82:01:FC:14", "127.0.0.14"),
         ("desk5", "CP-7906G", "00:0B:82:01:FC:15", "127.0.0.15"),
         ("lobby", "CP-7911G", "00:0B:82:01:FC:16", "127.0.0.16")]


class Fleet(unittest.TestCase):
    def setUp(self):
        self.tmpdir = tempfile.TemporaryDirectory(prefix="labctl-upgrade-")
        self.lab = Lab(self.tmpdir.name, FLEET)

    def tearDown(self):
        self.lab.stop()
        self.tmpdir.cleanup()

    def dump(self):
        """What the phones and the services did, for a failure message."""
        out = []
        for name in self.lab.emulators:
            evs = self.lab.events(name)
            out.append(f"--- {name}: " + " ".join(e["event"] for e in evs[-40:]))
        out.append("--- serve: " + read(self.lab.serve_log)[-3000:])
        return "\n".join(out)

    def test_fleet_through_sccp_852_to_sip_942_with_a_killed_controller(self):
        lab = self.lab
        lab.import_bundles(sbn_size=150_000)
        lab.serve()
        for name, model, mac, ip in FLEET:
            # An SCCP phone with no call manager resets and reads TFTP again; nothing is published
            # yet, so the term file is "not found" until labctl publishes one to the phone.
            lab.phone(name, model, mac, ip, ["--reset-unregistered", "0.5", "--retry-interval", "0.5",
                                              "--max-retries", "100000", "--max-boots", "100",
                                              "--linger", "400"])
        wait_for(lambda: all(any(e["event"] == "http-listening" for e in lab.events(n)) for n, *_ in FLEET),
                 20, "the phones' web servers")

        plan = lab.labctl("plan", lab.inv)
        self.assertIn(SCCP, plan.stdout + plan.stderr)

        # First apply, killed as soon as some phone is on its second hop.
        first = subprocess.Popen([ARGS.labctl, "--state-dir", lab.state, "apply", lab.inv, "--yes"],
                                 env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(lambda: any(p.get("hop") == 2 for p in lab.publications().values()) or first.poll() is not None,
                     150, "a phone's second hop")
        finally:
            if first.poll() is None:
                first.kill()
            out1 = first.communicate(timeout=30)[0]
        self.assertEqual(first.returncode, -signal.SIGKILL, "apply finished before it could be killed:\n" + out1)
        pubs = lab.publications()
        self.assertEqual(len(pubs), 6, out1)
        hops = sorted(p["hop"] for p in pubs.values())
        # Operator instructions for SCCP phones (no check-sync on SCCP): the procedure once, then
        # one line per phone.
        self.assertEqual(out1.count("123456789*0#"), 1, out1)
        self.assertIn("the steps are above", out1)

        # Resume: every phone at its own stage.
        second = lab.labctl("apply", lab.inv, "--yes", timeout=400)
        msg = f"hops at kill: {hops}\n{second.stdout}\n{second.stderr}\n{self.dump()}"
        self.assertEqual(second.returncode, 0, msg)
        self.assertIn("Resuming run", second.stdout, msg)

        for name, model, mac, ip in FLEET:
            st = lab.phone_state(name)
            self.assertEqual(st["load"], SIP, f"{name}: {st}\n{msg}")
            loads = [h["load"] for h in st.get("history", [])]
            self.assertEqual(loads, [SCCP, SIP], f"{name} installed {loads}")
            evs = lab.events(name)
            self.assertTrue(any(e["event"] == "registered" for e in evs), f"{name} never registered")
            self.assertFalse(any(e["event"] == "stuck-loop" for e in evs), f"{name} looped")
            # The 7911 asked its own term file, the 7906s theirs.
            term = "term11.default.loads" if model == "CP-7911G" else "term06.default.loads"
            self.assertIn(term, [e.get("name") for e in evs if e["event"] == "tftp-request"])

        # Nothing left to do.
        third = lab.labctl("apply", lab.inv, "--yes", timeout=120)
        self.assertEqual(third.returncode, 0, third.stdout + third.stderr)
        self.assertIn("Nothing to do", third.stdout)

        # The password never reached a log or the journal.
        for root, _, files in os.walk(lab.state):
            for fn in files:
                with open(os.path.join(root, fn), "rb") as f:
                    self.assertNotIn(PASSWORD.encode(), f.read(), os.path.join(root, fn))


class Loop(unittest.TestCase):
    def test_sip_9x_offered_directly_loops_and_doctor_names_the_hop(self):
        with tempfile.TemporaryDirectory(prefix="labctl-loop-") as tmp:
            phone = ("stuck", "CP-7906G", "00:0B:82:01:FC:21", "127.0.0.21")
            # The operator copied the SIP bundle's files into the TFTP root, as in the seed.
            lab = Lab(tmp, [phone], static_root=load_files(SIP, 20_000))
            try:
                lab.serve()
                p = lab.phone(*phone, ["--loop-interval", "0.2", "--max-loops", "4"])
                p.wait(timeout=60)
                self.assertEqual(p.returncode, 2, lab.events("stuck")[-5:])
                self.assertEqual(sum(1 for e in lab.events("stuck") if e["event"] == "stuck-loop"), 4)
                log = os.path.join(lab.state, "logs", "tftp-lab.jsonl")
                r = lab.labctl("phone", "doctor", "--log", log)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn("127.0.0.21", r.stdout)
                self.assertIn(SCCP, r.stdout)
                r = lab.labctl("phone", "doctor", "--log", log, "--json")
                codes = [d["code"] for d in json.loads(r.stdout)["diagnoses"]]
                self.assertIn("term-file-loop", codes)
                # Per phone: the same diagnosis, from the segment's log, by the phone's address.
                r = lab.labctl("phone", "stuck", "doctor", "-i", lab.inv)
                self.assertIn(SCCP, r.stdout, r.stdout + r.stderr)
                self.assertIn("term", r.stdout)
            finally:
                lab.stop()


class Validation(unittest.TestCase):
    def test_a_32_character_password_stops_apply_before_any_step(self):
        with tempfile.TemporaryDirectory(prefix="labctl-pw-") as tmp:
            lab = Lab(tmp, FLEET[:1])
            lab.env["LABCTL_TEST_SIP"] = "x" * 32  # FreePBX's generated secrets in the seed
            r = lab.labctl("apply", lab.inv, "--yes")
            self.assertNotEqual(r.returncode, 0, r.stdout)
            self.assertIn("sip.password", r.stderr)
            self.assertIn("32", r.stderr)
            self.assertIn("15", r.stderr)
            self.assertNotIn("x" * 32, r.stdout + r.stderr)
            self.assertEqual(lab.publications(), {})
            self.assertNotIn("Applying", r.stdout)


class Services(unittest.TestCase):
    def test_no_serve_means_nothing_is_published_and_one_serve_per_state_dir(self):
        with tempfile.TemporaryDirectory(prefix="labctl-noserve-") as tmp:
            phone = FLEET[0]
            lab = Lab(tmp, [phone])
            try:
                lab.import_bundles(sbn_size=1_000)
                lab.phone(*phone, ["--retry-interval", "0.5", "--max-retries", "1000", "--linger", "60"])
                wait_for(lambda: any(e["event"] == "http-listening" for e in lab.events(phone[0])), 20,
                         "the phone's web server")
                r = lab.labctl("apply", lab.inv, "--yes", timeout=120)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("no 'labctl serve' serves TFTP for segment lab", r.stdout + r.stderr)
                self.assertEqual(lab.publications(), {})
                # One serve per state directory: a second one is refused, naming the first.
                lab.serve()
                second = subprocess.run([ARGS.labctl, "--state-dir", lab.state, "serve", lab.inv,
                                         "--tftp-port", str(free_port(["127.0.0.1"]))], env=lab.env,
                                        capture_output=True, text=True, timeout=30)
                self.assertNotEqual(second.returncode, 0)
                self.assertIn("another labctl serve runs", second.stderr)
                self.assertIn('"tftp":["lab"]', second.stderr)
            finally:
                lab.stop()


class CheckSync(unittest.TestCase):
    def test_a_registered_sip_phone_answers_check_sync_and_reboots(self):
        with tempfile.TemporaryDirectory(prefix="labctl-notify-") as tmp:
            phone = ("sipdesk", "CP-7911G", "00:0B:82:01:FC:31", "127.0.0.31")
            lab = Lab(tmp, [phone], static_root=load_files(SIP, 5_000))
            try:
                lab.serve()
                lab.phone(*phone, ["--initial-load", SIP, "--initial-bootloader", "8.5(2)",
                                   "--linger", "60", "--max-notify", "1"])
                wait_for(lambda: any(e["event"] == "registered" for e in lab.events("sipdesk")), 30,
                         "the phone to register")
                r = lab.labctl("phone", "sipdesk", "check-sync", "-i", lab.inv, timeout=60)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn("200", r.stdout)
                p = lab.emulators["sipdesk"][0]
                p.wait(timeout=60)
                evs = lab.events("sipdesk")
                self.assertEqual(p.returncode, 0, evs[-5:])
                got = [e for e in evs if e["event"] == "notify-received"]
                self.assertEqual([e.get("sip_event") for e in got], ["check-sync"])
                # The check-sync made it read its configuration again: two registrations.
                self.assertEqual(sum(1 for e in evs if e["event"] == "registered"), 2)
            finally:
                lab.stop()


if __name__ == "__main__":
    harness.run(globals())
