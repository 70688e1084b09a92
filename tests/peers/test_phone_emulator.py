#!/usr/bin/python3
"""tests/peers/phone_emulator.py against labctl's real TFTP and DHCP services, and sipp.

  - Units: the emulator's pure parts (load files, option 150/66, the bootloader rule, the SEP
    config, SIP answers) and its TFTP client against a server that lies about tsize;
  - Loopback: `labctl tftp serve --root DIR --port N --bind 127.0.0.1 --log LOG` with bundles made
    here (text .loads files listing the .sbn names, random .sbn content; one bundle wrapped in
    binary noise like a signed load): (a) a phone on SCCP 8.3(0) offered SIP 9.4(2) loops on the
    term file; (b) via SCCP 8.5(2) first, then SIP 9.4(2), the seed's file sequence, registered;
    (c) a 32-character SIP password fails registration; missing files, XMLDefault, a whole load
    fetched again after a failed .sbn;
  - Notify: (e) sipp sends NOTIFY Event: check-sync, gets 200 (headers checked by the scenario),
    and the phone boots again; another event gets 489;
  - WebAndResets: the phone's DeviceInformationX page (http.client) while its load runs, nothing
    while it is stuck in its bootloader or rebooting; --reset-unregistered (an SCCP phone with a
    SIP config resets and reads TFTP again until the operator offers a SIP load), --reboot-time;
  - Namespaces (root): (d) the phone in a client namespace gets its address and TFTP server from
    `labctl dhcp serve --tftp ...` (option 150), or option 66 alone, or falls back to 66 when
    option 150 was entered as text (dnsmasq), then registers against `labctl tftp serve` in the
    server namespace; sipp there sends the check-sync to the phone's DHCP address.

  test_phone_emulator.py --labctl PATH --source DIR [unittest args]
Every process is started in its own group and stopped by PID; namespaces are deleted always.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True                   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "dhcp"))
sys.path.insert(0, HERE)
import dhcp_harness as h  # noqa: E402
import phone_emulator as pe  # noqa: E402

ARGS = None
EMULATOR = os.path.join(HERE, "phone_emulator.py")
PYTHON = sys.executable or "/usr/bin/python3"
MAC = "00:0b:82:01:fc:42"
SEP = "SEP000B8201FC42.cnf.xml"
TERM06 = "term06.default.loads"

# (load id, .sbn version, protocol tag in jar/cvm names): the seed's two loads
SCCP852 = ("SCCP11.8-5-2S", "8-5-2TH1-9", "sccp")
SIP942 = ("SIP11.9-4-2SR1-1S", "9-4-2ES9", "sip")


def sbn_names(load):
    _, v, proto = load
    return [f"jar11{proto}.{v}.sbn", f"cnu11.{v}.sbn", f"apps11.{v}.sbn", f"dsp11.{v}.sbn", f"cvm11{proto}.{v}.sbn"]


def load_file_bytes(load, binary=False, shuffle=False):
    names = sbn_names(load)
    if shuffle:
        names = names[::-1]
    if not binary:
        return ("\n".join([load[0], *names]) + "\n").encode()
    # like a signed load: a binary header and binary padding around NUL-terminated strings
    rnd = random.Random(load[0])
    noise = lambda n: bytes(rnd.choice(b"\x00\x01\x02\x90\xff\x7f\x1b") for _ in range(n))  # noqa: E731
    out = b"\x01\x00\x02\x02\x00\x80" + noise(40) + load[0].encode() + b"\0" + noise(17)
    for n in names:
        out += struct.pack("!H", len(n)) + n.encode() + b"\0" + noise(9)
    return out + noise(64)


def write_bundle(root, load, term=None, binary=False, skip=(), sizes=(20_000, 150_000)):
    """<loadid>.loads, the .sbn files (random content; names in `skip` left out) and, with
    term="06", termNN.default.loads naming the same load. Returns {name: size}."""
    made = {}
    data = load_file_bytes(load, binary=binary)
    with open(os.path.join(root, load[0] + ".loads"), "wb") as f:
        f.write(data)
    if term:
        with open(os.path.join(root, f"term{term}.default.loads"), "wb") as f:
            f.write(data)
    for n in sbn_names(load):
        if n in skip:
            continue
        size = random.randint(*sizes)
        with open(os.path.join(root, n), "wb") as f:
            f.write(os.urandom(size))
        made[n] = size
    return made


def sep_xml(password="s3cret", load=None, line="1006", proxy="USECALLMANAGER"):
    li = f"  <loadInformation>{load}</loadInformation>\n" if load else "  <loadInformation></loadInformation>\n"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<device xsi:type="axl:XIPPhone" ctiid="1">
  <deviceProtocol>SIP</deviceProtocol>
  <devicePool>
    <callManagerGroup>
      <members>
        <member priority="0">
          <callManager>
            <ports><ethernetPhonePort>2000</ethernetPhonePort><sipPort>5060</sipPort></ports>
            <processNodeName>10.99.0.1</processNodeName>
          </callManager>
        </member>
      </members>
    </callManagerGroup>
  </devicePool>
  <sipProfile>
    <phoneLabel>lab-1006</phoneLabel>
    <sipLines>
      <line button="1">
        <featureID>9</featureID>
        <featureLabel>1006</featureLabel>
        <proxy>{proxy}</proxy>
        <port>5060</port>
        <name>{line}</name>
        <displayName>Desk {line}</displayName>
        <autoAnswer><autoAnswerEnabled>2</autoAnswerEnabled></autoAnswer>
        <authName>{line}</authName>
        <authPassword>{password}</authPassword>
        <contact>{line}</contact>
      </line>
    </sipLines>
  </sipProfile>
{li}</device>
"""


def write(path, text):
    with open(path, "w" if isinstance(text, str) else "wb") as f:
        f.write(text)


def free_udp_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_tcp_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def http_call(port, path="/DeviceInformationX", method="GET", body=None, host="127.0.0.1"):
    """(status, headers with lower-case names, body) of one request, or (None, what went wrong, b"")
    when no response came (refused, closed without an answer, timed out)."""
    c = http.client.HTTPConnection(host, port, timeout=5)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except (http.client.HTTPException, OSError) as e:
        return None, f"{type(e).__name__}: {e}", b""
    finally:
        c.close()


def device_info(body):
    """DeviceInformationX's elements as {name: text}."""
    root = ET.fromstring(body)
    assert root.tag == "DeviceInformation", root.tag
    return {el.tag: (el.text or "") for el in root}


def read_jsonl(path):
    out = []
    for line in h.read_text(path).splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass                                  # a torn last line
    return out


def state_file(path, load, bootloader=None):
    write(path, json.dumps({"load": load, "bootloader": bootloader}))
    return path


class TftpServer:
    """`labctl tftp serve` on a free port (or the given one), optionally inside a namespace."""

    def __init__(self, workdir, root, bind="127.0.0.1", port=None, prefix=()):
        self.root, self.bind = root, bind
        self.port = port or free_udp_port()
        self.log = os.path.join(workdir, f"tftp-{self.port}.jsonl")
        self.out = os.path.join(workdir, f"tftp-{self.port}.out")
        with open(self.out, "wb") as out:
            self.proc = h.popen([*prefix, ARGS.labctl, "tftp", "serve", "--root", root, "--port", str(self.port),
                                 "--bind", bind, "--log", self.log], stdout=out, stderr=subprocess.STDOUT)
        ok = h.wait_for(lambda: "serving" in h.read_text(self.out) or self.proc.poll() is not None, 15)
        if not ok or self.proc.poll() is not None:
            h.stop_process(self.proc)
            raise AssertionError("labctl tftp serve did not start:\n" + h.read_text(self.out))

    def events(self):
        return read_jsonl(self.log)

    def requested(self):
        """The names of every RRQ, in order (what in.tftpd's "RRQ from ... filename" shows)."""
        return [e["name"] for e in self.events() if e.get("event") == "request"]

    def stop(self):
        h.stop_process(self.proc)


class PhoneRun:
    """One emulator process; its stdout (JSON lines) in a file that the test reads as it goes."""

    def __init__(self, workdir, args, prefix=(), tag="phone"):
        self.out = os.path.join(workdir, f"{tag}.jsonl")
        self.err = os.path.join(workdir, f"{tag}.err")
        self.cmd = [*prefix, PYTHON, EMULATOR, *args]
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = h.popen(self.cmd, stdout=out, stderr=err)

    def events(self, name=None):
        ev = read_jsonl(self.out)
        return [e for e in ev if name is None or e["event"] == name]

    def wait_event(self, name, timeout, count=1):
        ok = h.wait_for(lambda: len(self.events(name)) >= count or self.proc.poll() is not None, timeout)
        ev = self.events(name)
        return ev[count - 1] if ok and len(ev) >= count else None

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            h.stop_process(self.proc, grace=2)
            return -999

    def requested(self):
        return [e["name"] for e in self.events("tftp-request")]

    def status(self):
        st = self.events("status")
        return st[-1] if st else None

    def diag(self):
        return f"\ncommand: {' '.join(self.cmd)}\nstdout:\n{h.read_text(self.out)[-6000:]}\nstderr:\n" \
               f"{h.read_text(self.err)[-3000:]}"

    def stop(self):
        h.stop_process(self.proc, grace=3)


def fast(*extra):
    """Emulator options for tests: short pauses, bounded everything."""
    return ["--retry-interval", "0.3", "--max-retries", "4", "--loop-interval", "0.2,0.5", "--max-loops", "5",
            "--tftp-timeout", "0.5", "--timeout", "60", *extra]


def seq(*parts):
    out = []
    for p in parts:
        out.extend(p if isinstance(p, list) else [p])
    return out


# ----------------------------------------------------------------------------------------------
# the pure parts

class Units(unittest.TestCase):
    def test_text_load_file(self):
        load = pe.parse_load_file(load_file_bytes(SIP942, shuffle=True), TERM06)
        self.assertEqual(load["load_id"], "SIP11.9-4-2SR1-1S")
        self.assertEqual(load["protocol"], "SIP")
        self.assertEqual(load["version"], (9, 4, 2))
        self.assertEqual(load["sbn"], sbn_names(SIP942))            # the seed's order, whatever the file's

    def test_binary_load_file(self):
        load = pe.parse_load_file(load_file_bytes(SCCP852, binary=True), "term11.default.loads")
        self.assertEqual(load["load_id"], "SCCP11.8-5-2S")
        self.assertEqual(load["sbn"], sbn_names(SCCP852))

    def test_load_id_from_name_or_jar(self):
        names = "\n".join(sbn_names(SIP942)).encode()
        self.assertEqual(pe.parse_load_file(names, "SIP11.9-4-2SR1-1S.loads")["load_id"], "SIP11.9-4-2SR1-1S")
        got = pe.parse_load_file(names, TERM06)
        self.assertEqual((got["protocol"], got["version"]), ("SIP", (9, 4, 2)))
        self.assertIsNone(pe.parse_load_file(b"\x00\x01 nothing here \xff", TERM06)["load_id"])

    def test_option_150(self):
        self.assertEqual(pe.classify_option150(bytes.fromhex("0a6300010a630002")), (["10.99.0.1", "10.99.0.2"], None))
        self.assertEqual(pe.classify_option150(None), ([], "absent"))
        for raw in (b"10.99.0.1", b"10.0.0.1", b"10.99.0.1\0", b"\x0a\x63\x00"):
            addrs, why = pe.classify_option150(raw)
            self.assertEqual(addrs, [], raw)
            self.assertTrue(why, raw)
        self.assertIn("text", pe.classify_option150(b"10.0.0.1")[1])  # 8 bytes, still text
        self.assertEqual(pe.option66_text(b"10.99.0.1\0"), "10.99.0.1")   # dnsmasq's trailing NUL
        self.assertEqual(pe.option66_text(b"tftp.lab"), "tftp.lab")

    def test_bootloader_rule(self):
        block = pe.bootloader_blocks
        self.assertTrue(block("SIP11.9-4-2SR1-1S", "SCCP11.8-3-0S", None))
        self.assertTrue(block("SIP11.9-4-2SR1-1S", "SCCP11.8-3-2S", "8.3(2)"))
        self.assertIsNone(block("SIP11.9-4-2SR1-1S", "SCCP11.8-3-0S", "8.5(2)"))
        self.assertIsNone(block("SIP11.9-4-2SR1-1S", "SCCP11.8-3-3S", None))
        self.assertIsNone(block("SIP11.9-4-2SR1-1S", "SCCP11.8-5-2S", None))
        self.assertIsNone(block("SCCP11.8-5-2S", "SCCP11.8-3-0S", None))
        self.assertIsNone(block("SIP11.9-4-2SR1-1S", "SIP11.9-2-1S", None))
        self.assertEqual(pe.bootloader_after_install("SCCP11.8-5-2S", None), "8.5(2)")
        self.assertEqual(pe.bootloader_after_install("SCCP11.8-3-3S", "8.2(0)"), "8.3(3)")
        self.assertEqual(pe.bootloader_after_install("SIP11.9-4-2SR1-1S", "8.5(2)"), "8.5(2)")
        self.assertIsNone(pe.bootloader_after_install("SCCP11.8-3-0S", None))

    def test_config(self):
        cfg = pe.parse_config(sep_xml("x" * 32, load="SIP11.9-4-2SR1-1S").encode())
        self.assertEqual(cfg["load_information"], "SIP11.9-4-2SR1-1S")
        self.assertEqual(cfg["line"]["name"], "1006")
        self.assertEqual(cfg["line"]["auth_name"], "1006")
        self.assertEqual(len(cfg["line"]["password"]), 32)
        self.assertEqual(cfg["sip_port"], 5060)
        self.assertEqual(cfg["proxy"], "10.99.0.1")                  # USECALLMANAGER -> the call manager
        self.assertIsNone(pe.parse_config(sep_xml().encode())["load_information"])
        self.assertEqual(pe.parse_config(sep_xml(proxy="pbx.lab").encode())["proxy"], "pbx.lab")
        with self.assertRaises(ValueError):
            pe.parse_config(b"<device><unclosed></device>")
        self.assertEqual(pe.sep_name("00:0b:82:01:fc:42"), SEP)

    NOTIFY = ("NOTIFY sip:1006@10.99.1.10:5060 SIP/2.0\r\n"
              "Via: SIP/2.0/UDP 10.99.0.1:5070;branch=z9hG4bK-1;rport\r\n"
              "Via: SIP/2.0/UDP 10.99.0.9:5060;branch=z9hG4bK-0\r\n"
              "From: <sip:pbx@10.99.0.1>;tag=abc\r\n"
              "To: <sip:1006@10.99.1.10>\r\n"
              "Call-ID: 42@10.99.0.1\r\n"
              "CSeq: 7 NOTIFY\r\n"
              "Event: {event}\r\n"
              "Content-Length: 0\r\n\r\n")

    def test_sip_answers(self):
        resp, info = pe.answer_sip(self.NOTIFY.format(event="check-sync;reboot=true").encode())
        self.assertTrue(info.get("check_sync"))
        text = resp.decode()
        self.assertTrue(text.startswith("SIP/2.0 200 OK\r\n"), text)
        lines = text.split("\r\n")
        self.assertEqual([ln for ln in lines if ln.startswith("Via:")],
                         ["Via: SIP/2.0/UDP 10.99.0.1:5070;branch=z9hG4bK-1;rport",
                          "Via: SIP/2.0/UDP 10.99.0.9:5060;branch=z9hG4bK-0"])
        self.assertIn("From: <sip:pbx@10.99.0.1>;tag=abc", lines)
        self.assertRegex(text, r"\r\nTo: <sip:1006@10\.99\.1\.10>;tag=[0-9a-f]+\r\n")
        self.assertIn("Call-ID: 42@10.99.0.1", lines)
        self.assertIn("CSeq: 7 NOTIFY", lines)
        self.assertTrue(text.endswith("Content-Length: 0\r\n\r\n"))
        resp, info = pe.answer_sip(self.NOTIFY.format(event="presence").encode())
        self.assertTrue(resp.startswith(b"SIP/2.0 489 Bad Event\r\n"))
        self.assertFalse(info.get("check_sync"))
        no_call_id = self.NOTIFY.format(event="check-sync").replace("Call-ID: 42@10.99.0.1\r\n", "")
        resp, _ = pe.answer_sip(no_call_id.encode())
        self.assertTrue(resp.startswith(b"SIP/2.0 400 "))
        compact = self.NOTIFY.format(event="check-sync").replace("Via:", "v:").replace("Call-ID:", "i:") \
            .replace("Event:", "o:").replace("From:", "f:").replace("To:", "t:")
        resp, info = pe.answer_sip(compact.encode())
        self.assertTrue(resp.startswith(b"SIP/2.0 200 OK\r\n") and info.get("check_sync"), resp)
        opt = self.NOTIFY.format(event="x").replace("NOTIFY", "OPTIONS")
        self.assertTrue(pe.answer_sip(opt.encode())[0].startswith(b"SIP/2.0 200 OK\r\n"))
        inv = self.NOTIFY.format(event="x").replace("NOTIFY", "INVITE")
        self.assertTrue(pe.answer_sip(inv.encode())[0].startswith(b"SIP/2.0 501 "))
        self.assertIsNone(pe.answer_sip(self.NOTIFY.format(event="x").replace("NOTIFY", "ACK").encode())[0])
        self.assertIsNone(pe.answer_sip(b"SIP/2.0 200 OK\r\n\r\n")[0])
        self.assertIsNone(pe.answer_sip(b"\xff\xfe garbage")[0])
        mism = self.NOTIFY.format(event="check-sync").replace("CSeq: 7 NOTIFY", "CSeq: 7 INVITE")
        self.assertTrue(pe.answer_sip(mism.encode())[0].startswith(b"SIP/2.0 400 "))

    def test_device_information_document(self):
        """The fields labctl's device_info.cc reads, from the MAC, model, load and bootloader."""
        info = device_info(pe.device_information_xml(
            pe.device_information("00:0b:82:01:fc:42", "7911", "SCCP11.8-5-2S", "8.5(2)", "10&06")))
        self.assertEqual(info, {"MACAddress": "000B8201FC42", "HostName": "SEP000B8201FC42", "phoneDN": "10&06",
                                "appLoadID": "SCCP11.8-5-2S", "bootLoadID": "tnp11.8-5-2", "versionID": "8.5(2)",
                                "serialNumber": "FCH8201FC42", "modelNumber": "CP-7911G"})
        info = device_info(pe.device_information_xml(
            pe.device_information("00-0B-82-AA-BB-CC", "CP-7906G", "SIP11.9-4-2SR1-1S", None)))
        self.assertEqual((info["bootLoadID"], info["phoneDN"], info["versionID"], info["modelNumber"],
                          info["serialNumber"]), ("", "", "9.4(2)", "CP-7906G", "FCH82AABBCC"))
        self.assertTrue(pe.device_information_xml({"appLoadID": "x"}).startswith(
            b'<?xml version="1.0" encoding="utf-8"?>\n<DeviceInformation>'))

    def test_tftp_client_refuses_a_truncated_file(self):
        """A server that announces tsize 3000 and stops after 1200 bytes: a failed transfer."""
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 0))
        srv.settimeout(5)

        def serve():
            try:
                _, peer = srv.recvfrom(2048)
                t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                t.bind(("127.0.0.1", 0))
                t.settimeout(5)
                t.sendto(b"\0\6blksize\0" + b"512\0tsize\0" + b"3000\0", peer)
                t.recvfrom(100)
                for blk, size in ((1, 512), (2, 512), (3, 176)):
                    t.sendto(struct.pack("!HH", 3, blk) + os.urandom(size), peer)
                    t.recvfrom(100)
                t.close()
            except OSError:
                pass
        th = threading.Thread(target=serve, daemon=True)
        th.start()
        with self.assertRaises(pe.TftpFailed) as ctx:
            pe.tftp_get("127.0.0.1", srv.getsockname()[1], "jar11sip.9-4-2ES9.sbn", blksize=512, timeout=0.5,
                        retries=2, deadline=time.monotonic() + 10)
        self.assertIn("truncated", str(ctx.exception))
        th.join(5)
        srv.close()


# ----------------------------------------------------------------------------------------------
# labctl's TFTP service on loopback

class LabctlCase(unittest.TestCase):
    def setUp(self):
        if not ARGS or not os.access(ARGS.labctl, os.X_OK):
            self.skipTest("no labctl binary")
        self.work = tempfile.mkdtemp(prefix="labctl-phone-test-")
        self.root = os.path.join(self.work, "tftp")
        os.makedirs(self.root)
        self.servers, self.phones = [], []
        self.addCleanup(self.cleanup)

    def cleanup(self):
        for p in self.phones:
            p.stop()
        for s in self.servers:
            s.stop()
        if os.environ.get("PHONE_TEST_KEEP") != "1":
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            h.log(f"kept {self.work}")

    def tftp(self, **kw):
        s = TftpServer(self.work, self.root, **kw)
        self.servers.append(s)
        return s

    def phone(self, *args, tag="phone", prefix=()):
        p = PhoneRun(self.work, list(args), prefix=prefix, tag=f"{tag}-{len(self.phones)}")
        self.phones.append(p)
        return p

    def run_phone(self, server, state, *extra, timeout=60, model="CP-7906G"):
        p = self.phone("--model", model, "--mac", MAC, "--state", state, "--tftp", "127.0.0.1",
                       "--tftp-port", str(server.port), "--sip-port", "0", *fast(*extra))
        rc = p.wait(timeout)
        return rc, p


class Loopback(LabctlCase):
    def test_a_old_sccp_phone_loops_on_the_term_file(self):
        """The seed's failure: SCCP 8.3(0) offered SIP 9.4(2) directly asks term06 again and again,
        no .sbn, and gives up with exit 2; its state is untouched."""
        write_bundle(self.root, SIP942, term="06")
        write(os.path.join(self.root, SEP), sep_xml())
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), "SCCP11.8-3-0S", "8.3(0)")
        rc, p = self.run_phone(srv, st)
        self.assertEqual(rc, 2, p.diag())
        self.assertEqual(srv.requested(), [TERM06] * 5, srv.events())
        self.assertFalse([n for n in srv.requested() if n.endswith(".sbn")])
        loops = p.events("stuck-loop")
        self.assertEqual([e["count"] for e in loops], [1, 2, 3, 4, 5])
        self.assertIn("bootloader", loops[0]["reason"])
        self.assertEqual(p.status()["result"], "stuck")
        # the pacing of --loop-interval 0.2,0.5 (cycled)
        t = [e["t"] for e in p.events("tftp-request")]
        gaps = [b - a for a, b in zip(t, t[1:])]
        for gap, want in zip(gaps, [0.2, 0.5, 0.2, 0.5]):
            self.assertGreaterEqual(gap, want - 0.02, gaps)
            self.assertLess(gap, want + 1.0, gaps)
        with open(st) as f:
            self.assertEqual(json.load(f)["load"], "SCCP11.8-3-0S")

    def test_a2_the_operator_swaps_in_sccp_852_while_it_loops(self):
        """The seed, in one run: looping on 9.4(2); the term file becomes 8.5(2), which the phone
        takes at once; the SEP config's loadInformation then takes it to 9.4(2)."""
        write_bundle(self.root, SIP942, term="06")
        write_bundle(self.root, SCCP852)
        write(os.path.join(self.root, SEP), sep_xml(load=SIP942[0]))
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), "SCCP11.8-3-0S")
        p = self.phone("--mac", MAC, "--state", st, "--tftp", "127.0.0.1", "--tftp-port", str(srv.port),
                       "--sip-port", "0", *fast("--max-loops", "100", "--loop-interval", "0.3"))
        self.assertIsNotNone(p.wait_event("stuck-loop", 20, count=2), p.diag())
        shutil.copy(os.path.join(self.root, SCCP852[0] + ".loads"), os.path.join(self.root, TERM06 + ".new"))
        os.replace(os.path.join(self.root, TERM06 + ".new"), os.path.join(self.root, TERM06))
        self.assertEqual(p.wait(60), 0, p.diag())
        names = srv.requested()
        first = names.index(sbn_names(SCCP852)[0])
        self.assertTrue(all(n == TERM06 for n in names[:first]) and first >= 2, names)
        self.assertEqual(names[first:first + 5], sbn_names(SCCP852))
        self.assertEqual([e["load"] for e in p.events("installed")], [SCCP852[0], SIP942[0]])
        self.assertEqual(p.events("installed")[0]["bootloader"], "8.5(2)")

    def test_b_via_sccp_852_then_sip_942_the_seed_sequence(self):
        """Two hard resets as in the seed: term06 = SCCP 8.5(2) (the phone installs it, but an
        SCCP load cannot register with the SIP config), then term06 = SIP 9.4(2): registered."""
        sizes = write_bundle(self.root, SCCP852, term="06")
        sizes.update(write_bundle(self.root, SIP942))
        write(os.path.join(self.root, SEP), sep_xml())
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), "SCCP11.8-3-0S", "8.3(0)")
        rc, p1 = self.run_phone(srv, st)
        self.assertEqual(rc, 3, p1.diag())
        self.assertIn("SCCP", p1.status()["reason"])
        one = seq(TERM06, sbn_names(SCCP852), TERM06, SEP)
        self.assertEqual(srv.requested(), one)
        with open(st) as f:
            s = json.load(f)
        self.assertEqual((s["load"], s["bootloader"]), (SCCP852[0], "8.5(2)"))

        shutil.copy(os.path.join(self.root, SIP942[0] + ".loads"), os.path.join(self.root, TERM06))
        rc, p2 = self.run_phone(srv, st)
        self.assertEqual(rc, 0, p2.diag())
        self.assertEqual(srv.requested(), one + seq(TERM06, sbn_names(SIP942), TERM06, SEP))
        # every .sbn complete, byte for byte the size on disk, in both the phone's and labctl's view
        done = {e["name"]: e["bytes"] for e in p1.events("tftp-complete") + p2.events("tftp-complete")}
        for n, size in sizes.items():
            self.assertEqual(done.get(n), size, n)
        srv_done = {e["name"]: e["bytes"] for e in srv.events() if e["event"] == "complete"}
        for n, size in sizes.items():
            self.assertEqual(srv_done.get(n), size, n)
        reg = p2.events("registered")[0]
        self.assertEqual((reg["line"], reg["auth_name"], reg["load"]), ("1006", "1006", SIP942[0]))
        with open(st) as f:
            s = json.load(f)
        self.assertEqual((s["load"], s["bootloader"]), (SIP942[0], "8.5(2)"))

    def test_b2_config_driven_upgrade_with_binary_loads(self):
        """term06 = SCCP 8.5(2); the SEP config's loadInformation names SIP 9.4(2): the phone asks
        SIP11.9-4-2SR1-1S.loads by name and upgrades in the same run. Load files are binary, and
        the 9.4(2) files are lower-case on disk (labctl matches names case-insensitively)."""
        write_bundle(self.root, SCCP852, term="06", binary=True)
        write_bundle(self.root, SIP942, binary=True)
        for n in [SIP942[0] + ".loads", *sbn_names(SIP942)]:
            os.rename(os.path.join(self.root, n), os.path.join(self.root, n.lower()))
        write(os.path.join(self.root, SEP), sep_xml(load=SIP942[0]))
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), "SCCP11.8-3-0S")
        rc, p = self.run_phone(srv, st)
        self.assertEqual(rc, 0, p.diag())
        sip_loads = SIP942[0] + ".loads"
        self.assertEqual(srv.requested(), seq(TERM06, sbn_names(SCCP852), TERM06, SEP, sip_loads, sbn_names(SIP942),
                                              TERM06, sip_loads, SEP))
        self.assertEqual(p.status()["load"], SIP942[0])
        folded = {e["name"] for e in srv.events() if e["event"] == "complete" and e.get("case_fallback")}
        self.assertIn(sbn_names(SIP942)[0], folded)

    def test_c_32_character_password_fails_registration(self):
        pw = "".join(random.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(32))
        write_bundle(self.root, SIP942, term="06")
        write(os.path.join(self.root, SEP), sep_xml(password=pw))
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), SIP942[0], "8.5(2)")
        rc, p = self.run_phone(srv, st)
        self.assertEqual(rc, 3, p.diag())
        self.assertEqual(srv.requested(), [TERM06, SEP])              # the load is current: no .sbn
        fail = p.events("registration-failed")
        self.assertEqual(len(fail), 1)
        self.assertIn("password too long", fail[0]["reason"])
        self.assertEqual(p.events("config-fetched")[0]["password_length"], 32)
        self.assertNotIn(pw, h.read_text(p.out) + h.read_text(p.err))  # never printed
        # the same config with a 15-character password registers
        write(os.path.join(self.root, SEP), sep_xml(password=pw[:15]))
        rc, p = self.run_phone(srv, st)
        self.assertEqual(rc, 0, p.diag())
        self.assertEqual(p.events("registered")[0]["password_length"], 15)

    def test_missing_term_file_is_asked_again(self):
        """TFTP error 1 on the term file: the phone asks again after its pause (bounded)."""
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), SIP942[0], "8.5(2)")
        p = self.phone("--mac", MAC, "--state", st, "--tftp", "127.0.0.1", "--tftp-port", str(srv.port),
                       "--sip-port", "0", *fast())
        err = p.wait_event("tftp-error", 15, count=2)
        self.assertIsNotNone(err, p.diag())
        self.assertEqual((err["name"], err["code"]), (TERM06, 1))
        write_bundle(self.root, SIP942, term="06")
        write(os.path.join(self.root, SEP), sep_xml())
        self.assertEqual(p.wait(30), 0, p.diag())
        names = srv.requested()
        self.assertGreaterEqual(names.count(TERM06), 3)
        self.assertEqual(names[-1], SEP)
        # and with nothing ever there, it gives up (exit 1) after --max-retries
        os.unlink(os.path.join(self.root, TERM06))
        rc, p = self.run_phone(srv, st)
        self.assertEqual(rc, 1, p.diag())
        self.assertEqual(len(p.events("tftp-error")), 5)               # the first + 4 retries

    def test_failed_sbn_means_the_whole_load_again(self):
        """dsp11 missing: no install; after the pause the phone starts over from the term file and
        fetches every .sbn again, then installs."""
        dsp = sbn_names(SIP942)[3]
        write_bundle(self.root, SIP942, term="06", skip=(dsp,))
        write(os.path.join(self.root, SEP), sep_xml())
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), SCCP852[0], "8.5(2)")
        p = self.phone("--mac", MAC, "--state", st, "--tftp", "127.0.0.1", "--tftp-port", str(srv.port),
                       "--sip-port", "0", *fast("--retry-interval", "1.0"))
        self.assertIsNotNone(p.wait_event("load-incomplete", 15), p.diag())
        write(os.path.join(self.root, dsp), os.urandom(5000))
        self.assertEqual(p.wait(30), 0, p.diag())
        names = srv.requested()
        first = seq(TERM06, sbn_names(SIP942)[:4])
        self.assertEqual(names[:5], first)
        self.assertEqual(names[5:], seq(TERM06, sbn_names(SIP942), TERM06, SEP))
        self.assertEqual(len(p.events("installed")), 1)

    def test_xmldefault_when_there_is_no_sep_file_and_the_7911_term_file(self):
        write_bundle(self.root, SIP942, term="11")
        write(os.path.join(self.root, "XMLDefault.cnf.xml"), sep_xml(line="2000"))
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), SIP942[0], "8.5(2)")
        rc, p = self.run_phone(srv, st, model="CP-7911G")
        self.assertEqual(rc, 0, p.diag())
        self.assertEqual(srv.requested(), ["term11.default.loads", SEP, "XMLDefault.cnf.xml"])
        self.assertEqual([e["code"] for e in p.events("tftp-error")], [1])
        self.assertEqual(p.events("registered")[0]["config"], "XMLDefault.cnf.xml")
        os.unlink(os.path.join(self.root, "XMLDefault.cnf.xml"))
        rc, p = self.run_phone(srv, st, model="CP-7911G")
        self.assertEqual(rc, 3, p.diag())
        self.assertIn("no configuration", p.status()["reason"])


# ----------------------------------------------------------------------------------------------
# the phone's web server (DeviceInformationX), resets when unregistered, reboot time

class WebAndResets(LabctlCase):
    def start_phone(self, srv, state, *extra, model="CP-7906G", sip="0"):
        port = free_tcp_port()
        p = self.phone("--model", model, "--mac", MAC, "--state", state, "--tftp", "127.0.0.1",
                       "--tftp-port", str(srv.port), "--sip-port", sip, "--http-port", str(port), *fast(*extra))
        self.assertIsNotNone(p.wait_event("http-listening", 10), p.diag())
        return p, port

    def test_device_information_while_the_installed_load_runs(self):
        """A 7911 with SIP 9.4(2) installed: its web server answers from power-on, while the term
        file is still missing (the load runs while the phone polls TFTP), and after registering;
        another path is 404, POST 405, HEAD a 200 without a body; gone once the phone exits."""
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), SIP942[0], "8.5(2)")
        p, port = self.start_phone(srv, st, "--retry-interval", "0.5", "--max-retries", "30", "--linger", "30",
                                   model="CP-7911G")
        self.assertEqual(p.events("http-listening")[0]["address"], "127.0.0.1")
        self.assertIsNotNone(p.wait_event("tftp-error", 10), p.diag())
        code, hdrs, body = http_call(port)
        self.assertEqual(code, 200, f"{hdrs}{p.diag()}")
        info = device_info(body)
        self.assertEqual((info["appLoadID"], info["phoneDN"]), (SIP942[0], ""))     # no config yet
        self.assertEqual(p.events("load-current"), [])
        # the term file offers the load it runs, and a SEP config: registered
        with open(os.path.join(self.root, "term11.default.loads"), "wb") as f:
            f.write(load_file_bytes(SIP942))
        write(os.path.join(self.root, SEP), sep_xml())
        self.assertIsNotNone(p.wait_event("registered", 15), p.diag())
        code, hdrs, body = http_call(port)
        self.assertEqual(code, 200, f"{hdrs}{p.diag()}")
        self.assertEqual(hdrs.get("content-type"), "text/xml")
        self.assertTrue(body.startswith(b'<?xml version="1.0" encoding="utf-8"?>'), body)
        info = device_info(body)
        with open(st) as f:
            self.assertEqual(info["appLoadID"], json.load(f)["load"])
        self.assertEqual(info, {"MACAddress": "000B8201FC42", "HostName": "SEP000B8201FC42", "phoneDN": "1006",
                                "appLoadID": SIP942[0], "bootLoadID": "tnp11.8-5-2", "versionID": "9.4(2)",
                                "serialNumber": "FCH8201FC42", "modelNumber": "CP-7911G"})
        code, _, body = http_call(port, "/CGI/Java/Serviceability?adapter=device.statistics.device")
        self.assertEqual(code, 404, body)
        code, hdrs, _ = http_call(port, method="POST", body=b"<x/>")
        self.assertEqual(code, 405, hdrs)
        self.assertEqual(hdrs.get("allow"), "GET, HEAD")
        code, hdrs, body = http_call(port, method="HEAD")
        self.assertEqual((code, body), (200, b""))
        self.assertGreater(int(hdrs["content-length"]), 300)
        reqs = p.events("http-request")
        self.assertEqual([(e["method"], e["status"]) for e in reqs],
                         [("GET", 200), ("GET", 200), ("GET", 404), ("POST", 405), ("HEAD", 200)], p.diag())
        self.assertTrue(all(e["source"].startswith("127.0.0.1:") for e in reqs))
        # SIGTERM: a clean exit (registered: 0), the status line last, the port closed
        self.assertEqual(h.stop_process(p.proc, grace=5), 0, p.diag())
        self.assertEqual(p.events()[-1]["event"], "status")
        self.assertEqual(p.status()["result"], "stopped")
        code, why, _ = http_call(port)
        self.assertIsNone(code)
        self.assertIn("refused", why.lower())

    def test_no_answer_while_stuck_in_the_bootloader(self):
        """SCCP 8.3(0) without the 8.5(2) bootloader, offered SIP 9.4(2): it loops on the term
        file, and its web server answers nothing (the connection is closed unanswered). The
        operator offers SCCP 8.5(2): installed, the phone reboots into it and answers again."""
        write_bundle(self.root, SIP942, term="06")
        write_bundle(self.root, SCCP852)
        write(os.path.join(self.root, SEP), sep_xml())
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), "SCCP11.8-3-0S")
        p, port = self.start_phone(srv, st, "--max-loops", "60", "--loop-interval", "0.25",
                                   "--reset-unregistered", "30", "--timeout", "40")
        self.assertIsNotNone(p.wait_event("stuck-loop", 15), p.diag())
        code, why, _ = http_call(port)
        self.assertIsNone(code, p.diag())
        self.assertNotIn("refused", why.lower())                  # listening, but no answer
        dropped = p.wait_event("http-request", 5)
        self.assertIsNotNone(dropped, p.diag())
        self.assertEqual((dropped["status"], dropped["dropped"]), (None, "stuck in the bootloader"))
        self.assertIsNone(p.proc.poll(), p.diag())
        self.assertFalse([n for n in srv.requested() if n != TERM06])
        # the operator swaps in 8.5(2): installed, rebooted, running again (unregistered: SCCP)
        shutil.copy(os.path.join(self.root, SCCP852[0] + ".loads"), os.path.join(self.root, TERM06 + ".new"))
        os.replace(os.path.join(self.root, TERM06 + ".new"), os.path.join(self.root, TERM06))
        self.assertIsNotNone(p.wait_event("registration-failed", 20), p.diag())
        code, hdrs, body = http_call(port)
        self.assertEqual(code, 200, f"{hdrs}{p.diag()}")
        info = device_info(body)
        self.assertEqual((info["appLoadID"], info["bootLoadID"], info["versionID"]),
                         (SCCP852[0], "tnp11.8-5-2", "8.5(2)"))
        self.assertEqual([e["status"] for e in p.events("http-request")], [None, 200])

    def test_reset_when_unregistered_until_a_sip_load_is_offered(self):
        """SCCP 8.5(2) with a SIP config cannot register; with --reset-unregistered 1 it resets
        ("unregistered") a second later, is down --reboot-time 1.5 s (no HTTP answer), and reads
        the term file again, which by then offers SIP 9.4(2): installed, registered, exit 0."""
        write_bundle(self.root, SCCP852, term="06")
        write_bundle(self.root, SIP942)
        write(os.path.join(self.root, SEP), sep_xml())
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), SCCP852[0], "8.5(2)")
        p, port = self.start_phone(srv, st, "--reset-unregistered", "1", "--reboot-time", "1.5", "--max-boots", "4",
                                   "--linger", "20")
        fail = p.wait_event("registration-failed", 10)
        self.assertIsNotNone(fail, p.diag())
        self.assertIn("SCCP", fail["reason"])
        code, hdrs, body = http_call(port)                          # its load runs while it waits
        self.assertEqual(code, 200, f"{hdrs}{p.diag()}")
        self.assertEqual(device_info(body)["appLoadID"], SCCP852[0])
        reset = p.wait_event("rebooting", 10)
        self.assertIsNotNone(reset, p.diag())
        self.assertEqual(reset["reason"], "unregistered", p.diag())
        code, why, _ = http_call(port)                              # rebooting: no answer
        self.assertIsNone(code, f"{why}{p.diag()}")
        # the operator offers SIP 9.4(2) while the phone is down
        shutil.copy(os.path.join(self.root, SIP942[0] + ".loads"), os.path.join(self.root, TERM06 + ".new"))
        os.replace(os.path.join(self.root, TERM06 + ".new"), os.path.join(self.root, TERM06))
        reg = p.wait_event("registered", 20)
        self.assertIsNotNone(reg, p.diag())
        self.assertEqual(reg["load"], SIP942[0])
        code, hdrs, body = http_call(port)
        self.assertEqual(code, 200, f"{hdrs}{p.diag()}")
        self.assertEqual(device_info(body)["appLoadID"], SIP942[0])
        self.assertEqual(h.stop_process(p.proc, grace=5), 0, p.diag())
        self.assertEqual(srv.requested(), seq(TERM06, SEP, TERM06, sbn_names(SIP942), TERM06, SEP))
        self.assertEqual([e["reason"] for e in p.events("rebooting")], ["unregistered", "new load"])
        self.assertEqual([e["load"] for e in p.events("installed")], [SIP942[0]])
        self.assertEqual([(e["status"], e.get("dropped")) for e in p.events("http-request")],
                         [(200, None), (None, "rebooting"), (200, None)])
        # the timing: the wait after the failure, then the reboot time before the term file
        ev = p.events()
        t_fail = fail["t"]
        t_reset = reset["t"]
        after = [e for e in ev if e["t"] >= t_reset and e["event"] == "tftp-request"]
        self.assertGreaterEqual(t_reset - t_fail, 1.0 - 0.02, p.diag())
        self.assertGreaterEqual(after[0]["t"] - t_reset, 1.5 - 0.02, p.diag())
        self.assertLess(after[0]["t"] - t_reset, 3.0, p.diag())
        new_load = p.events("rebooting")[1]
        nxt = [e for e in ev if e["t"] >= new_load["t"] and e["event"] == "tftp-request"][0]
        self.assertGreaterEqual(nxt["t"] - new_load["t"], 1.5 - 0.02, p.diag())

    def test_unregistered_resets_are_bounded(self):
        """Resets count toward --max-boots (then exit 1); when --timeout comes during the wait,
        the run ends as registration failed (exit 3); without the option it is exit 3 at once."""
        write_bundle(self.root, SCCP852, term="06")
        write(os.path.join(self.root, SEP), sep_xml())
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), SCCP852[0], "8.5(2)")
        rc, p = self.run_phone(srv, st, "--reset-unregistered", "0.2", "--max-boots", "2", timeout=20)
        self.assertEqual(rc, 1, p.diag())
        self.assertIn("reboots without registering", p.status()["reason"])
        self.assertEqual([e["reason"] for e in p.events("rebooting")], ["unregistered"] * 2)
        self.assertEqual(len(p.events("registration-failed")), 3)
        self.assertEqual(p.requested(), [TERM06, SEP] * 3)
        rc, p = self.run_phone(srv, st, "--reset-unregistered", "30", "--timeout", "2", timeout=20)
        self.assertEqual(rc, 3, p.diag())
        self.assertEqual(p.status()["result"], "registration-failed")
        self.assertIn("SCCP", p.status()["reason"])
        self.assertEqual(p.events("rebooting"), [])
        self.assertGreater(p.status()["t"], 1.5)                      # it did wait
        rc, p = self.run_phone(srv, st, timeout=20)
        self.assertEqual(rc, 3, p.diag())
        self.assertLess(p.status()["t"], 1.5)

    def test_check_sync_cuts_the_unregistered_wait_short(self):
        """A check-sync NOTIFY during the wait (the load runs: SIP answers 200) resets at once."""
        write_bundle(self.root, SCCP852, term="06")
        write(os.path.join(self.root, SEP), sep_xml())
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), SCCP852[0], "8.5(2)")
        sip = free_udp_port()
        p, _ = self.start_phone(srv, st, "--reset-unregistered", "30", "--max-boots", "1", sip=str(sip))
        self.assertIsNotNone(p.wait_event("registration-failed", 10), p.diag())
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.bind(("127.0.0.1", 0))
        c.settimeout(5)
        try:
            c.sendto(Units.NOTIFY.format(event="check-sync").encode(), ("127.0.0.1", sip))
            data, _ = c.recvfrom(65535)
        finally:
            c.close()
        self.assertTrue(data.startswith(b"SIP/2.0 200 "), data)
        reset = p.wait_event("rebooting", 5)
        self.assertIsNotNone(reset, p.diag())
        self.assertEqual(reset["reason"], "check-sync")
        # the second failure's wait runs into --max-boots 1 only after its 30 s: stop it here
        self.assertIsNotNone(p.wait_event("registration-failed", 10, count=2), p.diag())
        self.assertLess(p.events("registration-failed")[1]["t"], 10)
        p.stop()
        self.assertEqual(p.status()["notifies"], 1)
        self.assertEqual(p.requested(), [TERM06, SEP, TERM06, SEP])


# ----------------------------------------------------------------------------------------------
# SIP NOTIFY check-sync from sipp

SIPP_NOTIFY = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="NOTIFY check-sync, as a PBX sends it">
  <send retrans="500">
    <![CDATA[
      NOTIFY sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:pbx@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 101 NOTIFY
      Max-Forwards: 70
      Contact: <sip:pbx@[local_ip]:[local_port]>
      Event: @EVENT@
      Subscription-State: terminated
      Content-Length: 0

    ]]>
  </send>
  <recv response="@CODE@" timeout="5000">
    <action>
      <ereg regexp="101 NOTIFY" search_in="hdr" header="CSeq:" check_it="true" assign_to="cseq"/>
      <ereg regexp="tag=[0-9]+SIPpTag001$" search_in="hdr" header="From:" check_it="true" assign_to="ftag"/>
      <ereg regexp=";tag=[0-9a-f]+" search_in="hdr" header="To:" check_it="true" assign_to="ttag"/>
      <ereg regexp="branch=z9hG4bK-[0-9]+-1-0;rport" search_in="hdr" header="Via:" check_it="true" assign_to="vbranch"/>
      <ereg regexp="^ *0 *$" search_in="hdr" header="Content-Length:" check_it="true" assign_to="clen"/>
      <ereg regexp="^ *1-[0-9]+@" search_in="hdr" header="Call-ID:" check_it="true" assign_to="cid"/>
    </action>
  </recv>
  <Reference variables="cseq,ftag,ttag,vbranch,clen,cid"/>
</scenario>
"""


def sipp_notify(workdir, target, local_ip, event="check-sync", code=200, prefix=(), tag="sipp", scenario=SIPP_NOTIFY):
    """Runs sipp as the UAC of one NOTIFY; (returncode, output, error log)."""
    scen = os.path.join(workdir, f"{tag}.xml")
    write(scen, scenario.replace("@EVENT@", event).replace("@CODE@", str(code)))
    errf = os.path.join(workdir, f"{tag}.errors")
    msgf = os.path.join(workdir, f"{tag}.messages")
    # sipp binds 5060 unless told otherwise: a free port on loopback, 5070 in a namespace of ours
    port = 5070 if prefix else free_udp_port(local_ip)
    cmd = [*prefix, "sipp", "-sf", scen, target, "-i", local_ip, "-bind_local", "-p", str(port), "-s", "1006",
           "-m", "1", "-nostdin",
           "-timeout", "20s", "-timeout_error", "-trace_err", "-error_file", errf, "-trace_msg",
           "-message_file", msgf]
    rc, out, err = h.run_bounded(cmd, 40, cwd=workdir)
    return rc, out + err, h.read_text(errf) + "\n--- messages:\n" + h.read_text(msgf)[-4000:]


class Notify(LabctlCase):
    def setUp(self):
        super().setUp()
        if h.missing_binaries(["sipp"]):
            self.skipTest("sipp (package sip-tester) is missing")

    def test_e_check_sync_gets_200_and_a_new_boot(self):
        write_bundle(self.root, SIP942, term="06")
        write(os.path.join(self.root, SEP), sep_xml())
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), SIP942[0], "8.5(2)")
        sip = free_udp_port()
        p = self.phone("--mac", MAC, "--state", st, "--tftp", "127.0.0.1", "--tftp-port", str(srv.port),
                       "--sip-port", str(sip), "--linger", "30", "--max-notify", "1", *fast())
        self.assertIsNotNone(p.wait_event("registered", 20), p.diag())
        self.assertEqual(srv.requested(), [TERM06, SEP])
        # another event first: 489, and no reboot
        rc, out, log = sipp_notify(self.work, f"127.0.0.1:{sip}", "127.0.0.1", event="presence", code=489, tag="s489")
        self.assertEqual(rc, 0, out + log + p.diag())
        time.sleep(0.3)
        self.assertEqual(p.events("rebooting"), [])
        self.assertIsNone(p.proc.poll(), p.diag())
        # then the check-sync
        rc, out, log = sipp_notify(self.work, f"127.0.0.1:{sip}", "127.0.0.1", tag="s200")
        self.assertEqual(rc, 0, out + log + p.diag())
        self.assertEqual(p.wait(30), 0, p.diag())
        ev = [e["event"] for e in p.events()]
        i = ev.index("notify-received", ev.index("registered"))
        self.assertEqual([e["code"] for e in p.events("notify-received")], [489, 200])
        self.assertIn("rebooting", ev[i:])
        self.assertEqual(len(p.events("registered")), 2)
        self.assertEqual(srv.requested(), [TERM06, SEP, TERM06, SEP])
        self.assertEqual(p.status()["notifies"], 1)

    def test_a_phone_stuck_in_its_bootloader_does_not_answer(self):
        """Looping on the term file, the phone runs no SIP stack: sipp's NOTIFY goes unanswered
        (sipp times out) and the phone records it as ignored."""
        write_bundle(self.root, SIP942, term="06")
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), "SCCP11.8-3-0S")
        sip = free_udp_port()
        p = self.phone("--mac", MAC, "--state", st, "--tftp", "127.0.0.1", "--tftp-port", str(srv.port),
                       "--sip-port", str(sip), *fast("--max-loops", "40", "--loop-interval", "0.25"))
        self.assertIsNotNone(p.wait_event("stuck-loop", 15), p.diag())
        scen_timeout = SIPP_NOTIFY.replace('timeout="5000"', 'timeout="1500"')
        rc, out, log = sipp_notify(self.work, f"127.0.0.1:{sip}", "127.0.0.1", tag="stuck", scenario=scen_timeout)
        self.assertNotEqual(rc, 0, out + log)
        self.assertTrue(p.events("sip-ignored"), p.diag())
        self.assertEqual(p.events("notify-received"), [])
        self.assertEqual(p.wait(30), 2, p.diag())
        self.assertFalse([n for n in srv.requested() if n != TERM06])

    def test_malformed_and_other_requests(self):
        """Straight from a socket: no Call-ID -> 400; OPTIONS -> 200; INVITE -> 501; no reboot."""
        write_bundle(self.root, SIP942, term="06")
        write(os.path.join(self.root, SEP), sep_xml())
        srv = self.tftp()
        st = state_file(os.path.join(self.work, "phone.json"), SIP942[0], "8.5(2)")
        sip = free_udp_port()
        p = self.phone("--mac", MAC, "--state", st, "--tftp", "127.0.0.1", "--tftp-port", str(srv.port),
                       "--sip-port", str(sip), "--linger", "3", *fast())
        self.assertIsNotNone(p.wait_event("registered", 15), p.diag())
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.bind(("127.0.0.1", 0))
        c.settimeout(5)
        try:
            for method, drop, want in (("NOTIFY", "Call-ID", b"SIP/2.0 400 "), ("OPTIONS", None, b"SIP/2.0 200 "),
                                       ("INVITE", None, b"SIP/2.0 501 ")):
                req = Units.NOTIFY.format(event="check-sync").replace("NOTIFY", method)
                if drop:
                    req = "\r\n".join(ln for ln in req.split("\r\n") if not ln.startswith(drop + ":"))
                c.sendto(req.encode(), ("127.0.0.1", sip))
                data, _ = c.recvfrom(65535)
                self.assertTrue(data.startswith(want), data)
                if method == "OPTIONS":
                    self.assertIn(b"\r\nCall-ID: 42@10.99.0.1\r\n", data)
        finally:
            c.close()
        self.assertEqual(p.wait(20), 0, p.diag())
        self.assertEqual(srv.requested(), [TERM06, SEP])
        self.assertEqual(p.status()["notifies"], 0)


# ----------------------------------------------------------------------------------------------
# DHCP in namespaces

@unittest.skipUnless(os.geteuid() == 0, "needs root for network namespaces")
class Namespaces(LabctlCase):
    pair = None

    @classmethod
    def setUpClass(cls):
        missing = h.missing_binaries(["ip"])
        if missing:
            raise unittest.SkipTest("missing: " + ", ".join(missing))
        if not ARGS or not os.access(ARGS.labctl, os.X_OK):
            raise unittest.SkipTest("no labctl binary")
        cls.pair = h.NetnsPair("phone", client_mac=MAC).up()

    @classmethod
    def tearDownClass(cls):
        h.stop_all()
        if cls.pair is not None:
            cls.pair.down()

    def setUp(self):
        super().setUp()
        self.pair.flush_client_addrs()
        self.dhcp_proc = None
        self.addCleanup(lambda: h.stop_process(self.dhcp_proc))

    def labctl_dhcp(self, *opts):
        log = os.path.join(self.work, "dhcp.jsonl")
        out = os.path.join(self.work, "dhcp.out")
        cmd = [ARGS.labctl, "dhcp", "serve", "--interface", self.pair.srv_if, "--range", "10.99.1.10-10.99.1.50",
               "--lease-db", os.path.join(self.work, "leases.db"), "--log", log, "--lease-time", "10m", *opts]
        with open(out, "wb") as f:
            self.dhcp_proc = h.popen(self.pair.exec_srv() + cmd, stdout=f, stderr=subprocess.STDOUT)
        ok = h.wait_for(lambda: "dhcp: serving" in h.read_text(out) or self.dhcp_proc.poll() is not None, 20)
        if not ok or self.dhcp_proc.poll() is not None:
            self.fail("labctl dhcp serve did not start:\n" + h.read_text(out))
        return log

    def kea_dhcp(self, option_defs, option_data):
        """kea-dhcp4 (raw sockets) on the server side with these option definitions and data."""
        run = os.path.join(self.work, "kea-run")
        os.makedirs(run, exist_ok=True)
        log = os.path.join(self.work, "kea-dhcp4.log")
        conf = {"Dhcp4": {
            "interfaces-config": {"interfaces": [self.pair.srv_if], "dhcp-socket-type": "raw"},
            "lease-database": {"type": "memfile", "persist": True, "name": os.path.join(self.work, "kea-leases4.csv"),
                               "lfc-interval": 0},
            "valid-lifetime": 600, "authoritative": True, "option-def": option_defs,
            "subnet4": [{"id": 1, "subnet": "10.99.0.0/16", "pools": [{"pool": "10.99.1.10 - 10.99.1.50"}],
                         "option-data": option_data}],
            "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": log}], "severity": "INFO"}]}}
        path = os.path.join(self.work, "kea-dhcp4.json")
        write(path, json.dumps(conf, indent=1))
        env = dict(os.environ, KEA_PIDFILE_DIR=run, KEA_LOCKFILE_DIR=run)
        with open(os.path.join(self.work, "kea.out"), "wb") as f:
            self.dhcp_proc = h.popen(self.pair.exec_srv() + ["kea-dhcp4", "-c", path], env=env, stdout=f,
                                     stderr=subprocess.STDOUT)
        ok = h.wait_for(lambda: "DHCP4_STARTED" in h.read_text(log) or self.dhcp_proc.poll() is not None, 20)
        if not ok or self.dhcp_proc.poll() is not None:
            self.fail("kea-dhcp4 did not start:\n" + h.read_text(log)[-3000:] +
                      h.read_text(os.path.join(self.work, "kea.out"))[-3000:])

    def boot_in_namespace(self, *extra, mac=MAC):
        write_bundle(self.root, SIP942, term="06")
        write(os.path.join(self.root, SEP), sep_xml())
        srv = self.tftp(bind="10.99.0.1", port=69, prefix=self.pair.exec_srv())
        st = state_file(os.path.join(self.work, "phone.json"), SCCP852[0], "8.5(2)")
        p = self.phone("--model", "CP-7906G", *(["--mac", mac] if mac else []), "--state", st,
                       "--interface", self.pair.cli_if,
                       *fast("--dhcp-timeout", "20", *extra), prefix=self.pair.exec_cli())
        return srv, p

    def check_boot(self, srv, p, rc=0):
        bound = p.events("dhcp-bound")
        self.assertEqual(len(bound), 1, p.diag())
        ip = bound[0]["ip"]
        a = [int(x) for x in ip.split(".")]
        self.assertTrue(a[:3] == [10, 99, 1] and 10 <= a[3] <= 50, ip)
        self.assertIn(ip, self.pair.client_addrs())
        self.assertEqual(srv.requested(), seq(TERM06, sbn_names(SIP942), TERM06, SEP))
        self.assertEqual({e.get("client") for e in srv.events() if e["event"] == "request"}, {ip})
        return bound[0]

    def test_d_address_and_tftp_server_from_option_150(self):
        log = self.labctl_dhcp("--tftp", "10.99.0.1,10.99.0.2")
        srv, p = self.boot_in_namespace("--linger", "30", "--max-notify", "1")
        self.assertIsNotNone(p.wait_event("registered", 40), p.diag())
        b = self.check_boot(srv, p)
        self.assertEqual(b["option150"], ["10.99.0.1", "10.99.0.2"])
        self.assertEqual(b["options"]["150"], h.OPT150_HEX)
        self.assertEqual(b["option66"], "10.99.0.1")
        self.assertEqual(p.events("tftp-server")[0], {**p.events("tftp-server")[0], "server": "10.99.0.1",
                                                      "source": "option 150"})
        self.assertEqual(p.events("option-150-malformed"), [])
        acks = [e for e in read_jsonl(log) if e.get("event") == "ack"]
        self.assertEqual([(e.get("mac"), e.get("ip")) for e in acks], [(MAC, b["ip"])])
        # the SIP listener is on the DHCP address: a check-sync from the server side reboots it
        rc, out, slog = sipp_notify(self.work, f"{b['ip']}:5060", "10.99.0.1", prefix=self.pair.exec_srv()) \
            if not h.missing_binaries(["sipp"]) else (None, "", "")
        if rc is None:
            p.stop()
            return
        self.assertEqual(rc, 0, out + slog + p.diag())
        self.assertEqual(p.wait(30), 0, p.diag())
        self.assertEqual(srv.requested()[-2:], [TERM06, SEP])
        self.assertEqual(p.events("notify-received")[0]["source"].split(":")[0], "10.99.0.1")

    def test_d2_option_66_alone(self):
        self.labctl_dhcp("--tftp-name", "10.99.0.1")
        srv, p = self.boot_in_namespace(mac=None)                  # the interface's MAC
        self.assertEqual(p.wait(40), 0, p.diag())
        b = self.check_boot(srv, p)
        self.assertEqual((b["option150"], b["option66"]), ([], "10.99.0.1"))
        self.assertNotIn("150", b["options"])
        self.assertEqual(p.events("tftp-server")[0]["source"], "option 66")

    def test_d3_option_150_typed_as_text_falls_back_to_66(self):
        """The seed's classic mistake, made with a real server (Kea, option 150 defined as a
        string, as a GUI that takes "an IP address in its normal format" does): 150 = the text
        "10.99.0.1"; option 66 is right. The phone says 150 is malformed and uses 66."""
        if h.missing_binaries(["kea-dhcp4"]):
            self.skipTest("kea-dhcp4 is missing")
        self.kea_dhcp([{"name": "cisco-tftp-text", "code": 150, "space": "dhcp4", "type": "string"}],
                      [{"name": "cisco-tftp-text", "code": 150, "data": "10.99.0.1", "always-send": True},
                       {"name": "tftp-server-name", "code": 66, "data": "10.99.0.1", "always-send": True}])
        srv, p = self.boot_in_namespace()
        self.assertEqual(p.wait(40), 0, p.diag())
        b = self.check_boot(srv, p)
        self.assertEqual(bytes.fromhex(b["options"]["150"]), b"10.99.0.1")
        bad = p.events("option-150-malformed")
        self.assertEqual(len(bad), 1, p.diag())
        self.assertIn("text", bad[0]["reason"])
        self.assertEqual(p.events("tftp-server")[0]["source"], "option 66")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--labctl", required=True)
    ap.add_argument("--source", required=True)
    ARGS, rest = ap.parse_known_args()
    ARGS.labctl = os.path.abspath(ARGS.labctl)
    h.cleanup_on_signals()
    try:
        unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
    finally:
        h.stop_all()
        h.cleanup_namespaces()
