#!/usr/bin/python3
"""`labctl phone NAME check-sync` on the wire, judged by sipp (package sip-tester).

sipp plays the phone: a UAS scenario on 127.0.0.1 that receives one NOTIFY, checks with regular
expressions that it is the check-sync a Cisco phone expects (request line to the extension at the
phone's address and port, Event: check-sync, a Via with an RFC 3261 branch and rport, From with a
tag, To, Call-ID, CSeq 1 NOTIFY, Content-Length 0), and answers it. labctl must take sipp's 200 as
success, and a 489 Bad Event (a phone that does not do check-sync) as a failure that says so; a
port where nothing listens is a quick failure, not a 32 s wait. Loopback only; sipp runs in the
foreground with -m 1 and a timeout, and is killed by PID if it outlives the test.

  test_check_sync.py --labctl PATH --source DIR [unittest args]
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import harness  # noqa: E402

ARGS = None
EXTENSION = "1001"
SECRET_VAR = "LABCTL_TEST_CHECK_SYNC_PW"

# @PORT@ and @CODE@ / @REASON@ are filled in per test.
UAS_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="a phone receiving labctl's check-sync">
  <recv request="NOTIFY">
    <action>
      <ereg regexp="^NOTIFY sip:@EXT@@127\\.0\\.0\\.1:@PORT@ SIP/2\\.0" search_in="msg"
            check_it="true" assign_to="rline"/>
      <ereg regexp="^ *check-sync *$" search_in="hdr" header="Event:" check_it="true"
            assign_to="event"/>
      <ereg regexp="^ *SIP/2\\.0/UDP 127\\.0\\.0\\.1:[0-9]+;branch=z9hG4bK[^;]+;rport *$"
            search_in="hdr" header="Via:" check_it="true" assign_to="via"/>
      <ereg regexp="^ *1 NOTIFY *$" search_in="hdr" header="CSeq:" check_it="true"
            assign_to="cseq"/>
      <ereg regexp="^ *&lt;sip:[^&gt;]+&gt;;tag=[0-9A-Za-z]+ *$" search_in="hdr" header="From:"
            check_it="true" assign_to="from"/>
      <ereg regexp="^ *&lt;sip:@EXT@@127\\.0\\.0\\.1:@PORT@&gt; *$" search_in="hdr" header="To:"
            check_it="true" assign_to="to"/>
      <ereg regexp="^ *[^ ]+ *$" search_in="hdr" header="Call-ID:" check_it="true"
            assign_to="callid"/>
      <ereg regexp="^ *0 *$" search_in="hdr" header="Content-Length:" check_it="true"
            assign_to="clen"/>
      <ereg regexp="^ *70 *$" search_in="hdr" header="Max-Forwards:" check_it="true"
            assign_to="maxfwd"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 @CODE@ @REASON@
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <Reference variables="rline,event,via,cseq,from,to,callid,clen,maxfwd"/>
</scenario>
"""


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def udp_bound(port):
    """Whether some socket is bound to UDP 127.0.0.1:port (read from /proc: no probe socket that
    could take the port from sipp)."""
    want = "0100007F:%04X" % port
    anyaddr = "00000000:%04X" % port
    try:
        with open("/proc/net/udp") as f:
            for line in f.readlines()[1:]:
                local = line.split()[1]
                if local in (want, anyaddr):
                    return True
    except OSError:
        pass
    return False


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class CheckSync(unittest.TestCase):
    def setUp(self):
        if shutil.which("sipp") is None:
            self.skipTest("sipp (package sip-tester) is missing")
        self.work = tempfile.mkdtemp(prefix="labctl-check-sync-")
        self.state = os.path.join(self.work, "state")
        self.sipp = None

    def tearDown(self):
        if self.sipp is not None and self.sipp.poll() is None:
            self.sipp.kill()
            self.sipp.wait(10)
        shutil.rmtree(self.work, ignore_errors=True)

    def inventory(self, port):
        path = os.path.join(self.work, "lab.yaml")
        with open(path, "w") as f:
            f.write(textwrap.dedent(f"""\
                version: 1
                site: check-sync-test
                devices:
                  - name: desk
                    type: cisco-phone
                    model: CP-7911G
                    mac: 00:0b:82:01:fc:43
                    ip: 127.0.0.1
                    extension: "{EXTENSION}"
                    sip-port: {port}
                    sip:
                      server: 127.0.0.1
                      password: {{env: {SECRET_VAR}}}
                """))
        return path

    def labctl(self, *args, timeout=60):
        env = dict(os.environ)
        env.pop("LABCTL_STATE_DIR", None)
        env["NO_COLOR"] = "1"
        env[SECRET_VAR] = "sync-secret-15c"  # the 7911 takes at most 15
        p = subprocess.run([ARGS.labctl, "--state-dir", self.state, *args], capture_output=True,
                           text=True, env=env, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def start_sipp(self, port, code, reason):
        scen = os.path.join(self.work, f"uas-{code}.xml")
        with open(scen, "w") as f:
            f.write(UAS_SCENARIO.replace("@PORT@", str(port)).replace("@EXT@", EXTENSION)
                    .replace("@CODE@", str(code)).replace("@REASON@", reason))
        self.errors = os.path.join(self.work, f"sipp-{code}.errors")
        self.messages = os.path.join(self.work, f"sipp-{code}.messages")
        self.sipp_out = open(os.path.join(self.work, f"sipp-{code}.out"), "w+")
        self.addCleanup(self.sipp_out.close)
        # -mp: a media port of our own, so no fixed port is needed (sipp binds one at start).
        self.sipp = subprocess.Popen(
            ["sipp", "-sf", scen, "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_udp_port()),
             "-m", "1", "-nostdin", "-timeout", "15s", "-timeout_error",
             "-trace_err", "-error_file", self.errors, "-trace_msg", "-message_file", self.messages],
            cwd=self.work, stdin=subprocess.DEVNULL, stdout=self.sipp_out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not udp_bound(port):
            if self.sipp.poll() is not None or time.monotonic() > deadline:
                self.fail("sipp did not start listening:\n" + self.sipp_diag())
            time.sleep(0.05)

    def wait_sipp(self, labctl_failed=False):
        """sipp's exit status once its one call ended; when labctl failed before sending, sipp
        would only time out: it is stopped at once."""
        if labctl_failed and self.sipp.poll() is None:
            time.sleep(0.5)
            if self.sipp.poll() is None:
                self.sipp.kill()
                self.sipp.wait(10)
                return None
        try:
            return self.sipp.wait(30)
        except subprocess.TimeoutExpired:
            self.sipp.kill()
            self.sipp.wait(10)
            self.fail("sipp did not end:\n" + self.sipp_diag())

    def sipp_diag(self):
        self.sipp_out.flush()
        self.sipp_out.seek(0)
        return ("--- sipp output:\n" + self.sipp_out.read()[-3000:] + "\n--- sipp errors:\n" +
                read_text(self.errors)[-3000:] + "\n--- sipp messages:\n" +
                read_text(self.messages)[-4000:])

    def test_200_is_success(self):
        port = free_udp_port()
        inv = self.inventory(port)
        self.start_sipp(port, 200, "OK")
        t0 = time.monotonic()
        code, out, err = self.labctl("phone", "desk", "check-sync", "-i", inv)
        took = time.monotonic() - t0
        rc = self.wait_sipp(labctl_failed=code != 0)
        self.assertEqual(code, 0, out + err + self.sipp_diag())
        self.assertIn("desk: 200 OK", out)
        self.assertEqual(rc, 0, "sipp's checks of the NOTIFY failed:\n" + self.sipp_diag())
        # Answered at once: no retransmission wait (T1 is 500 ms).
        self.assertLess(took, 5, out + err)
        # The NOTIFY went out once (sipp logs each message it received).
        self.assertEqual(read_text(self.messages).count("NOTIFY sip:"), 1, self.sipp_diag())

    def test_200_as_json(self):
        port = free_udp_port()
        inv = self.inventory(port)
        self.start_sipp(port, 200, "OK")
        code, out, err = self.labctl("phone", "desk", "check-sync", "-i", inv, "--json")
        rc = self.wait_sipp(labctl_failed=code != 0)
        self.assertEqual(code, 0, out + err + self.sipp_diag())
        self.assertEqual(rc, 0, self.sipp_diag())
        self.assertEqual(json.loads(out), {"code": 200, "reason": "OK"}, out)

    def test_489_bad_event_is_a_failure_that_says_so(self):
        port = free_udp_port()
        inv = self.inventory(port)
        self.start_sipp(port, 489, "Bad Event")
        code, out, err = self.labctl("phone", "desk", "check-sync", "-i", inv)
        rc = self.wait_sipp(labctl_failed="489" not in out + err)
        self.assertNotEqual(code, 0, out + err)
        self.assertIn("489", out + err)
        self.assertIn("Bad Event", out + err)
        self.assertIn("desk", err)
        # The request itself was right: sipp's checks passed and it sent the 489.
        self.assertEqual(rc, 0, self.sipp_diag())

    def test_nothing_listening_fails_at_once(self):
        port = free_udp_port()
        inv = self.inventory(port)
        t0 = time.monotonic()
        code, out, err = self.labctl("phone", "desk", "check-sync", "-i", inv)
        took = time.monotonic() - t0
        self.assertNotEqual(code, 0, out + err)
        self.assertIn(f"127.0.0.1:{port}", err)
        self.assertLess(took, 10, "waited for an answer from a closed port")


if __name__ == "__main__":
    harness.run(globals())
