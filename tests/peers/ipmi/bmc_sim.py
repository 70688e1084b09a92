#!/usr/bin/python3
"""Supermicro X8SIL-F BMCs for labctl's tests and benchmarks: OpenIPMI's ipmi_sim (package
`openipmi`), one process per BMC, each on its own loopback UDP port, each in its own directory.

    import bmc_sim
    with bmc_sim.start() as bmc:                       # user 2 ADMIN/ADMIN, firmware 2.50
        bmc.ipmitool("mc", "info").stdout              # Manufacturer ID 10876, Product ID 2312
        bmc.ipmitool("chassis", "power", "cycle")
        bmc.wait_power_log(["power 0", "power 1"])     # ipmi_sim's cycle: off, then on 1 s later
        bmc.set_sensor(bmc_sim.FAN1, 10)               # raw 10 -> 750 RPM, over the console
        bmc.restart(firmware="2.60")                   # same port, same state dir
    with bmc_sim.start_many(50) as group:              # consecutive ports when it can get them
        subprocess.run(["bmc-info", "-h", group.freeipmi_hosts(), ...])

Python 3 standard library only. Every BMC is stopped by PID (SIGTERM to its process group --
ipmi_sim runs in a session of its own, so the group is just it and its chassis script -- then
SIGKILL after `grace` seconds); `with`, stop(), stop_all() and an atexit hook (plus a SIGTERM
handler when none was set) make sure none is left behind; with `die_with_parent` (default)
the kernel also kills an ipmi_sim whose starting thread dies (PR_SET_PDEATHSIG), so even a
SIGKILLed test leaves nothing running. Start BMCs from the main thread (or a thread that lives
as long as they do).

Per BMC, in DIR (a fresh temp dir unless given):
  lan.conf     generated: `startlan 1` on 127.0.0.1:PORT, priv_limit admin, auths none md2 md5
               straight for every level, a GUID, the users, `chassis_control` -> chassis.sh, and a
               `console 127.0.0.1 CPORT` line (TCP) for run-time emu commands (set_sensor).
  bmc.emu      generated: mc_add with the firmware asked for (Get Device ID: device 0x20, rev 1,
               manufacturer 10876 = 0x2A7C, product 0x0908, device support 0xbf), the SEL, and
               the sensors: sensor_add + sensor_set_threshold + sensor_set_value + a Full Sensor
               Record (IPMI 2.0 section 43.1) via main_sdr_add for each.
  state/       ipmi_sim -s: what ipmi_sim persists (state/ipmi_sim/bmcNAME/...), see below.
  power        the chassis power state (1/0), written by chassis.sh; `power=` sets it at start.
  chassis.log  one line per chassis control action, "<unix time> power 0" etc. (chassis.sh).
  log          ipmi_sim's stdout and stderr.

What survives restart() (state/ipmi_sim/NAME/ and DIR; users, power and chassis.log are checked by
test_bmc_sim.py, the SEL and lanparm were checked by hand):
  - users (users.mc20): names, passwords, enable, privileges changed over IPMI (`ipmitool user set
    password 2 NEWPASS`). ipmi_sim writes the file from its 1 s tick, not at once: restart()
    waits `settle` (1.1 s) first. Once users.mc20 exists, ipmi_sim ignores lan.conf's `user`
    lines, so users= / anonymous= of restart() only count with fresh=True (a new state dir);
  - the SEL (sel.20), e.g. events from set_sensor(..., event=True);
  - LAN parameters that ipmi_sim keeps itself (lanparm.mc20.1: cipher suite privilege levels);
    IP address, netmask, gateway, MAC set with `ipmitool lan set` are NOT kept (nor applied:
    ipmi_sim has no lancontrol script here), and `lan set 1 snmp ...` gets no answer at all;
  - power state and chassis.log (files of chassis.sh in DIR).
What does not: sensor values set with set_sensor() (back to the emu's), the firmware version and
everything else in bmc.emu (regenerated on each start: that is how a flash test changes the
version), the SDR repository (mc_add without persist_sdr starts it empty and bmc.emu fills it, so
SDRs never pile up across restarts), open sessions.

Sensors (DEFAULT_SENSORS; number, name: raw -> value, thresholds as values):
  0x01 CPU Temp     1 degree C per count (M 1):  40 -> 40 C;  LNR 5  LC 7  LNC 10  UNC 80 UC 85 UNR 90
  0x02 System Temp  1 degree C per count:        32 -> 32 C;  LNR 5  LC 7  LNC 10  UNC 75 UC 77 UNR 79
  0x41 FAN1         75 RPM per count (M 75):     48 -> 3600 RPM;   LNR 300 LC 450 LNC 600
  0x42 FAN2                                      47 -> 3525 RPM;   same
  0x43 FAN3                                     250 -> 18750 RPM (98% of the 19125 top); same
  0x30 12V          0.06 V per count (M 6, R -2): 200 -> 12.00 V;  LNR 10.5 LC 10.8 LNC 11.1
                                                                   UNC 12.9 UC 13.2 UNR 13.5
Each is a threshold sensor (event/reading type 01h) with a Full Sensor Record: owner 0x20 LUN 0,
unsigned, linear, thresholds readable and settable, sensor reading range 0..255 raw.

Known ipmi_sim quirks (shared/PEERS.md): it does not answer the sessionless Get Channel Cipher
Suites, so ipmitool always gets `-C 3` (cipher suites 0, 1, 2, 3, 6 work; 15-17 do not, although
`lan print` lists 1-15); cipher suites cannot be configured in lan.conf. Its Open Session Response
carries maximum privilege 0, so FreeIPMI needs `-W opensesspriv` (freeipmi() adds it). It has 63
user slots (an X8SIL-F has 10). FreeIPMI's SDR cache is per host:port; freeipmi() points it
into DIR.
"""
import atexit
import collections
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CHASSIS_SH = os.path.join(HERE, "chassis.sh")
HOST = "127.0.0.1"
IPMI_SIM = os.environ.get("IPMI_SIM", "ipmi_sim")
IPMITOOL = os.environ.get("IPMITOOL", "ipmitool")

MANUFACTURER_ID = 0x002A7C      # 10876, Super Micro Computer Inc.
PRODUCT_ID = 0x0908             # 2312, what the X8SIL-F's BMC answers
DEVICE_ID = 0x20
DEVICE_REVISION = 0x01
DEVICE_SUPPORT = 0xBF           # chassis, IPMB event gen + rcv, FRU, SEL, SDR repository, sensor (no bridge)
DEFAULT_FIRMWARE = "2.50"
BMC_IPMB = 0x20

PRIVS = ("callback", "user", "operator", "admin")
AUTHS = "none md2 md5 straight"


# ----------------------------------------------------------------------------------------------
# users

class User:
    """One lan.conf `user` line. num 2..63 (1 is the anonymous/null user: see start(anonymous=))."""

    def __init__(self, num, name, password, enabled=True, priv="admin", max_sessions=10):
        if not 1 <= int(num) <= 63:
            raise ValueError(f"user number {num}: 1..63")
        if priv not in PRIVS:
            raise ValueError(f"privilege {priv!r}: one of {PRIVS}")
        for what, v in (("name", name), ("password", password)):
            if '"' in v or "\n" in v:
                raise ValueError(f"user {what} {v!r}: no quotes or newlines")
        if len(name) > 16 or len(password) > 20:
            raise ValueError("user name at most 16 characters, password at most 20")
        self.num, self.name, self.password = int(num), name, password
        self.enabled, self.priv, self.max_sessions = bool(enabled), priv, int(max_sessions)

    def line(self):
        return (f'user {self.num} {"true" if self.enabled else "false"} "{self.name}" "{self.password}" '
                f"{self.priv} {self.max_sessions} {AUTHS}")

    def __repr__(self):
        return f"User({self.num}, {self.name!r}, {self.password!r}, enabled={self.enabled}, priv={self.priv!r})"


DEFAULT_USERS = (User(2, "ADMIN", "ADMIN", True, "admin"),)


# ----------------------------------------------------------------------------------------------
# sensors: threshold sensors with Full Sensor Records (IPMI 2.0, table 43-1)

TEMPERATURE, VOLTAGE, FAN = 0x01, 0x02, 0x04                       # sensor type codes
UNIT_DEGREES_C, UNIT_VOLTS, UNIT_RPM = 1, 4, 18                    # base unit codes
ENTITY_PROCESSOR, ENTITY_SYSTEM_BOARD, ENTITY_FAN = 0x03, 0x07, 0x1D
THRESHOLDS = ("lnc", "lc", "lnr", "unc", "uc", "unr")              # bit 0..5 in every mask
# event mask bits per threshold: going low for the lower ones, going high for the upper ones
EVENT_BIT = {"lnc": 0, "lc": 2, "lnr": 4, "unc": 7, "uc": 9, "unr": 11}


def _signed(v, bits):
    if not -(1 << (bits - 1)) <= v < (1 << (bits - 1)):
        raise ValueError(f"{v} does not fit {bits} signed bits")
    return v & ((1 << bits) - 1)


class Sensor:
    """A threshold-based analog sensor, unsigned raw byte, linear:
        value = (m * raw + b * 10**b_exp) * 10**r_exp
    thresholds: raw values, keys from THRESHOLDS (a missing key = not supported)."""

    def __init__(self, number, name, stype, unit, raw, m=1, b=0, r_exp=0, b_exp=0, thresholds=None,
                 entity=ENTITY_SYSTEM_BOARD, instance=1, nominal=None):
        if not 1 <= number <= 0xFE:
            raise ValueError("sensor number 1..254 (0 is ipmi_sim's watchdog)")
        if len(name.encode()) > 16:
            raise ValueError(f"sensor name {name!r}: at most 16 bytes")
        self.number, self.name, self.stype, self.unit = number, name, stype, unit
        self.raw, self.m, self.b, self.r_exp, self.b_exp = raw, m, b, r_exp, b_exp
        self.thresholds = dict(thresholds or {})
        for k, v in self.thresholds.items():
            if k not in THRESHOLDS or not 0 <= v <= 255:
                raise ValueError(f"threshold {k}={v}")
        self.entity, self.instance = entity, instance
        self.nominal = raw if nominal is None else nominal

    def value(self, raw=None):
        """Engineering value of a raw reading (the current one by default), as ipmitool shows it."""
        raw = self.raw if raw is None else raw
        return (self.m * raw + self.b * 10 ** self.b_exp) * 10 ** self.r_exp

    def raw_for(self, value):
        """The raw byte closest to an engineering value."""
        raw = round((value / 10 ** self.r_exp - self.b * 10 ** self.b_exp) / self.m)
        if not 0 <= raw <= 255:
            raise ValueError(f"{value} is outside {self.name}'s range {self.value(0)}..{self.value(255)}")
        return raw

    def threshold_value(self, key):
        return self.value(self.thresholds[key]) if key in self.thresholds else None

    def mask(self):
        return sum(1 << i for i, k in enumerate(THRESHOLDS) if k in self.thresholds)

    def events(self):
        return sum(1 << EVENT_BIT[k] for k in self.thresholds)

    def sdr(self):
        """The Full Sensor Record (type 01h) as main_sdr_add takes it: header with record id 0
        (ipmi_sim assigns ids), then bytes 6.. of table 43-1."""
        mask = self.mask()
        ev = self.events()
        lower = sum(1 << (4 + i) for i, k in enumerate(("lnc", "lc", "lnr")) if k in self.thresholds)
        upper = sum(1 << (4 + i) for i, k in enumerate(("unc", "uc", "unr")) if k in self.thresholds)
        m, b = _signed(self.m, 10), _signed(self.b, 10)
        t = self.thresholds
        normal_min = t.get("lnc", 0)
        normal_max = t.get("unc", 0xFF)
        body = bytes([
            BMC_IPMB,                     # 6   sensor owner id
            0x00,                         # 7   channel 0, LUN 0
            self.number,                  # 8   sensor number
            self.entity,                  # 9   entity id
            self.instance,                # 10  entity instance (physical)
            0x7F,                         # 11  init: scanning, events, thresholds, hysteresis, type; ev+scan on
            0x48,                         # 12  auto re-arm, no hysteresis, thresholds settable, per-threshold events
            self.stype,                   # 13  sensor type
            0x01,                         # 14  event/reading type: threshold
            ev & 0xFF, (ev >> 8) | lower,   # 15-16 assertion events, lower threshold reading mask
            ev & 0xFF, (ev >> 8) | upper,   # 17-18 deassertion events, upper threshold reading mask
            mask, mask,                   # 19-20 readable, settable thresholds
            0x00,                         # 21  units 1: unsigned, no rate, no modifier, not %
            self.unit,                    # 22  base unit
            0x00,                         # 23  modifier unit
            0x00,                         # 24  linearization: linear
            m & 0xFF, (m >> 8) << 6,      # 25-26 M, tolerance 0
            b & 0xFF, (b >> 8) << 6,      # 27-28 B, accuracy 0
            0x01,                         # 29  accuracy 0, exp 0, direction input
            (_signed(self.r_exp, 4) << 4) | _signed(self.b_exp, 4),   # 30 R exp, B exp
            0x07,                         # 31  nominal, normal max, normal min specified
            self.nominal,                 # 32  nominal reading
            normal_max,                   # 33  normal maximum
            normal_min,                   # 34  normal minimum
            0xFF, 0x00,                   # 35-36 sensor maximum, minimum reading
            t.get("unr", 0), t.get("uc", 0), t.get("unc", 0),         # 37-39 upper thresholds
            t.get("lnr", 0), t.get("lc", 0), t.get("lnc", 0),         # 40-42 lower thresholds
            0x00, 0x00,                   # 43-44 positive, negative hysteresis
            0x00, 0x00,                   # 45-46 reserved
            0x00,                         # 47  OEM
        ])
        ident = self.name.encode("latin-1")
        body += bytes([0xC0 | len(ident)]) + ident   # 48- id string: 8-bit ASCII + Latin 1
        return bytes([0x00, 0x00, 0x51, 0x01, len(body)]) + body

    def emu(self):
        ev = self.events()
        bits = format(ev, "015b")
        t = self.thresholds
        thr = " ".join(f"0x{t.get(k, 0):02x}" for k in reversed(THRESHOLDS))     # value5 .. value0
        lines = [
            f"# {self.name}: sensor 0x{self.number:02x}, raw {self.raw} = {self.value():g}",
            f"sensor_add 0x{BMC_IPMB:02x} 0 0x{self.number:02x} 0x{self.stype:02x} 0x01",
            f"sensor_set_threshold 0x{BMC_IPMB:02x} 0 0x{self.number:02x} settable "
            f"{format(self.mask(), '06b')} {thr}",
            f"sensor_set_event_support 0x{BMC_IPMB:02x} 0 0x{self.number:02x} enable scanning per-state "
            f"{bits} {bits} {bits} {bits}",
            f"sensor_set_value 0x{BMC_IPMB:02x} 0 0x{self.number:02x} 0x{self.raw:02x} 0",
            f"main_sdr_add 0x{BMC_IPMB:02x} " + " ".join(f"0x{x:02x}" for x in self.sdr()),
        ]
        return "\n".join(lines)

    def copy(self, **changes):
        s = Sensor(self.number, self.name, self.stype, self.unit, self.raw, self.m, self.b, self.r_exp,
                   self.b_exp, self.thresholds, self.entity, self.instance, self.nominal)
        for k, v in changes.items():
            setattr(s, k, v)
        return s

    def __repr__(self):
        return f"Sensor(0x{self.number:02x} {self.name!r} raw {self.raw} = {self.value():g})"


# Sensor numbers (also the order of `ipmitool sdr elist`)
CPU_TEMP, SYSTEM_TEMP, FAN1, FAN2, FAN3, P12V = 0x01, 0x02, 0x41, 0x42, 0x43, 0x30

# X8SIL-F-like sensors. Scaling: temperatures 1 degree C per count; fans 75 RPM per count
# (raw 255 = 19125 RPM); 12V 0.06 V per count (M 6, R exp -2: raw 200 = 12.00 V).
DEFAULT_SENSORS = (
    Sensor(CPU_TEMP, "CPU Temp", TEMPERATURE, UNIT_DEGREES_C, raw=40, entity=ENTITY_PROCESSOR,
           thresholds=dict(lnr=5, lc=7, lnc=10, unc=80, uc=85, unr=90)),
    Sensor(SYSTEM_TEMP, "System Temp", TEMPERATURE, UNIT_DEGREES_C, raw=32,
           thresholds=dict(lnr=5, lc=7, lnc=10, unc=75, uc=77, unr=79)),
    Sensor(FAN1, "FAN1", FAN, UNIT_RPM, raw=48, m=75, entity=ENTITY_FAN, instance=1,
           thresholds=dict(lnr=4, lc=6, lnc=8)),                                  # 3600 RPM
    Sensor(FAN2, "FAN2", FAN, UNIT_RPM, raw=47, m=75, entity=ENTITY_FAN, instance=2,
           thresholds=dict(lnr=4, lc=6, lnc=8)),                                  # 3525 RPM
    Sensor(FAN3, "FAN3", FAN, UNIT_RPM, raw=250, m=75, entity=ENTITY_FAN, instance=3, nominal=48,
           thresholds=dict(lnr=4, lc=6, lnc=8)),                  # 18750 RPM, near the 19125 max
    Sensor(P12V, "12V", VOLTAGE, UNIT_VOLTS, raw=200, m=6, r_exp=-2,
           thresholds=dict(lnr=175, lc=180, lnc=185, unc=215, uc=220, unr=225)),  # 12.00 V
)


# ----------------------------------------------------------------------------------------------
# ports

_reserved = set()
_lock = threading.Lock()


def _udp_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _tcp_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(kind="udp"):
    """A loopback port that is free now and not handed out before by this process."""
    with _lock:
        for _ in range(200):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
            try:
                s.bind((HOST, 0))
                port = s.getsockname()[1]
            finally:
                s.close()
            if port not in _reserved and (_udp_free(port) and _tcp_free(port)):
                _reserved.add(port)
                return port
    raise RuntimeError("no free loopback port")


def free_port_block(n, lo=20000, hi=60000, tries=300):
    """n consecutive free UDP ports (so FreeIPMI can take them as one range), or None."""
    rnd = random.Random()
    with _lock:
        for _ in range(tries):
            base = rnd.randrange(lo, hi - n)
            ports = range(base, base + n)
            if all(p not in _reserved and _udp_free(p) for p in ports):
                _reserved.update(ports)
                return list(ports)
    return None


def _release(port):
    with _lock:
        _reserved.discard(port)


def freeipmi_hosts(ports, host=HOST):
    """FreeIPMI hostrange for BMCs on one host: '127.0.0.1:[9001-9020,9031]'."""
    ports = sorted(ports)
    parts, i = [], 0
    while i < len(ports):
        j = i
        while j + 1 < len(ports) and ports[j + 1] == ports[j] + 1:
            j += 1
        parts.append(str(ports[i]) if i == j else f"{ports[i]}-{ports[j]}")
        i = j + 1
    if len(ports) == 1:
        return f"{host}:{ports[0]}"
    return f"{host}:[{','.join(parts)}]"


# ----------------------------------------------------------------------------------------------
# process bookkeeping

_live = set()
_hooks_installed = False


def _install_hooks():
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(stop_all)
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                def _on_term(signum, frame):
                    stop_all()
                    sys.exit(128 + signum)
                signal.signal(signal.SIGTERM, _on_term)
        except (ValueError, OSError):
            pass


def stop_all():
    """Stops every BMC this process started and has not stopped yet."""
    for bmc in list(_live):
        try:
            bmc.stop()
        except Exception:
            pass


def _pdeathsig():
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)             # PR_SET_PDEATHSIG
    except Exception:
        pass


def _checksum(data):
    return (-sum(data)) & 0xFF


def _auth_caps_request(seq=1):
    """RMCP + IPMI 1.5 sessionless Get Channel Authentication Capabilities (channel E, admin)."""
    rq = [0x81, (seq & 0x3F) << 2, 0x38, 0x0E, 0x04]
    msg = [BMC_IPMB, 0x06 << 2, _checksum([BMC_IPMB, 0x06 << 2])] + rq + [_checksum(rq)]
    return bytes([0x06, 0x00, 0xFF, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, len(msg)] + msg)


def ping(port, host=HOST, timeout=0.2):
    """True when the BMC answers a Get Channel Authentication Capabilities with completion 0."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(_auth_caps_request(), (host, port))
        data, _ = s.recvfrom(512)
        # RMCP(4) + session hdr(10) + rsAddr netFn chk rqAddr seq cmd = 20, then completion code
        return len(data) > 20 and data[19] == 0x38 and data[20] == 0x00
    except OSError:
        return False
    finally:
        s.close()


# ----------------------------------------------------------------------------------------------
# one BMC

PowerEvent = collections.namedtuple("PowerEvent", "time action")


def parse_firmware(fw):
    """'2.50' -> (0x02, 0x50): major binary (0..127), minor two BCD digits ('2.6' = 2.60)."""
    try:
        major, minor = str(fw).split(".")
        major = int(major)
        if not (minor.isdigit() and 1 <= len(minor) <= 2 and 0 <= major <= 0x7F):
            raise ValueError
    except ValueError:
        raise ValueError(f"firmware {fw!r}: MAJOR.MINOR, major 0..127, minor 1-2 decimal digits") from None
    minor = minor.ljust(2, "0")
    return major, int(minor[0]) << 4 | int(minor[1])


class Bmc:
    """One ipmi_sim. Attributes: host, port, console_port, dir, pid, firmware, users, sensors,
    name, user / password (what ipmitool() logs in with by default)."""

    def __init__(self, port=None, firmware=DEFAULT_FIRMWARE, users=None, anonymous=False,
                 anonymous_password="", anonymous_priv="admin", sensors=None, directory=None, name=None, power=1,
                 user=None, password=None, keep=None, die_with_parent=True, grace=3.0, chassis_script=True):
        # chassis_script=False: no chassis_control line. Get Chassis Status then answers from the
        # simulator itself (power off) instead of running chassis.sh once per request -- a shell
        # start per status query that a real BMC does not have (benchmarks); power control fails.
        self.chassis_script = bool(chassis_script)
        self.host = HOST
        self._own_port = port is None
        self.port = port if port is not None else free_port("udp")
        self.console_port = free_port("tcp")
        self.firmware = firmware
        parse_firmware(firmware)
        self.users = list(users if users is not None else DEFAULT_USERS)
        nums = [u.num for u in self.users]
        if len(set(nums)) != len(nums) or 1 in nums:
            raise ValueError("user numbers must be distinct and not 1 (use anonymous=)")
        if anonymous_priv not in PRIVS:
            raise ValueError(f"anonymous_priv {anonymous_priv!r}: one of {PRIVS}")
        self.anonymous, self.anonymous_password = bool(anonymous), anonymous_password
        self.anonymous_priv = anonymous_priv
        self.sensors = [s.copy() for s in (sensors if sensors is not None else DEFAULT_SENSORS)]
        self._own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="labctl-bmcsim-")
        os.makedirs(self.dir, exist_ok=True)
        self.name = name or f"bmc{self.port}"
        self.power = power
        first = next((u for u in self.users if u.enabled), None)
        self.user = user if user is not None else (first.name if first else "")
        self.password = password if password is not None else (first.password if first else "")
        self.keep = keep if keep is not None else bool(os.environ.get("BMC_SIM_KEEP"))
        self.die_with_parent = die_with_parent
        self.grace = grace
        self.proc = None

    # -- files
    @property
    def state_dir(self):
        return os.path.join(self.dir, "state")

    @property
    def persist_dir(self):
        """Where ipmi_sim keeps users.mc20, lanparm.mc20.1, sel.20, sdr.20.main."""
        return os.path.join(self.state_dir, "ipmi_sim", self.name)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def lan_conf(self):
        guid = f"{0x4C414243:08x}{self.port:08x}{random.Random(self.port).getrandbits(64):016x}"
        lines = [
            "# generated by tests/peers/ipmi/bmc_sim.py",
            f'name "{self.name}"',
            f"set_working_mc 0x{BMC_IPMB:02x}",
            "  startlan 1",
            f"    addr {self.host} {self.port}",
            "    priv_limit admin",
            f"    allowed_auths_callback {AUTHS}",
            f"    allowed_auths_user {AUTHS}",
            f"    allowed_auths_operator {AUTHS}",
            f"    allowed_auths_admin {AUTHS}",
            f"    guid {guid}",
            "  endlan",
            *([f'  chassis_control "/bin/sh {CHASSIS_SH} {self.dir}"'] if self.chassis_script else []),
            f"  console {self.host} {self.console_port}",
            "  #    num enabled name password max-priv max-sessions auths",
            f'  user 1 {"true" if self.anonymous else "false"} "" "{self.anonymous_password}" '
            f"{self.anonymous_priv} 10 {AUTHS}",
        ]
        lines += ["  " + u.line() for u in sorted(self.users, key=lambda u: u.num)]
        return "\n".join(lines) + "\n"

    def emu(self):
        major, minor = parse_firmware(self.firmware)
        lines = [
            "# generated by tests/peers/ipmi/bmc_sim.py: a Supermicro X8SIL-F BMC",
            f"mc_setbmc 0x{BMC_IPMB:02x}",
            "#      IPMB DevID Has-dev-SDRs DevRev MajFW MinFW(BCD) DevSupport Manuf(IANA) Product",
            f"mc_add 0x{BMC_IPMB:02x} 0x{DEVICE_ID:02x} no-device-sdrs 0x{DEVICE_REVISION:02x} "
            f"0x{major:02x} 0x{minor:02x} 0x{DEVICE_SUPPORT:02x} 0x{MANUFACTURER_ID:06x} 0x{PRODUCT_ID:04x}",
            f"sel_enable 0x{BMC_IPMB:02x} 1000 0x0a",
        ]
        lines += [s.emu() for s in self.sensors]
        lines.append(f"mc_enable 0x{BMC_IPMB:02x}")
        return "\n".join(lines) + "\n"

    def _write_files(self):
        os.makedirs(self.state_dir, exist_ok=True)
        with open(os.path.join(self.dir, "lan.conf"), "w") as f:
            f.write(self.lan_conf())
        with open(os.path.join(self.dir, "bmc.emu"), "w") as f:
            f.write(self.emu())
        pf = os.path.join(self.dir, "power")
        if self.power is not None and not os.path.exists(pf):
            with open(pf, "w") as f:
                f.write(f"{1 if self.power else 0}\n")

    # -- life cycle
    def spawn(self):
        """Starts ipmi_sim without waiting for it to answer (start() waits)."""
        if self.running():
            raise RuntimeError(f"{self.name} already running (pid {self.pid})")
        if shutil.which(IPMI_SIM) is None:
            raise RuntimeError(f"{IPMI_SIM} not found (Debian package openipmi)")
        self._write_files()
        _install_hooks()
        with open(os.path.join(self.dir, "log"), "ab") as out:
            self.proc = subprocess.Popen(
                [IPMI_SIM, "-n", "-c", os.path.join(self.dir, "lan.conf"), "-f", os.path.join(self.dir, "bmc.emu"),
                 "-s", self.state_dir],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.dir,
                start_new_session=True, preexec_fn=_pdeathsig if self.die_with_parent else None)
        _live.add(self)
        return self

    def wait_ready(self, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: ipmi_sim exited with {self.proc.returncode}: {self.log_tail()}")
            if ping(self.port, self.host):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name}: no answer on {self.host}:{self.port} after {timeout} s: {self.log_tail()}")

    def start(self, timeout=10.0):
        self.spawn()
        return self.wait_ready(timeout)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, remove=None):
        """SIGTERM to ipmi_sim (its own process group), SIGKILL after `grace` s. remove: delete
        the directory (default: when the harness made it, unless keep / BMC_SIM_KEEP)."""
        self._terminate()
        _live.discard(self)
        if remove is None:
            remove = self._own_dir and not self.keep
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)
            if self._own_port:
                _release(self.port)
            _release(self.console_port)

    def _terminate(self):
        p = self.proc
        if p is None or p.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, self.grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(p.pid, sig)          # the group of ipmi_sim's own session: it and its children
            except ProcessLookupError:
                pass
            except PermissionError:
                p.send_signal(sig)
            try:
                p.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def restart(self, firmware=None, users=None, anonymous=None, sensors=None, fresh=False, settle=1.1,
                timeout=10.0):
        """Stops and starts again on the same port with the same directory (state kept unless
        fresh=True). firmware: the new version ('2.60'); users/anonymous/sensors: new emu/lan.conf
        contents (users only matter on a fresh state dir, see the module doc). settle: seconds to
        wait first, because ipmi_sim writes users changed over IPMI from its 1 s tick."""
        if settle and self.running() and not fresh:
            time.sleep(settle)
        self._terminate()
        _live.discard(self)
        if firmware is not None:
            parse_firmware(firmware)
            self.firmware = firmware
        if users is not None:
            self.users = list(users)
        if anonymous is not None:
            self.anonymous = bool(anonymous)
        if sensors is not None:
            self.sensors = [s.copy() for s in sensors]
        if fresh:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        return self.start(timeout)

    def __enter__(self):
        if not self.running():
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def log_tail(self, n=2000):
        try:
            with open(os.path.join(self.dir, "log"), errors="replace") as f:
                return f.read()[-n:].strip()
        except OSError:
            return ""

    # -- clients
    def ipmitool_argv(self, *args, user=None, password=None, cipher=3, interface="lanplus", priv=None):
        argv = [IPMITOOL, "-I", interface, "-H", self.host, "-p", str(self.port),
                "-U", self.user if user is None else user, "-P", self.password if password is None else password]
        if interface == "lanplus":
            argv += ["-C", str(cipher)]
        if priv:
            argv += ["-L", priv]
        return argv + [str(a) for a in args]

    def ipmitool(self, *args, user=None, password=None, cipher=3, interface="lanplus", priv=None, timeout=30,
                 check=False):
        """Runs ipmitool against this BMC (-I lanplus -C 3 by default); a CompletedProcess with
        text stdout/stderr. A timeout gives returncode -9 and what was printed so far."""
        argv = self.ipmitool_argv(*args, user=user, password=password, cipher=cipher, interface=interface,
                                  priv=priv)
        return _run(argv, timeout, check)

    def freeipmi_argv(self, tool, *args, user=None, password=None):
        argv = [tool, "-h", f"{self.host}:{self.port}", "-u", self.user if user is None else user,
                "-p", self.password if password is None else password,
                "-D", "LAN_2_0", "-W", "opensesspriv", "-l", "ADMIN"]
        if os.path.basename(tool) in ("ipmi-sensors", "ipmi-sel", "ipmimonitoring", "ipmi-sensors-config",
                                      "ipmi-fru"):
            cache = os.path.join(self.dir, "freeipmi-sdr-cache")
            os.makedirs(cache, mode=0o700, exist_ok=True)
            argv += ["--sdr-cache-directory", cache]
        return argv + [str(a) for a in args]

    def freeipmi(self, tool, *args, user=None, password=None, timeout=30, check=False):
        """Runs a FreeIPMI tool (bmc-info, ipmi-sensors, ipmipower ...) against this BMC, with
        -D LAN_2_0 -W opensesspriv -l ADMIN and a per-BMC SDR cache directory."""
        return _run(self.freeipmi_argv(tool, *args, user=user, password=password), timeout, check)

    # -- chassis
    def power_log(self):
        """[PowerEvent(time, 'power 0'), ...] from chassis.log, oldest first."""
        out = []
        try:
            with open(os.path.join(self.dir, "chassis.log")) as f:
                for line in f:
                    t, _, action = line.strip().partition(" ")
                    if action:
                        out.append(PowerEvent(float(t), action))
        except FileNotFoundError:
            pass
        return out

    def wait_power_log(self, actions, since=0, timeout=5.0):
        """Waits until the actions after the first `since` entries of power_log() start with
        `actions` (['power 0', 'power 1']); returns those entries, or raises AssertionError."""
        end = time.monotonic() + timeout
        while True:
            got = self.power_log()[since:]
            if [e.action for e in got[:len(actions)]] == list(actions):
                return got[:len(actions)]
            if time.monotonic() > end:
                raise AssertionError(f"{self.name}: chassis.log after entry {since}: "
                                     f"{[e.action for e in got]}, expected {list(actions)}")
            time.sleep(0.05)

    def power_state(self):
        try:
            with open(os.path.join(self.dir, "power")) as f:
                return int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return None

    # -- sensors
    def sensor(self, key):
        """The Sensor by number or name."""
        for s in self.sensors:
            if s.number == key or s.name == key:
                return s
        raise KeyError(key)

    def console(self, command, timeout=5.0):
        """Runs one ipmi_sim emu command over the console (TCP) and returns its output; raises
        RuntimeError when ipmi_sim answers with an error ('**...')."""
        with socket.create_connection((self.host, self.console_port), timeout=timeout) as s:
            _read_prompt(s, timeout)
            s.sendall(command.encode() + b"\n")
            out = _read_prompt(s, timeout)
        text = out.decode(errors="replace").replace("\r", "")
        lines = text.split("\n")
        if lines and lines[0].strip() == command.strip():         # the console echoes the line
            lines = lines[1:]
        text = "\n".join(lines).strip()
        if "**" in text:
            raise RuntimeError(f"{self.name}: {command!r}: {text}")
        return text

    def set_sensor(self, number, raw, event=False):
        """Sets a sensor's raw reading at run time: `sensor_set_value 0x20 0 NUM RAW EVENT` over
        the console (event: generate a SEL event when a threshold is crossed)."""
        if not 0 <= int(raw) <= 255:
            raise ValueError("raw value 0..255")
        s = self.sensor(number)
        self.console(f"sensor_set_value 0x{BMC_IPMB:02x} 0 0x{s.number:02x} 0x{int(raw):02x} {1 if event else 0}")
        s.raw = int(raw)
        return s.value()

    def set_sensor_value(self, number, value, event=False):
        """Like set_sensor with an engineering value (RPM, degrees C, volts); returns the value set."""
        s = self.sensor(number)
        return self.set_sensor(s.number, s.raw_for(value), event)

    def __repr__(self):
        return f"<Bmc {self.name} {self.host}:{self.port} pid {self.pid} fw {self.firmware} dir {self.dir}>"


def _read_prompt(s, timeout):
    buf = b""
    end = time.monotonic() + timeout
    while not buf.rstrip(b" ").endswith(b">"):
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            d = s.recv(4096)
        except socket.timeout:
            raise RuntimeError(f"ipmi_sim console: no prompt, got {buf!r}") from None
        if not d:
            raise RuntimeError(f"ipmi_sim console closed, got {buf!r}")
        # telnet negotiation (IAC ...) the console sends on connect
        while b"\xff" in d:
            i = d.index(b"\xff")
            d = d[:i] + d[i + 3:]
        buf += d
    return buf.rstrip(b" ")[:-1]


def _run(argv, timeout, check):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        def _s(x):
            return x.decode(errors="replace") if isinstance(x, bytes) else (x or "")
        r = subprocess.CompletedProcess(argv, -9, _s(e.stdout), _s(e.stderr) + f"\n(timed out after {timeout} s)")
    if check and r.returncode != 0:
        raise subprocess.CalledProcessError(r.returncode, argv, r.stdout, r.stderr)
    return r


# ----------------------------------------------------------------------------------------------
# several

class BmcGroup(list):
    """A list of Bmc with stop(), ports, freeipmi_hosts(), usable as a context manager."""

    @property
    def ports(self):
        return [b.port for b in self]

    def freeipmi_hosts(self):
        return freeipmi_hosts(self.ports)

    def stop(self):
        for b in self:
            b.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start(**kw):
    """Starts one BMC and waits until it answers. Keyword arguments: those of Bmc (port,
    firmware, users, anonymous, anonymous_password, sensors, directory, name, power, user,
    password, keep, die_with_parent, grace) and timeout."""
    timeout = kw.pop("timeout", 10.0)
    return Bmc(**kw).start(timeout)


def start_many(n, consecutive=True, timeout=30.0, **kw):
    """Starts n BMCs (each Bmc(**kw), own port, dir and console) and waits until all answer.
    consecutive: try to get one block of consecutive ports (one FreeIPMI range); falls back to
    scattered ports. Name bmc01..bmcNN unless name= is given (then NAME01...)."""
    ports = free_port_block(n) if consecutive else None
    group = BmcGroup()
    base_name = kw.pop("name", "bmc")
    try:
        for i in range(n):
            b = Bmc(port=ports[i] if ports else None, name=f"{base_name}{i + 1:02d}", **kw)
            if ports:
                b._own_port = True
            group.append(b.spawn())
        end = time.monotonic() + timeout
        for b in group:
            b.wait_ready(max(0.5, end - time.monotonic()))
    except BaseException:
        group.stop()
        raise
    return group


def ipmi_sim_pids():
    """PIDs of every ipmi_sim process on the machine (for leak checks)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() == "ipmi_sim":
                        out.append(int(d))
            except OSError:
                pass
    return out


if __name__ == "__main__":
    # bmc_sim.py [N]: start N BMCs, print their ports, run until Ctrl-C
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    with start_many(n) as g:
        for b in g:
            print(f"{b.name} {b.host}:{b.port} console {b.console_port} dir {b.dir} pid {b.pid}", flush=True)
        print(f"FreeIPMI: -h '{g.freeipmi_hosts()}'", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
