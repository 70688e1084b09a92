#!/usr/bin/python3
"""A firmware mirror for labctl's tests: an HTTP server on 127.0.0.1 (a free port) that serves a
directory with byte ranges, and misbehaves on request the way real mirrors do.

    mirror.py --root DIR --rules RULES.json --log LOG.jsonl    # prints "listening 127.0.0.1:PORT"

    import mirror
    with mirror.start(root) as m:
        m.url("uj240as_v104.exe")                   # http://127.0.0.1:PORT/uj240as_v104.exe
        m.rules({"/uj240as_v104.exe": {"cut_after": 100000, "times": 1}})
        m.requests()                                # every request: path, range, status, bytes

Ranges: `Range: bytes=N-` (and N-M) get 206 with Content-Range; N at or past the end gets 416.
Rules (RULES.json, read again for every request; per path, each for its first `times` requests
after the rules last changed, default every request):
  cut_after N     send the headers for the whole answer, then only N bytes, then close: an
                  interrupted download
  ignore_range    answer 200 with the whole file even when asked for a range
  status N        answer N (404, 500, ...) with a short text body
  corrupt         flip a byte in the middle of what is sent
Each request is logged as one JSON line: {"path", "range", "status", "sent", "n"}.

Python 3 standard library only; the server runs until SIGTERM. start() stops it by PID.
"""
import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.abspath(__file__)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    counts = {}
    lock = threading.Lock()

    def log_message(self, fmt, *args):  # quiet: the JSON log is what tests read
        pass

    def rule(self):
        try:
            with open(self.server.rules_file) as f:
                text = f.read()
            rules = json.loads(text)
        except (OSError, ValueError):
            text, rules = "", {}
        with self.lock:
            # New rules count their `times` from now on.
            if text != self.server.rules_text:
                self.server.rules_text = text
                self.counts.clear()
            n = self.counts.get(self.path, 0) + 1
            self.counts[self.path] = n
        r = rules.get(self.path, {})
        if "times" in r and n > r["times"]:
            r = {}
        return r, n

    def record(self, status, sent, rng, n):
        with self.lock, open(self.server.log_file, "a") as f:
            f.write(json.dumps({"path": self.path, "range": rng, "status": status, "sent": sent,
                                "n": n}) + "\n")

    def do_GET(self):
        rule, n = self.rule()
        rng = self.headers.get("Range")
        name = os.path.basename(self.path)
        path = os.path.join(self.server.root, name)
        if "status" in rule:
            body = f"error {rule['status']}\n".encode()
            self.send_response(rule["status"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.record(rule["status"], 0, rng, n)
            return
        if not name or not os.path.isfile(path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.record(404, 0, rng, n)
            return
        with open(path, "rb") as f:
            data = f.read()
        start, end, status = 0, len(data), 200
        if rng and not rule.get("ignore_range"):
            spec = rng.strip().lower()
            if spec.startswith("bytes=") and "," not in spec:
                a, _, b = spec[6:].partition("-")
                if a.isdigit():
                    start = int(a)
                    end = min(int(b) + 1, len(data)) if b.isdigit() else len(data)
                    status = 206
            if status == 206 and start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.record(416, 0, rng, n)
                return
        part = bytearray(data[start:end])
        if rule.get("corrupt") and part:
            part[len(part) // 2] ^= 0xFF
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(part)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.end_headers()
        cut = rule.get("cut_after")
        sent = len(part) if cut is None else min(cut, len(part))
        try:
            self.wfile.write(bytes(part[:sent]))
            self.wfile.flush()
        except OSError:
            pass
        self.record(status, sent, rng, n)
        if cut is not None:
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass


def serve(root, rules_file, log_file):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.root = root
    server.rules_file = rules_file
    server.log_file = log_file
    server.rules_text = None
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"listening 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


class Mirror:
    def __init__(self, root):
        self.root = root
        self.rules_file = os.path.join(root, ".rules.json")
        self.log_file = os.path.join(root, ".requests.jsonl")
        self.rules({})
        open(self.log_file, "w").close()
        libc = ctypes.CDLL(None, use_errno=True)
        self.proc = subprocess.Popen(
            [sys.executable, HERE, "--root", root, "--rules", self.rules_file, "--log", self.log_file],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            preexec_fn=lambda: libc.prctl(1, signal.SIGKILL, 0, 0, 0))
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"mirror did not start: {line!r}")
        self.address = line.split()[1]

    def url(self, name):
        return f"http://{self.address}/{name}"

    def rules(self, rules):
        tmp = self.rules_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rules, f)
        os.replace(tmp, self.rules_file)

    def requests(self):
        with open(self.log_file) as f:
            return [json.loads(line) for line in f if line.strip()]

    def clear_log(self):
        open(self.log_file, "w").close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start(root):
    return Mirror(root)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--rules", required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    serve(a.root, a.rules, a.log)
