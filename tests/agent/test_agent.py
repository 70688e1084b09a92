#!/usr/bin/python3
"""Remote agents end to end: labctl-agent processes on loopback ports, driven by one controller.

  test_agent.py --labctl PATH --agent PATH --source DIR [unittest args]

- A simulated lab split over two agents and the embedded one converges; agent a1 is killed
  (SIGKILL) twice while steps run on it and restarted, and every device write still happens
  exactly once (the simulated devices count them in each agent's state directory).
- Mutual TLS, checked with curl and openssl s_client as independent clients: no certificate, a
  self-signed one, an expired one from the right CA, one from another CA and an agent's own
  certificate are refused during the handshake; the controller's is accepted.
- Malformed calls (bad JSON, a huge body, an unknown API version or path, a stale configuration,
  too many requests) get clear 4xx answers and the agent keeps serving.
- Phones on an agent's segment: the agent runs TFTP for it, gets the firmware from the
  controller's store, and two emulated phones go through SCCP 8.5(2) to SIP 9.4(2).
- DHCP on two agents' segments: each agent runs in a network namespace of the test's own, reached
  by the controller over its own veth link; busybox udhcpc in each segment's client namespace gets
  its reservation and that segment's option 150 from that agent, and `labctl agent events` shows
  each agent's one ACK.
- `labctl agent status|events|install-unit`, the unit checked by systemd-analyze.
"""
import datetime
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "phone_upgrade"))
import harness  # noqa: E402
from test_upgrade import read, wait_for  # noqa: E402  (the phone test's own helpers)

ARGS = None


def free_port():
    for _ in range(200):
        port = random.randint(20000, 60000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port")


class Agents:
    """A PKI from `labctl agent init`, and labctl-agent processes started and stopped by PID."""

    def __init__(self, tmp, names, env):
        self.tmp = tmp
        self.pki = os.path.join(tmp, "pki")
        self.env = env
        self.procs = {}
        self.ports = {n: free_port() for n in names}
        r = subprocess.run([ARGS.labctl, "agent", "init", "--dir", self.pki, "--listen", "127.0.0.1:7443"]
                           + sum([["--agent", n] for n in names], []), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        for n in names:
            self.restart(n)

    def state(self, name):
        return os.path.join(self.tmp, f"agent-{name}")

    def log(self, name):
        return os.path.join(self.tmp, f"agent-{name}.log")

    def restart(self, name, extra=()):
        out = os.path.join(self.tmp, f"agent-{name}.out")
        with open(out, "w") as o, open(self.log(name), "a") as e:
            p = subprocess.Popen([ARGS.agent, "--config", os.path.join(self.pki, f"{name}.yaml"),
                                  "--listen", f"127.0.0.1:{self.ports[name]}", "--state-dir",
                                  self.state(name), *extra], stdout=o, stderr=e, env=self.env)
        self.procs[name] = p
        wait_for(lambda: "listening on" in read(out) or p.poll() is not None, 20, f"agent {name}")
        assert p.poll() is None, read(self.log(name))
        return p

    def kill(self, name):
        p = self.procs[name]
        p.kill()
        p.wait(timeout=10)

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def url(self, name):
        return f"https://127.0.0.1:{self.ports[name]}"

    def curl(self, name, path, *args, cert="controller"):
        cmd = ["curl", "-sS", "--max-time", "20", "--cacert", os.path.join(self.pki, "ca.pem"),
               "-o", "-", "-w", "\n%{http_code}"]
        if cert:
            cmd += ["--cert", os.path.join(self.pki, f"{cert}.pem") if "/" not in cert else cert + ".pem",
                    "--key", os.path.join(self.pki, f"{cert}.key") if "/" not in cert else cert + ".key"]
        r = subprocess.run(cmd + list(args) + [self.url(name) + path], capture_output=True, text=True)
        body, _, code = r.stdout.rpartition("\n")
        return r.returncode, int(code or 0), body, r.stderr


def sim_writes(state_dirs):
    out = {}
    for d in state_dirs:
        root = os.path.join(d, "plugins")
        if not os.path.isdir(root):
            continue
        for kind in os.listdir(root):
            if not kind.startswith("sim-"):
                continue
            for fn in os.listdir(os.path.join(root, kind)):
                if fn.endswith(".json"):
                    with open(os.path.join(root, kind, fn)) as f:
                        name = fn[:-5]
                        assert name not in out, f"{name} has state in two places"
                        out[name] = json.load(f).get("writes", {})
    return out


class RemoteAgents(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="labctl-agent-")
        self.state = os.path.join(self.tmp, "controller")
        self.env = dict(os.environ, NO_COLOR="1", LAB_BMC_PASSWORD="demo-bmc-pass",
                        LABCTL_CATALOG=os.path.join(ARGS.source, "catalog", "catalog.yaml"))
        for i in range(1000, 1007):
            self.env[f"LAB_SIP_{i}"] = "s1p-pass"
        self.env.pop("LABCTL_STATE_DIR", None)
        self.agents = None

    def tearDown(self):
        if self.agents:
            self.agents.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def labctl(self, *args, timeout=180):
        return subprocess.run([ARGS.labctl, "--state-dir", self.state, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def sim_lab(self):
        """The example lab: BMCs and hypervisors on a1, phones on a2, drive local."""
        with open(os.path.join(ARGS.source, "examples", "sim-lab.yaml")) as f:
            text = f.read()
        text = text.replace("flash-delay: 2s", "flash-delay: 600ms").replace("flash-delay: 1500ms", "flash-delay: 400ms")
        text = text.replace("step-delay: 200ms", "step-delay: 60ms")
        lines, out = text.splitlines(), []
        for line in lines:
            out.append(line)
            s = line.strip()
            if s.startswith("type: sim-bmc") or s.startswith("type: sim-hypervisor"):
                out.append(line[:len(line) - len(line.lstrip())] + "agent: a1")
            elif s.startswith("type: sim-phone"):
                out.append(line[:len(line) - len(line.lstrip())] + "agent: a2")
        text = "\n".join(out) + "\n"
        text = text.replace("devices:\n", "agents:\n"
                            f"  - {{name: a1, url: \"{self.agents.url('a1')}\", pki: {self.agents.pki}}}\n"
                            f"  - {{name: a2, url: \"{self.agents.url('a2')}\", pki: {self.agents.pki}}}\n"
                            "devices:\n", 1)
        path = os.path.join(self.tmp, "lab.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def planned_writes(self, inv):
        r = self.labctl("plan", "--json", inv)
        self.assertIn(r.returncode, (0, 2), r.stderr)
        want = {}
        for d in json.loads(r.stdout)["devices"]:
            for s in d["steps"]:
                if s["writes"]:
                    want.setdefault(d["name"], {}).setdefault(s["action"], 0)
                    want[d["name"]][s["action"]] += 1
        return want

    def test_split_lab_converges_through_agent_restarts(self):
        self.agents = Agents(self.tmp, ["a1", "a2"], self.env)
        inv = self.sim_lab()
        want = self.planned_writes(inv)
        self.assertTrue(any(n.startswith("server") for n in want), want)
        apply = subprocess.Popen([ARGS.labctl, "--state-dir", self.state, "apply", "--yes", "--parallel", "4", inv],
                                 env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 stdin=subprocess.DEVNULL)
        kills = 0
        try:
            for _ in range(2):
                # Kill a1 while one of its steps runs, then bring it back on the same port.
                before = read(self.agents.log("a1")).count('"step-start"')
                wait_for(lambda: read(self.agents.log("a1")).count('"step-start"') > before or apply.poll() is not None,
                         60, "a step on agent a1")
                if apply.poll() is not None:
                    break
                self.agents.kill("a1")
                kills += 1
                time.sleep(0.3)
                self.agents.restart("a1")
            out = apply.communicate(timeout=240)[0]
        finally:
            if apply.poll() is None:
                apply.kill()
        self.assertEqual(kills, 2, "the apply ended before a1 could be killed twice")
        self.assertEqual(apply.returncode, 0, out)
        self.assertIn("10 of 10 devices converged", out)
        got = sim_writes([self.state, self.agents.state("a1"), self.agents.state("a2")])
        self.assertEqual(got, want, "every write exactly once\n" + out)
        # Where each device's state lives: with the agent that drives it.
        self.assertTrue(os.path.exists(os.path.join(self.agents.state("a1"), "plugins", "sim-bmc", "server1-bmc.json")))
        self.assertTrue(os.path.exists(os.path.join(self.agents.state("a2"), "plugins", "sim-phone", "phone1.json")))
        self.assertTrue(os.path.exists(os.path.join(self.state, "plugins", "sim-drive", "htpc-bd.json")))
        again = self.labctl("apply", "--yes", inv)
        self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
        self.assertIn("Nothing to do", again.stdout)
        # The secrets the agents used never reached their logs or state.
        for name in ("a1", "a2"):
            self.assertNotIn("demo-bmc-pass", read(self.agents.log(name)))
            for root, _, files in os.walk(self.agents.state(name)):
                for fn in files:
                    with open(os.path.join(root, fn), "rb") as f:
                        self.assertNotIn(b"demo-bmc-pass", f.read(), fn)
        # status: up, holding this inventory's configuration.
        st = self.labctl("agent", "status", "a1", "-i", inv, "--json")
        self.assertEqual(st.returncode, 0, st.stderr)
        j = json.loads(st.stdout)
        self.assertTrue(j["reachable"])
        self.assertTrue(j["config-current"])
        self.assertEqual(j["api"], 1)

    def test_a_device_whose_agent_is_down_is_unreachable_and_the_rest_proceeds(self):
        self.agents = Agents(self.tmp, ["a1", "a2"], self.env)
        inv = self.sim_lab()
        self.agents.kill("a2")  # the phones' agent
        r = self.labctl("apply", "--yes", inv, timeout=240)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unreachable", r.stdout + r.stderr)
        self.assertIn("agent 'a2'", r.stdout + r.stderr)
        got = sim_writes([self.state, self.agents.state("a1")])
        self.assertIn("server1-bmc", got)   # a1's devices converged
        self.assertIn("htpc-bd", got)       # and the local one
        st = self.labctl("agent", "status", "a2", "-i", inv)
        self.assertEqual(st.returncode, 2)
        self.assertIn("agent 'a2'", st.stderr)

    # --- TLS -----------------------------------------------------------------------------------
    def make_certs(self):
        """An expired certificate from the right CA, a self-signed one, one from another CA."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        def load(path):
            with open(path, "rb") as f:
                return f.read()

        ca_cert = x509.load_pem_x509_certificate(load(os.path.join(self.agents.pki, "ca.pem")))
        ca_key = serialization.load_pem_private_key(load(os.path.join(self.agents.pki, "ca.key")), None)
        now = datetime.datetime.now(datetime.timezone.utc)

        def cert(name, issuer_cert, issuer_key, not_before, not_after, ca=False):
            key = ec.generate_private_key(ec.SECP256R1())
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
            b = (x509.CertificateBuilder().subject_name(subject)
                 .issuer_name(issuer_cert.subject if issuer_cert else subject)
                 .public_key(key.public_key()).serial_number(x509.random_serial_number())
                 .not_valid_before(not_before).not_valid_after(not_after)
                 .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
            if not ca:
                b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            c = b.sign(issuer_key or key, hashes.SHA256())
            base = os.path.join(self.tmp, name)
            with open(base + ".pem", "wb") as f:
                f.write(c.public_bytes(serialization.Encoding.PEM))
            with open(base + ".key", "wb") as f:
                f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
            os.chmod(base + ".key", 0o600)
            return c, key, base

        day = datetime.timedelta(days=1)
        out = {}
        out["expired"] = cert("expired", ca_cert, ca_key, now - 30 * day, now - day)[2]
        out["self-signed"] = cert("self-signed", None, None, now - day, now + day)[2]
        other_ca, other_key, _ = cert("other-ca", None, None, now - day, now + 10 * day, ca=True)
        out["other-ca"] = cert("other-client", other_ca, other_key, now - day, now + day)[2]
        return out

    def test_mutual_tls_refuses_every_certificate_but_the_controllers(self):
        self.agents = Agents(self.tmp, ["a1"], self.env)
        certs = self.make_certs()
        rc, code, body, err = self.agents.curl("a1", "/v1/status")
        self.assertEqual((rc, code), (0, 200), err)
        self.assertEqual(json.loads(body)["agent"], "a1")
        cases = {"no certificate": None, "agent's own certificate (serverAuth only)": "a1"}
        cases.update({k: v for k, v in certs.items()})
        # The agent logs a request after its answer has gone: wait for that line before counting.
        requests_before = wait_for(lambda: read(self.agents.log("a1")).count('"event":"request"'), 10,
                                   "the accepted request in a1's log")
        for what, cert in cases.items():
            rc, code, body, err = self.agents.curl("a1", "/v1/status", cert=cert)
            # Refused in the TLS handshake: curl's "SSL connect error" (35) or, for an expired
            # certificate's alert, "SSL certificate verification failed" (60); no HTTP answer.
            self.assertIn(rc, (35, 60), f"{what}: curl exit {rc}: {err}")
            self.assertEqual(code, 0, f"{what}: got an HTTP answer: {body}")
        # Not one request was read from those connections.
        self.assertEqual(read(self.agents.log("a1")).count('"event":"request"'), requests_before)
        # openssl s_client as a second independent client: verified both ways with the
        # controller's certificate; a handshake failure without one.
        def s_client(*extra):
            return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.agents.ports['a1']}",
                                   "-CAfile", os.path.join(self.agents.pki, "ca.pem"), "-verify_return_error",
                                   "-servername", "a1", *extra], input="", capture_output=True, text=True,
                                  timeout=20)
        good = s_client("-cert", os.path.join(self.agents.pki, "controller.pem"),
                        "-key", os.path.join(self.agents.pki, "controller.key"))
        self.assertEqual(good.returncode, 0, good.stderr)
        self.assertIn("Verify return code: 0 (ok)", good.stdout)
        none = s_client()
        self.assertNotEqual(none.returncode, 0)
        self.assertIn("alert", none.stderr)
        expired = s_client("-cert", certs["expired"] + ".pem", "-key", certs["expired"] + ".key")
        self.assertNotEqual(expired.returncode, 0)
        self.assertIn("certificate expired", expired.stderr)
        # The agent logs nothing for a refused handshake and keeps serving.
        rc, code, _, _ = self.agents.curl("a1", "/v1/status")
        self.assertEqual(code, 200)

    def test_malformed_calls_get_clear_4xx_and_the_agent_keeps_serving(self):
        self.agents = Agents(self.tmp, ["a1"], self.env)
        post = ["-X", "POST", "-H", "Content-Type: application/json"]
        cases = [
            ("/v1/probe", post + ["--data-binary", "{not json"], 400, "not valid JSON"),
            ("/v1/probe", post + ["--data-binary", '{"config": 1, "device": "x"}'], 400, "'config' must be a string"),
            ("/v1/run-step", post + ["--data-binary", '{"config": "c", "device": "x", "step": {"key": "k", "action": "a", "weight": 1e300}}'],
             400, "'weight' must be a whole number"),
            ("/v1/probe", post + ["--data-binary", '{"config": "' + "0" * 64 + '", "device": "x"}'], 409, "config-mismatch"),
            ("/v2/status", [], 404, "this agent speaks v1"),
            ("/status", [], 404, "start with /v1/"),
            ("/v1/nothing-here", [], 404, "no such API call"),
        ]
        for path, args, want, text in cases:
            rc, code, body, err = self.agents.curl("a1", path, *args)
            self.assertEqual(code, want, f"{path} {args}: {code} {body} {err}")
            self.assertIn(text, body, path)
            self.assertIn("error", json.loads(body))
        huge = os.path.join(self.tmp, "huge.json")
        with open(huge, "w") as f:
            f.write('{"config": "' + "a" * (3 << 20) + '"}')
        rc, code, body, err = self.agents.curl("a1", "/v1/probe", *post, "--data-binary", "@" + huge)
        self.assertEqual(code, 413, body + err)
        bad_blob = os.path.join(self.tmp, "blob")
        with open(bad_blob, "wb") as f:
            f.write(b"not what the name says")
        rc, code, body, err = self.agents.curl("a1", "/v1/blobs/" + "ab" * 32, "-T", bad_blob)
        self.assertEqual(code, 422, body)
        self.assertIn("sha256", body)
        self.assertEqual(os.listdir(os.path.join(self.agents.state("a1"), "blobs")), [])
        rc, code, _, _ = self.agents.curl("a1", "/v1/status")
        self.assertEqual(code, 200)

    def test_rate_limit(self):
        self.agents = Agents(self.tmp, ["a1"], self.env)
        cfg = os.path.join(self.agents.pki, "a1.yaml")
        with open(cfg, "a") as f:
            f.write("rate: 5\n")
        self.agents.kill("a1")
        self.agents.restart("a1")
        # One curl, one connection, 40 requests at once: the burst (10) passes, then 429s.
        urls = []
        for _ in range(40):
            urls += [self.agents.url("a1") + "/v1/status", "-o", "/dev/null"]
        r = subprocess.run(["curl", "-sS", "--cacert", os.path.join(self.agents.pki, "ca.pem"),
                            "--cert", os.path.join(self.agents.pki, "controller.pem"),
                            "--key", os.path.join(self.agents.pki, "controller.key"),
                            "-w", "%{http_code}\n"] + urls, capture_output=True, text=True, timeout=60)
        codes = r.stdout.split()
        self.assertEqual(len(codes), 40, r.stderr)
        self.assertIn("429", codes)
        self.assertGreaterEqual(codes.count("200"), 10)
        time.sleep(1.2)
        rc, code, _, _ = self.agents.curl("a1", "/v1/status")
        self.assertEqual(code, 200)
        # The controller waits out the 429s: a lab needing more calls than the burst converges.
        inv = os.path.join(self.tmp, "drives.yaml")
        with open(inv, "w") as f:
            f.write("version: 1\nsite: rate\nagents:\n"
                    f"  - {{name: a1, url: \"{self.agents.url('a1')}\", pki: {self.agents.pki}}}\ndevices:\n")
            for i in range(4):
                f.write(f"  - {{name: d{i}, type: sim-drive, model: UJ240AS, agent: a1, firmware: \"1.12\", "
                        "accept-brick-risk: true, sim: {firmware: \"1.04\"}}\n")
        r = self.labctl("apply", "--yes", inv)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("4 of 4 devices converged, 16 steps run", r.stdout)
        self.assertIn('"status":429', read(self.agents.log("a1")))

    def test_install_unit_passes_systemd_analyze(self):
        self.agents = Agents(self.tmp, ["a1"], self.env)
        unit_dir = os.path.join(self.tmp, "units")
        cfg = os.path.join(self.agents.pki, "a1.yaml")
        r = self.labctl("agent", "install-unit", "--config", cfg, "--binary", ARGS.agent, "--install",
                        "--unit-dir", unit_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        unit = os.path.join(unit_dir, "labctl-agent-a1.service")
        text = read(unit)
        self.assertIn(f"ExecStart={os.path.abspath(ARGS.agent)} --config {cfg}", text)
        v = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        again = self.labctl("agent", "install-unit", "--config", cfg, "--binary", ARGS.agent, "--install",
                            "--unit-dir", unit_dir)
        self.assertIn("already installed", again.stdout)


class PhonesOnAnAgent(unittest.TestCase):
    """Two emulated phones on agent a1's segment: the agent serves TFTP, the controller's store
    sends it the firmware, and the phones go through SCCP 8.5(2) to SIP 9.4(2)."""

    def test_phones_upgrade_through_the_agents_tftp(self):
        import test_upgrade as tu
        tu.ARGS = ARGS
        tmp = tempfile.mkdtemp(prefix="labctl-agent-phones-")
        fleet = [("desk1", "CP-7906G", "00:0B:82:01:FC:21", "127.0.0.21"),
                 ("lobby", "CP-7911G", "00:0B:82:01:FC:22", "127.0.0.22")]
        lab = tu.Lab(tmp, fleet)
        agents = None
        try:
            agents = Agents(tmp, ["a1"], dict(lab.env))
            # The segment belongs to a1; its TFTP runs there.
            text = lab.inventory().replace("    interface: lo\n", "    interface: lo\n    agent: a1\n")
            text = text.replace("    type: cisco-phone\n", "    type: cisco-phone\n    agent: a1\n")
            text = text.replace("devices:\n", "agents:\n"
                                f"  - {{name: a1, url: \"{agents.url('a1')}\", pki: {agents.pki}}}\n"
                                "devices:\n", 1)
            with open(lab.inv, "w") as f:
                f.write(text)
            lab.import_bundles(sbn_size=60_000)
            agents.kill("a1")
            agents.restart("a1", ["--tftp-port", str(lab.tftp_port)])
            for name, model, mac, ip in fleet:
                lab.phone(name, model, mac, ip, ["--reset-unregistered", "0.5", "--retry-interval", "0.5",
                                                  "--max-retries", "100000", "--max-boots", "100",
                                                  "--linger", "300"])
            wait_for(lambda: all(any(e["event"] == "http-listening" for e in lab.events(n)) for n, *_ in fleet),
                     20, "the phones' web servers")
            r = lab.labctl("apply", lab.inv, "--yes", timeout=300)
            log = read(agents.log("a1"))
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr + log[-4000:])
            for name, *_ in fleet:
                st = lab.phone_state(name)
                self.assertEqual([h["load"] for h in st.get("history", [])], [tu.SCCP, tu.SIP], name)
            # The agent got the files from the controller, checked them, and served them.
            import hashlib
            want = {hashlib.sha256(data).hexdigest() for load in (tu.SCCP, tu.SIP)
                    for data in tu.load_files(load, 60_000).values()}
            blobs = set(os.listdir(os.path.join(agents.state("a1"), "blobs")))
            self.assertEqual(blobs, want)
            self.assertTrue(os.path.exists(os.path.join(agents.state("a1"), "logs", "tftp-lab.jsonl")))
            self.assertFalse(os.path.exists(os.path.join(lab.state, "logs", "tftp-lab.jsonl")))
            ev = lab.labctl("agent", "events", "a1", "-i", lab.inv, "--json")
            self.assertEqual(ev.returncode, 0, ev.stderr)
            events = [json.loads(line) for line in ev.stdout.splitlines()]
            names = {e["event"].get("file") or e["event"].get("name") for e in events if e["service"] == "tftp"}
            self.assertTrue(any(n and n.startswith("jar11sip") for n in names), names)
            # The SIP password (the agent reads it from its own environment) is in no log.
            self.assertNotIn(tu.PASSWORD, log)
            again = lab.labctl("apply", lab.inv, "--yes", timeout=120)
            self.assertIn("Nothing to do", again.stdout, again.stdout + again.stderr)
        finally:
            lab.stop()
            if agents:
                agents.stop()
            shutil.rmtree(tmp, ignore_errors=True)


class DhcpOnAnAgent(unittest.TestCase):
    """Two agents, each in a network namespace of the test's own with its segment's DHCP server;
    the controller in the root namespace reaches each over its own veth link; busybox udhcpc in
    each segment's client namespace gets its phone's reservation and option 150 from that
    segment's agent, and nothing from the other."""

    # per agent: name, segment, subnet prefix (/16), phone MAC, phone address
    AGENTS = [("a2", "voice", "10.99", "02:00:00:00:aa:01", "10.99.0.50"),
              ("a3", "lobby", "10.97", "02:00:00:00:aa:02", "10.97.0.60")]

    def test_each_agent_serves_dhcp_for_its_segment_in_its_namespace(self):
        sys.path.insert(0, os.path.join(HERE, "..", "dhcp"))
        import dhcp_harness as dh
        tmp = tempfile.mkdtemp(prefix="labctl-agent-dhcp-")
        pid = os.getpid()
        pairs, links, agents = [], [], []
        try:
            sites = []
            for i, (name, segment, net16, mac, ip) in enumerate(self.AGENTS):
                pair = dh.NetnsPair("agent", client_mac=mac).up()
                pairs.append(pair)
                if net16 != "10.99":  # the pair's server side has 10.99.0.1/16; this segment is its own
                    dh.ip_cmd("-n", pair.srv, "addr", "add", f"{net16}.0.1/16", "dev", pair.srv_if)
                root_if, ns_if = f"lar{pid}x{i}"[:15], f"lan{pid}x{i}"[:15]
                links.append(root_if)
                net = (20 + pid % 200 + 4 * i) % 250
                ctl_root, ctl_ns = f"10.98.{net}.1", f"10.98.{net}.2"
                dh.ip_cmd("link", "add", root_if, "type", "veth", "peer", "name", ns_if, "netns", pair.srv)
                dh.ip_cmd("addr", "add", f"{ctl_root}/30", "dev", root_if)
                dh.ip_cmd("link", "set", root_if, "up")
                dh.ip_cmd("-n", pair.srv, "addr", "add", f"{ctl_ns}/30", "dev", ns_if)
                dh.ip_cmd("-n", pair.srv, "link", "set", ns_if, "up")
                sites.append((name, segment, net16, mac, ip, pair, ctl_ns))
            pki = os.path.join(tmp, "pki")
            init = [ARGS.labctl, "agent", "init", "--dir", pki]
            for name, *_rest, ctl_ns in sites:
                init += ["--agent", name, "--host", f"{name}={ctl_ns}"]
            r = subprocess.run(init, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            port = 7443
            logs = {}
            inv_agents, inv_segments, inv_devices = "", "", ""
            for n, (name, segment, net16, mac, ip, pair, ctl_ns) in enumerate(sites):
                out, log = os.path.join(tmp, f"{name}.out"), os.path.join(tmp, f"{name}.log")
                logs[name] = log
                with open(out, "w") as o, open(log, "w") as e:
                    agents.append(dh.popen(pair.exec_srv() + [
                        ARGS.agent, "--config", os.path.join(pki, f"{name}.yaml"), "--listen", f"{ctl_ns}:{port}",
                        "--state-dir", os.path.join(tmp, f"{name}-state")], stdout=o, stderr=e))
                wait_for(lambda: "listening on" in read(out) or agents[-1].poll() is not None, 20, f"agent {name}")
                self.assertIsNone(agents[-1].poll(), read(log))
                os.makedirs(os.path.join(tmp, f"root-{segment}"))
                inv_agents += f'  - {{name: {name}, url: "https://{ctl_ns}:{port}", pki: {pki}}}\n'
                inv_segments += f"""  - name: {segment}
    interface: {pair.srv_if}
    subnet: {net16}.0.0/16
    agent: {name}
    dhcp: {{mode: serve, range: {net16}.1.0-{net16}.1.100, lease-time: 1h}}
    tftp: {{root: {tmp}/root-{segment}, servers: [{net16}.0.1, {net16}.0.2]}}
"""
                inv_devices += f"""  - name: desk{n}
    type: sim-phone
    model: CP-7906G
    mac: "{mac}"
    ip: {ip}
    segment: {segment}
    agent: {name}
    extension: "100{n}"
    sip: {{server: {net16}.0.1, password: {{env: LAB_SIP_1001}}}}
    firmware: {{target: SIP11.9-4-2SR1-1S}}
    sim: {{firmware: SIP11.9-4-2SR1-1S}}
"""
            inv = os.path.join(tmp, "lab.yaml")
            with open(inv, "w") as f:
                f.write("version: 1\nsite: agent-dhcp\nagents:\n" + inv_agents + "segments:\n" + inv_segments +
                        "devices:\n" + inv_devices)
            env = dict(os.environ, NO_COLOR="1", LABCTL_CATALOG=os.path.join(ARGS.source, "catalog", "catalog.yaml"))
            state = os.path.join(tmp, "controller")

            def labctl(*args):
                return subprocess.run([ARGS.labctl, "--state-dir", state, *args], env=env, capture_output=True,
                                      text=True, timeout=60)
            # The first call pushes each agent its configuration; each starts DHCP and TFTP for its
            # own segment only.
            plan = labctl("plan", inv)
            self.assertEqual(plan.returncode, 0, plan.stdout + plan.stderr + "".join(map(read, logs.values())))
            for name, segment, net16, mac, ip, pair, _ in sites:
                st = labctl("agent", "status", name, "-i", inv, "--json")
                self.assertEqual(st.returncode, 0, st.stdout + st.stderr)
                j = json.loads(st.stdout)
                self.assertEqual(j["dhcp-segments"], [segment], j)
                self.assertEqual(j["tftp-segments"], [segment], j)
            for name, segment, net16, mac, ip, pair, _ in sites:
                c = dh.ClientRun(pair, tmp, "udhcpc", name)
                rc = c.run(c.udhcpc_cmd(), timeout=30)
                self.assertEqual(rc, 0, read(c.out) + read(logs[name])[-3000:])
                rec = c.wait_event({"bound"}, 1)
                self.assertIsNotNone(rec, read(c.out))
                self.assertEqual(rec.get("ip"), ip)
                a, b = net16.split(".")
                want150 = "".join(f"{int(a):02x}{int(b):02x}00{k:02x}" for k in (1, 2))
                self.assertEqual(rec.get("opt150"), want150, "option 150 as the segment's two addresses")
            # The controller sees each agent's DHCP events: one ACK each, for its own phone.
            for name, segment, net16, mac, ip, pair, _ in sites:
                ev = labctl("agent", "events", name, "-i", inv, "--json")
                self.assertEqual(ev.returncode, 0, ev.stderr)
                seen = [json.loads(line) for line in ev.stdout.splitlines()]
                acks = [e for e in seen if e["service"] == "dhcp" and e["event"].get("event") == "ack"]
                self.assertEqual([(a["segment"], a["event"]["mac"], a["event"]["ip"]) for a in acks],
                                 [(segment, mac, ip)], ev.stdout)
        finally:
            for agent in agents:
                dh.stop_process(agent)
            for root_if in links:
                subprocess.run(["ip", "link", "del", root_if], capture_output=True, timeout=10)
            for pair in pairs:
                pair.down()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    harness.run(globals(), extra=["--agent"])
