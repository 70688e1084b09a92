#!/usr/bin/python3
"""Emulated optical drives for labctl's tests and benchmarks: labctl-drive-emulator (built with
labctl, plugins/optical_drive/emulator_main.cc), one process per drive, each on a Unix socket in
a directory of its own. labctl reaches one as the device `emulator:SOCKET`.

    import drive_emulator
    with drive_emulator.start(binary, revision="1.01", reboot_ms=300) as drive:
        drive.device                    # "emulator:/tmp/.../drive.sock"
        drive.state()["revision"]       # what survives a power cycle, plus counters and writes
        drive.control({"op": "medium", "medium": "bd"})   # a disc in the tray, while it runs
        drive.power_cycle(faults=[])    # same socket, same state file: a new process
    image = drive_emulator.microcode("BD-MLT UJ240AS", "1.04", 40000)

The state file (DIR/drive.json) is rewritten by the emulator after every command that changed it,
atomically, so reading it at any moment is safe. A "vanish" fault ends the process (exit 70) the
way a drive drops off the bus; power_cycle() starts it again on the same state.

Python 3 standard library only. Every emulator is stopped by PID (SIGTERM, then SIGKILL after
`grace`), at `with` exit, stop(), and at interpreter exit; PR_SET_PDEATHSIG makes the kernel kill
one whose starting thread died, so even a SIGKILLed test leaves nothing running.
"""
import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import zlib

_running = set()


def _pdeathsig():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def microcode(product, revision, size, seed=1):
    """The emulator's microcode format (emulator.h): "LCTLMCOD", product (16, space padded),
    revision (4), total length (u32 BE), payload, CRC-32 of the rest (u32 BE)."""
    size = max(size, 64)
    head = b"LCTLMCOD" + product.encode().ljust(16)[:16] + revision.encode().ljust(4)[:4]
    head += struct.pack(">I", size)
    payload = bytes((seed * 7919 + i * 31 + (i >> 8)) & 0xFF for i in range(size - len(head) - 4))
    body = head + payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def windows_updater(image, at=8192, tail=4096):
    """A stand-in for a vendor updater: an MZ/PE stub with `image` at offset `at` (the place the
    catalog's options.image gives)."""
    stub = bytearray(at)
    stub[0:2] = b"MZ"
    stub[0x3C:0x40] = struct.pack("<I", 0x80)
    stub[0x80:0x84] = b"PE\0\0"
    return bytes(stub) + image + bytes(tail)


class Drive:
    def __init__(self, binary, directory, args, grace=3.0):
        self.binary = binary
        self.dir = directory
        self.socket = os.path.join(directory, "drive.sock")
        self.state_file = os.path.join(directory, "drive.json")
        self.log = os.path.join(directory, "log")
        self.device = "emulator:" + self.socket
        self.args = list(args)
        self.grace = grace
        self.proc = None

    def start(self, extra=()):
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        argv = [self.binary, "--socket", self.socket, "--state", self.state_file, *self.args, *extra]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=_pdeathsig)
        _running.add(self)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None:
                raise RuntimeError(f"labctl-drive-emulator exited {self.proc.returncode}: {self.read_log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"labctl-drive-emulator did not listen within 10 s: {self.read_log()}")
            time.sleep(0.01)
        return self

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout=10):
        """Until the process ends (a vanish fault); its exit status."""
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        _running.discard(self)

    def power_cycle(self, args=None):
        """Pulls the plug and starts a new emulator on the same socket and state (new `args`
        replace the old ones, e.g. without the fault that made it vanish)."""
        self.stop()
        if args is not None:
            self.args = list(args)
        return self.start()

    def state(self):
        with open(self.state_file) as f:
            return json.load(f)

    def control(self, request, timeout=5):
        """One control frame (emulator_wire.h) on a connection of its own."""
        body = b"\x02" + json.dumps(request).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.socket)
            s.sendall(struct.pack(">I", len(body)) + body)
            head = _recv_exact(s, 4)
            reply = _recv_exact(s, struct.unpack(">I", head)[0])
        if reply[:1] != b"\x02":
            raise RuntimeError(f"not a control reply: {reply[:16]!r}")
        return json.loads(reply[1:])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("the emulator closed the connection")
        out += chunk
    return out


def start(binary, directory=None, revision="1.01", reboot_ms=300, medium=None, serial=None,
          product=None, faults=(), inquiry_hex=None, extra=()):
    """Starts one emulated drive in `directory` (a fresh temp dir by default)."""
    directory = directory or tempfile.mkdtemp(prefix="labctl-drive-")
    os.makedirs(directory, exist_ok=True)
    args = ["--revision", revision, "--reboot-ms", str(reboot_ms)]
    if medium:
        args += ["--medium", medium]
    if serial is not None:
        args += ["--serial", serial]
    if product:
        args += ["--product", product]
    if inquiry_hex:
        args += ["--inquiry-hex", inquiry_hex]
    for f in faults:
        args += ["--fault", json.dumps(f)]
    args += list(extra)
    return Drive(binary, directory, args).start()


@atexit.register
def stop_all():
    for d in list(_running):
        d.stop()
