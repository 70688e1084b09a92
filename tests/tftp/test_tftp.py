#!/usr/bin/env python3
"""End-to-end tests of labctl's TFTP server and client against real clients and hostile input.

Each test class starts its own `labctl tftp serve --root ROOT --port P --bind 127.0.0.1 --log LOG` on a
free loopback port, waits (bounded) until the port answers, and stops it by PID in its class
cleanup, even when something failed. All traffic stays on 127.0.0.1.

  - downloads with curl, tftp-hpa's tftp and atftp: 0/511/512/513 bytes, 5 MiB, 40 MiB (block-number
    rollover at 512-byte blocks), compared by sha256;
  - 50 concurrent curl clients;
  - a lossy link: a seeded UDP relay (drop 10%, duplicate 5%, reorder) in both directions;
  - hostile names (traversal, absolute, encoded, symlink escapes, long, NUL, control characters);
  - malformed packets, abandoned transfers, duplicate ACKs (Sorcerer's Apprentice);
  - the JSON-lines event log, the case-insensitive fallback, labctl's windowsize client.

Usage: test_tftp.py --labctl PATH --source DIR [unittest args, e.g. -k Lossy]
Environment:
  TFTP_TEST_SERVER=labctl|hpa   server under test (default labctl; hpa = in.tftpd -L -s, to check
                                the harness itself against a known-good server)
  TFTP_RELAY_SEED=N             seed of the lossy relay (default: random, printed)
  TFTP_TEST_KEEP=1              keep the temporary directory
"""
import hashlib
import json
import os
import random
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

ARGS = None
SERVER_KIND = os.environ.get("TFTP_TEST_SERVER", "labctl")
HOST = "127.0.0.1"
MiB = 1024 * 1024

# Files every server's root holds: name -> size. Contents are random, written once per run.
SIZES = {"zero.bin": 0, "b511.bin": 511, "b512.bin": 512, "b513.bin": 513, "f5m.bin": 5 * MiB,
         "f40m.bin": 40 * MiB}
SMALL = "b513.bin"          # what "the server still serves" checks fetch
CASE_FILE = "jar11sip.9-4-2ES9.sbn"

TMP = None                  # module temporary directory: root/, outside/, secret.txt, logs
ROOT = None
SECRET = None               # bytes of the secret files outside the root
DIGESTS = {}                # name -> sha256 hex of the file in the root
STARTED = []                # every Popen this module started (stopped in tearDownModule too)


# ----------------------------------------------------------------------------------------------
# small helpers

def sha256(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def free_udp_port():
    """A UDP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def stop_process(proc, grace=5.0):
    """SIGTERM the process (its own process group: the server and any children it forked), wait,
    then SIGKILL. Only ever the processes this module started, by their PID."""
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


def run_bounded(cmd, timeout, **kw):
    """subprocess.run with a hard time bound; the child is killed (by PID) when it runs over."""
    p = popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(p, grace=1.0)
        out, err = p.communicate()
        return -999, out.decode(errors="replace"), err.decode(errors="replace") + f"\n[killed after {timeout}s]"
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


# ----------------------------------------------------------------------------------------------
# a minimal TFTP client in Python, for raw packets and exact checks

OP_RRQ, OP_WRQ, OP_DATA, OP_ACK, OP_ERROR, OP_OACK = 1, 2, 3, 4, 5, 6


def rrq(name, mode=b"octet", options=None, opcode=OP_RRQ):
    if isinstance(name, str):
        name = name.encode("utf-8", "surrogateescape")
    pkt = struct.pack("!H", opcode) + name + b"\0" + mode + b"\0"
    for k, v in (options or {}).items():
        pkt += k.encode() + b"\0" + str(v).encode() + b"\0"
    return pkt


def parse_oack(payload):
    parts = payload.split(b"\0")
    out = {}
    for i in range(0, len(parts) - 1, 2):
        out[parts[i].decode(errors="replace").lower()] = parts[i + 1].decode(errors="replace")
    return out


class Result:
    def __init__(self):
        self.kind = "timeout"     # data | error | timeout | bad
        self.content = bytearray()
        self.code = None
        self.message = ""
        self.oack = None
        self.data_packets = 0     # DATA packets received, duplicates included
        self.blocks = 0           # distinct blocks accepted
        self.first_reply = None

    def __repr__(self):
        return (f"Result(kind={self.kind}, code={self.code}, message={self.message!r}, "
                f"bytes={len(self.content)}, oack={self.oack})")


def py_get(port, name, mode=b"octet", options=None, packet=None, timeout=1.0, total=30.0, retries=5,
           dup_acks=False, max_bytes=64 * MiB):
    """Read one file with a lock-step client (or send `packet` as the request). Bounded in time,
    retries and bytes. Accepts rollover past block 65535."""
    res = Result()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    s.settimeout(timeout)
    deadline = time.monotonic() + total
    req = packet if packet is not None else rrq(name, mode, options)
    last, dest = req, (HOST, port)
    peer = None
    expect = 1
    blksize = 512
    tries = 0
    try:
        s.sendto(req, dest)
        while time.monotonic() < deadline:
            try:
                data, addr = s.recvfrom(70000)
            except socket.timeout:
                tries += 1
                if tries > retries:
                    return res
                s.sendto(last, dest)
                continue
            if peer is None:
                peer = addr
                dest = addr
                res.first_reply = data
            elif addr != peer:
                s.sendto(struct.pack("!HH", OP_ERROR, 5) + b"unknown transfer ID\0", addr)
                continue
            if len(data) < 4:
                res.kind = "bad"
                return res
            op = struct.unpack("!H", data[:2])[0]
            if op == OP_ERROR:
                res.kind = "error"
                res.code = struct.unpack("!H", data[2:4])[0]
                res.message = data[4:].split(b"\0")[0].decode(errors="replace")
                return res
            if op == OP_OACK and res.oack is None and expect == 1:
                res.oack = parse_oack(data[2:])
                if "blksize" in res.oack:
                    blksize = int(res.oack["blksize"])
                last = struct.pack("!HH", OP_ACK, 0)
                s.sendto(last, dest)
                tries = 0
                continue
            if op != OP_DATA:
                res.kind = "bad"
                res.message = f"opcode {op}"
                return res
            res.data_packets += 1
            block = struct.unpack("!H", data[2:4])[0]
            if block == expect & 0xFFFF:
                res.content += data[4:]
                res.blocks += 1
                tries = 0
                last = struct.pack("!HH", OP_ACK, block)
                s.sendto(last, dest)
                if dup_acks:
                    s.sendto(last, dest)
                expect += 1
                if len(data) - 4 < blksize:
                    res.kind = "data"
                    return res
                if len(res.content) > max_bytes:
                    res.kind = "bad"
                    res.message = "too many bytes"
                    return res
            else:
                s.sendto(struct.pack("!HH", OP_ACK, (expect - 1) & 0xFFFF), dest)
        return res
    finally:
        s.close()


def send_raw(port, payload, wait=0.3):
    """Sends one datagram from a fresh socket; returns the replies seen within `wait` seconds."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    replies = []
    try:
        try:
            s.sendto(payload, (HOST, port))
        except OSError as e:
            return [("sendto-error", str(e))]
        end = time.monotonic() + wait
        while len(replies) < 20:
            left = end - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                data, addr = s.recvfrom(70000)
            except socket.timeout:
                break
            replies.append((addr, data))
            # acknowledge nothing: an answered DATA stays unanswered (the server must give up)
    finally:
        s.close()
    return replies


# ----------------------------------------------------------------------------------------------
# the server under test

class Server:
    def __init__(self, name, root):
        self.name = name
        self.root = root
        self.dir = os.path.join(TMP, "srv-" + name)
        os.makedirs(self.dir, exist_ok=True)
        self.log = os.path.join(self.dir, "events.jsonl")
        self.proc = None
        self.port = None

    def command(self, port):
        if SERVER_KIND == "hpa":
            return ["in.tftpd", "-L", "-a", f"{HOST}:{port}", "-s", "-v", self.root]
        return [ARGS.labctl, "tftp", "serve", "--root", self.root, "--port", str(port), "--bind", HOST,
                "--log", self.log]

    def start(self):
        last_err = ""
        for _attempt in range(3):      # a port found free can be taken before we bind it
            self.port = free_udp_port()
            out = open(os.path.join(self.dir, "server.out"), "ab")
            self.proc = popen(self.command(self.port), stdout=out, stderr=subprocess.STDOUT)
            out.close()
            if self.wait_ready(10.0):
                return
            last_err = self.output()
            stop_process(self.proc)
        raise RuntimeError(f"server did not answer on 127.0.0.1:{self.port}: {last_err[-2000:]}")

    def wait_ready(self, limit):
        """Until a read request for a name that does not exist gets any answer (bounded)."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            if send_raw(self.port, rrq("labctl-readiness-probe"), wait=0.2):
                return True
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def output(self):
        try:
            with open(os.path.join(self.dir, "server.out"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        stop_process(self.proc)


class ServerCase(unittest.TestCase):
    """A test class with its own server, started once for the class and always stopped."""
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server(cls.__name__, ROOT)
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()

    def setUp(self):
        self._t0 = time.monotonic()

    def tearDown(self):
        took = time.monotonic() - self._t0
        if took > 3:
            print(f"  [{self.id().split('.', 1)[1]}: {took:.1f} s]", file=sys.stderr)

    @property
    def port(self):
        return self.server.port

    def url(self, name, port=None):
        return f"tftp://{HOST}:{port or self.port}/{name}"

    def out_path(self, tag):
        d = os.path.join(TMP, "out")
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, f"{self.__class__.__name__}-{tag}-{os.getpid()}-{time.monotonic_ns()}")

    def assert_serves(self, within=5.0, msg=""):
        """The server is alive and a normal transfer completes within `within` seconds."""
        self.assertTrue(self.server.alive(), f"server died {msg}: {self.server.output()[-2000:]}")
        t0 = time.monotonic()
        r = py_get(self.port, SMALL, timeout=0.5, total=within, retries=8)
        self.assertEqual(r.kind, "data", f"no normal transfer after {msg}: {r}")
        self.assertEqual(sha256(r.content), DIGESTS[SMALL], msg)
        self.assertLess(time.monotonic() - t0, within, msg)

    # real clients: each returns (ok, detail) and leaves the file at `out`
    def curl(self, name, out, blksize=None, timeout=120, port=None, extra=()):
        cmd = ["curl", "-sS", "-g", "-o", out]
        if blksize:
            cmd += ["--tftp-blksize", str(blksize)]
        cmd += list(extra) + [self.url(name, port)]
        code, so, se = run_bounded(cmd, timeout)
        if code == 0 and not os.path.exists(out):
            open(out, "wb").close()        # curl writes no file for an empty body
        return code == 0, f"curl rc={code} {se.strip()}"

    def tftp_hpa(self, name, out, timeout=120, port=None):
        cmd = ["tftp", "-m", "binary", HOST, str(port or self.port), "-c", "get", name, out]
        code, so, se = run_bounded(cmd, timeout)
        text = (so + se).strip()
        # tftp-hpa exits 0 even when the server refused: look at what it printed
        ok = code == 0 and not re.search(r"Error code|timed out|error", text, re.I)
        return ok, f"tftp rc={code} {text}"

    def atftp(self, name, out, options=(), timeout=120, port=None):
        cmd = ["atftp"]
        for o in options:
            cmd += ["--option", o]
        cmd += ["--get", "-r", name, "-l", out, HOST, str(port or self.port)]
        code, so, se = run_bounded(cmd, timeout)
        return code == 0, f"atftp rc={code} {(so + se).strip()}"

    def labctl_get(self, url, out, blksize=None, windowsize=None, timeout=120):
        cmd = [ARGS.labctl, "tftp", "get"]
        if blksize:
            cmd += ["--blksize", str(blksize)]
        if windowsize:
            cmd += ["--windowsize", str(windowsize)]
        cmd += [url, "-o", out]
        code, so, se = run_bounded(cmd, timeout)
        return code == 0, f"labctl tftp get rc={code} {(so + se).strip()[-2000:]}"

    def assert_same(self, out, name, detail):
        self.assertTrue(os.path.exists(out), f"{name}: no output file; {detail}")
        got = sha256_file(out)
        self.assertEqual(got, DIGESTS[name],
                         f"{name}: sha256 differs ({os.path.getsize(out)} bytes, expected "
                         f"{SIZES.get(name, '?')}); {detail}")
        os.unlink(out)


# ----------------------------------------------------------------------------------------------
# 1. downloads with real clients

CLIENTS = {
    "curl": lambda t, n, o: t.curl(n, o),
    "curl_1468": lambda t, n, o: t.curl(n, o, blksize=1468),
    "tftp_hpa": lambda t, n, o: t.tftp_hpa(n, o),
    "atftp": lambda t, n, o: t.atftp(n, o),
    "atftp_1468": lambda t, n, o: t.atftp(n, o, options=["blksize 1468"]),
    "atftp_window8": lambda t, n, o: t.atftp(n, o, options=["windowsize 8"]),
}
MATRIX = [(c, n) for c in CLIENTS for n in ("zero.bin", "b511.bin", "b512.bin", "b513.bin", "f5m.bin")]
MATRIX += [("curl", "f40m.bin"), ("atftp", "f40m.bin")]


class Downloads(ServerCase):
    pass


def _download_test(client, name):
    def test(self):
        out = self.out_path(f"{client}-{name}")
        t0 = time.monotonic()
        ok, detail = CLIENTS[client](self, name, out)
        self.assertTrue(ok, f"{client} {name}: {detail}")
        self.assert_same(out, name, detail)
        self.assertLess(time.monotonic() - t0, 120)
    test.__doc__ = f"{client} downloads {name} ({SIZES[name]} bytes) byte-identical"
    return test


for _c, _n in MATRIX:
    setattr(Downloads, f"test_{_c}_{_n.split('.')[0]}", _download_test(_c, _n))


class Protocol(ServerCase):
    def test_options_negotiated(self):
        """blksize and tsize answered in an OACK, an unknown option ignored (not echoed)."""
        r = py_get(self.port, "f5m.bin", options={"blksize": 1468, "tsize": 0, "frobnicate": 7})
        self.assertEqual(r.kind, "data", r)
        self.assertIsNotNone(r.oack, "no OACK")
        self.assertEqual(r.oack.get("blksize"), "1468")
        self.assertEqual(r.oack.get("tsize"), str(5 * MiB))
        self.assertNotIn("frobnicate", r.oack)
        self.assertEqual(sha256(r.content), DIGESTS["f5m.bin"])

    def test_blksize_huge_capped(self):
        """blksize 99999999 is capped (<= 65464) or ignored; the transfer completes."""
        r = py_get(self.port, "f5m.bin", options={"blksize": 99999999})
        if r.kind == "error":
            self.assertEqual(r.code, 8, r)     # option refused: acceptable
            return
        self.assertEqual(r.kind, "data", r)
        if r.oack and "blksize" in r.oack:
            self.assertLessEqual(int(r.oack["blksize"]), 65464)
            self.assertGreaterEqual(int(r.oack["blksize"]), 8)
        self.assertEqual(sha256(r.content), DIGESTS["f5m.bin"])

    def test_no_sorcerers_apprentice(self):
        """Every ACK sent twice: the server must not answer the duplicates with duplicate DATA."""
        r = py_get(self.port, "f5m.bin", dup_acks=True, total=60)
        self.assertEqual(r.kind, "data", r)
        self.assertEqual(sha256(r.content), DIGESTS["f5m.bin"])
        extra = r.data_packets - r.blocks
        self.assertLess(extra, r.blocks // 50 + 5,
                        f"{r.data_packets} DATA packets for {r.blocks} blocks: duplicate ACKs "
                        "trigger duplicate sends (Sorcerer's Apprentice)")

    def test_netascii(self):
        """netascii: LF goes out as CR LF, bare CR as CR NUL; tftp-hpa converts it back."""
        r = py_get(self.port, "text.txt", mode=b"netascii")
        self.assertEqual(r.kind, "data", r)
        self.assertEqual(r.content, TEXT.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n"))
        out = self.out_path("netascii")
        code, so, se = run_bounded(["tftp", "-m", "netascii", HOST, str(self.port), "-c", "get",
                                    "text.txt", out], 30)
        self.assertEqual(code, 0, so + se)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), TEXT, so + se)

    def test_write_refused(self):
        """No write area configured: a WRQ is refused and nothing is created."""
        r = py_get(self.port, "uploaded.bin", packet=rrq("uploaded.bin", opcode=OP_WRQ))
        self.assertEqual(r.kind, "error", r)
        self.assertFalse(os.path.exists(os.path.join(ROOT, "uploaded.bin")))
        r = py_get(self.port, "b513.bin", packet=rrq("b513.bin", opcode=OP_WRQ))
        self.assertEqual(r.kind, "error", r)
        self.assertEqual(sha256_file(os.path.join(ROOT, "b513.bin")), DIGESTS["b513.bin"])

    def test_not_found(self):
        r = py_get(self.port, "does-not-exist.bin")
        self.assertEqual((r.kind, r.code), ("error", 1), r)

    def test_case_insensitive_fallback(self):
        """Cisco phones ask Jar11sip... for jar11sip...: curl gets the file."""
        out = self.out_path("case")
        ok, detail = self.curl("Jar11sip.9-4-2ES9.sbn", out)
        self.assertTrue(ok, detail)
        self.assert_same(out, CASE_FILE, detail)

    def test_case_fallback_deterministic(self):
        """Two files differing only in case: an inexact name gets the same one every time."""
        got = set()
        for _ in range(5):
            r = py_get(self.port, "SEPCASE.CNF.XML")
            self.assertEqual(r.kind, "data", r)
            got.add(bytes(r.content))
        self.assertEqual(len(got), 1)
        exact = py_get(self.port, "SEPcase.cnf.xml")
        self.assertEqual(exact.content, b"upper-SEP\n")


# ----------------------------------------------------------------------------------------------
# 2. many clients at once

class Concurrency(ServerCase):
    def test_50_concurrent_curl(self):
        n, limit = 50, 150.0
        outs = [self.out_path(f"c{i}") for i in range(n)]
        procs = []
        t0 = time.monotonic()
        try:
            for o in outs:
                procs.append(popen(["curl", "-sS", "-o", o, self.url("f5m.bin")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            codes = []
            for p in procs:
                left = max(0.1, limit - (time.monotonic() - t0))
                try:
                    p.wait(timeout=left)
                except subprocess.TimeoutExpired:
                    pass
                codes.append(p.poll())
        finally:
            for p in procs:
                stop_process(p, grace=1.0)
        wall = time.monotonic() - t0
        print(f"\n  50 concurrent curl, 5 MiB: {wall:.2f} s", file=sys.stderr)
        bad = [(i, c, procs[i].stderr.read().decode(errors="replace").strip())
               for i, c in enumerate(codes) if c != 0]
        for p in procs:
            p.stderr.close()
        self.assertEqual(bad, [], f"{len(bad)} of {n} curl clients failed")
        for o in outs:
            self.assert_same(o, "f5m.bin", "concurrent curl")
        self.assert_serves(msg="50 concurrent clients")


# ----------------------------------------------------------------------------------------------
# 3. lossy link

class LossyRelay(threading.Thread):
    """UDP relay between clients and the server: drops, duplicates and reorders datagrams in both
    directions from a seeded generator.

    Clients send their request to `port`. Each client address gets its own socket towards the
    server. A server reply from (server, TID port T) is sent to the client from a relay socket
    dedicated to (client, T) -- so the client sees the TID change, locks on to that relay socket,
    and what it sends there goes on to port T. Reordering holds one datagram back per (socket,
    destination) and releases it right after the next one (or after 50 ms).
    """
    MAX_SOCKETS = 256

    def __init__(self, server_port, seed, drop=0.10, dup=0.05, reorder=0.05, life=300.0):
        super().__init__(daemon=True)
        self.server = (HOST, server_port)
        self.rng = random.Random(seed)
        self.drop, self.dup, self.reorder = drop, dup, reorder
        self.life = life
        self.sel = selectors.DefaultSelector()
        self.listen = self._socket(("listen",))
        self.port = self.listen.getsockname()[1]
        self.upstream = {}      # client addr -> socket towards the server
        self.front = {}         # (client addr, server port) -> socket towards the client
        self.held = {}          # (fileno, dest) -> (sock, data, release deadline)
        self.stats = {"in": 0, "sent": 0, "dropped": 0, "duplicated": 0, "reordered": 0}
        self.stop_event = threading.Event()
        self.error = None

    def _socket(self, role):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        s.bind((HOST, 0))
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ, role)
        return s

    def _sendto(self, sock, data, dest):
        try:
            sock.sendto(data, dest)
            self.stats["sent"] += 1
        except OSError:
            pass

    def _forward(self, sock, data, dest):
        rng = self.rng
        if rng.random() < self.drop:
            self.stats["dropped"] += 1
            return
        copies = 1
        if rng.random() < self.dup:
            copies = 2
            self.stats["duplicated"] += 1
        key = (sock.fileno(), dest)
        held = self.held.pop(key, None)
        if held is None and rng.random() < self.reorder:
            self.stats["reordered"] += 1
            self.held[key] = (sock, data, time.monotonic() + 0.05)
            copies -= 1
        for _ in range(copies):
            self._sendto(sock, data, dest)
        if held is not None:
            self._sendto(held[0], held[1], dest)

    def run(self):
        end = time.monotonic() + self.life
        try:
            while not self.stop_event.is_set() and time.monotonic() < end:
                for key, _ in self.sel.select(timeout=0.01):
                    sock, role = key.fileobj, key.data
                    for _ in range(64):
                        try:
                            data, addr = sock.recvfrom(70000)
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError:
                            break
                        self.stats["in"] += 1
                        self._route(sock, role, data, addr)
                now = time.monotonic()
                for k in [k for k, v in self.held.items() if v[2] <= now]:
                    sock, data, _ = self.held.pop(k)
                    self._sendto(sock, data, k[1])
        except Exception as e:      # reported by the test
            self.error = repr(e)
        finally:
            for k in list(self.sel.get_map().values()):
                k.fileobj.close()
            self.sel.close()

    def _route(self, sock, role, data, addr):
        if role[0] == "listen":
            up = self.upstream.get(addr)
            if up is None:
                if len(self.sel.get_map()) >= self.MAX_SOCKETS:
                    return
                up = self.upstream[addr] = self._socket(("up", addr))
            self._forward(up, data, self.server)
        elif role[0] == "up":
            client = role[1]
            fr = self.front.get((client, addr[1]))
            if fr is None:
                if len(self.sel.get_map()) >= self.MAX_SOCKETS:
                    return
                fr = self.front[(client, addr[1])] = self._socket(("front", client, addr[1]))
            self._forward(fr, data, client)
        else:
            client, tid = role[1], role[2]
            if addr != client:
                return
            self._forward(self.upstream[client], data, (HOST, tid))

    def stop(self):
        self.stop_event.set()
        self.join(timeout=5)


class Lossy(ServerCase):
    LIMIT = 120.0

    def through_relay(self, fetch, tag):
        seed = int(os.environ.get("TFTP_RELAY_SEED", random.randrange(1 << 32)))
        relay = LossyRelay(self.port, seed)
        relay.start()
        print(f"\n  lossy relay ({tag}): seed {seed} (TFTP_RELAY_SEED={seed} to repeat)", file=sys.stderr)
        out = self.out_path(tag)
        t0 = time.monotonic()
        try:
            ok, detail = fetch(relay.port, out)
        finally:
            relay.stop()
        wall = time.monotonic() - t0
        print(f"  {tag}: {wall:.1f} s, relay {relay.stats}", file=sys.stderr)
        self.assertIsNone(relay.error, relay.error)
        self.assertTrue(ok, f"{tag} through the lossy relay (seed {seed}, {wall:.1f} s): {detail}")
        self.assertGreater(relay.stats["dropped"], 0)
        self.assert_same(out, "f5m.bin", f"seed {seed}")
        self.assertLess(wall, self.LIMIT)
        self.assert_serves(msg="lossy transfer")

    def test_curl_lossy(self):
        """curl (blksize 1468) fetches 5 MiB through 10% loss, 5% duplication, reordering."""
        self.through_relay(lambda port, out: self.curl("f5m.bin", out, blksize=1468, port=port,
                                                       timeout=self.LIMIT), "curl")

    def test_labctl_windowsize_lossy(self):
        """labctl tftp get --windowsize 8 fetches 5 MiB through the same lossy link."""
        self.through_relay(lambda port, out: self.labctl_get(self.url("f5m.bin", port), out,
                                                             windowsize=8, timeout=self.LIMIT),
                           "labctl-get-window8")


# ----------------------------------------------------------------------------------------------
# 4. hostile names

def hostile_names():
    """(label, request packet, nul) for every hostile name; `nul` marks names cut by a NUL, where any
    ERROR code is a refusal."""
    outside_abs = os.path.join(TMP, "secret.txt")
    names = [
        "../secret.txt", "../../secret.txt", "../outside/secret.txt", "a/../../secret.txt",
        "sub/../../secret.txt", "./../secret.txt", "sub/./../../secret.txt", "../root/../secret.txt",
        "..\\secret.txt", "..\\..\\secret.txt", "sub\\..\\..\\secret.txt", "....//secret.txt",
        "..././secret.txt", ".../secret.txt", "/../secret.txt", "//../secret.txt",
        "../" * 40 + "secret.txt", "../" * 40 + TMP.lstrip("/") + "/secret.txt",
        outside_abs, "/" + outside_abs, outside_abs.replace("/", "\\"),
        "/etc/passwd", "etc/passwd", "/etc/shadow", "/proc/self/environ", "/proc/self/cmdline",
        "%2e%2e/secret.txt", "%2e%2e%2fsecret.txt", "..%2fsecret.txt", "..%5csecret.txt",
        "%2fetc%2fpasswd", "~/secret.txt", "~root/.bashrc",
        "link_file", "link_file_abs", "link_dir/secret.txt", "link_dir_abs/secret.txt",
        "sub/link_up/outside/secret.txt", "link_dir", "link_chain",
        "A" * 300, "sub/" + "B" * 300, "x" * 4000,
        "", ".", "./", "/", "sub", "sub/",
        "f\x01oo", "\x1b[31mred", "line\nbreak", "tab\tname", "del\x7f", "\xff\xfe",
    ]
    out = [(repr(n), rrq(n), False) for n in names]
    # NUL inside the name: the request is cut short wherever the server splits it
    out += [
        ("NUL: b513.bin\\0../secret.txt", struct.pack("!H", 1) + b"b513.bin\0../secret.txt\0octet\0", True),
        ("NUL: \\0../secret.txt", struct.pack("!H", 1) + b"\0../secret.txt\0octet\0", True),
        ("NUL: ../secret.txt\\0\\0octet", struct.pack("!H", 1) + b"../secret.txt\0\0octet\0", True),
        ("NUL: link_file\\0octet\\0\\0", struct.pack("!H", 1) + b"link_file\0octet\0\0", True),
    ]
    return out


class Security(ServerCase):
    def assert_no_leak(self, label, r):
        self.assertNotIn(SECRET, r.content, f"{label}: SECRET FROM OUTSIDE THE ROOT RETURNED")
        for path in ("/etc/passwd", "/etc/shadow"):
            try:
                with open(path, "rb") as f:
                    outside = f.read()
            except OSError:
                continue
            if outside:
                self.assertNotEqual(r.content, outside, f"{label}: {path} returned")
                self.assertNotIn(outside[:64], r.content, f"{label}: {path} returned")

    def test_hostile_names(self):
        table = hostile_names()
        self.assertGreaterEqual(len(table), 30)
        failures = []
        for label, packet, nul in table:
            r = py_get(self.port, None, packet=packet, timeout=0.5, total=5, retries=3)
            self.assert_no_leak(label, r)
            if r.kind != "error" or (not nul and r.code not in (1, 2)):
                failures.append(f"{label[:70]}: {r}")
        self.assertEqual(failures, [], "not refused with ERROR 1/2:\n" + "\n".join(failures))
        self.assert_serves(msg="hostile names")

    def test_symlinks_out_refused_with_curl(self):
        for name in ("link_file", "link_file_abs", "link_dir/secret.txt", "link_dir_abs/secret.txt"):
            out = self.out_path("sym")
            ok, detail = self.curl(name, out, timeout=20)
            data = open(out, "rb").read() if os.path.exists(out) else b""
            self.assertNotIn(SECRET, data, f"{name}: secret leaked")
            self.assertFalse(ok, f"{name}: curl succeeded ({len(data)} bytes)")

    def test_symlink_inside_root_and_leading_slash(self):
        """Not hostile: a leading '/' is stripped (like tftpd-hpa -s)."""
        r = py_get(self.port, "/" + SMALL)
        self.assertEqual(r.kind, "data", r)
        self.assertEqual(sha256(r.content), DIGESTS[SMALL])

    def test_fifo_does_not_block(self):
        """A FIFO in the root is not a regular file: refused (or ignored) without blocking the server."""
        r = py_get(self.port, "fifo", timeout=0.5, total=3, retries=2)
        self.assertNotEqual(r.kind, "data", r)
        self.assert_serves(within=5.0, msg="request for a FIFO")


# ----------------------------------------------------------------------------------------------
# 5. malformed packets

def malformed_packets():
    """(label, datagram, may_serve): may_serve marks requests a server may legitimately answer with
    DATA or OACK (a valid request with odd option values it may ignore or clamp)."""
    o = lambda op: struct.pack("!H", op)
    rq = o(1) + b"b513.bin\0octet\0"
    return [
        ("zero-length datagram", b"", False),
        ("one byte", b"\x00", False),
        ("RRQ opcode only", o(1), False),
        ("truncated RRQ (name, no NUL)", o(1) + b"b513.bin", False),
        ("RRQ without mode", o(1) + b"b513.bin\0", False),
        ("RRQ mode without NUL", o(1) + b"b513.bin\0oct", False),
        ("RRQ unknown mode", o(1) + b"b513.bin\0bogus\0", False),
        ("RRQ mode mail", o(1) + b"b513.bin\0mail\0", False),
        ("option without value", rq + b"blksize\0", True),
        ("option name without NUL", rq + b"blksize", True),
        ("option value without NUL", rq + b"blksize\0" + b"1468", True),
        ("blksize not a number", rq + b"blksize\0abc\0", True),
        ("blksize negative", rq + b"blksize\0-1\0", True),
        ("blksize 0", rq + b"blksize\0" + b"0\0", True),
        ("blksize 7", rq + b"blksize\0" + b"7\0", True),
        ("blksize 99999999", rq + b"blksize\099999999\0", True),
        ("blksize 2^64", rq + b"blksize\018446744073709551616\0", True),
        ("tsize huge", rq + b"tsize\0" + b"9" * 40 + b"\0", True),
        ("timeout 0", rq + b"timeout\0" + b"0\0", True),
        ("timeout 256", rq + b"timeout\0" + b"256\0", True),
        ("windowsize 0", rq + b"windowsize\0" + b"0\0", True),
        ("windowsize 99999", rq + b"windowsize\099999\0", True),
        ("blksize twice", rq + b"blksize\0" + b"1468\0blksize\0" + b"8\0", True),
        ("500 unknown options", rq + b"".join(b"o%d\0v\0" % i for i in range(500)), True),
        ("bad opcode 0", o(0) + b"b513.bin\0octet\0", False),
        ("bad opcode 7", o(7) + b"b513.bin\0octet\0", False),
        ("bad opcode 65535", o(65535) + b"b513.bin\0octet\0", False),
        ("ACK for unknown transfer", o(4) + b"\x00\x01", False),
        ("ACK 0 for unknown transfer", o(4) + b"\x00\x00", False),
        ("short ACK", o(4) + b"\x00", False),
        ("DATA for unknown transfer", o(3) + b"\x00\x01" + b"x" * 512, False),
        ("ERROR to the listening port", o(5) + b"\x00\x00oops\0", False),
        ("OACK to the listening port", o(6) + b"blksize\0" + b"512\0", False),
        ("64 KiB datagram (RRQ)", o(1) + b"A" * 65000 + b"\0octet\0", False),
        ("70 KB datagram", o(1) + b"B" * (70 * 1000), False),
        ("max datagram of zeros", b"\0" * 65507, False),
        ("max datagram of 0xff", b"\xff" * 65507, False),
    ]


class Malformed(ServerCase):
    def test_malformed_packets(self):
        problems = []
        for label, packet, may_serve in malformed_packets():
            replies = send_raw(self.port, packet, wait=0.2)
            if replies and replies[0][0] == "sendto-error":
                # over 65,507 bytes does not fit an IPv4 datagram: send the largest that does
                replies = send_raw(self.port, packet[:65507], wait=0.2)
            for addr, data in replies:
                if not may_serve and isinstance(data, bytes) and data[:2] in (b"\x00\x03", b"\x00\x06"):
                    problems.append(f"{label}: server answered with {data[:2]!r} (DATA/OACK)")
            if not self.server.alive():
                self.fail(f"server died after {label!r}: {self.server.output()[-2000:]}")
            r = py_get(self.port, SMALL, timeout=0.5, total=3, retries=5)
            if r.kind != "data" or sha256(r.content) != DIGESTS[SMALL]:
                problems.append(f"after {label!r} a normal transfer failed: {r}")
        self.assertEqual(problems, [], "\n".join(problems))
        self.assert_serves(msg="malformed packets")

    def test_ack_from_wrong_tid(self):
        """During a transfer, an ACK from another port is answered with ERROR 5 (or dropped) and does
        not disturb the transfer."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((HOST, 0))
            other.bind((HOST, 0))
            s.settimeout(2)
            other.settimeout(0.3)
            s.sendto(rrq("f5m.bin"), (HOST, self.port))
            # Our transfer's first block. The port the kernel gave `s` may have belonged to an
            # earlier test's client whose abandoned transfer is still retransmitting to it: such
            # strays come from another TID and are skipped.
            end = time.monotonic() + 10
            while True:
                data, tid = s.recvfrom(70000)
                if data[:4] == b"\x00\x03\x00\x01" or time.monotonic() > end:
                    break
            self.assertEqual(data[:4], b"\x00\x03\x00\x01")
            other.sendto(struct.pack("!HH", OP_ACK, 1), tid)
            try:
                reply, _ = other.recvfrom(70000)
                self.assertEqual(reply[:4], b"\x00\x05\x00\x05", f"answer to a stranger's ACK: {reply[:40]!r}")
            except socket.timeout:
                pass
            content = bytearray(data[4:])
            s.sendto(struct.pack("!HH", OP_ACK, 1), tid)
            block = 2
            end = time.monotonic() + 60
            while time.monotonic() < end:
                data, addr = s.recvfrom(70000)
                if addr != tid:
                    continue  # a stray from an earlier test's abandoned transfer (see above)
                if struct.unpack("!HH", data[:4]) == (OP_DATA, block & 0xFFFF):
                    content += data[4:]
                    s.sendto(struct.pack("!HH", OP_ACK, block & 0xFFFF), tid)
                    block += 1
                    if len(data) < 516:
                        break
            self.assertEqual(sha256(content), DIGESTS["f5m.bin"])
        finally:
            s.close()
            other.close()

    def test_abandoned_transfers(self):
        """100 transfers started and never acknowledged do not stop the server serving others."""
        socks = []
        try:
            for _ in range(100):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((HOST, 0))
                socks.append(s)
                s.sendto(rrq("f5m.bin", options={"blksize": 1468}), (HOST, self.port))
            self.assert_serves(within=5.0, msg="100 abandoned transfers")
        finally:
            # Clean up like a client that gives up: ERROR to each transfer's TID, so none keeps
            # retransmitting to a port a later test may be given.
            for s in socks:
                s.settimeout(0.05)
                try:
                    _, tid = s.recvfrom(70000)
                    s.sendto(struct.pack("!HH", 5, 0) + b"client gave up\0", tid)
                except OSError:
                    pass
                s.close()
        self.assert_serves(within=5.0, msg="100 abandoned transfers (sockets closed)")


# ----------------------------------------------------------------------------------------------
# 6. event log and labctl's own client

def read_events(path):
    with open(path, "rb") as f:
        lines = [l for l in f.read().split(b"\n") if l.strip()]
    return [json.loads(l) for l in lines]


@unittest.skipUnless(SERVER_KIND == "labctl", "the JSON event log is labctl's")
class EventLog(ServerCase):
    """Field names as documented in agents/net/tftp/README.md: "event" (request, refused, oack,
    progress, complete, failed, bad_packet), "name" (as requested), "file", "bytes", "blksize",
    "duration_ms", "error_code", "reason"."""

    def wait_events(self, pred, limit=5.0):
        """Every event, once one matches pred (the log may be written a moment later)."""
        end = time.monotonic() + limit
        events = []
        while time.monotonic() < end:
            events = read_events(self.server.log)
            if any(pred(e) for e in events):
                break
            time.sleep(0.1)
        return events

    def test_completion_record(self):
        out = self.out_path("ev")
        ok, detail = self.curl("b513.bin", out, blksize=1468)
        self.assertTrue(ok, detail)
        self.assert_same(out, "b513.bin", detail)
        done = lambda e: e.get("event") == "complete" and e.get("name") == "b513.bin"
        events = self.wait_events(done)
        self.assertTrue(events, "empty event log")
        for e in events:
            self.assertIsInstance(e, dict)
            self.assertIn("event", e)
        rec = [e for e in events if done(e)]
        self.assertEqual(len(rec), 1, f"completion records for b513.bin: {events}")
        rec = rec[0]
        self.assertEqual(rec.get("bytes"), 513, rec)
        self.assertEqual(rec.get("blksize"), 1468, rec)
        self.assertIsInstance(rec.get("duration_ms"), int, rec)
        self.assertTrue(any(e.get("event") == "request" and e.get("name") == "b513.bin" for e in events), events)
        self.assertTrue(any(e.get("event") == "oack" for e in events), events)

    def test_not_found_logged(self):
        r = py_get(self.port, "does-not-exist.bin")
        self.assertEqual(r.code, 1)
        ev = lambda e: e.get("event") == "refused" and e.get("name") == "does-not-exist.bin"
        events = self.wait_events(ev)
        rec = [e for e in events if ev(e)]
        self.assertTrue(rec, f"no refused event: {events[-5:]}")
        self.assertEqual(rec[-1].get("error_code"), 1, rec[-1])

    def test_refusal_logged(self):
        r = py_get(self.port, "../secret.txt")
        self.assertEqual(r.kind, "error")
        ev = lambda e: e.get("event") == "refused" and e.get("name") == "../secret.txt"
        events = self.wait_events(ev)
        rec = [e for e in events if ev(e)]
        self.assertTrue(rec, f"no refused event for a traversal attempt: {events[-5:]}")
        self.assertEqual(rec[-1].get("error_code"), 2, rec[-1])
        self.assertTrue(rec[-1].get("reason"), rec[-1])

    def test_case_fallback_logged(self):
        r = py_get(self.port, "JAR11SIP.9-4-2ES9.SBN")
        self.assertEqual(r.kind, "data", r)
        ev = lambda e: e.get("event") == "complete" and e.get("name") == "JAR11SIP.9-4-2ES9.SBN"
        rec = [e for e in self.wait_events(ev) if ev(e)]
        self.assertTrue(rec)
        self.assertEqual(rec[-1].get("file"), CASE_FILE, rec[-1])
        self.assertIs(rec[-1].get("case_fallback"), True, rec[-1])


class Client(ServerCase):
    def test_windowsize16_40mib(self):
        out = self.out_path("w16")
        t0 = time.monotonic()
        ok, detail = self.labctl_get(self.url("f40m.bin"), out, windowsize=16)
        self.assertTrue(ok, detail)
        self.assert_same(out, "f40m.bin", detail)
        print(f"\n  labctl tftp get --windowsize 16, 40 MiB: {time.monotonic() - t0:.2f} s", file=sys.stderr)

    def test_get_blksize_1468(self):
        out = self.out_path("b1468")
        ok, detail = self.labctl_get(self.url("f5m.bin"), out, blksize=1468)
        self.assertTrue(ok, detail)
        self.assert_same(out, "f5m.bin", detail)

    def test_get_small_files(self):
        for name in ("zero.bin", "b511.bin", "b512.bin", "b513.bin"):
            out = self.out_path(name)
            ok, detail = self.labctl_get(self.url(name), out, windowsize=4)
            self.assertTrue(ok, f"{name}: {detail}")
            self.assert_same(out, name, detail)

    def test_get_not_found_fails(self):
        out = self.out_path("nf")
        ok, detail = self.labctl_get(self.url("does-not-exist.bin"), out, timeout=30)
        self.assertFalse(ok, detail)


# ----------------------------------------------------------------------------------------------
# fixtures

TEXT = b"line one\nline two\r\nbare\rcarriage\n\nlast line without newline"


def setUpModule():
    global TMP, ROOT, SECRET
    TMP = tempfile.mkdtemp(prefix="labctl-tftp-")
    os.chmod(TMP, 0o755)               # tftpd-hpa drops to nobody: keep the tree readable
    ROOT = os.path.join(TMP, "root")
    os.makedirs(os.path.join(ROOT, "sub"))
    os.makedirs(os.path.join(TMP, "outside"))
    SECRET = b"LABCTL-TFTP-SECRET-" + os.urandom(8).hex().encode() + b"\n"
    for p in (os.path.join(TMP, "secret.txt"), os.path.join(TMP, "outside", "secret.txt")):
        with open(p, "wb") as f:
            f.write(SECRET)
        os.chmod(p, 0o644)
    for name, size in SIZES.items():
        h = hashlib.sha256()
        with open(os.path.join(ROOT, name), "wb") as f:
            left = size
            while left:
                chunk = os.urandom(min(left, 1 << 20))
                f.write(chunk)
                h.update(chunk)
                left -= len(chunk)
        DIGESTS[name] = h.hexdigest()
    extra = {CASE_FILE: os.urandom(70000), "text.txt": TEXT, "sub/inner.txt": b"inner\n",
             "SEPcase.cnf.xml": b"upper-SEP\n", "sepcase.cnf.xml": b"lower-sep\n"}
    for name, data in extra.items():
        with open(os.path.join(ROOT, name), "wb") as f:
            f.write(data)
        DIGESTS[name] = sha256(data)
    # symlinks that lead out of the root, relative and absolute, to a file and to a directory
    os.symlink("../outside/secret.txt", os.path.join(ROOT, "link_file"))
    os.symlink(os.path.join(TMP, "outside", "secret.txt"), os.path.join(ROOT, "link_file_abs"))
    os.symlink("../outside", os.path.join(ROOT, "link_dir"))
    os.symlink(os.path.join(TMP, "outside"), os.path.join(ROOT, "link_dir_abs"))
    os.symlink("../..", os.path.join(ROOT, "sub", "link_up"))
    os.symlink("link_file", os.path.join(ROOT, "link_chain"))
    os.mkfifo(os.path.join(ROOT, "fifo"))
    for dirpath, dirnames, filenames in os.walk(ROOT):
        os.chmod(dirpath, 0o755)
        for fn in filenames:
            p = os.path.join(dirpath, fn)
            if not os.path.islink(p):
                os.chmod(p, 0o644)
    print(f"\n  server under test: {SERVER_KIND}; files in {TMP}", file=sys.stderr)


def tearDownModule():
    for p in STARTED:
        stop_process(p, grace=2.0)
    if TMP and not os.environ.get("TFTP_TEST_KEEP"):
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
    import harness
    harness.run(globals())
