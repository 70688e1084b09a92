#!/usr/bin/python3
"""VMware's vSphere API simulator (govmomi's vcsim) for labctl's tests and benchmarks: a real
vSphere endpoint on loopback that libvirt's ESX driver (esx://, vpx://) talks to.

    import vcsim
    binary = vcsim.build(os.path.join(BUILD_DIR, "peers", "vcsim"))   # once; ~50 s cold, then cached
    with vcsim.start(binary, about_version="4.1.0", about_build="260247") as sim:
        sim.uri                       # esx://127.0.0.1:PORT/  (user "user", password "pass")
        sim.virsh("list", "--all")    # the independent client (LIBVIRT_AUTH_FILE in sim.dir)

Built from Debian's golang-github-vmware-govmomi-dev with Debian's golang-go, offline, in GOPATH
mode (GO111MODULE=off, GOPATH=DIR/gopath:/usr/share/gocode, GOCACHE=DIR/gocache, so a second build
is quick). main.go here is labctl's copy of ../shared/peers/vcsim/main.go (README.md: what it adds
for libvirt, and what the simulator cannot do).

Each simulator runs in its own process group on a free 127.0.0.1 port (or the one given: a test
that starts it only after a power-on picks the port first) and is stopped by PID: SIGTERM, then
SIGKILL after `grace` seconds; stop(), `with` and an atexit hook make sure none is left; with
PR_SET_PDEATHSIG the kernel also stops it when the thread that started it dies. Python 3 standard
library only.
"""
import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MAIN_GO = os.path.join(HERE, "main.go")
HOST = "127.0.0.1"
USER, PASSWORD = "user", "pass"
GO = os.environ.get("GO", "go")
GOCODE = "/usr/share/gocode"
BUILD_TIMEOUT = float(os.environ.get("VCSIM_BUILD_TIMEOUT", "600"))

_running = []
_lock = threading.Lock()


class Unavailable(Exception):
    """The simulator cannot be built here (no go, no govmomi sources)."""


def requirements():
    """None when vcsim can be built, else why not."""
    if shutil.which(GO) is None:
        return "go not installed (package golang-go)"
    if not os.path.isdir(os.path.join(GOCODE, "src", "github.com", "vmware", "govmomi", "simulator")):
        return "govmomi sources not installed (package golang-github-vmware-govmomi-dev)"
    if shutil.which("virsh") is None:
        return "virsh not installed (package libvirt-clients)"
    return None


def build(out_dir):
    """The vcsim binary in out_dir, built when missing or older than main.go."""
    why = requirements()
    if why:
        raise Unavailable(why)
    os.makedirs(out_dir, exist_ok=True)
    binary = os.path.join(out_dir, "vcsim")
    if os.path.exists(binary) and os.path.getmtime(binary) >= os.path.getmtime(MAIN_GO):
        return binary
    env = dict(os.environ, GO111MODULE="off", GOPATH=os.path.join(out_dir, "gopath") + ":" + GOCODE,
               GOCACHE=os.path.join(out_dir, "gocache"))
    env.pop("GOFLAGS", None)
    tmp = binary + ".tmp"
    r = subprocess.run(["nice", GO, "build", "-o", tmp, "."], cwd=HERE, env=env, capture_output=True,
                       text=True, timeout=BUILD_TIMEOUT)
    if r.returncode != 0:
        raise Unavailable(f"go build failed: {r.stderr.strip()[-2000:]}")
    os.replace(tmp, binary)
    return binary


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _die_with_parent():
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class Vcsim:
    def __init__(self, binary, port=None, model="esx", vms=2, about_version=None, about_build=None,
                 directory=None):
        self.binary, self.model, self.vms = binary, model, vms
        self.port = port or free_port()
        self.about_version, self.about_build = about_version, about_build
        self.dir = directory or tempfile.mkdtemp(prefix="labctl-vcsim-")
        self.proc = None
        self.log = os.path.join(self.dir, "vcsim.log")
        self.auth_file = os.path.join(self.dir, "auth.conf")
        with open(self.auth_file, "w") as f:
            f.write(f"[credentials-sim]\nusername={USER}\npassword={PASSWORD}\n\n"
                    f"[auth-esx-{HOST}]\ncredentials=sim\n\n[auth-vpx-{HOST}]\ncredentials=sim\n")

    @property
    def uri(self):
        return f"{self.model}://{HOST}:{self.port}/"

    def start(self, timeout=30.0):
        argv = [self.binary, "-model", self.model, "-addr", f"{HOST}:{self.port}", "-vm", str(self.vms)]
        if self.about_version:
            argv += ["-about-version", self.about_version]
        if self.about_build:
            argv += ["-about-build", self.about_build]
        out = open(self.log, "w")
        # Its own session (process group), so stop() reaches it alone; cwd: its temp dir, where
        # the simulator keeps its datastores.
        self.proc = subprocess.Popen(argv, cwd=self.dir, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        out.close()
        with _lock:
            _running.append(self)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vcsim exited with {self.proc.returncode}: {self.tail()}")
            with open(self.log) as f:
                if "URL=" in f.read():
                    if self._accepts():
                        return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"vcsim did not start within {timeout} s: {self.tail()}")

    def _accepts(self):
        try:
            with socket.create_connection((HOST, self.port), timeout=1):
                return True
        except OSError:
            return False

    def tail(self):
        try:
            with open(self.log) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self, grace=5.0, remove=True):
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=grace)
        with _lock:
            if self in _running:
                _running.remove(self)
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

    def env(self):
        """The environment for virsh against this simulator (credentials from the auth file,
        libvirt's own chatter off)."""
        return dict(os.environ, LIBVIRT_AUTH_FILE=self.auth_file,
                    LIBVIRT_LOG_OUTPUTS="4:file:/dev/null")

    def virsh(self, *args, timeout=60):
        """`virsh -c URI?no_verify=1 ARGS...` as the independent client."""
        uri = f"{self.model}://{USER}@{HOST}:{self.port}/?no_verify=1"
        return subprocess.run(["virsh", "-c", uri, *args], env=self.env(), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start(binary, **kw):
    return Vcsim(binary, **kw).start()


def stop_all():
    with _lock:
        sims = list(_running)
    for s in sims:
        s.stop()


atexit.register(stop_all)
