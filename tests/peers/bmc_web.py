#!/usr/bin/python3
"""A Supermicro BMC's web interface for labctl's flashing tests: an HTTP(S) server on a free
loopback port that takes a firmware update the way the BMC's own web pages drive it, tied to an
OpenIPMI ipmi_sim BMC (tests/peers/ipmi/bmc_sim.py) that it restarts with the new firmware.

    import bmc_sim, bmc_web
    with bmc_sim.start() as bmc, bmc_web.BmcWeb(bmc, generation="x8") as web:
        ...  # labctl flashes http://127.0.0.1:{web.port}
        web.events                      # [(t, "login ADMIN"), (t, "lock granted"), ...]

What it does, per generation ("x8" answers as plugins/supermicro_bmc/profiles/x8-aten-web.yaml
guesses; "x10-x11" as bmc-toolbox/bmclib drives X11 boards):
  - POST /cgi/login.cgi name/pwd (base64 on x10-x11), checked against the ipmi_sim's users with
    ipmitool (a BMC's web and IPMI logins are one user database): a SID cookie and a page that
    redirects to url_redirect.cgi?url_name=mainmenu; a wrong login gets the page without either.
    Sessions expire after `session_timeout` idle seconds; an unknown or expired SID gets the login
    page (HTML) from every endpoint. x10-x11: a CSRF token on the topmenu page, required as a
    header on ipmi.cgi / op.cgi / upgrade_process.cgi and as the upload's CSRF_TOKEN field.
  - ipmi.cgi op=LOCK_UPLOAD_FW.XML: <LOCK_FW_UPLOAD RES="1"/> for the session that holds (or now
    takes) the lock, RES="0" while another live session holds it or a flash runs. An expired
    session's lock is released.
  - oem_firmware_upload.cgi: multipart/form-data; the file must come in field `fw_image` from
    the lock holder. The bytes are verified with tests/lib/aten.py's verify() (headers, both
    checksums, footer CRC).
  - ipmi.cgi op=UPLOAD_FW_VERSION.XML: <FW_VERSION NEW=".." OLD=".."/>, NEW the uploaded image's
    footer version ("0260" on x8, "026000" on x10-x11), "" when the upload did not verify.
  - op.cgi op=main_fwupdate&preserve_config=1|0: starts flashing a verified upload of this
    session and never answers (the request is held open until the BMC restarts).
  - upgrade_process.cgi fwtype=0: <IPMI><percent>N</percent></IPMI>, rising from 1 to 100 over
    `flash_time` seconds; then, `hold` seconds later, the BMC restarts: the web server closes
    (connection refused), ipmi_sim stops, and after `offline` seconds both come back with the new
    firmware -- with factory settings (ipmi_sim's state wiped: ADMIN/ADMIN only, LAN defaults)
    when preserve_config was 0.
  - logout.cgi, and GET /cgi/login.cgi (the login page).

Failures to inject (`failures`, a set):
  "lock-contention"  a browser session holds the upload lock from the start and keeps it
  "truncate-upload"  the connection is cut after half of the upload's body
  "stall"            the progress stops at 40%
  "never-returns"    after 100% the BMC goes away for good
  "wrong-version"    the version check reports the upload's minor version + 1

Every request is recorded in `events` as (monotonic time, text); `uploads`, `starts` count.
Python 3 standard library only, plus bmc_sim and aten (tests/lib).
"""
import base64
import http.cookies
import http.server
import os
import secrets
import socket
import ssl
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "ipmi"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import aten  # noqa: E402
import bmc_sim  # noqa: E402

LOGIN_PAGE = (b"<html><head><title>IPMI Login</title></head><body>"
              b"<form name=\"form1\" action=\"/cgi/login.cgi\" method=\"post\">"
              b"<input name=\"name\"><input name=\"pwd\" type=\"password\"></form></body></html>")
LOGIN_OK = (b"<html><head><script>self.location='../cgi/url_redirect.cgi?url_name=mainmenu';"
            b"</script></head><body></body></html>")
UPLOAD_OK = b"<html><body>Upload complete</body></html>"

GENERATIONS = {
    "x8": {"base64": False, "csrf": False, "field": "fw_image", "digits": 4},
    "x10-x11": {"base64": True, "csrf": True, "field": "fw_image", "digits": 6},
}
FAILURES = {"lock-contention", "truncate-upload", "stall", "never-returns", "wrong-version"}
FOREIGN = "browser-session"


def version_text(version, digits):
    major, minor = version.split(".")
    text = f"{int(major):02d}{int(minor):02d}"
    return text + "00" if digits == 6 else text


class _Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        pass  # refused TLS handshakes and cut connections are part of the tests


class BmcWeb:
    def __init__(self, bmc, generation="x8", failures=(), tls=None, session_timeout=3.0,
                 flash_time=1.0, hold=0.3, offline=0.8, port=None):
        if generation not in GENERATIONS:
            raise ValueError(f"generation {generation!r}: one of {sorted(GENERATIONS)}")
        unknown = set(failures) - FAILURES
        if unknown:
            raise ValueError(f"failures {sorted(unknown)}: known {sorted(FAILURES)}")
        self.bmc = bmc
        self.gen = GENERATIONS[generation]
        self.generation = generation
        self.failures = set(failures)
        self.tls = tls                      # (certfile, keyfile) or None
        self.session_timeout = session_timeout
        self.flash_time, self.hold, self.offline = flash_time, hold, offline
        self.port = port or bmc_sim.free_port("tcp")
        self.mu = threading.Lock()
        self.events = []
        self.uploads = 0
        self.starts = 0
        self.sessions = {}                  # sid -> {"user", "last", "csrf", "upload"}
        self.lock_owner = FOREIGN if "lock-contention" in self.failures else None
        self.flash = None                   # {"started", "version", "preserve", "sid"}
        self.state = "up"                   # "up", "offline", "gone"
        self._down = threading.Event()
        self._stop = threading.Event()
        self._server = None
        self._serve_thread = None
        self._controller = None

    # -- life cycle
    def start(self):
        self._listen()
        self._controller = threading.Thread(target=self._control, name="bmc-web-control", daemon=True)
        self._controller.start()
        return self

    def stop(self):
        self._stop.set()
        self._down.set()
        self._close()
        if self._controller:
            self._controller.join(timeout=15)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def event(self, text):
        with self.mu:
            self.events.append((time.monotonic(), text))

    def texts(self):
        with self.mu:
            return [t for _, t in self.events]

    def _listen(self):
        handler = type("Handler", (_Handler,), {"web": self})
        deadline = time.monotonic() + 5
        while True:
            try:
                server = _Server(("127.0.0.1", self.port), handler)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._down.clear()
        self._serve_thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                              name="bmc-web", daemon=True)
        self._serve_thread.start()

    def _close(self):
        server, self._server = self._server, None
        if server:
            server.shutdown()
            server.server_close()
        if self._serve_thread:
            self._serve_thread.join(timeout=5)

    # -- the flash and the restart (a thread that lives as long as the BmcWeb, so the ipmi_sim it
    # restarts, which dies with the thread that started it, lives as long too)
    def percent(self):
        f = self.flash
        if not f:
            return 0
        p = max(1, min(100, int((time.monotonic() - f["started"]) / self.flash_time * 100)))
        return min(p, 40) if "stall" in self.failures else p

    def _control(self):
        while not self._stop.wait(0.02):
            f = self.flash
            if not f or self.state != "up" or "stall" in self.failures:
                continue
            if time.monotonic() - f["started"] < self.flash_time + self.hold:
                continue
            self._restart(f)

    def _restart(self, f):
        self.event("restart")
        if f["preserve"]:
            time.sleep(1.1)                 # ipmi_sim writes users changed over IPMI once a second
        with self.mu:
            self.state = "offline"
        self._down.set()
        self._close()
        self.bmc.stop(remove=False)
        self.event("offline")
        if "never-returns" in self.failures:
            with self.mu:
                self.state = "gone"
            return
        if self._stop.wait(self.offline):
            return
        reset = not f["preserve"]
        self.bmc.restart(firmware=f["version"], fresh=reset, settle=0,
                         users=list(bmc_sim.DEFAULT_USERS) if reset else None)
        if reset:
            self.bmc.user, self.bmc.password = "ADMIN", "ADMIN"
        with self.mu:
            self.sessions.clear()
            self.lock_owner = None
            self.flash = None
            self.state = "up"
        self._listen()
        self.event(f"online {f['version']} {'factory' if reset else 'preserved'}")

    # -- requests (called from handler threads)
    def check_login(self, user, password):
        if not user:
            return False
        r = self.bmc.ipmitool("mc", "info", user=user, password=password, timeout=10)
        return r.returncode == 0

    def session(self, sid):
        """The live session of this SID (touched), or None; expires idle ones."""
        now = time.monotonic()
        with self.mu:
            for k in [k for k, s in self.sessions.items() if now - s["last"] > self.session_timeout]:
                del self.sessions[k]
                if self.lock_owner == k:
                    self.lock_owner = None
                self.events.append((now, "session expired"))
            s = self.sessions.get(sid)
            if s:
                s["last"] = now
            return s


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    web = None  # set per server

    def log_message(self, *args):
        pass

    def handle_one_request(self):
        # A restarting BMC drops every connection, kept-alive ones too (the server that accepted
        # this one is no longer the one listening).
        if self.server is not self.web._server:
            return self.hang_up()
        super().handle_one_request()

    def hang_up(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- plumbing
    def reply(self, body, status=200, ctype="text/html", cookie=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(body)

    def xml(self, inner):
        self.reply(b'<?xml version="1.0"?>\n<IPMI>\n  ' + inner.encode() + b"\n</IPMI>\n", ctype="text/xml")

    def sid(self):
        c = http.cookies.SimpleCookie(self.headers.get("Cookie", ""))
        return c["SID"].value if "SID" in c else None

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def form(self):
        return {k: v[0] for k, v in urllib.parse.parse_qs(self.body().decode("latin-1"),
                                                          keep_blank_values=True).items()}

    def live(self):
        """The request's session, or None after answering with the login page."""
        s = self.web.session(self.sid())
        if s is None:
            self.web.event(f"no session: {self.path}")
            self.reply(LOGIN_PAGE)
            return None
        if self.web.gen["csrf"]:
            token = self.headers.get("CSRF_TOKEN") or self.headers.get("Csrf-Token")
            if token != s["csrf"] and not self.path.startswith("/cgi/oem_firmware_upload.cgi"):
                self.web.event(f"csrf refused: {self.path}")
                self.reply(b"<html><body>CSRF token mismatch</body></html>", status=403)
                return None
        return s

    # -- GET
    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/cgi/logout.cgi":
            sid = self.sid()
            with self.web.mu:
                self.web.sessions.pop(sid, None)
                if self.web.lock_owner == sid:
                    self.web.lock_owner = None
            self.web.event("logout")
            return self.reply(LOGIN_PAGE)
        if self.path == "/cgi/url_redirect.cgi?url_name=topmenu":
            s = self.web.session(self.sid())
            if not s:
                return self.reply(LOGIN_PAGE)
            token = s["csrf"] or ""
            return self.reply(f'<html><script>SmcCsrfInsert ("CSRF_TOKEN", "{token}");</script></html>'.encode())
        return self.reply(LOGIN_PAGE)

    # -- POST
    def do_POST(self):
        path = self.path.split("?")[0]
        try:
            if path == "/cgi/login.cgi":
                return self.login()
            if path == "/cgi/oem_firmware_upload.cgi":
                return self.upload()
            if path == "/cgi/ipmi.cgi":
                return self.ipmi()
            if path == "/cgi/op.cgi":
                return self.op()
            if path == "/cgi/upgrade_process.cgi":
                return self.progress()
            self.body()
            self.reply(b"<html><body>Not Found</body></html>", status=404)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def login(self):
        f = self.form()
        user, pwd = f.get("name", ""), f.get("pwd", "")
        if self.web.gen["base64"]:
            try:
                user = base64.b64decode(user, validate=True).decode()
                pwd = base64.b64decode(pwd, validate=True).decode()
            except ValueError:
                user = ""
            if f.get("check") != "00":
                user = ""
        if not self.web.check_login(user, pwd):
            self.web.event(f"login refused {user}")
            return self.reply(b"<html><body>Invalid Username or Password</body></html>")
        sid = secrets.token_hex(16)
        with self.web.mu:
            self.web.sessions[sid] = {"user": user, "last": time.monotonic(), "upload": None,
                                      "csrf": secrets.token_urlsafe(24) if self.web.gen["csrf"] else None}
        self.web.event(f"login {user}")
        self.reply(LOGIN_OK, cookie=f"SID={sid}; path=/; HttpOnly")

    def ipmi(self):
        f = self.form()
        s = self.live()
        if s is None:
            return
        op = f.get("op")
        if f.get("r") != "(0,0)":
            return self.reply(b"<html><body>bad request</body></html>", status=400)
        sid = self.sid()
        if op == "LOCK_UPLOAD_FW.XML":
            with self.web.mu:
                free = self.web.lock_owner in (None, sid) and self.web.flash is None
                if free:
                    self.web.lock_owner = sid
            self.web.event("lock granted" if free else "lock held")
            return self.xml(f'<LOCK_FW_UPLOAD RES="{1 if free else 0}"/>')
        if op == "UPLOAD_FW_VERSION.XML":
            up = s.get("upload")
            old = version_text(self.web.bmc.firmware, self.web.gen["digits"])
            new = ""
            if up and not up["problems"] and up["version"]:
                version = up["version"]
                if "wrong-version" in self.web.failures:
                    major, minor = version.split(".")
                    version = f"{major}.{int(minor) + 1:02d}"
                new = version_text(version, self.web.gen["digits"])
            self.web.event(f"version check NEW={new!r}")
            return self.xml(f'<FW_VERSION NEW="{new}" OLD="{old}"/>')
        self.reply(b"<html><body>unknown op</body></html>", status=400)

    def upload(self):
        s = self.web.session(self.sid())
        length = int(self.headers.get("Content-Length") or 0)
        if "truncate-upload" in self.web.failures:
            got = self.rfile.read(length // 2)
            self.web.event(f"upload cut after {len(got)} of {length} bytes")
            return self.hang_up()
        body = self.rfile.read(length)
        if s is None:
            self.web.event("no session: upload")
            return self.reply(LOGIN_PAGE)
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data") or "boundary=" not in ctype:
            return self.reply(b"<html><body>not a form upload</body></html>", status=400)
        boundary = ctype.split("boundary=", 1)[1].strip().strip('"').encode()
        fields = {}
        for part in body.split(b"--" + boundary)[1:]:
            if part.startswith(b"--"):
                break
            head, _, content = part.partition(b"\r\n\r\n")
            if content.endswith(b"\r\n"):
                content = content[:-2]
            disp = [h for h in head.decode("latin-1").split("\r\n") if h.lower().startswith("content-disposition")]
            name = None
            for item in (disp[0].split(";") if disp else []):
                k, _, v = item.strip().partition("=")
                if k == "name":
                    name = v.strip('"')
            if name:
                fields[name] = content
        sid = self.sid()
        with self.web.mu:
            holder = self.web.lock_owner == sid
        if self.web.gen["csrf"] and fields.get("CSRF_TOKEN", b"").decode("latin-1") != s["csrf"]:
            self.web.event("upload refused: CSRF_TOKEN field")
            return self.reply(b"<html><body>CSRF token mismatch</body></html>", status=403)
        field = self.web.gen["field"]
        if field not in fields:
            self.web.event(f"upload refused: fields {sorted(fields)}, no {field}")
            return self.reply(b"<html><body>No firmware file</body></html>")
        if not holder:
            self.web.event("upload refused: no lock")
            return self.reply(b"<html><body>Please enter firmware update mode first</body></html>")
        image = fields[field]
        version, problems = aten.verify(image)
        with self.web.mu:
            s["upload"] = {"size": len(image), "version": version, "problems": problems}
            self.web.uploads += 1
        self.web.event(f"upload {len(image)} bytes {field} version {version} problems {problems}")
        self.reply(UPLOAD_OK)

    def op(self):
        f = self.form()
        s = self.live()
        if s is None:
            return
        sid = self.sid()
        if f.get("op") != "main_fwupdate" or f.get("preserve_config") not in ("0", "1"):
            return self.reply(b"<html><body>bad request</body></html>", status=400)
        up = s.get("upload")
        with self.web.mu:
            ok = self.web.lock_owner == sid and up and not up["problems"] and self.web.flash is None
            if ok:
                self.web.flash = {"started": time.monotonic(), "version": up["version"],
                                  "preserve": f["preserve_config"] == "1", "sid": sid}
                self.web.starts += 1
        if not ok:
            self.web.event("start refused")
            return self.reply(b"<html><body>No valid firmware uploaded</body></html>")
        self.web.event(f"start preserve_config={f['preserve_config']}")
        # The BMC flashes and never answers this request.
        self.web._down.wait(timeout=120)
        self.close_connection = True

    def progress(self):
        f = self.form()
        s = self.live()
        if s is None:
            return
        if f.get("fwtype") != "0":
            return self.reply(b"<html><body>bad request</body></html>", status=400)
        p = self.web.percent()
        self.web.event(f"progress {p}")
        self.xml(f"<percent>{p}</percent>")


def self_signed(directory):
    """(certfile, keyfile) of a fresh self-signed certificate for 127.0.0.1 (openssl)."""
    import subprocess
    cert, key = os.path.join(directory, "bmc.crt"), os.path.join(directory, "bmc.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=ATEN BMC",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key
