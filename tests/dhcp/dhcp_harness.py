"""What the DHCP end-to-end tests (test_dhcp.py) and the benchmark (bench/dhcp/run) share.

  - processes: started in their own process group, remembered, stopped by PID (SIGTERM, then
    SIGKILL), every wait bounded;
  - NetnsPair: two network namespaces of this process's own (the pid is in their names) joined by
    a veth pair created directly inside them, so nothing appears in the root namespace; the server
    side gets 10.99.0.1/16, the client side a MAC of the caller's choice;
  - a tiny DHCP codec (build and parse, option overload included) and a pcap reader, to check
    replies on the wire byte for byte;
  - RelayClient: a raw DHCP client acting as a relay agent (giaddr), with many exchanges in flight,
    that records every ACK;
  - DhcpServer: `labctl dhcp serve`, or dnsmasq given the same settings (to check the harness
    itself against a known-good server);
  - runners for busybox udhcpc, ISC dhclient and dhcpcd with a hook that records every call's
    arguments and environment and, like a real hook, puts the address on the interface.

Nothing here sends a packet outside the namespaces it made.
"""
import ctypes
import ipaddress
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

STARTED = []            # every Popen started through popen() (stop_all() stops them)
NAMESPACES = []         # every namespace made through NetnsPair (cleanup_namespaces() deletes them)
_LOCK = threading.Lock()
_COUNTER = [0]

SERVER_IP = "10.99.0.1"
RELAY_IP = "10.99.0.2"
PREFIX = 16
POOL = ("10.99.1.0", "10.99.250.255")
TFTP = ["10.99.0.1", "10.99.0.2"]
OPT150_WIRE = bytes.fromhex("96080a6300010a630002")
OPT150_HEX = "0a6300010a630002"


def log(msg):
    import sys
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# processes

def popen(cmd, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    with _LOCK:
        STARTED.append(p)
    return p


def signal_group(proc, sig):
    """Sends sig to the process group of a process we started (its pid is the group id)."""
    if proc is None or proc.poll() is not None:
        return False
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            return False
    return True


def stop_process(proc, grace=5.0, sig=signal.SIGTERM):
    """sig (SIGTERM) to the process group, wait, then SIGKILL. Returns the exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        signal_group(proc, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
    # children left in the group (a hook still running): SIGKILL them too
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return proc.returncode


def stop_all():
    with _LOCK:
        procs = list(STARTED)
    for p in procs:
        stop_process(p, grace=2.0)


def run_bounded(cmd, timeout, **kw):
    """(returncode, stdout, stderr); the child is killed when it runs over (returncode -999)."""
    p = popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(p, grace=1.0)
        out, err = p.communicate()
        return -999, out.decode(errors="replace"), err.decode(errors="replace") + f"\n[killed after {timeout}s]"
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def wait_for(pred, timeout, step=0.05):
    """Polls pred() until it returns something true or timeout passes; returns its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def missing_binaries(names):
    return [n for n in names if not (os.path.isabs(n) and os.access(n, os.X_OK)) and shutil.which(n) is None]


# ----------------------------------------------------------------------------------------------
# network namespaces

def ip_cmd(*args, check=True, timeout=10):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


_libc = None


def _setns(fd):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, 0x40000000) != 0:          # CLONE_NEWNET
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


def socket_in_netns(ns, family=socket.AF_INET, type_=socket.SOCK_DGRAM, proto=0):
    """A socket created inside namespace ns (a socket keeps the namespace it was made in). The
    calling thread enters ns only for the socket() call and goes back at once."""
    with _LOCK:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                _setns(target)
                try:
                    return socket.socket(family, type_, proto)
                finally:
                    _setns(own)
            finally:
                os.close(target)
        finally:
            os.close(own)


class NetnsPair:
    """Server namespace (interface srv_if, 10.99.0.1/16) <-> client namespace (interface cli_if).

    Interface names are unique per process and pair too (dhcpcd keeps pid and lease files named
    after the interface in /run and /var/lib)."""

    def __init__(self, tag, client_mac="02:00:00:00:00:02"):
        with _LOCK:
            _COUNTER[0] += 1
            n = _COUNTER[0]
        pid = os.getpid()
        tag = re.sub(r"[^a-z0-9]", "", tag.lower())[:12] or "t"
        self.srv = f"ldhcp-{tag}-s-{pid}-{n}"
        self.cli = f"ldhcp-{tag}-c-{pid}-{n}"
        self.srv_if = f"s{pid}n{n}"[:15]
        self.cli_if = f"c{pid}n{n}"[:15]
        self.client_mac = client_mac
        self.up_done = False

    def up(self):
        try:
            for ns in (self.srv, self.cli):
                ip_cmd("netns", "add", ns)
                with _LOCK:
                    NAMESPACES.append(ns)
            ip_cmd("link", "add", self.srv_if, "netns", self.srv, "type", "veth", "peer", "name", self.cli_if,
                   "netns", self.cli)
            for ns in (self.srv, self.cli):
                ip_cmd("-n", ns, "link", "set", "lo", "up")
            ip_cmd("-n", self.srv, "addr", "add", f"{SERVER_IP}/{PREFIX}", "dev", self.srv_if)
            ip_cmd("-n", self.srv, "link", "set", self.srv_if, "up")
            ip_cmd("-n", self.cli, "link", "set", self.cli_if, "address", self.client_mac)
            ip_cmd("-n", self.cli, "link", "set", self.cli_if, "up")
            # `ip netns exec` bind-mounts /etc/netns/<ns>/* over /etc: keep a client's resolv.conf
            # edits inside (our hooks make none, but a default script would)
            os.makedirs(f"/etc/netns/{self.cli}", exist_ok=True)
            with open(f"/etc/netns/{self.cli}/resolv.conf", "w"):
                pass
            self.up_done = True
            # wait (bounded) for the link to be usable in both directions
            wait_for(lambda: "LOWER_UP" in ip_cmd("-n", self.cli, "link", "show", self.cli_if).stdout, 5)
        except Exception:
            self.down()
            raise
        return self

    def down(self):
        for ns in (self.cli, self.srv):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
            with _LOCK:
                if ns in NAMESPACES:
                    NAMESPACES.remove(ns)
        shutil.rmtree(f"/etc/netns/{self.cli}", ignore_errors=True)
        for f in (f"/var/lib/dhcpcd/{self.cli_if}.lease", f"/var/lib/dhcpcd/{self.cli_if}.lease6"):
            try:
                os.unlink(f)
            except OSError:
                pass

    def exec_srv(self):
        return ["ip", "netns", "exec", self.srv]

    def exec_cli(self):
        return ["ip", "netns", "exec", self.cli]

    def set_client_mac(self, mac):
        ip_cmd("-n", self.cli, "link", "set", self.cli_if, "down")
        ip_cmd("-n", self.cli, "-4", "addr", "flush", "dev", self.cli_if)
        ip_cmd("-n", self.cli, "link", "set", self.cli_if, "address", mac)
        ip_cmd("-n", self.cli, "link", "set", self.cli_if, "up")
        self.client_mac = mac
        wait_for(lambda: "LOWER_UP" in ip_cmd("-n", self.cli, "link", "show", self.cli_if).stdout, 5)

    def add_client_addr(self, cidr):
        ip_cmd("-n", self.cli, "addr", "replace", cidr, "dev", self.cli_if)

    def flush_client_addrs(self):
        ip_cmd("-n", self.cli, "-4", "addr", "flush", "dev", self.cli_if)

    def client_addrs(self):
        out = ip_cmd("-n", self.cli, "-4", "-o", "addr", "show", "dev", self.cli_if).stdout
        return re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out)


def cleanup_namespaces():
    with _LOCK:
        names = list(NAMESPACES)
    for ns in names:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
    with _LOCK:
        NAMESPACES.clear()


STALE_NS = re.compile(r"^ldhcp-[a-z0-9]+-[sc]-(\d+)-\d+$")


def collect_stale():
    """Deletes the namespaces an earlier run of this harness left behind when it was killed
    (SIGKILL skips every cleanup): only names of our own pattern whose owner pid is gone; the
    processes still inside them (servers and clients that run was driving) are killed first."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=20)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = STALE_NS.match(name)
        if not m:
            continue
        try:
            with open(f"/proc/{m.group(1)}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    continue                           # its owner still runs
        except (OSError, IndexError):
            pass
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=20).stdout
        for pid in pids.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
        shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)
        log(f"removed the stale namespace {name} (its owner, pid {m.group(1)}, is gone)")


def cleanup_on_signals(extra=None):
    """SIGTERM / SIGHUP (a runner's timeout) stop our processes and delete our namespaces before
    the exit, which class cleanups would not get to do."""
    def handler(signum, _frame):
        try:
            stop_all()
            cleanup_namespaces()
            if extra:
                extra()
        finally:
            os._exit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


# ----------------------------------------------------------------------------------------------
# DHCP messages

MAGIC = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = 1, 2, 3, 4, 5, 6, 7, 8
TYPE_NAMES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE",
              8: "INFORM"}


def ip_bytes(a):
    return socket.inet_aton(a)


def ip_str(b):
    return socket.inet_ntoa(b)


def mac_bytes(mac):
    return bytes(int(x, 16) for x in mac.split(":"))


def mac_str(b):
    return ":".join(f"{x:02x}" for x in b[:6])


def norm_mac(mac):
    return mac_str(mac_bytes(mac.replace("-", ":"))) if mac else mac


def header(op=1, xid=0, chaddr=b"", ciaddr="0.0.0.0", yiaddr="0.0.0.0", siaddr="0.0.0.0",
           giaddr="0.0.0.0", flags=0, hops=0, secs=0, sname=b"", file=b""):
    if isinstance(chaddr, str):
        chaddr = mac_bytes(chaddr)
    return (struct.pack("!BBBBIHH", op, 1, 6, hops, xid, secs, flags) + ip_bytes(ciaddr) + ip_bytes(yiaddr)
            + ip_bytes(siaddr) + ip_bytes(giaddr) + chaddr.ljust(16, b"\0") + sname.ljust(64, b"\0")[:64]
            + file.ljust(128, b"\0")[:128])


def tlv(code, value):
    return bytes([code, len(value)]) + value


def build(msg_type=None, options=(), end=True, pad_to=300, **hdr):
    """A client message: the header, the cookie, option 53 (when msg_type), then `options` (code,
    bytes) in order, the end option, zero padding to pad_to bytes."""
    body = header(**hdr) + MAGIC
    if msg_type is not None:
        body += tlv(53, bytes([msg_type]))
    for code, value in options:
        body += tlv(code, value)
    if end:
        body += b"\xff"
    return body.ljust(pad_to, b"\0")


def _walk(buf, opts, tlvs, where):
    i = 0
    while i < len(buf):
        code = buf[i]
        if code == 0:
            i += 1
            continue
        if code == 255:
            return
        if i + 1 >= len(buf) or i + 2 + buf[i + 1] > len(buf):
            raise ValueError(f"option {code} runs past the end of {where}")
        val = buf[i + 2:i + 2 + buf[i + 1]]
        tlvs.append((where, buf[i:i + 2 + len(val)]))
        opts[code] = opts.get(code, b"") + val
        i += 2 + len(val)


def parse(data):
    """dict of the fixed fields, 'options' {code: bytes (repeated instances concatenated)} and
    'tlvs' [(field, raw bytes of one instance)], following overload (52). ValueError when
    malformed."""
    if len(data) < 240 or data[236:240] != MAGIC:
        raise ValueError("short packet or bad cookie")
    op, htype, hlen, hops, xid, secs, flags = struct.unpack("!BBBBIHH", data[:12])
    m = {"op": op, "hlen": hlen, "hops": hops, "xid": xid, "secs": secs, "flags": flags,
         "ciaddr": ip_str(data[12:16]), "yiaddr": ip_str(data[16:20]), "siaddr": ip_str(data[20:24]),
         "giaddr": ip_str(data[24:28]), "chaddr": data[28:44], "mac": mac_str(data[28:34]),
         "sname": data[44:108], "file": data[108:236]}
    opts, tlvs = {}, []
    _walk(data[240:], opts, tlvs, "options")
    ov = opts.get(52, b"\0")[0]
    if ov in (1, 3):
        _walk(data[108:236], opts, tlvs, "file")
    if ov in (2, 3):
        _walk(data[44:108], opts, tlvs, "sname")
    m["options"] = opts
    m["tlvs"] = tlvs
    m["type"] = opts.get(53, b"\0")[0]
    return m


def text_option(m, code):
    """A text option as str, trailing NULs removed (dnsmasq sends 66 with one, Kea without)."""
    v = m["options"].get(code)
    return None if v is None else v.rstrip(b"\0").decode(errors="replace")


# ----------------------------------------------------------------------------------------------
# pcap capture (dumpcap in a namespace, classic pcap format) and a reader

class Capture:
    def __init__(self, ns, iface, path):
        self.ns, self.iface, self.path = ns, iface, path
        self.proc = None
        self.err = path + ".err"

    def start(self, timeout=10):
        with open(self.err, "wb") as err:
            self.proc = popen(["ip", "netns", "exec", self.ns, "dumpcap", "-q", "-P", "-i", self.iface,
                               "-f", "udp port 67 or udp port 68", "-w", self.path],
                              stdout=subprocess.DEVNULL, stderr=err)
        if not wait_for(lambda: "Capturing on" in read_text(self.err) or self.proc.poll() is not None,
                        timeout) or self.proc.poll() is not None:
            stop_process(self.proc, grace=1)
            raise RuntimeError("dumpcap did not start: " + read_text(self.err)[-500:])
        return self

    def stop(self, settle=0.6):
        # libpcap hands packets over in blocks (with a timeout of a few hundred ms): give the last
        # ones time to arrive, then SIGINT, on which dumpcap writes what it has and closes the file
        if self.proc is not None and self.proc.poll() is None:
            time.sleep(settle)
        stop_process(self.proc, grace=5, sig=signal.SIGINT)

    def dhcp_messages(self):
        return pcap_dhcp(self.path)


def pcap_dhcp(path):
    """Every DHCP message in a classic pcap file of Ethernet frames: [(src ip, dst ip, sport,
    dport, parsed message or None, payload)]; IP fragments are skipped."""
    out = []
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return out
    if len(data) < 24:
        return out
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    i = 24
    while i + 16 <= len(data):
        incl = struct.unpack(end + "I", data[i + 8:i + 12])[0]
        frame = data[i + 16:i + 16 + incl]
        i += 16 + incl
        if linktype == 1:
            if len(frame) < 14:
                continue
            etype = struct.unpack("!H", frame[12:14])[0]
            off = 14
            if etype == 0x8100:
                etype = struct.unpack("!H", frame[16:18])[0]
                off = 18
            if etype != 0x0800:
                continue
            pkt = frame[off:]
        elif linktype == 113:          # Linux cooked
            pkt = frame[16:]
        else:
            continue
        if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] != 17:
            continue
        ihl = (pkt[0] & 15) * 4
        frag = struct.unpack("!H", pkt[6:8])[0]
        if frag & 0x3FFF:
            continue
        udp = pkt[ihl:]
        if len(udp) < 8:
            continue
        sport, dport, ulen = struct.unpack("!HHH", udp[:6])
        payload = udp[8:ulen] if ulen >= 8 else udp[8:]
        try:
            m = parse(payload)
        except ValueError:
            m = None
        out.append((ip_str(pkt[12:16]), ip_str(pkt[16:20]), sport, dport, m, payload))
    return out


# ----------------------------------------------------------------------------------------------
# the raw relay client

class RelayClient:
    """A DHCP relay agent's view of many clients: bound to RELAY_IP:67 in the client namespace,
    it sends DISCOVER / REQUEST with giaddr=RELAY_IP unicast to SERVER_IP:67 and receives the
    replies there. Every ACK is recorded in `acked` (mac -> yiaddr), in arrival order in
    `ack_log`."""

    def __init__(self, pair, bind_ip=RELAY_IP, port=67, server=(SERVER_IP, 67)):
        self.pair = pair
        self.server = server
        self.bind_ip = bind_ip
        self.sock = socket_in_netns(pair.cli)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        # the address may still be tentative for a moment after it was added
        end = time.monotonic() + 5
        while True:
            try:
                self.sock.bind((bind_ip, port))
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        self.sock.setblocking(False)
        self.acked = {}
        self.ack_log = []
        self.naks = 0
        self.timeouts = 0
        self.offers = 0
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.xid = (os.getpid() << 12) & 0xFFFFFFFF

    def close(self):
        self.sock.close()

    def next_xid(self):
        self.xid = (self.xid + 1) & 0xFFFFFFFF
        return self.xid

    def send(self, payload):
        self.sock.sendto(payload, self.server)

    def discover(self, mac, xid, extra=()):
        return build(DISCOVER, [(55, bytes([1, 3, 6, 66, 150])), *extra], xid=xid, chaddr=mac,
                     giaddr=self.bind_ip, hops=1)

    def request_selecting(self, mac, xid, ip, server_id):
        return build(REQUEST, [(50, ip_bytes(ip)), (54, ip_bytes(server_id)), (55, bytes([1, 3, 6, 66, 150]))],
                     xid=xid, chaddr=mac, giaddr=self.bind_ip, hops=1)

    def request_renewing(self, mac, xid, ip, relayed=True):
        return build(REQUEST, [(55, bytes([1, 3, 6, 66, 150]))], xid=xid, chaddr=mac, ciaddr=ip,
                     giaddr=self.bind_ip if relayed else "0.0.0.0", hops=1 if relayed else 0)

    def recv(self, timeout):
        """One parsed reply (or None when none came within timeout; unparsable replies count as
        None as well, with the raw bytes in .last_raw)."""
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return None
        try:
            data, _addr = self.sock.recvfrom(65536)
        except BlockingIOError:
            return None
        self.last_raw = data
        try:
            return parse(data)
        except ValueError:
            return None

    def exchange(self, payload, xid, want=(OFFER, ACK, NAK), timeout=2.0, tries=3):
        """Sends payload, returns the first reply with this xid and a wanted type (retransmits)."""
        for _ in range(tries):
            self.send(payload)
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                m = self.recv(end - time.monotonic())
                if m and m["xid"] == xid and m["type"] in want:
                    return m
        return None

    def lease(self, mac, timeout=2.0, tries=3):
        """DISCOVER, OFFER, REQUEST, ACK for one client: the ACK, or None."""
        xid = self.next_xid()
        offer = self.exchange(self.discover(mac, xid), xid, want=(OFFER,), timeout=timeout, tries=tries)
        if offer is None:
            return None
        sid = ip_str(offer["options"].get(54, ip_bytes(self.server[0])))
        ack = self.exchange(self.request_selecting(mac, xid, offer["yiaddr"], sid), xid, want=(ACK, NAK),
                            timeout=timeout, tries=tries)
        if ack and ack["type"] == ACK:
            self._record(mac, ack["yiaddr"])
        return ack

    def _record(self, mac, ip):
        with self.lock:
            self.acked[mac] = ip
            self.ack_log.append((mac, ip, time.monotonic()))

    def ack_count(self):
        with self.lock:
            return len(self.ack_log)

    def load(self, macs, window=32, timeout=1.0, tries=4, limit=300.0):
        """Runs full exchanges for every MAC in `macs` with up to `window` in flight, until all
        are done, stop_event is set or `limit` seconds pass. Returns (acked, failed) counts."""
        macs = list(macs)
        inflight = {}              # xid -> [mac, stage, payload, sent_at, tries]
        nxt = 0
        failed = 0
        end = time.monotonic() + limit
        while time.monotonic() < end and not self.stop_event.is_set() and (nxt < len(macs) or inflight):
            while nxt < len(macs) and len(inflight) < window:
                xid = self.next_xid()
                pl = self.discover(macs[nxt], xid)
                inflight[xid] = [macs[nxt], DISCOVER, pl, time.monotonic(), 1]
                nxt += 1
                try:
                    self.send(pl)
                except OSError:
                    pass
            r, _, _ = select.select([self.sock], [], [], 0.05)
            for m in (self.read_ready() if r else ()):
                st = inflight.get(m["xid"])
                if st is not None and m["mac"] == st[0]:
                    if st[1] == DISCOVER and m["type"] == OFFER:
                        self.offers += 1
                        sid = ip_str(m["options"].get(54, ip_bytes(self.server[0])))
                        st[1] = REQUEST
                        st[2] = self.request_selecting(st[0], m["xid"], m["yiaddr"], sid)
                        st[3] = time.monotonic()
                        st[4] = 1
                        try:
                            self.send(st[2])
                        except OSError:
                            pass
                    elif st[1] == REQUEST and m["type"] == ACK:
                        self._record(st[0], m["yiaddr"])
                        del inflight[m["xid"]]
                    elif st[1] == REQUEST and m["type"] == NAK:
                        self.naks += 1
                        failed += 1
                        del inflight[m["xid"]]
                elif m["type"] == ACK:
                    # a late ACK for an exchange we gave up on still has to be durable
                    self._record(m["mac"], m["yiaddr"])
            now = time.monotonic()
            for xid, st in list(inflight.items()):
                if now - st[3] > timeout:
                    if st[4] >= tries:
                        self.timeouts += 1
                        failed += 1
                        del inflight[xid]
                    else:
                        st[3] = now
                        st[4] += 1
                        try:
                            self.send(st[2])
                        except OSError:
                            pass
        return self.ack_count(), failed

    def read_ready(self, most=2000):
        """Every reply already queued on the socket (parsed; unparsable ones left out)."""
        out = []
        for _ in range(most):
            try:
                data, _addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            try:
                out.append(parse(data))
            except ValueError:
                pass
        return out

    def drain(self, seconds=0.5):
        """Records the ACKs still queued in the socket (sent before the server died)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            m = self.recv(end - time.monotonic())
            if m is not None and m["type"] == ACK:
                self._record(m["mac"], m["yiaddr"])


def counter_mac(i, prefix=0x02AB):
    """A locally administered unicast MAC from a counter: 02:ab:<4 bytes of i>."""
    return mac_str(struct.pack("!HI", prefix, i))


# ----------------------------------------------------------------------------------------------
# the server under test

def lease_seconds(d):
    m = re.fullmatch(r"(\d+)([smhd]?)", d)
    if not m:
        raise ValueError(d)
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


class DhcpServer:
    """One DHCP server in the pair's server namespace: kind 'labctl' (`labctl dhcp serve`) or
    'dnsmasq' (the same settings translated, to check the harness against a known-good server)."""

    def __init__(self, kind, pair, workdir, labctl=None, pool=POOL, router=None, dns=None, tftp=None,
                 tftp_name=None, lease_time=None, deny_unknown=False, reserve=None, lease_db=None,
                 name="server"):
        self.kind, self.pair, self.labctl = kind, pair, labctl
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.pool, self.router, self.dns, self.tftp, self.tftp_name = pool, router, dns, tftp, tftp_name
        self.lease_time, self.deny_unknown = lease_time, deny_unknown
        self.reserve = dict(reserve or {})
        self.lease_db = lease_db or os.path.join(self.dir, "leases.db" if kind == "labctl" else "dnsmasq.leases")
        self.log = os.path.join(self.dir, "events.jsonl" if kind == "labctl" else "dnsmasq.log")
        self.out = os.path.join(self.dir, "server.out")
        self.proc = None
        self.starts = 0

    def command(self):
        if self.kind == "labctl":
            cmd = [self.labctl, "dhcp", "serve", "--interface", self.pair.srv_if,
                   "--range", f"{self.pool[0]}-{self.pool[1]}", "--lease-db", self.lease_db, "--log", self.log]
            if self.router:
                cmd += ["--router", self.router]
            if self.dns:
                cmd += ["--dns", ",".join(self.dns)]
            if self.tftp:
                cmd += ["--tftp", ",".join(self.tftp)]
            if self.tftp_name:
                cmd += ["--tftp-name", self.tftp_name]
            if self.lease_time:
                cmd += ["--lease-time", self.lease_time]
            if self.deny_unknown:
                cmd += ["--deny-unknown"]
            for mac, ip in self.reserve.items():
                cmd += ["--reserve", f"{mac}={ip}"]
            return cmd
        if self.kind == "dnsmasq":
            secs = lease_seconds(self.lease_time or "1h")
            mask = str(ipaddress.ip_network(f"0.0.0.0/{PREFIX}").netmask)
            cmd = ["dnsmasq", "--conf-file=/dev/null", "--no-daemon", "--port=0", f"--interface={self.pair.srv_if}",
                   "--bind-interfaces", "--dhcp-authoritative", "--no-ping", "--log-dhcp", "--user=root",
                   f"--dhcp-range={self.pool[0]},{self.pool[1]},{mask},{secs}", "--dhcp-lease-max=100000",
                   f"--dhcp-leasefile={self.lease_db}", f"--pid-file={self.dir}/dnsmasq.pid",
                   f"--log-facility={self.log}"]
            if self.router:
                cmd.append(f"--dhcp-option=3,{self.router}")
            if self.dns:
                cmd.append("--dhcp-option=6," + ",".join(self.dns))
            if self.tftp:
                cmd.append("--dhcp-option-force=150," + ",".join(self.tftp))
                cmd.append(f"--dhcp-option-force=66,{self.tftp_name or self.tftp[0]}")
            for mac, ip in self.reserve.items():
                cmd.append(f"--dhcp-host={mac},{ip}")
            if self.deny_unknown:
                cmd.append("--dhcp-ignore=tag:!known")
            return cmd
        raise ValueError(self.kind)

    def start(self, timeout=20.0):
        self.starts += 1
        with open(self.out, "ab") as out:
            out.write(f"--- start {self.starts}: {' '.join(self.command())}\n".encode())
            out.flush()
            self.proc = popen(self.pair.exec_srv() + self.command(), stdout=out, stderr=subprocess.STDOUT)
        mark = f"--- start {self.starts}:"

        def ready():
            if self.proc.poll() is not None:
                return "exited"
            if self.kind == "labctl":
                text = read_text(self.out)
                return "dhcp: serving" in text[text.rfind(mark):]
            return "DHCP, IP range" in read_text(self.log) or "DHCP, IP range" in read_text(self.out)

        r = wait_for(ready, timeout)
        if r is not True:
            out = self.output()
            stop_process(self.proc, grace=2)
            raise RuntimeError(f"{self.kind} did not get ready ({r or 'timeout'} after {timeout}s): {out[-2000:]}")
        if self.kind == "dnsmasq":
            time.sleep(0.2)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        signal_group(self.proc, signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        return self.proc.returncode

    def stop(self, grace=10.0):
        """SIGTERM; returns the exit status (None when it was never started)."""
        if self.proc is None:
            return None
        return stop_process(self.proc, grace=grace)

    def output(self):
        return read_text(self.out)

    def events(self):
        """labctl's JSON-lines event log as a list of dicts (a torn last line is skipped)."""
        out = []
        for line in read_text(self.log).splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def leases(self):
        """[{ip, mac, state, ...}] as the server has them on disk. labctl: `labctl dhcp leases
        --lease-db PATH --json`; dnsmasq: its lease file (every line is a bound lease)."""
        if self.kind == "labctl":
            rc, out, err = run_bounded([self.labctl, "dhcp", "leases", "--lease-db", self.lease_db, "--json"], 60)
            if rc != 0:
                raise RuntimeError(f"labctl dhcp leases: rc={rc}: {err.strip()[-1000:]}")
            data = json.loads(out)
            for d in data:
                d["mac"] = norm_mac(d.get("mac", ""))
            return data
        res = []
        for line in read_text(self.lease_db).splitlines():
            f = line.split()
            if len(f) >= 3 and f[0].isdigit():
                res.append({"expires_at": int(f[0]), "mac": norm_mac(f[1]), "ip": f[2], "state": "bound"})
        return res


# ----------------------------------------------------------------------------------------------
# real clients

HOOK = r"""#!/bin/sh
# like a real hook, puts the address on the interface (dhcpcd does that itself), then records the
# call: arguments and environment, NUL-separated, one record per call, closed by HOOK_END so that
# a reader never takes a half-written record
PATH=/usr/sbin:/usr/bin:/sbin:/bin; export PATH
case "@KIND@" in
udhcpc)
  case "$1" in
    deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
    bound|renew) ip -4 addr flush dev "$interface"; ip addr add "$ip/${mask:-32}" dev "$interface" ;;
  esac ;;
dhclient)
  case "$reason" in
    PREINIT) ip link set "$interface" up ;;
    BOUND|RENEW|REBIND|REBOOT)
      ip -4 addr flush dev "$interface"; ip addr add "$new_ip_address/${new_subnet_mask:-32}" dev "$interface" ;;
    EXPIRE|FAIL|RELEASE|STOP) ip -4 addr flush dev "$interface" ;;
  esac ;;
esac
{ printf '\036'; printf 'HOOK_ARGS=%s\0' "$*"; env -0; printf 'HOOK_END=1\0'; } >> '@OUT@'
exit 0
"""

DHCLIENT_CONF = """# dhclient (isc-dhcp-client): declare option 150 and request 66 + 150
option cisco-tftp-servers code 150 = array of ip-address;
request subnet-mask, broadcast-address, routers, domain-name-servers, tftp-server-name, cisco-tftp-servers;
timeout 15;
retry 5;
initial-interval 1;
"""

DHCPCD_CONF = """# dhcpcd: no hooks besides ours, ask for 66 and 150
option domain_name_servers, routers, tftp_server_name
option 150
define 150 array ipaddress cisco_tftp_servers
noarp
noipv4ll
timeout 15
"""


def write_hook(path, out, kind):
    with open(path, "w") as f:
        f.write(HOOK.replace("@OUT@", out).replace("@KIND@", kind))
    os.chmod(path, 0o755)
    return path


def read_hook(path):
    """Every hook call as a dict of its environment plus HOOK_ARGS, in order."""
    recs = []
    raw = b""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return recs
    for chunk in raw.split(b"\x1e"):
        if not chunk:
            continue
        d = {}
        for item in chunk.split(b"\0"):
            k, sep, v = item.partition(b"=")
            if sep:
                d[k.decode(errors="replace")] = v.decode(errors="replace")
        if d.pop("HOOK_END", None) == "1":
            recs.append(d)
    return recs


def hook_event(rec):
    """The event of one hook call: udhcpc's first argument or dhclient's / dhcpcd's $reason."""
    return rec.get("reason") or (rec.get("HOOK_ARGS", "").split() or [""])[0]


class ClientRun:
    """One client process with its own hook, files and output."""

    def __init__(self, pair, workdir, kind, tag):
        self.pair, self.kind = pair, kind
        self.dir = os.path.join(workdir, f"{kind}-{tag}")
        os.makedirs(self.dir, exist_ok=True)
        self.hook_out = os.path.join(self.dir, "hook.env")
        self.hook = write_hook(os.path.join(self.dir, "hook.sh"), self.hook_out, kind)
        self.out = os.path.join(self.dir, "client.out")
        self.lease_file = os.path.join(self.dir, "dhclient.leases")
        self.pid_file = os.path.join(self.dir, "client.pid")
        self.conf = os.path.join(self.dir, f"{kind}.conf")
        if kind == "dhclient":
            with open(self.conf, "w") as f:
                f.write(DHCLIENT_CONF)
        elif kind == "dhcpcd":
            with open(self.conf, "w") as f:
                f.write(DHCPCD_CONF)
        self.proc = None

    # --- commands
    def udhcpc_cmd(self, quit=True, no_lease_exit=True, release=False, tries=3, pause=2):
        cmd = ["busybox", "udhcpc", "-i", self.pair.cli_if, "-f", "-O", "66", "-O", "150", "-s", self.hook,
               "-t", str(tries), "-T", str(pause), "-p", self.pid_file]
        if quit:
            cmd.append("-q")
        if no_lease_exit:
            cmd.append("-n")
        if release:
            cmd.append("-R")
        return cmd

    def dhclient_cmd(self, release=False):
        cmd = ["dhclient", "-4", "-v"]
        cmd += ["-r"] if release else ["-d", "-1"]
        return cmd + ["-cf", self.conf, "-sf", self.hook, "-lf", self.lease_file, "-pf", self.pid_file,
                      self.pair.cli_if]

    def dhcpcd_cmd(self):
        # never -T: it crashes and leaves children that ignore SIGTERM
        return ["dhcpcd", "-f", self.conf, "-4", "-1", "-B", "-c", self.hook, self.pair.cli_if]

    # --- running
    def start(self, cmd):
        with open(self.out, "ab") as out:
            out.write(("--- " + " ".join(cmd) + "\n").encode())
            out.flush()
            self.proc = popen(self.pair.exec_cli() + cmd, stdout=out, stderr=subprocess.STDOUT)
        return self.proc

    def run(self, cmd, timeout):
        """Runs to its end (bounded); returns the exit status (-999 when it had to be killed)."""
        p = self.start(cmd)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(p, grace=2)
            return -999

    def records(self):
        return read_hook(self.hook_out)

    def events(self):
        return [hook_event(r) for r in self.records()]

    def wait_event(self, names, timeout, after=0):
        """The first hook record (from index `after` on) whose event is in names, or None."""
        def find():
            recs = self.records()
            for r in recs[after:]:
                if hook_event(r) in names:
                    return r
            return None
        return wait_for(lambda: find() or (self.proc is not None and self.proc.poll() is not None and find()),
                        timeout, step=0.1)

    def output(self):
        return read_text(self.out)

    def stop(self):
        return stop_process(self.proc, grace=5)


def bound_address(rec):
    """The address a hook record announces (udhcpc: ip; dhclient and dhcpcd: new_ip_address)."""
    return rec.get("ip") or rec.get("new_ip_address")
