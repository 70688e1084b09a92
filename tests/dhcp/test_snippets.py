#!/usr/bin/env python3
"""Real-server checks of the snippets `labctl dhcp options` prints (agents/net/dhcp/snippets.h).

The snippets come from dhcp_snippet_tool (FORMAT IP,IP [NAME]), built with the tests.

  - every format: starts with a comment line that says option 150 is binary; the hex form is the
    exact wire bytes;
  - ISC dhcpd (`dhcpd -t -cf`), Kea (`kea-dhcp4 -t`) and dnsmasq (`dnsmasq --test -C`) accept the
    generated snippet wrapped in a minimal configuration, and each rejects a deliberately broken
    one (option 150 as text or a bad address), which proves the check can fail;
  - on the wire (root only): dnsmasq and Kea run with the generated snippet in a network namespace
    of this test's own, joined by a veth pair to a client namespace where busybox udhcpc asks for
    options 66 and 150; its hook must see opt150=0a6300010a630002 (udhcpc shows unknown options as
    hex) and tftp=<name>.

Every process this test starts is stopped by PID (its own process group), every namespace it made
is deleted, in finally blocks; every wait is bounded. All DHCP traffic stays inside the
namespaces. A test is skipped (with the reason) only when not root or a binary is missing.

Usage: test_snippets.py --tool PATH [--source DIR] [unittest args, e.g. -k Wire]
Environment: DHCP_TEST_KEEP=1 keeps the temporary directory.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ARGS = None
TMP = None
SERVERS = ["10.99.0.1", "10.99.0.2"]
OPT150_HEX = "0a6300010a630002"
STARTED = []            # every Popen this module started (stopped in tearDownModule too)
NAMESPACES = []         # every namespace this module created (deleted in tearDownModule too)
NS_COUNTER = [0]


# ----------------------------------------------------------------------------------------------
# helpers

def stop_process(proc, grace=5.0):
    """SIGTERM the process group this module started (by the leader's PID), wait, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait(timeout=grace)


def popen(cmd, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    STARTED.append(p)
    return p


def run_bounded(cmd, timeout, env=None):
    """Runs cmd with a hard time bound; returns (rc, stdout, stderr); rc -999 when killed."""
    p = popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(p, grace=1.0)
        out, err = p.communicate()
        return -999, out.decode(errors="replace"), (err.decode(errors="replace") +
                                                    f"\n[killed after {timeout}s]")
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def snippet(fmt, servers=SERVERS, name=None):
    cmd = [ARGS.tool, fmt, ",".join(servers)] + ([name] if name is not None else [])
    rc, out, err = run_bounded(cmd, 30)
    if rc != 0:
        raise AssertionError(f"{cmd} failed ({rc}): {err}")
    return out


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def tmp_path(name):
    return os.path.join(TMP, name)


def need(*binaries):
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        raise unittest.SkipTest("missing: " + ", ".join(missing))


def need_root():
    if os.geteuid() != 0:
        raise unittest.SkipTest("network namespaces need root")


def isc_conf(body):
    return (body + "\nauthoritative;\ndefault-lease-time 3600;\n"
            "subnet 10.99.0.0 netmask 255.255.0.0 {\n  range 10.99.1.10 10.99.1.100;\n}\n")


def kea_conf(fragment, interface="lo", leases=None, log=None):
    """A full kea-dhcp4 configuration with the snippet's fragment pasted into "Dhcp4"."""
    leases = leases or tmp_path("kea-leases4.csv")
    log = log or tmp_path("kea-dhcp4.log")
    return ('{\n"Dhcp4": {\n' + fragment.rstrip() + ',\n'
            f'"interfaces-config": {{ "interfaces": [ "{interface}" ], '
            '"dhcp-socket-type": "raw" },\n'
            f'"lease-database": {{ "type": "memfile", "persist": true, "name": "{leases}", '
            '"lfc-interval": 0 },\n'
            '"valid-lifetime": 3600,\n"authoritative": true,\n'
            '"subnet4": [ { "id": 1, "subnet": "10.99.0.0/16",\n'
            '  "pools": [ { "pool": "10.99.1.10 - 10.99.1.100" } ] } ],\n'
            f'"loggers": [ {{ "name": "kea-dhcp4", "output_options": [ {{ "output": "{log}" }} ], '
            '"severity": "INFO" } ]\n'
            '}\n}\n')


def kea_env():
    d = tmp_path("kea-run")
    os.makedirs(d, exist_ok=True)
    env = dict(os.environ)
    env["KEA_PIDFILE_DIR"] = d
    env["KEA_LOCKFILE_DIR"] = d
    return env


# ----------------------------------------------------------------------------------------------
# the snippets themselves

class Generated(unittest.TestCase):
    FORMATS = {"isc": "#", "kea": "//", "dnsmasq": "#", "cisco-ios": "!", "mikrotik": "#",
               "hex": "#"}

    def test_every_format_starts_with_a_comment(self):
        for fmt, marker in self.FORMATS.items():
            with self.subTest(fmt=fmt):
                text = snippet(fmt)
                first = text.splitlines()[0]
                self.assertTrue(first.startswith(marker + " labctl dhcp options:"), first)
                self.assertIn("150 is binary", first)

    def test_hex_is_the_wire_bytes(self):
        lines = [l for l in snippet("hex").splitlines() if not l.startswith("#")]
        self.assertEqual(lines[0], "96" + "08" + OPT150_HEX)
        self.assertEqual(bytes.fromhex(lines[1]), bytes([66, 9]) + b"10.99.0.1")

    def test_mikrotik_hex_value(self):
        self.assertIn("value=0x" + OPT150_HEX, snippet("mikrotik"))
        self.assertIn("value=\"'tftp.lab'\"", snippet("mikrotik", name="tftp.lab"))

    def test_bad_input_is_refused(self):
        rc, _, err = run_bounded([ARGS.tool, "bind9", "10.0.0.1"], 30)
        self.assertEqual(rc, 1)
        self.assertIn("valid formats: isc, kea, dnsmasq, cisco-ios, mikrotik, hex", err)
        rc, _, err = run_bounded([ARGS.tool, "isc", "10.0.0.1", 'a"b'], 30)
        self.assertEqual(rc, 1)
        self.assertIn("only letters, digits", err)


# ----------------------------------------------------------------------------------------------
# syntax checks by the real servers (no root needed)

class IscDhcpd(unittest.TestCase):
    def setUp(self):
        need("dhcpd")

    def check(self, conf_text, name):
        path = write(tmp_path(name), conf_text)
        return run_bounded(["dhcpd", "-t", "-4", "-cf", path, "-lf", tmp_path(name + ".leases"),
                            "-pf", tmp_path(name + ".pid")], 30)

    def test_generated_snippet_is_accepted(self):
        for name in (None, "tftp.lab"):
            with self.subTest(name=name):
                rc, out, err = self.check(isc_conf(snippet("isc", name=name)), "isc-ok.conf")
                self.assertEqual(rc, 0, out + err)

    def test_option_150_as_text_is_rejected(self):
        broken = ("option cisco-tftp-servers code 150 = array of ip-address;\n"
                  'option cisco-tftp-servers "10.0.0.1";\n')
        rc, out, err = self.check(isc_conf(broken), "isc-bad.conf")
        self.assertNotEqual(rc, 0, "dhcpd -t accepted option 150 as text:\n" + out + err)
        self.assertIn("expecting IP address", out + err)


class KeaCheck(unittest.TestCase):
    def setUp(self):
        need("kea-dhcp4")

    def check(self, fragment, name):
        path = write(tmp_path(name), kea_conf(fragment))
        return run_bounded(["kea-dhcp4", "-t", path], 60, env=kea_env())

    def test_generated_fragment_is_accepted(self):
        for name in (None, "tftp.lab"):
            with self.subTest(name=name):
                rc, out, err = self.check(snippet("kea", name=name), "kea-ok.json")
                self.assertEqual(rc, 0, out + err)

    def test_option_150_as_text_is_rejected(self):
        fragment = snippet("kea").replace('"data": "10.99.0.1, 10.99.0.2"', '"data": "tftp.lab"')
        self.assertIn('"data": "tftp.lab"', fragment)
        rc, out, err = self.check(fragment, "kea-bad.json")
        self.assertNotEqual(rc, 0, "kea-dhcp4 -t accepted option 150 as text:\n" + out + err)
        self.assertIn("Failed to convert string to address", out + err)


class DnsmasqCheck(unittest.TestCase):
    def setUp(self):
        need("dnsmasq")

    def check(self, text, name):
        path = write(tmp_path(name), text)
        return run_bounded(["dnsmasq", "--test", "-C", path], 30)

    def test_generated_snippet_is_accepted(self):
        for name in (None, "tftp.lab"):
            with self.subTest(name=name):
                rc, out, err = self.check(snippet("dnsmasq", name=name), "dnsmasq-ok.conf")
                self.assertEqual(rc, 0, out + err)
                self.assertIn("syntax check OK", out + err)

    def test_bad_address_in_150_is_rejected(self):
        rc, out, err = self.check("dhcp-option-force=150,10.99.0.300\n", "dnsmasq-bad.conf")
        self.assertNotEqual(rc, 0, "dnsmasq --test accepted a bad address:\n" + out + err)
        self.assertIn("bad IPv4 address", out + err)


# ----------------------------------------------------------------------------------------------
# on the wire: a real server and busybox udhcpc in two namespaces of this test's own

HOOK = """#!/bin/sh
# udhcpc hook: record the event and the environment, change nothing.
{ echo "== $1"; env; } >> "%s"
exit 0
"""


class Namespaces:
    """Two namespaces joined by a veth pair: server side 10.99.0.1/16, client side no address.
    Names are unique to this process and call (lt<pid><n>s / lt<pid><n>c)."""

    def __init__(self):
        NS_COUNTER[0] += 1
        tag = f"{os.getpid()}{NS_COUNTER[0]}"
        self.srv, self.cli = f"lt{tag}s", f"lt{tag}c"
        self.srv_if, self.cli_if = f"v{tag}s", f"v{tag}c"
        if len(self.srv_if) > 15:  # IFNAMSIZ
            tag = tag[-12:]
            self.srv_if, self.cli_if = f"v{tag}s", f"v{tag}c"

    def up(self):
        for ns in (self.srv, self.cli):
            self._ip("netns", "add", ns)
            NAMESPACES.append(ns)
        self._ip("link", "add", self.srv_if, "type", "veth", "peer", "name", self.cli_if)
        try:
            self._ip("link", "set", self.srv_if, "netns", self.srv)
            self._ip("link", "set", self.cli_if, "netns", self.cli)
        except AssertionError:
            # A move failed: what is left of the pair is still here; deleting one end deletes both.
            run_bounded(["ip", "link", "del", self.srv_if], 10)
            run_bounded(["ip", "link", "del", self.cli_if], 10)
            raise
        self._ip("-n", self.srv, "link", "set", "lo", "up")
        self._ip("-n", self.cli, "link", "set", "lo", "up")
        self._ip("-n", self.srv, "addr", "add", "10.99.0.1/16", "dev", self.srv_if)
        self._ip("-n", self.srv, "link", "set", self.srv_if, "up")
        self._ip("-n", self.cli, "link", "set", self.cli_if, "address", "02:00:00:00:00:02")
        self._ip("-n", self.cli, "link", "set", self.cli_if, "up")

    def down(self):
        for ns in (self.cli, self.srv):
            if ns in NAMESPACES:
                run_bounded(["ip", "netns", "del", ns], 10)
                NAMESPACES.remove(ns)

    @staticmethod
    def _ip(*args):
        rc, out, err = run_bounded(["ip", *args], 10)
        if rc != 0:
            raise AssertionError(f"ip {' '.join(args)} failed ({rc}): {out}{err}")


def wait_udp_port(ns, port, timeout, proc):
    """Until something listens on UDP `port` inside `ns` (or proc exits, or the time is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        rc, out, _ = run_bounded(["ip", "netns", "exec", ns, "ss", "-H", "-uln",
                                  f"sport = :{port}"], 5)
        if rc == 0 and out.strip():
            return True
        time.sleep(0.2)
    return False


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class WireBase:
    """Mixin: start_server(ns) -> Popen, server_log() -> str; set by subclasses."""

    SERVER = None
    NAME = None        # the tftp name to pass (None: the default, the first server's address)

    def setUp(self):
        need_root()
        need("ip", "ss", "busybox", self.SERVER)
        self.dir = tempfile.mkdtemp(prefix=f"wire-{self.SERVER}-", dir=TMP)
        self.files = []

    def tearDown(self):
        for f in self.files:
            f.close()

    def stderr_file(self, path):
        f = open(path, "w")
        self.files.append(f)
        return f

    def server_log(self):
        return ""

    def test_client_gets_binary_150_and_text_66(self):
        ns = Namespaces()
        server = None
        client_out = ""
        try:
            ns.up()
            server = self.start_server(ns)
            if not wait_udp_port(ns.srv, 67, 20, server):
                self.fail(f"{self.SERVER} did not start listening on :67 within 20 s "
                          f"(exit {server.poll()}):\n{self.server_log()}")
            env_file = os.path.join(self.dir, "client-env.txt")
            hook = write(os.path.join(self.dir, "hook.sh"), HOOK % env_file)
            os.chmod(hook, 0o755)
            rc, out, err = run_bounded(
                ["ip", "netns", "exec", ns.cli, "busybox", "udhcpc", "-i", ns.cli_if, "-f", "-q",
                 "-n", "-t", "8", "-T", "2", "-O", "66", "-O", "150", "-s", hook], 40)
            client_out = out + err
            self.assertEqual(rc, 0, f"udhcpc got no lease:\n{client_out}\n{self.server_log()}")
            bound = self.bound_env(read_text(env_file))
            self.assertIsNotNone(bound, f"no bound event:\n{read_text(env_file)}")
            self.assertEqual(bound.get("opt150"), OPT150_HEX, bound)
            self.assertEqual(bound.get("tftp"), self.NAME or SERVERS[0], bound)
            self.assertTrue(bound.get("ip", "").startswith("10.99.1."), bound)
            self.assertEqual(bound.get("serverid"), "10.99.0.1", bound)
        finally:
            stop_process(server)
            ns.down()

    @staticmethod
    def bound_env(text):
        """The environment of the last `bound` event the hook recorded, as a dict."""
        blocks = re.split(r"^== ", text, flags=re.M)
        for block in reversed(blocks):
            lines = block.splitlines()
            if lines and lines[0].strip() == "bound":
                env = {}
                for line in lines[1:]:
                    k, sep, v = line.partition("=")
                    if sep:
                        env[k] = v
                return env
        return None


class WireDnsmasq(WireBase, unittest.TestCase):
    SERVER = "dnsmasq"
    NAME = None

    def start_server(self, ns):
        conf = write(os.path.join(self.dir, "snippet.conf"), snippet("dnsmasq", name=self.NAME))
        self.log = os.path.join(self.dir, "dnsmasq.log")
        return popen(["ip", "netns", "exec", ns.srv, "dnsmasq", "--no-daemon", "--port=0",
                      f"--conf-file={conf}", f"--interface={ns.srv_if}", "--bind-interfaces",
                      "--dhcp-range=10.99.1.10,10.99.1.100,255.255.0.0,1h", "--dhcp-authoritative",
                      "--no-ping", f"--dhcp-leasefile={os.path.join(self.dir, 'leases')}",
                      f"--pid-file={os.path.join(self.dir, 'dnsmasq.pid')}", "--user=root",
                      "--log-dhcp", f"--log-facility={self.log}"],
                     stdout=subprocess.DEVNULL, stderr=self.stderr_file(self.log + ".err"))

    def server_log(self):
        return read_text(self.log) + read_text(self.log + ".err")


class WireKea(WireBase, unittest.TestCase):
    SERVER = "kea-dhcp4"
    NAME = "tftp.lab"

    def start_server(self, ns):
        self.log = os.path.join(self.dir, "kea-dhcp4.log")
        conf = write(os.path.join(self.dir, "kea-dhcp4.json"),
                     kea_conf(snippet("kea", name=self.NAME), interface=ns.srv_if,
                              leases=os.path.join(self.dir, "leases4.csv"), log=self.log))
        env = kea_env()
        run_dir = os.path.join(self.dir, "run")
        os.makedirs(run_dir, exist_ok=True)
        env["KEA_PIDFILE_DIR"] = run_dir
        env["KEA_LOCKFILE_DIR"] = run_dir
        return popen(["ip", "netns", "exec", ns.srv, "kea-dhcp4", "-c", conf], env=env,
                     stdout=subprocess.DEVNULL, stderr=self.stderr_file(self.log + ".err"))

    def server_log(self):
        return read_text(self.log) + read_text(self.log + ".err")


# ----------------------------------------------------------------------------------------------

def setUpModule():
    global TMP
    TMP = tempfile.mkdtemp(prefix="labctl-dhcp-snippets-")


def tearDownModule():
    for p in STARTED:
        stop_process(p, grace=2.0)
    for ns in list(NAMESPACES):
        subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10, check=False)
        NAMESPACES.remove(ns)
    if TMP and os.environ.get("DHCP_TEST_KEEP") != "1":
        shutil.rmtree(TMP, ignore_errors=True)
    elif TMP:
        print(f"kept {TMP}", file=sys.stderr)


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", required=True, help="path of dhcp_snippet_tool")
    parser.add_argument("--source", default=None, help="source tree (unused; for symmetry)")
    ARGS, rest = parser.parse_known_args()
    ARGS.tool = os.path.abspath(ARGS.tool)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
