#!/usr/bin/python3
"""A Cisco CP-7906G / CP-7911G emulator for labctl's tests: it boots the way the field report's
phones do (the field report's in.tftpd logs; DESIGN.md, "Cisco CP-7906G / CP-7911G") against real
DHCP and TFTP servers over real sockets, and answers a SIP NOTIFY check-sync.

  phone_emulator.py --model CP-7906G --mac 00:0B:82:01:FC:42 --state phone.json \\
      (--interface IF | --tftp IP [--tftp-port N] [--bind IP]) [options]

Boot sequence (what the seed's in.tftpd logs show, in that order):
  1. DHCP (only with --interface; run the emulator inside the client's network namespace). Our own
     small DHCP client over a UDP socket on port 68 bound to the interface (SO_BINDTODEVICE), with
     the broadcast flag set, so the server's OFFER/ACK come back as broadcasts that socket receives
     although the interface has no address yet; the PRL asks for 1, 3, 6, 15, 42, 66, 150, the
     vendor class is the one Cisco phones send ("Cisco Systems, Inc. IP Phone CP-7911G"). After
     the ACK the address is put on the interface (`ip addr replace`). No renewal: runs are short.
     TFTP server: option 150 (binary list of addresses: the first one), else option 66 (text:
     address or name), else siaddr. Option 150 that is not a non-empty multiple of 4 bytes, or that
     is an address typed as text (the seed's classic mistake: "10.99.0.1" as ASCII), is malformed:
     the phone says so and falls back to 66, like a real phone.
     With --tftp IP the phone skips DHCP (loopback tests); --bind is then its own address.
  2. TFTP (our own RFC 1350 client with the blksize and tsize options, RFC 2347/2348/2349):
     termNN.default.loads (06 for the 7906, 11 for the 7911). The file is bytes: its printable
     strings name the load id (SIP11.9-4-2SR1-1S, SCCP11.8-5-2S) and the .sbn files (jar11...,
     cnu11..., apps11..., dsp11..., cvm11...), so test bundles (plain text lines) and real signed
     loads both work. A missing term file (TFTP error 1) or a failed transfer is asked again after
     --retry-interval, at most --max-retries times in a row.
  3. Bootloader rule (the seed's failure): a 9.x load offered to a phone whose installed load is
     SCCP older than 8.3(3) and whose bootloader is older than 8.5(2) fetches no .sbn; it asks for
     the term file again and again (pauses from --loop-interval, cycled; the seed's 1 s, 147 s, 0 s,
     93 s by default) and gives up after --max-loops requests with exit status 2. If the file then
     offers something else (the operator swapped the bundle, as in the seed), it goes on with that.
  4. Otherwise it fetches every .sbn the load names, in the seed's order (jar, cnu, apps, dsp,
     cvm), each completely (a failed or truncated transfer: pause, then the whole load again, from
     the term file), "installs" it (the state file: load id; a load from 8.3(3) up also installs
     the bootloader, 8.5(2) at most), "reboots" (asks the term file again: the load is now
     installed, so it goes on), then asks SEP<MAC>.cnf.xml (MAC in upper-case hex), and
     XMLDefault.cnf.xml when that is missing. The config is XML: loadInformation, the SIP line's
     name / authName / authPassword, proxy and sipPort. A loadInformation naming another load than
     the installed one is an upgrade: <loadid>.loads, its .sbn files, install, reboot; the state
     remembers that load, and after a reboot it wins over the term file's (a real phone keeps its
     configured load). Registered = a config with a SIP line, a SIP load, and an authPassword of at
     most --max-password characters (15 by default, the catalog's limit); else "registration
     failed" (an SCCP load cannot register with a SIP configuration: the seed's first phone).
     No REGISTER is sent: registration is the phone-side decision only.
  5. SIP on UDP --sip-port (5060; 0 = off), bound to the phone's address as soon as it has one.
     Requests are answered while a load runs (from the "load-current" event to the next
     "rebooting"); before that they are dropped with a "sip-ignored" event: a phone that is still
     booting, or stuck in its bootloader, has no SIP stack. NOTIFY with Event: check-sync -> 200 OK
     (every Via, From, To (+ a tag), Call-ID, CSeq copied; Content-Length: 0), sent back to the
     source address and port, and the boot sequence restarts at step 2; NOTIFY with another or no
     Event -> 489 Bad Event; OPTIONS -> 200; ACK -> nothing; other methods -> 501; a request
     without Via / From / To / Call-ID / CSeq, or with a CSeq of another method -> 400 (no Via:
     nothing can be answered). After registering, the phone stays up --linger seconds (when SIP or
     HTTP is on) waiting for a check-sync; with --max-notify N it exits once the Nth check-sync's
     boot registered again.
  6. HTTP on TCP --http-port (0 = off, the default): the phone's web server (HTTP/1.1), bound to
     its own address (--bind with --tftp, the DHCP address with --interface) once it has one.
     GET (or HEAD) /DeviceInformationX -> 200, Content-Type: text/xml, the elements labctl's
     plugins/cisco_phone/device_info.cc reads:
       <?xml version="1.0" encoding="utf-8"?>
       <DeviceInformation>
         <MACAddress>000B8201FC42</MACAddress>     upper-case hex
         <HostName>SEP000B8201FC42</HostName>
         <phoneDN>1006</phoneDN>                   the SIP line of the last config fetched, or empty
         <appLoadID>SIP11.9-4-2SR1-1S</appLoadID>  the installed load (the state's "load")
         <bootLoadID>tnp11.8-5-2</bootLoadID>      from the bootloader, 8.5(2); empty when unknown
         <versionID>9.4(2)</versionID>             from the installed load id
         <serialNumber>FCH8201FC42</serialNumber>  FCH + the MAC's last 8 hex digits
         <modelNumber>CP-7906G</modelNumber>       or CP-7911G
       </DeviceInformation>
     Another path -> 404; another method -> 405 (Allow: GET, HEAD). The web server belongs to the
     running load, so requests are answered only while one runs: from the start of every boot
     when a load is installed (a phone runs its load while it polls TFTP), until a "stuck-loop"
     (the bootloader has no web server) or a "rebooting"; after a stuck loop, again from
     "load-current" or the next boot. While not ready the phone reads the request and closes the
     connection without a response (a client sees an empty reply, as from a rebooting phone).
  7. Resets. --reboot-time S: after every "rebooting" the phone is down S seconds (no SIP, no HTTP)
     before its next boot step (default 0). --reset-unregistered S (default 0: a failed
     registration ends the run, exit 3): after "registration-failed" the phone waits S seconds
     (its load runs: SIP and HTTP answer), then resets -- "rebooting" with reason "unregistered"
     (reason "check-sync" when a check-sync NOTIFY cut the wait short; that one counts in
     "notifies") -- and boots again from step 2, as an SCCP phone without a call manager keeps
     resetting and reading TFTP. Those resets count toward --max-boots (more -> exit 1); when
     --timeout passes during the wait, the run ends as registration failed (exit 3).

Output: one JSON object per line on stdout, "event" first: dhcp-discover, dhcp-offer, dhcp-bound
(address, options seen, option150 / option66 decoded), option-150-malformed, tftp-server (address
and where it came from), sip-listening, tftp-request, tftp-complete (bytes), tftp-error (code),
retry, load-offered, stuck-loop, load-incomplete, installed, rebooting (reason: new load,
check-sync, incomplete load, unregistered), load-current, config-fetched, upgrade, registered,
registration-failed, notify-received, sip-request, sip-ignored, http-listening (address, port),
http-request (method, path, status, source; status null and "dropped" (why) when the web server
was not up); the last line is {"event": "status", "result": ..., "exit": ..., "files": [every
TFTP request in order], ...}: nothing comes after it. Secrets are never printed (the password's
length only).
Exit status: 0 registered, 2 stuck on the term file, 3 registration failed, 1 anything else
(including --timeout, the bound on the whole run; every wait is bounded by it).
"""
import argparse
import http.server
import ipaddress
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape as xml_escape

EXIT_REGISTERED, EXIT_ERROR, EXIT_STUCK, EXIT_REGFAIL = 0, 1, 2, 3

MODELS = {"CP-7906G": "06", "CP-7911G": "11", "7906": "06", "7911": "11", "7906G": "06", "7911G": "11"}
SBN_ORDER = ("jar", "cnu", "apps", "dsp", "cvm")
SEED_LOOP = "1,147,0,93"              # the seed's pauses between term06 requests (10:15:32 ... 10:19:34)
BOOTLOADER_FLOOR = (8, 3, 3)          # loads from 8.3(3) on install the newer bootloader ...
BOOTLOADER_NEEDED = (8, 5, 2)         # ... of which 9.x needs 8.5(2)'s (DESIGN.md; release notes)
MAX_FILE = 64 << 20


class Timeout(Exception):
    """The overall --timeout passed."""


class Stop(Exception):
    """SIGTERM / SIGINT."""


# ----------------------------------------------------------------------------------------------
# pure helpers (the tests import these)

LOAD_ID_RE = re.compile(r"(SIP|SCCP)(\d\d)\.(\d+)-(\d+)-(\d+)[A-Za-z0-9-]*", re.I)
SBN_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*\.[0-9][0-9A-Za-z-]*(?:\.[0-9A-Za-z-]+)*\.sbn", re.I)
SBN_VERSION_RE = re.compile(r"^(jar|cvm)\d\d(sip|sccp)\.(\d+)-(\d+)-(\d+)", re.I)


def printable_strings(data, least=4):
    """The runs of at least `least` printable ASCII characters in data, like strings(1)."""
    return [m.group().decode("ascii") for m in re.finditer(rb"[\x20-\x7e]{%d,}" % least, data)]


def load_version(load_id):
    """(protocol upper-case, (major, minor, maintenance)) of a load id, or (None, None)."""
    m = LOAD_ID_RE.search(load_id or "")
    if not m:
        return None, None
    return m.group(1).upper(), (int(m.group(3)), int(m.group(4)), int(m.group(5)))


def parse_version(text):
    """'8.5(2)', '8.5.2', '8-5-2' -> (8, 5, 2); None when it is not one."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)[.-](\d+)(?:[.-](\d+)|\((\d+)\))?\S*\s*", str(text))
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or m.group(4) or 0)


def version_text(v):
    return f"{v[0]}.{v[1]}({v[2]})" if v else None


def sbn_rank(name):
    low = name.lower()
    for i, prefix in enumerate(SBN_ORDER):
        if low.startswith(prefix):
            return i
    return len(SBN_ORDER)


def parse_load_file(data, name=""):
    """What a .loads file names: {'load_id', 'protocol', 'version', 'sbn': [names in fetch order]}.
    The load id is the first load-id-looking string inside; failing that the file name's own
    (SIP11.9-4-2SR1-1S.loads), failing that one made up from the jar/cvm file's protocol and
    version. The .sbn files keep the order they have in the file within the seed's order (jar,
    cnu, apps, dsp, cvm, then anything else), duplicates dropped."""
    strings = printable_strings(data)
    load_id = None
    for s in strings:
        m = LOAD_ID_RE.search(s)
        if m:
            load_id = m.group(0)
            break
    sbns, seen = [], set()
    for s in strings:
        for m in SBN_RE.finditer(s):
            n = m.group(0)
            if n.lower() not in seen:
                seen.add(n.lower())
                sbns.append(n)
    sbns = [n for _, n in sorted(enumerate(sbns), key=lambda p: (sbn_rank(p[1]), p[0]))]
    if load_id is None and name:
        m = LOAD_ID_RE.match(os.path.basename(name))
        if m:
            load_id = m.group(0)
    if load_id is None:
        for n in sbns:
            m = SBN_VERSION_RE.match(n)
            if m:
                load_id = f"{m.group(2).upper()}{n[3:5]}.{m.group(3)}-{m.group(4)}-{m.group(5)}"
                break
    proto, ver = load_version(load_id)
    return {"load_id": load_id, "protocol": proto, "version": ver, "sbn": sbns}


def bootloader_blocks(offered_id, installed_id, bootloader):
    """The reason the phone cannot take `offered_id`, or None: a 9.x load while the installed load
    is SCCP older than 8.3(3) and no 8.5(2) bootloader is installed."""
    _, over = load_version(offered_id)
    iproto, iver = load_version(installed_id)
    if over is None or over[0] < 9 or iproto != "SCCP" or iver is None or iver >= BOOTLOADER_FLOOR:
        return None
    bl = parse_version(bootloader)
    if bl is not None and bl >= BOOTLOADER_NEEDED:
        return None
    return (f"load {offered_id} ({version_text(over)}) needs the bootloader of an 8.3(3)-8.5(2) load; "
            f"installed {installed_id} ({version_text(iver)}), bootloader {bootloader or 'unknown'}")


def bootloader_after_install(load_id, bootloader):
    """The bootloader once `load_id` is installed: loads from 8.3(3) on bring theirs (8.5(2) at
    most, the one 9.x needs); older loads leave it alone."""
    _, ver = load_version(load_id)
    cur = parse_version(bootloader)
    if ver is None or ver < BOOTLOADER_FLOOR:
        return bootloader
    new = min(ver, BOOTLOADER_NEEDED)
    if cur is None or new > cur:
        return version_text(new)
    return bootloader


def classify_option150(raw):
    """(list of addresses, None) or ([], reason) for option 150's bytes (None when absent)."""
    if raw is None:
        return [], "absent"
    if len(raw) == 0:
        return [], "empty"
    text = raw.rstrip(b"\0")
    if text and re.fullmatch(rb"[0-9.,; ]+", text) and b"." in text:
        return [], f"text instead of 4-byte addresses: {text.decode()!r}"
    if len(raw) % 4:
        return [], f"length {len(raw)} is not a multiple of 4"
    addrs = [socket.inet_ntoa(raw[i:i + 4]) for i in range(0, len(raw), 4)]
    if any(a in ("0.0.0.0", "255.255.255.255") for a in addrs):
        return [], f"unusable address in {addrs}"
    return addrs, None


def option66_text(raw):
    """Option 66 as text (a trailing NUL, as dnsmasq sends it, dropped), or None."""
    if raw is None:
        return None
    t = raw.split(b"\0", 1)[0].decode("ascii", errors="replace").strip()
    t = re.split(r"[,; ]+", t)[0] if t else t          # "10.99.0.1,10.99.0.2": the first
    return t or None


def sep_name(mac):
    return "SEP" + re.sub(r"[^0-9A-Fa-f]", "", mac).upper() + ".cnf.xml"


def model_number(model):
    """'7911', 'CP-7911G' ... -> 'CP-7911G'."""
    return f"CP-79{MODELS[model]}G"


def device_information(mac, model, load, bootloader, dn=None):
    """The fields of the phone's DeviceInformationX page (element name -> text)."""
    hexmac = re.sub(r"[^0-9A-Fa-f]", "", mac).upper()
    m = LOAD_ID_RE.search(load or "")
    family = m.group(2) if m else "11"                  # the 7906 and the 7911 run the same "11" loads
    bl = parse_version(bootloader)
    _, ver = load_version(load)
    return {"MACAddress": hexmac, "HostName": "SEP" + hexmac, "phoneDN": dn or "", "appLoadID": load or "",
            "bootLoadID": f"tnp{family}.{bl[0]}-{bl[1]}-{bl[2]}" if bl else "",
            "versionID": version_text(ver) or "", "serialNumber": "FCH" + hexmac[-8:],
            "modelNumber": model_number(model)}


def device_information_xml(fields):
    """The DeviceInformationX document (bytes) for device_information()'s fields."""
    body = "".join(f"  <{k}>{xml_escape(v)}</{k}>\n" for k, v in fields.items())
    return f'<?xml version="1.0" encoding="utf-8"?>\n<DeviceInformation>\n{body}</DeviceInformation>\n'.encode()


def _text(el, path):
    if el is None:
        return None
    found = el.find(path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _strip_prefixes(data):
    if isinstance(data, str):
        data = data.encode()

    def tag(m):
        t = m.group(0)
        if t.startswith((b"<?", b"<!")):
            return t
        # names only: at the tag's start or after whitespace, never inside a quoted value
        parts = re.split(rb'("[^"]*"|\'[^\']*\')', t)
        return b"".join(p if i % 2 else re.sub(rb"(^</?|\s)[A-Za-z_][\w.-]*:(?=[A-Za-z_])", rb"\1", p)
                        for i, p in enumerate(parts))
    return re.sub(rb"<[^>]*>", tag, data)


def parse_config(data):
    """The SEP / XMLDefault config: {'load_information', 'protocol', 'line': {name, auth_name,
    password, display_name, proxy, feature_id} or None, 'sip_port', 'proxy'}. ValueError when it is
    not XML."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        if "unbound prefix" not in str(e):
            raise ValueError(f"not XML: {e}") from None
        # real SEP files say <device xsi:type="axl:XIPPhone"> without declaring xsi: the phone
        # does not care, so drop the prefixes of names inside tags (attribute values stay)
        try:
            root = ET.fromstring(_strip_prefixes(data))
        except ET.ParseError as e2:
            raise ValueError(f"not XML: {e2}") from None
    out = {"load_information": None, "protocol": None, "line": None, "sip_port": None, "proxy": None}
    li = root.find(".//loadInformation")
    if li is not None and li.text and li.text.strip():
        out["load_information"] = li.text.strip()
    out["protocol"] = _text(root, ".//deviceProtocol")
    port = _text(root, ".//sipPort")
    if port and port.isdigit():
        out["sip_port"] = int(port)
    cm = _text(root, ".//callManager/processNodeName") or _text(root, ".//processNodeName")
    lines = root.findall(".//sipProfile/sipLines/line") or root.findall(".//sipLines/line")
    chosen = None
    for ln in lines:
        if (_text(ln, "featureID") or "9") == "9":
            chosen = ln
            break
    if chosen is not None:
        proxy = _text(chosen, "proxy")
        out["line"] = {"name": _text(chosen, "name"), "auth_name": _text(chosen, "authName"),
                       "password": _text(chosen, "authPassword") or "",
                       "display_name": _text(chosen, "displayName"), "proxy": proxy,
                       "feature_id": _text(chosen, "featureID")}
        out["proxy"] = cm if (proxy or "").upper() in ("", "USECALLMANAGER") else proxy
    else:
        out["proxy"] = cm
    return out


# ----------------------------------------------------------------------------------------------
# SIP (requests in, responses out)

COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "l": "content-length", "o": "event",
           "m": "contact", "c": "content-type"}
REASONS = {200: "OK", 400: "Bad Request", 489: "Bad Event", 501: "Not Implemented"}


def parse_sip(data):
    """(method, uri, [(name lower-case, original name, value)]) of a request; ('RESPONSE', code,
    headers) of a response; ValueError when it is not SIP."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    head = re.split(r"\r?\n\r?\n", text, maxsplit=1)[0]
    lines = re.split(r"\r?\n", head)
    first = lines[0].strip()
    headers = []
    for ln in lines[1:]:
        if ln[:1] in (" ", "\t") and headers:             # folded continuation
            n, o, v = headers[-1]
            headers[-1] = (n, o, v + " " + ln.strip())
            continue
        name, sep, value = ln.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"bad header line {ln!r}")
        o = name.strip()
        n = o.lower()
        headers.append((COMPACT.get(n, n), o, value.strip()))
    m = re.fullmatch(r"SIP/2\.0\s+(\d{3})\s*(.*)", first)
    if m:
        return "RESPONSE", int(m.group(1)), headers
    m = re.fullmatch(r"([A-Za-z]+)\s+(\S+)\s+SIP/2\.0", first)
    if not m:
        raise ValueError(f"bad request line {first!r}")
    return m.group(1).upper(), m.group(2), headers


def header_values(headers, name):
    return [v for n, _, v in headers if n == name]


def build_response(code, headers, to_tag, extra=()):
    """A response to a request with these headers: every Via in order, From, To (our tag added
    when the request had none), Call-ID, CSeq copied; Content-Length: 0."""
    out = [f"SIP/2.0 {code} {REASONS.get(code, 'Error')}"]
    for v in header_values(headers, "via"):
        out.append(f"Via: {v}")
    for name, label in (("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq")):
        for v in header_values(headers, name)[:1]:
            if name == "to" and not re.search(r";\s*tag=", v, re.I):
                v = f"{v};tag={to_tag}"
            out.append(f"{label}: {v}")
    out.extend(extra)
    out.append("Server: Cisco-CP7911G-emulator")
    out.append("Content-Length: 0")
    return ("\r\n".join(out) + "\r\n\r\n").encode()


def answer_sip(data):
    """(response bytes or None, what happened: dict). What a phone answers to one datagram."""
    try:
        method, uri, headers = parse_sip(data)
    except ValueError as e:
        return None, {"kind": "unparsable", "reason": str(e)}
    if method == "RESPONSE":
        return None, {"kind": "response", "code": uri}
    tag = "%08x" % random.getrandbits(32)
    missing = [h for h in ("via", "from", "to", "call-id", "cseq") if not header_values(headers, h)]
    info = {"kind": "request", "method": method, "call_id": (header_values(headers, "call-id") or [None])[0]}
    if method == "ACK":
        return None, info
    if missing:
        info["missing"] = missing
        if not header_values(headers, "via"):
            return None, info                          # nowhere to answer to
        return build_response(400, headers, tag), {**info, "code": 400}
    cseq = header_values(headers, "cseq")[0].split()
    if len(cseq) != 2 or not cseq[0].isdigit() or cseq[1].upper() != method:
        return build_response(400, headers, tag), {**info, "code": 400, "reason": "bad CSeq"}
    if method == "NOTIFY":
        event = (header_values(headers, "event") or [""])[0]
        info["sip_event"] = event
        if event.split(";")[0].strip().lower() == "check-sync":
            return build_response(200, headers, tag), {**info, "code": 200, "check_sync": True}
        return build_response(489, headers, tag, ["Allow-Events: check-sync"]), {**info, "code": 489}
    if method == "OPTIONS":
        return build_response(200, headers, tag, ["Allow: ACK, OPTIONS, NOTIFY", "Accept: application/sdp"]), \
            {**info, "code": 200}
    return build_response(501, headers, tag, ["Allow: ACK, OPTIONS, NOTIFY"]), {**info, "code": 501}


# ----------------------------------------------------------------------------------------------
# TFTP client

class TftpError(Exception):
    def __init__(self, code, message):
        super().__init__(f"TFTP error {code}: {message}")
        self.code, self.message = code, message


class PhoneError(Exception):
    """Anything that ends the run with exit status 1."""


class TftpFailed(PhoneError):
    """A timeout, a truncated file, a protocol violation."""


def tftp_get(server, port, name, bind_ip=None, blksize=1468, timeout=1.0, retries=5, deadline=None,
             max_bytes=MAX_FILE, options=True, abort=None):
    """The whole file `name` (bytes). RRQ octet with blksize and tsize=0; OACK, DATA, ERROR;
    retransmits its last packet on silence (at most `retries` times in a row); a file shorter than
    the announced tsize is truncated (TftpFailed)."""
    server_ip = socket.gethostbyname(server)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((bind_ip or "", 0))
        rrq = b"\0\1" + name.encode() + b"\0octet\0"
        if options:
            rrq += b"blksize\0" + str(blksize).encode() + b"\0tsize\0" + b"0\0"
        last, dest = rrq, (server, port)
        s.sendto(last, dest)
        tid, size, bs, expect, data, silent = None, None, 512, 1, bytearray(), 0
        quiet_since = time.monotonic()
        while True:
            if abort is not None and abort():
                raise Stop()
            wait = timeout
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout()
                wait = min(wait, left)
            r, _, _ = select.select([s], [], [], min(wait, 0.25))
            if not r:
                if time.monotonic() - quiet_since < wait:
                    continue
                quiet_since = time.monotonic()
                silent += 1
                if silent > retries:
                    raise TftpFailed(f"no answer after {retries} retransmissions ({len(data)} bytes in)")
                s.sendto(last, dest)
                continue
            pkt, addr = s.recvfrom(65536)
            if addr[0] != server_ip:
                continue
            if tid is None:
                tid, dest = addr, addr
            elif addr != tid:
                s.sendto(b"\0\5\0\5unknown transfer ID\0", addr)
                continue
            if len(pkt) < 4:
                raise TftpFailed("short packet")
            op = struct.unpack("!H", pkt[:2])[0]
            if op == 5:
                code = struct.unpack("!H", pkt[2:4])[0]
                msg = pkt[4:].split(b"\0", 1)[0].decode(errors="replace")
                if code == 8 and options and not data:
                    return tftp_get(server, port, name, bind_ip, blksize, timeout, retries, deadline, max_bytes,
                                    options=False, abort=abort)
                raise TftpError(code, msg)
            if op == 6 and expect == 1 and not data:
                parts = pkt[2:].split(b"\0")
                opts = {parts[i].decode().lower(): parts[i + 1].decode() for i in range(0, len(parts) - 1, 2)}
                if "blksize" in opts:
                    bs = int(opts["blksize"])
                    if not 8 <= bs <= blksize:
                        s.sendto(b"\0\5\0\x08bad blksize\0", dest)
                        raise TftpFailed(f"server chose blksize {bs}")
                if "tsize" in opts:
                    size = int(opts["tsize"])
                last = b"\0\4\0\0"
                s.sendto(last, dest)
                silent, quiet_since = 0, time.monotonic()
                continue
            if op != 3:
                s.sendto(b"\0\5\0\4illegal operation\0", dest)
                raise TftpFailed(f"unexpected opcode {op}")
            block = struct.unpack("!H", pkt[2:4])[0]
            if block == expect & 0xFFFF:
                payload = pkt[4:]
                if len(payload) > bs:
                    raise TftpFailed(f"block {block} of {len(payload)} bytes exceeds blksize {bs}")
                data += payload
                if len(data) > max_bytes:
                    s.sendto(b"\0\5\0\3too large\0", dest)
                    raise TftpFailed("file too large")
                last = b"\0\4" + pkt[2:4]
                s.sendto(last, dest)
                silent, quiet_since = 0, time.monotonic()
                expect += 1
                if len(payload) < bs:
                    if size is not None and size != len(data):
                        raise TftpFailed(f"truncated: {len(data)} of {size} bytes")
                    return bytes(data)
            elif block == (expect - 1) & 0xFFFF:
                s.sendto(last, dest)                   # our ACK was lost: repeat it
    finally:
        s.close()


# ----------------------------------------------------------------------------------------------
# HTTP (the phone's web server)

DEVICE_INFO_PATH = "/DeviceInformationX"
MAX_HTTP_BODY = 1 << 20


class DeviceWeb(http.server.BaseHTTPRequestHandler):
    """One connection to the phone's web server (server.phone is the Phone): DeviceInformationX
    while a load runs; while none runs, the request is read and the connection closed unanswered."""
    protocol_version = "HTTP/1.1"
    server_version = "Cisco-CP7911G-emulator"
    timeout = 10                                       # an idle keep-alive connection ends
    dropping = None

    def log_message(self, *args):                      # the events say it all
        pass

    def version_string(self):                          # the Server header, without "Python/3.x"
        return self.server_version

    def send_error(self, code, message=None, explain=None):
        if self.dropping:                              # a phone that is down answers nothing
            self.close_connection = True
            return
        self.emit(code)
        super().send_error(code, message, explain)

    def emit(self, status, **kw):
        self.server.phone.emit("http-request", method=getattr(self, "command", None),
                               path=getattr(self, "path", None), status=status,
                               source=f"{self.client_address[0]}:{self.client_address[1]}", **kw)

    def handle_one_request(self):
        # every method comes here (the stdlib answers 501 to those without a do_ method: a phone 405)
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except OSError:
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        phone = self.server.phone
        self.dropping = None if phone.http_ready else phone.http_why
        self.command = self.path = None
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            self.close_connection = True
            return
        ok = self.parse_request()                       # reads the headers; answers 400 unless dropping
        if ok and not self.discard_body():
            self.close_connection = True                # the rest of the connection cannot be parsed
        if self.dropping:
            self.emit(None, dropped=self.dropping)
            self.close_connection = True
            return
        if not ok:
            return
        self.answer()
        try:
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def discard_body(self):
        """Reads a request body (Content-Length) so that the next request on the connection starts
        where it should; False when it cannot (chunked, too large, cut short)."""
        if self.headers.get("Transfer-Encoding"):
            return False
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return False
        if n < 0 or n > MAX_HTTP_BODY:
            return False
        try:
            return len(self.rfile.read(n)) == n if n else True
        except OSError:
            return False

    def answer(self):
        phone = self.server.phone
        path = self.path.split("?", 1)[0]
        if self.command not in ("GET", "HEAD"):
            self.reply(405, b"405 Method Not Allowed\n", "text/plain", [("Allow", "GET, HEAD")])
        elif path != DEVICE_INFO_PATH:
            self.reply(404, b"404 Not Found\n", "text/plain")
        else:
            info = device_information(phone.a.mac, phone.model, phone.state.get("load"),
                                      phone.state.get("bootloader"), phone.dn)
            self.reply(200, device_information_xml(info), "text/xml")

    def reply(self, code, body, ctype, extra=()):
        self.emit(code)                                 # before the answer: a client that has it sees the event
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


# ----------------------------------------------------------------------------------------------
# DHCP client

DHCP_MAGIC = b"\x63\x82\x53\x63"
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


def dhcp_message(mtype, xid, mac, model, extra=()):
    chaddr = bytes.fromhex(re.sub(r"[^0-9A-Fa-f]", "", mac))
    hdr = struct.pack("!BBBBIHH", 1, 1, 6, 0, xid, 0, 0x8000) + b"\0" * 16 + chaddr.ljust(16, b"\0") + b"\0" * 192
    opts = [(53, bytes([mtype])), (61, b"\x01" + chaddr), (57, struct.pack("!H", 1500)),
            (60, f"Cisco Systems, Inc. IP Phone {model}".encode()),
            (12, sep_name(mac)[:-len(".cnf.xml")].encode()), *extra,
            (55, bytes([1, 3, 6, 15, 42, 66, 150]))]
    body = hdr + DHCP_MAGIC + b"".join(bytes([c, len(v)]) + v for c, v in opts) + b"\xff"
    return body.ljust(300, b"\0")


def dhcp_parse(data):
    """(fixed fields dict, {code: bytes}) or None. Options are read from the options field only,
    then from file/sname when option 52 says so."""
    if len(data) < 240 or data[236:240] != DHCP_MAGIC:
        return None
    f = {"op": data[0], "xid": struct.unpack("!I", data[4:8])[0], "yiaddr": socket.inet_ntoa(data[16:20]),
         "siaddr": socket.inet_ntoa(data[20:24]), "chaddr": data[28:34]}
    opts = {}

    def walk(buf):
        i = 0
        while i < len(buf):
            c = buf[i]
            if c == 0:
                i += 1
                continue
            if c == 255 or i + 1 >= len(buf):
                return
            n = buf[i + 1]
            opts[c] = opts.get(c, b"") + buf[i + 2:i + 2 + n]
            i += 2 + n
    walk(data[240:])
    ov = opts.get(52, b"\0")[:1]
    if ov in (b"\1", b"\3"):
        walk(data[108:236])
    if ov in (b"\2", b"\3"):
        walk(data[44:108])
    return f, opts


def dhcp_acquire(iface, mac, model, deadline, emit, tries_timeout=30.0, abort=None):
    """DISCOVER -> OFFER -> REQUEST -> ACK on iface; returns (fields, options)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, iface.encode())
        s.bind(("0.0.0.0", 68))
        want = bytes.fromhex(re.sub(r"[^0-9A-Fa-f]", "", mac))
        end = min(deadline, time.monotonic() + tries_timeout)
        while time.monotonic() < end:
            xid = random.getrandbits(32)
            state, msg, pause, offer = "discover", dhcp_message(1, xid, mac, model), 1.0, None
            s.sendto(msg, ("255.255.255.255", 67))
            emit("dhcp-discover", xid=xid)
            sent = time.monotonic()
            while time.monotonic() < end:
                if abort is not None and abort():
                    raise Stop()
                if pause - (time.monotonic() - sent) <= 0:
                    pause = min(pause * 2, 4.0)              # 1, 2, 4, 4 ... s
                    s.sendto(msg, ("255.255.255.255", 67))
                    sent = time.monotonic()
                wait = min(pause - (time.monotonic() - sent), end - time.monotonic(), 0.25)
                r, _, _ = select.select([s], [], [], max(wait, 0))
                if not r:
                    continue
                data, _ = s.recvfrom(4096)
                p = dhcp_parse(data)
                if p is None:
                    continue
                f, o = p
                if f["op"] != 2 or f["xid"] != xid or f["chaddr"] != want:
                    continue
                mtype = o.get(53, b"\0")[0]
                if state == "discover" and mtype == 2:
                    offer = (f, o)
                    sid = socket.inet_ntoa(o[54]) if len(o.get(54, b"")) == 4 else None
                    emit("dhcp-offer", ip=f["yiaddr"], server=sid)
                    extra = [(50, socket.inet_aton(f["yiaddr"]))]
                    if 54 in o:
                        extra.append((54, o[54]))
                    msg, state, pause = dhcp_message(3, xid, mac, model, extra), "request", 1.0
                    s.sendto(msg, ("255.255.255.255", 67))
                    sent = time.monotonic()
                elif state == "request" and mtype == 5:
                    return f, o
                elif state == "request" and mtype == 6:
                    emit("dhcp-nak", ip=offer[0]["yiaddr"] if offer else None)
                    break                                 # start over
        raise PhoneError(f"DHCP: no lease on {iface} within {tries_timeout:.0f}s")
    finally:
        s.close()


# ----------------------------------------------------------------------------------------------
# the phone

class Phone:
    def __init__(self, a):
        self.a = a
        self.model = a.model
        self.nn = MODELS[a.model]
        self.term = f"term{self.nn}.default.loads"
        self.start = time.monotonic()
        self.deadline = self.start + a.timeout
        self.out_lock = threading.Lock()
        self.notify = threading.Event()
        self.stopping = threading.Event()
        self.files = []                    # every TFTP request, in order
        self.ip = None
        self.tftp = a.tftp
        self.sip_sock = None
        self.notifies = 0
        self.sip_ready = False             # the SIP stack runs once a load runs, not while (re)booting
        self.http = None
        self.http_ready = False            # the web server runs while a load runs (step 6)
        self.http_why = "booting"          # why it does not, when it does not
        self.dn = None                     # the SIP line's name in the last config fetched
        self.finished = False              # the status line is out: nothing after it
        self.registered = None
        self.loops = 0
        self.state = self.load_state()

    # --- output
    def emit(self, event, **kw):
        if event == "rebooting":
            self.sip_ready = False
            self.http_down("rebooting")
        elif event == "stuck-loop":
            self.http_down("stuck in the bootloader")
        rec = {"event": event, "t": round(time.monotonic() - self.start, 3),
               "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), **kw}
        with self.out_lock:
            if self.finished:
                return
            self.finished = event == "status"
            sys.stdout.write(json.dumps(rec, sort_keys=False) + "\n")
            sys.stdout.flush()

    def http_down(self, why):
        self.http_why = why
        self.http_ready = False

    def reboot(self, reason, **kw):
        """The "rebooting" event, then --reboot-time seconds down (no SIP, no HTTP)."""
        self.emit("rebooting", reason=reason, **kw)
        if self.a.reboot_time > 0:
            self.sleep(self.a.reboot_time)

    def log(self, msg):
        with self.out_lock:
            print(f"phone: {msg}", file=sys.stderr, flush=True)

    # --- state file
    def load_state(self):
        st = None
        try:
            with open(self.a.state) as f:
                st = json.load(f)
        except FileNotFoundError:
            pass
        if not isinstance(st, dict):
            st = {"load": self.a.initial_load, "bootloader": self.a.initial_bootloader}
        st.setdefault("load", None)
        st.setdefault("bootloader", None)
        st.setdefault("config_load", None)
        st["model"] = self.model
        self.save_state(st)
        return st

    def save_state(self, st=None):
        st = st if st is not None else self.state
        tmp = self.a.state + ".tmp"
        with open(tmp, "w") as f:
            json.dump(st, f, indent=2)
            f.write("\n")
        os.replace(tmp, self.a.state)

    # --- waiting
    def left(self):
        return self.deadline - time.monotonic()

    def check(self):
        if self.stopping.is_set():
            raise Stop()
        if self.left() <= 0:
            raise Timeout()

    def sleep(self, seconds, wake_on_notify=False):
        """Sleeps (bounded by the deadline); True when a check-sync cut it short."""
        end = min(time.monotonic() + max(seconds, 0), self.deadline)
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return False
            if wake_on_notify and self.notify.is_set():
                return True
            self.stopping.wait(min(left, 0.05))

    # --- network
    def dhcp(self):
        f, o = dhcp_acquire(self.a.interface, self.a.mac, self.model, self.deadline, self.emit,
                            min(self.a.dhcp_timeout, max(self.left(), 0.1)), abort=self.stopping.is_set)
        self.ip = f["yiaddr"]
        mask = o.get(1)
        prefix = ipaddress.ip_network(f"0.0.0.0/{socket.inet_ntoa(mask)}").prefixlen if mask and len(mask) == 4 else 24
        subprocess.run(["ip", "addr", "replace", f"{self.ip}/{prefix}", "dev", self.a.interface], check=True,
                       capture_output=True, timeout=10)
        router = socket.inet_ntoa(o[3][:4]) if len(o.get(3, b"")) >= 4 else None
        seen = {str(c): (v.hex() if c != 66 else option66_text(v)) for c, v in sorted(o.items())
                if c in (1, 3, 6, 15, 42, 66, 150, 54, 51)}
        o150, why = classify_option150(o.get(150))
        o66 = option66_text(o.get(66))
        self.emit("dhcp-bound", ip=self.ip, prefix=prefix, router=router, options=seen,
                  option150=o150, option66=o66, siaddr=f["siaddr"])
        if why is not None and why != "absent":
            self.emit("option-150-malformed", reason=why, raw=o.get(150, b"").hex(), fallback="option 66")
        source = None
        if o150:
            self.tftp, source = o150[0], "option 150"
        elif o66:
            try:
                self.tftp, source = socket.gethostbyname(o66), "option 66"
            except OSError as e:
                self.emit("option-66-unresolved", name=o66, reason=str(e))
        if not self.tftp and f["siaddr"] != "0.0.0.0":
            self.tftp, source = f["siaddr"], "siaddr"
        if not self.tftp:
            raise PhoneError("DHCP gave no TFTP server (no usable option 150, no option 66, no siaddr)")
        self.emit("tftp-server", server=self.tftp, source=source)
        # the lab's router may sit between us and the TFTP server: add a default route (best effort)
        if router:
            subprocess.run(["ip", "route", "replace", "default", "via", router, "dev", self.a.interface],
                           capture_output=True, timeout=10)

    def start_sip(self):
        if not self.a.sip_port:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.ip, self.a.sip_port))
        self.sip_sock = s
        self.emit("sip-listening", address=self.ip, port=s.getsockname()[1])
        threading.Thread(target=self.sip_loop, daemon=True).start()

    def sip_loop(self):
        s = self.sip_sock
        while not self.stopping.is_set():
            try:
                r, _, _ = select.select([s], [], [], 0.2)
                if not r:
                    continue
                data, addr = s.recvfrom(65535)
            except OSError:
                return
            if not self.sip_ready:
                self.emit("sip-ignored", source=f"{addr[0]}:{addr[1]}", reason="booting: no SIP stack yet",
                          first_line=data.split(b"\r\n", 1)[0][:100].decode(errors="replace"))
                continue
            resp, info = answer_sip(data)
            if info.get("kind") == "request" and info.get("method") == "NOTIFY":
                self.emit("notify-received", source=f"{addr[0]}:{addr[1]}", sip_event=info.get("sip_event"),
                          call_id=info.get("call_id"), code=info.get("code"))
            elif info.get("kind") != "response":
                self.emit("sip-request", source=f"{addr[0]}:{addr[1]}",
                          **{k: v for k, v in info.items() if k != "kind"})
            if resp is not None:
                try:
                    s.sendto(resp, addr)                 # rport: back to where it came from
                except OSError as e:
                    self.log(f"SIP answer to {addr}: {e}")
            if info.get("check_sync"):
                self.notify.set()

    def start_http(self):
        if not self.a.http_port:
            return
        srv = http.server.ThreadingHTTPServer((self.ip, self.a.http_port), DeviceWeb)
        srv.daemon_threads = True
        srv.phone = self
        self.http = srv
        self.emit("http-listening", address=self.ip, port=srv.server_address[1])
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def stop_http(self):
        if self.http is not None:
            self.http_down("shutting down")
            self.http.shutdown()                       # serve_forever returns (within its poll interval)
            self.http.server_close()
            self.http = None

    def fetch(self, name):
        """bytes, or raises TftpError / TftpFailed after an event."""
        self.check()
        self.files.append(name)
        self.emit("tftp-request", name=name, server=f"{self.tftp}:{self.a.tftp_port}")
        t0 = time.monotonic()
        try:
            data = tftp_get(self.tftp, self.a.tftp_port, name, bind_ip=self.ip, blksize=self.a.blksize,
                            timeout=self.a.tftp_timeout, retries=self.a.tftp_retries, deadline=self.deadline,
                            abort=self.stopping.is_set)
        except TftpError as e:
            self.emit("tftp-error", name=name, code=e.code, message=e.message)
            raise
        except TftpFailed as e:
            self.emit("tftp-error", name=name, code=None, message=str(e))
            raise
        self.emit("tftp-complete", name=name, bytes=len(data), ms=int((time.monotonic() - t0) * 1000))
        return data

    # --- the boot sequence
    def offer(self, name):
        """Fetches a .loads file (retrying a missing or failed one); returns (name, parsed load)."""
        failures = 0
        while True:
            try:
                data = self.fetch(name)
                load = parse_load_file(data, name)
                self.emit("load-offered", file=name, load=load["load_id"], sbn=load["sbn"],
                          installed=self.state["load"])
                if load["load_id"] is None:
                    raise TftpFailed(f"{name} names no load")
                return load
            except (TftpError, TftpFailed) as e:
                failures += 1
                if failures > self.a.max_retries:
                    raise TftpFailed(f"{name}: {e} ({failures} times)") from None
                self.emit("retry", file=name, reason=str(e), attempt=failures, pause=self.a.retry_interval)
                self.sleep(self.a.retry_interval)

    def stuck_loop(self, name, load):
        """The seed: the phone asks `name` again and again; returns a new load once the file
        offers one it can take, or raises Stuck."""
        pauses = [float(x) for x in self.a.loop_interval.split(",") if x.strip()] or [1.0]
        while True:
            why = bootloader_blocks(load["load_id"], self.state["load"], self.state["bootloader"])
            if why is None:
                return load
            self.loops += 1
            self.emit("stuck-loop", count=self.loops, file=name, offered=load["load_id"],
                      installed=self.state["load"], bootloader=self.state["bootloader"], reason=why)
            if self.loops >= self.a.max_loops:
                raise Stuck(name, load, why)
            self.sleep(pauses[(self.loops - 1) % len(pauses)])
            load = self.offer(name)

    def install(self, name, load):
        """Fetches every .sbn of the load; True when installed, False when a transfer failed."""
        if not load["sbn"]:
            self.emit("load-error", file=name, load=load["load_id"], reason="the load names no .sbn file")
            return False
        got = {}
        for sbn in load["sbn"]:
            if self.notify.is_set():
                return False
            try:
                got[sbn] = len(self.fetch(sbn))
            except (TftpError, TftpFailed) as e:
                self.emit("load-incomplete", load=load["load_id"], file=sbn, reason=str(e))
                return False
        prev = dict(self.state)
        self.state["load"] = load["load_id"]
        self.state["bootloader"] = bootloader_after_install(load["load_id"], self.state["bootloader"])
        self.state.setdefault("history", []).append({"load": load["load_id"], "files": got})
        self.save_state()
        self.emit("installed", load=load["load_id"], previous=prev.get("load"), bootloader=self.state["bootloader"],
                  previous_bootloader=prev.get("bootloader"), files=list(got))
        return True

    def take_load(self, name, load):
        """'installed' or 'retry' (the whole load again later) for a load that is not installed."""
        load = self.stuck_loop(name, load)
        if load["load_id"] == self.state["load"]:
            return "current"
        if self.install(name, load):
            return "installed"
        return "retry"

    def config(self):
        """(file name, bytes) of SEP<MAC>.cnf.xml or XMLDefault.cnf.xml, or (None, None)."""
        for name in (sep_name(self.a.mac), "XMLDefault.cnf.xml"):
            failures = 0
            while True:
                try:
                    return name, self.fetch(name)
                except TftpError as e:
                    if e.code == 1:
                        break                            # not there: the next one
                    failures += 1
                except TftpFailed:
                    failures += 1
                if failures > self.a.max_retries:
                    break
                self.sleep(self.a.retry_interval)
        return None, None

    def boot(self):
        """One boot from the term file on: 'registered', 'regfail:<reason>', or 'restart'."""
        self.notify.clear()
        if self.state["load"]:
            self.http_ready = True                      # the installed load runs while the phone polls TFTP
        load = self.offer(self.term)
        name = self.term
        pinned = self.state.get("config_load")
        if pinned and load["load_id"] != pinned:
            # the configured load wins over the default one (the phone remembers it)
            name = f"{pinned}.loads"
            load = self.offer(name)
        if load["load_id"] != self.state["load"]:
            r = self.take_load(name, load)
            if r == "installed":
                self.reboot("new load", load=self.state["load"])
                return "restart"
            if r == "retry":
                return "notify" if self.notify.is_set() else "retry"
        self.emit("load-current", load=self.state["load"], file=name)
        self.sip_ready = self.http_ready = True
        if self.notify.is_set():
            return "notify"
        cname, data = self.config()
        if cname is None:
            return "regfail:no configuration file (neither SEP nor XMLDefault)"
        try:
            cfg = parse_config(data)
        except ValueError as e:
            self.emit("config-error", file=cname, reason=str(e))
            return f"regfail:{cname} is not a usable config ({e})"
        line = cfg["line"] or {}
        self.dn = line.get("name")
        self.emit("config-fetched", file=cname, bytes=len(data), load_information=cfg["load_information"],
                  protocol=cfg["protocol"], line=line.get("name"), auth_name=line.get("auth_name"),
                  proxy=cfg["proxy"], sip_port=cfg["sip_port"],
                  password_length=len(line["password"]) if cfg["line"] else None)
        want = cfg["load_information"]
        if want != self.state.get("config_load"):
            self.state["config_load"] = want
            self.save_state()
        if want and want != self.state["load"]:
            self.emit("upgrade", load=want, installed=self.state["load"], reason=f"{cname} loadInformation")
            wname = f"{want}.loads"
            wload = self.offer(wname)
            r = self.take_load(wname, wload)
            if r == "installed":
                self.reboot("new load", load=self.state["load"])
                return "restart"
            if r == "retry":
                return "notify" if self.notify.is_set() else "retry"
        proto, _ = load_version(self.state["load"])
        if not cfg["line"] or not line.get("name"):
            return f"regfail:{cname} has no SIP line"
        if proto == "SCCP":
            return f"regfail:load {self.state['load']} is SCCP: it cannot register with a SIP configuration"
        if len(line["password"]) > self.a.max_password:
            return (f"regfail:password too long ({len(line['password'])} characters, "
                    f"the phone takes at most {self.a.max_password})")
        if not line.get("auth_name"):
            return f"regfail:{cname} line {line.get('name')} has no authName"
        self.registered = {"line": line.get("name"), "auth_name": line.get("auth_name"), "proxy": cfg["proxy"],
                           "sip_port": cfg["sip_port"], "load": self.state["load"],
                           "password_length": len(line["password"]), "config": cname}
        return "registered"

    def run(self):
        if self.a.interface:
            self.dhcp()
        else:
            self.ip = self.a.bind
            self.emit("tftp-server", server=self.tftp, source="--tftp")
        self.start_sip()
        self.start_http()
        retries = restarts = 0
        while True:
            r = self.boot()
            if r == "restart":
                restarts += 1
                if restarts > self.a.max_boots:
                    raise PhoneError(f"{restarts} reboots without registering")
                continue
            if r == "notify":
                self.notifies += 1
                self.reboot("check-sync")
                continue
            if r == "retry":
                retries += 1
                if retries > self.a.max_retries:
                    raise PhoneError(f"the load could not be fetched completely ({retries} attempts)")
                self.reboot("incomplete load", attempt=retries, pause=self.a.retry_interval)
                self.sleep(self.a.retry_interval, wake_on_notify=True)
                continue
            retries = 0
            if r.startswith("regfail:"):
                reason = r[len("regfail:"):]
                self.emit("registration-failed", reason=reason, load=self.state["load"])
                wait = self.a.reset_unregistered
                if wait <= 0:
                    return EXIT_REGFAIL, "registration-failed", reason
                # no call manager: the phone resets after a while and reads TFTP again (step 7)
                cut = self.left() - 0.05 < wait        # the overall --timeout ends the wait first
                try:
                    woke = self.sleep(min(wait, self.left() - 0.05), wake_on_notify=True)
                except Timeout:
                    woke, cut = False, True
                if not woke and cut:
                    return EXIT_REGFAIL, "registration-failed", reason
                restarts += 1
                if restarts > self.a.max_boots:
                    raise PhoneError(f"{restarts} reboots without registering")
                if woke:
                    self.notifies += 1
                    self.reboot("check-sync")
                else:
                    self.reboot("unregistered", after=wait, failure=reason)
                continue
            self.emit("registered", **self.registered)
            if self.a.max_notify and self.notifies >= self.a.max_notify:
                return EXIT_REGISTERED, "registered", None
            if self.a.linger > 0 and (self.sip_sock is not None or self.http is not None):
                try:                                     # the overall --timeout ends a linger quietly
                    woke = self.sleep(min(self.a.linger, self.left() - 0.05), wake_on_notify=True)
                except Timeout:
                    woke = False
                if woke:
                    self.notifies += 1
                    self.reboot("check-sync")
                    continue
            return EXIT_REGISTERED, "registered", None


class Stuck(Exception):
    def __init__(self, name, load, why):
        super().__init__(why)
        self.name, self.load, self.why = name, load, why


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="CP-7906G", choices=sorted(MODELS))
    p.add_argument("--mac", default=None,
                   help="the phone's MAC (SEP<MAC>.cnf.xml, DHCP chaddr); default: --interface's, else "
                        "00:0B:82:01:FC:42")
    p.add_argument("--state", required=True, help="JSON state file: installed load, bootloader (made when missing)")
    p.add_argument("--initial-load", default="SCCP11.8-3-0S", help="installed load when --state does not exist yet")
    p.add_argument("--initial-bootloader", default=None, help="bootloader when --state does not exist yet")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--interface", help="get an address by DHCP on this interface (run inside its namespace)")
    g.add_argument("--tftp", help="TFTP server address: skip DHCP")
    p.add_argument("--bind", default="127.0.0.1", help="the phone's own address with --tftp (default 127.0.0.1)")
    p.add_argument("--tftp-port", type=int, default=69)
    p.add_argument("--blksize", type=int, default=1468)
    p.add_argument("--tftp-timeout", type=float, default=1.0, help="seconds before a TFTP retransmission")
    p.add_argument("--tftp-retries", type=int, default=5, help="TFTP retransmissions in a row before a transfer fails")
    p.add_argument("--dhcp-timeout", type=float, default=30.0)
    p.add_argument("--retry-interval", type=float, default=10.0,
                   help="pause before asking a missing file / a whole failed load again")
    p.add_argument("--max-retries", type=int, default=5, help="of those, at most this many in a row")
    p.add_argument("--loop-interval", default=SEED_LOOP,
                   help="pauses (s, comma-separated, cycled) between term file requests when stuck "
                        f"(default: the seed's {SEED_LOOP})")
    p.add_argument("--max-loops", type=int, default=6, help="term file requests when stuck before exit 2")
    p.add_argument("--max-boots", type=int, default=20, help="reboots before giving up (exit 1)")
    p.add_argument("--max-password", type=int, default=15, help="longest SIP password the phone accepts")
    p.add_argument("--sip-port", type=int, default=5060, help="UDP port for SIP (0 = no SIP)")
    p.add_argument("--linger", type=float, default=0.0,
                   help="after registering, wait this long for a NOTIFY check-sync before exiting 0")
    p.add_argument("--max-notify", type=int, default=0,
                   help="exit 0 once registered again after this many check-sync reboots (0 = no limit)")
    p.add_argument("--http-port", type=int, default=0,
                   help="TCP port of the web server (GET /DeviceInformationX) on the phone's address (0 = none)")
    p.add_argument("--reset-unregistered", type=float, default=0.0,
                   help="after a failed registration, reset after this many seconds and boot again "
                        "(0 = exit 3 at once)")
    p.add_argument("--reboot-time", type=float, default=0.0,
                   help="seconds a reboot takes (no SIP, no HTTP) before the next boot step")
    p.add_argument("--timeout", type=float, default=600.0, help="bound on the whole run (exit 1)")
    a = p.parse_args(argv)
    if a.max_loops < 1 or a.max_retries < 0 or a.timeout <= 0:
        p.error("--max-loops >= 1, --max-retries >= 0, --timeout > 0")
    if not 0 <= a.http_port <= 65535 or a.reset_unregistered < 0 or a.reboot_time < 0:
        p.error("--http-port 0-65535, --reset-unregistered >= 0, --reboot-time >= 0")
    try:
        [float(x) for x in a.loop_interval.split(",") if x.strip()]
    except ValueError:
        p.error("--loop-interval: seconds, comma-separated")
    if a.mac is None and a.interface:
        try:
            with open(f"/sys/class/net/{a.interface}/address") as f:
                a.mac = f.read().strip()
        except OSError as e:
            p.error(f"--interface {a.interface}: {e}")
    a.mac = a.mac or "00:0B:82:01:FC:42"
    if len(re.sub(r"[^0-9A-Fa-f]", "", a.mac)) != 12:
        p.error(f"--mac {a.mac}: not a MAC address")
    return a


def main(argv=None):
    a = parse_args(argv)
    phone = Phone(a)

    def on_signal(signum, _frame):
        phone.stopping.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code, result, reason = EXIT_ERROR, "error", None
    try:
        code, result, reason = phone.run()
    except Stuck as e:
        code, result, reason = EXIT_STUCK, "stuck", f"asked {e.name} {phone.loops} times: {e.why}"
    except Timeout:
        code, result, reason = EXIT_ERROR, "timeout", f"--timeout {a.timeout}s passed"
    except Stop:
        code, result, reason = (EXIT_REGISTERED if phone.registered else EXIT_ERROR), "stopped", "signal"
    except (PhoneError, TftpError, OSError, subprocess.SubprocessError) as e:
        code, result, reason = EXIT_ERROR, "error", str(e)
    phone.stopping.set()
    try:
        phone.stop_http()                               # before the status line: no request after it
    except OSError as e:
        phone.log(f"HTTP server shutdown: {e}")
    phone.emit("status", result=result, exit=code, reason=reason, load=phone.state.get("load"),
               bootloader=phone.state.get("bootloader"), ip=phone.ip, tftp=phone.tftp, files=phone.files,
               notifies=phone.notifies, registered=phone.registered)
    if phone.sip_sock is not None:
        phone.sip_sock.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
