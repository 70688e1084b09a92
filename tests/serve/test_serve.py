#!/usr/bin/python3
"""`labctl serve INV`: the inventory's segment served end to end, as a phone sees it.

In a namespace pair of its own (tests/dhcp/dhcp_harness.py), an inventory whose segment `lab` is
the server namespace's veth (10.99.0.1/16) with DHCP in mode serve and a TFTP root, and a sim
phone whose MAC is the client veth's. busybox udhcpc in the client namespace must get the phone's
reserved address with options 150 (binary, both TFTP servers) and 66, although it is the phone
class that carries them; an unknown MAC gets a pool address without 150; then curl, from the
phone's address, downloads a file from the TFTP service of the same `labctl serve` process. The
DHCP event log names the inventory device.

  test_serve.py --labctl PATH --source DIR [unittest args]
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "dhcp"))
import dhcp_harness as h  # noqa: E402

ARGS = None
PHONE_MAC = "00:0b:82:01:fc:42"
OTHER_MAC = "02:00:00:00:00:77"
PHONE_IP = "10.99.0.31"
DESK_MAC = "00:0b:82:01:fc:43"
DESK_IP = "10.99.0.32"
DESK_SECRET = "desk-secret-15c"


def inventory(pair, root):
    return f"""version: 1
site: serve-test
segments:
  - name: lab
    interface: {pair.srv_if}
    subnet: 10.99.0.0/16
    dhcp:
      mode: serve
      range: 10.99.1.10-10.99.1.50
      router: 10.99.0.1
      lease-time: 10m
    tftp:
      root: {root}
      servers: [10.99.0.1, 10.99.0.2]
devices:
  - name: phone1
    type: sim-phone
    model: CP-7911G
    mac: {PHONE_MAC}
    ip: {PHONE_IP}
    segment: lab
    extension: "1001"
  - name: desk
    type: cisco-phone
    model: CP-7911G
    mac: {DESK_MAC}
    ip: {DESK_IP}
    segment: lab
    extension: "1002"
    firmware: {{target: SIP11.9-4-2SR1-1S}}
    sip:
      server: 10.99.0.1
      password: {{env: LABCTL_TEST_DESK_SIP}}
"""


@unittest.skipUnless(os.geteuid() == 0, "needs root for network namespaces")
class Serve(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = h.missing_binaries(["ip", "busybox", "curl"])
        if missing:
            raise unittest.SkipTest("missing: " + ", ".join(missing))
        cls.work = tempfile.mkdtemp(prefix="labctl-serve-test-")
        cls.pair = h.NetnsPair("serve", client_mac=PHONE_MAC).up()
        cls.root = os.path.join(cls.work, "tftp")
        os.makedirs(cls.root)
        cls.blob = os.urandom(300_000)
        with open(os.path.join(cls.root, "SIP11.9-4-2SR1-1S.loads"), "wb") as f:
            f.write(cls.blob)
        cls.inv = os.path.join(cls.work, "lab.yaml")
        with open(cls.inv, "w") as f:
            f.write(inventory(cls.pair, cls.root))
        cls.state = os.path.join(cls.work, "state")
        cls.out = open(os.path.join(cls.work, "serve.out"), "wb")
        env = dict(os.environ, LABCTL_TEST_DESK_SIP=DESK_SECRET)
        cls.proc = h.popen(cls.pair.exec_srv() + [ARGS.labctl, "--state-dir", cls.state, "serve", cls.inv],
                           stdout=cls.out, stderr=subprocess.STDOUT, env=env)
        ok = h.wait_for(lambda: "running" in h.read_text(cls.out.name) or cls.proc.poll() is not None, 20)
        if not ok or cls.proc.poll() is not None:
            out = h.read_text(cls.out.name)
            cls.tearDownClass()
            raise AssertionError("labctl serve did not start:\n" + out)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "proc", None) is not None:
            h.stop_process(cls.proc)
        h.stop_all()
        if getattr(cls, "pair", None) is not None:
            cls.pair.down()
        if getattr(cls, "out", None) is not None:
            cls.out.close()

    def events(self):
        path = os.path.join(self.state, "logs", "dhcp.jsonl")
        out = []
        for line in h.read_text(path).splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                self.fail("a log line is not JSON: " + line)
        return out

    def udhcpc(self, tag):
        c = h.ClientRun(self.pair, self.work, "udhcpc", tag)
        rc = c.run(c.udhcpc_cmd(), timeout=30)
        bound = [r for r in c.records() if h.hook_event(r) == "bound"]
        return rc, (bound[-1] if bound else None), c

    def test_1_phone_gets_its_reservation_and_option_150(self):
        rc, env, c = self.udhcpc("phone")
        self.assertEqual(rc, 0, c.output())
        self.assertIsNotNone(env, c.output())
        self.assertEqual(env.get("ip"), PHONE_IP)
        self.assertEqual(env.get("opt150"), h.OPT150_HEX)
        self.assertEqual(env.get("tftp"), "10.99.0.1")
        self.assertEqual(env.get("router"), "10.99.0.1")
        acks = [e for e in self.events() if e["event"] == "ack" and e.get("mac") == PHONE_MAC]
        self.assertTrue(acks, self.events())
        self.assertEqual(acks[-1].get("device"), "phone1")
        self.assertIn("tftp-boot", acks[-1].get("classes", []))

    def test_2_phone_fetches_from_the_same_process_over_tftp(self):
        self.pair.add_client_addr(PHONE_IP + "/16")
        out = os.path.join(self.work, "fetched.loads")
        rc, _, err = h.run_bounded(self.pair.exec_cli() + [
            "curl", "-s", "-S", "--max-time", "30", "--interface", PHONE_IP, "-o", out,
            "tftp://10.99.0.1/SIP11.9-4-2SR1-1S.loads"], 40)
        self.assertEqual(rc, 0, err)
        with open(out, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(self.blob).hexdigest())
        log = os.path.join(self.state, "logs", "tftp-lab.jsonl")
        self.assertTrue(h.wait_for(lambda: '"complete"' in h.read_text(log), 5), h.read_text(log))
        done = [json.loads(x) for x in h.read_text(log).splitlines() if '"complete"' in x]
        self.assertEqual(done[-1]["client"], PHONE_IP)
        self.pair.flush_client_addrs()

    def test_3_unknown_client_gets_a_pool_address_and_no_option_150(self):
        self.pair.set_client_mac(OTHER_MAC)
        try:
            rc, env, c = self.udhcpc("other")
            self.assertEqual(rc, 0, c.output())
            self.assertIsNotNone(env, c.output())
            a = [int(x) for x in env["ip"].split(".")]
            self.assertEqual(a[:3], [10, 99, 1])
            self.assertTrue(10 <= a[3] <= 50, env["ip"])
            self.assertNotIn("opt150", env, "option 150 went to a client outside the phone class")
        finally:
            self.pair.set_client_mac(PHONE_MAC)

    def tftp_from(self, addr, name):
        self.pair.add_client_addr(addr + "/16")
        out = os.path.join(self.work, "got-" + addr + "-" + name)
        try:
            rc, _, err = h.run_bounded(self.pair.exec_cli() + [
                "curl", "-s", "-S", "--max-time", "20", "--interface", addr, "-o", out,
                "tftp://10.99.0.1/" + name], 30)
        finally:
            self.pair.flush_client_addrs()
        return rc, (h.read_text(out) if rc == 0 else err)

    def test_5_cisco_phone_gets_its_own_configuration_and_nobody_else_does(self):
        rc, xml = self.tftp_from(DESK_IP, "SEP000B8201FC43.cnf.xml")
        self.assertEqual(rc, 0, xml)
        self.assertIn("<authPassword>" + DESK_SECRET + "</authPassword>", xml)
        self.assertIn("<authName>1002</authName>", xml)
        # No load is published to the phone (no `labctl apply` ran): the configuration names none,
        # so it keeps its load. Naming the inventory's target here would send an old SCCP phone
        # straight to 9.x and into the seed's term-file loop.
        self.assertNotIn("loadInformation", xml)
        # Another address asking the same name gets no file (it carries the SIP secret).
        rc, err = self.tftp_from(PHONE_IP, "SEP000B8201FC43.cnf.xml")
        self.assertNotEqual(rc, 0)
        self.assertNotIn(DESK_SECRET, h.read_text(self.out.name))

    def test_4_leases_are_listed(self):
        r = subprocess.run([ARGS.labctl, "--state-dir", self.state, "dhcp", "leases", "--json"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = json.loads(r.stdout)
        mine = [x for x in rows if x["mac"] == PHONE_MAC]
        self.assertEqual(len(mine), 1, rows)
        self.assertEqual(mine[0]["ip"], PHONE_IP)
        self.assertEqual(mine[0]["state"], "bound")
        self.assertEqual(mine[0]["segment"], "lab")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--labctl", required=True)
    p.add_argument("--source", required=True)
    ARGS, rest = p.parse_known_args()
    ARGS.labctl = os.path.abspath(ARGS.labctl)
    h.cleanup_on_signals()
    try:
        unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
    finally:
        h.stop_all()
        h.cleanup_namespaces()
