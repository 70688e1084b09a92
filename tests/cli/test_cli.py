#!/usr/bin/env python3
"""End-to-end tests of the labctl command line: the contract of DESIGN.md, run as a user would.

Usage: test_cli.py --labctl PATH --source DIR  (CTest passes both)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest
from http.server import BaseHTTPRequestHandler, HTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import aten  # noqa: E402  (tests/lib/aten.py: a small ATEN BMC image)

ARGS = None


def have_jsonschema():
    try:
        import jsonschema  # noqa: F401
        return True
    except ImportError:
        return False


class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="labctl-cli-")
        self.state = os.path.join(self.tmp, "state")
        self.example = os.path.join(ARGS.source, "examples", "lab.yaml")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_labctl(self, *args, env=None, state=True):
        cmd = [ARGS.labctl]
        if state:
            cmd += ["--state-dir", self.state]
        cmd += list(args)
        e = dict(os.environ)
        e.pop("LABCTL_STATE_DIR", None)
        e["NO_COLOR"] = "1"
        if env:
            e.update(env)
        p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=120)
        return p.returncode, p.stdout, p.stderr

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    # validate ---------------------------------------------------------------------------------
    def test_validate_example(self):
        code, out, err = self.run_labctl("validate", self.example)
        self.assertEqual(code, 0, err)
        self.assertIn("valid: 11 devices, 1 segments", out)

    def test_validate_reports_every_problem_with_location(self):
        inv = self.write("bad.yaml", """\
            version: 1
            site: t
            devices:
              - name: a
                type: sim-bmcc
              - name: b
                type: sim-drive
                modle: UJ240AS
              - name: a
                type: sim-hypervisor
            """)
        code, out, err = self.run_labctl("validate", inv)
        self.assertEqual(code, 1)
        lines = [l for l in err.splitlines() if ": error: " in l]
        self.assertEqual(lines, [
            f"{inv}:5:11: error: device 'a': unknown device type 'sim-bmcc' (did you mean 'sim-bmc'?)",
            f"{inv}:6:5: error: missing required key 'model' in device",
            f"{inv}:8:5: error: unknown key 'modle' in device (did you mean 'model'?)",
            f"{inv}:9:11: error: duplicate device name 'a' (first at line 4)",
        ])
        self.assertIn("4 errors; nothing was changed", err)

    def test_validate_json(self):
        inv = self.write("bad.yaml", "version: 2\nsite: t\ndevices: []\n")
        code, out, _ = self.run_labctl("validate", "--json", inv)
        self.assertEqual(code, 1)
        doc = json.loads(out)
        self.assertFalse(doc["valid"])
        self.assertEqual(doc["diagnostics"][0]["line"], 1)
        self.assertEqual(doc["diagnostics"][0]["column"], 10)
        self.assertIn("version 2 is not supported", doc["diagnostics"][0]["message"])

    def test_validate_missing_file(self):
        code, _, err = self.run_labctl("validate", os.path.join(self.tmp, "nope.yaml"))
        self.assertEqual(code, 1)
        self.assertIn("nope.yaml: error: cannot read: No such file or directory", err)

    def test_literal_secret_is_a_warning_and_never_printed(self):
        inv = self.write("lit.yaml", """\
            version: 1
            site: t
            devices:
              - name: b1
                type: sim-bmc
                model: X8SIL-F
                credentials: {user: admin, password: hunter2-very-secret}
                sim: {firmware: "1.62"}
                firmware: "2.50"
            """)
        outputs = []
        code, out, err = self.run_labctl("validate", inv)
        self.assertEqual(code, 0, err)
        self.assertIn("7:42: warning: 'password': literal secret in the inventory", err)
        outputs += [out, err]
        for args in (["plan", inv], ["plan", "--json", inv], ["validate", "--json", inv],
                     ["bmc", "-i", inv, "b1", "info", "--json"], ["history", "--json"]):
            code, out, err = self.run_labctl(*args)
            outputs += [out, err]
        for text in outputs:
            self.assertNotIn("hunter2", text)
        # ... nor stored in the state store
        with open(os.path.join(self.state, "state.db"), "rb") as f:
            self.assertNotIn(b"hunter2", f.read())

    # plan -------------------------------------------------------------------------------------
    def test_plan_example_explains_hops(self):
        code, out, err = self.run_labctl("plan", self.example)
        self.assertEqual(code, 0, err)
        self.assertIn("Plan for tickett-lab", out)
        self.assertIn("hop 1/2  SCCP 8.0(3) -> SCCP 8.5(2): SCCP 8.5(2) first: SIP 9.4(2)SR1 requires installed >= 8.3(3)", out)
        self.assertIn("hop 1/2  1.01 -> 1.04: 1.04 first", out)
        self.assertIn("server2-bmc  sim-bmc X8SIL-F  up to date (firmware 2.50)", out)

    def test_plan_json_matches_schema_and_text(self):
        code, out, err = self.run_labctl("plan", "--json", self.example)
        self.assertEqual(code, 0, err)
        doc = json.loads(out)
        if have_jsonschema():
            import jsonschema
            with open(os.path.join(ARGS.source, "docs", "schemas", "plan.schema.json")) as f:
                jsonschema.validate(doc, json.load(f))
        else:
            self.fail("python3-jsonschema is not installed (scripts/install-deps.sh installs it)")
        s = doc["summary"]
        self.assertEqual(s["devices"], len(doc["devices"]))
        self.assertEqual(s["steps"], sum(len(d["steps"]) for d in doc["devices"]))
        byname = {d["name"]: d for d in doc["devices"]}
        self.assertEqual([h["to"] for h in byname["phone3"]["firmware"]["hops"]],
                         ["SCCP11.8-5-2S", "SIP11.9-4-2SR1-1S"])
        self.assertEqual([h["to"] for h in byname["reception"]["firmware"]["hops"]], ["SIP11.9-4-2SR1-1S"])
        self.assertEqual(byname["server2-bmc"]["status"], "up-to-date")
        self.assertEqual(byname["esx2"]["after"], ["esx1", "server2-bmc"])
        keys = [st["key"] for st in byname["esx1"]["steps"]]
        self.assertLess(keys.index("start@dns"), keys.index("start@vcenter"))
        codes = [f["code"] for f in byname["server1-bmc"]["findings"]]
        self.assertEqual(codes, ["default-credentials", "fan-full-speed"])

    def test_plan_only(self):
        code, out, err = self.run_labctl("plan", "--json", "--only", "htpc-bd", self.example)
        self.assertEqual(code, 0, err)
        doc = json.loads(out)
        self.assertEqual([d["name"] for d in doc["devices"]], ["htpc-bd"])
        code, _, err = self.run_labctl("plan", "--only", "htpc-db", self.example)
        self.assertEqual(code, 1)
        self.assertIn("no such device", err)
        self.assertIn("did you mean 'htpc-bd'", err)

    def test_plan_unreachable_and_blocked_exit_2(self):
        inv = self.write("u.yaml", """\
            version: 1
            site: t
            devices:
              - {name: d1, type: sim-drive, model: UJ240AS, firmware: "1.12", sim: {unreachable: true}}
              - {name: d2, type: sim-drive, model: UJ240AS, firmware: "1.12", sim: {firmware: "1.01"}}
              - {name: d3, type: sim-drive, model: UJ240AS, firmware: "1.12", sim: {firmware: "1.12"}}
            """)
        code, out, err = self.run_labctl("plan", inv)
        self.assertEqual(code, 2, out + err)
        self.assertIn("d1  sim-drive UJ240AS  unreachable: probe: no answer from d1 (simulated)", out)
        self.assertIn("d2  sim-drive UJ240AS  blocked: hop to 1.04: flashing a drive can brick it", out)
        self.assertIn("d3  sim-drive UJ240AS  up to date (firmware 1.12)", out)

    def test_plan_invalid_inventory_exit_1(self):
        inv = self.write("bad.yaml", "version: 1\nsite: t\ndevices: {}\n")
        code, out, err = self.run_labctl("plan", inv)
        self.assertEqual(code, 1)
        self.assertEqual(out, "")
        self.assertIn("3:10: error: 'devices': expected a list, found a mapping", err)

    # history and the state store ---------------------------------------------------------------
    def test_history_records_plans(self):
        code, out, _ = self.run_labctl("history")
        self.assertEqual(code, 0)
        self.assertIn("no runs recorded yet", out)
        self.run_labctl("plan", self.example)
        code, out, err = self.run_labctl("history", "--json")
        self.assertEqual(code, 0, err)
        runs = json.loads(out)["runs"]
        self.assertEqual(len(runs), 1)
        self.assertEqual(runs[0]["kind"], "plan")
        self.assertEqual(runs[0]["status"], "done")
        self.assertEqual(runs[0]["summary"]["steps"], 71)
        self.assertTrue(os.path.isabs(runs[0]["inventory"]))
        code, out, _ = self.run_labctl("history", str(runs[0]["id"]))
        self.assertEqual(code, 0)
        self.assertIn("plan  done", out)
        code, _, err = self.run_labctl("history", "999")
        self.assertEqual(code, 1)
        self.assertIn("no run 999", err)

    def test_state_dir_from_environment(self):
        envdir = os.path.join(self.tmp, "envstate")
        code, _, err = self.run_labctl("plan", self.example, env={"LABCTL_STATE_DIR": envdir}, state=False)
        self.assertEqual(code, 0, err)
        self.assertTrue(os.path.exists(os.path.join(envdir, "state.db")))
        self.assertEqual(os.stat(os.path.join(envdir, "state.db")).st_mode & 0o777, 0o600)
        # --state-dir wins over the environment
        code, _, err = self.run_labctl("--state-dir", self.state, "plan", self.example,
                                       env={"LABCTL_STATE_DIR": envdir}, state=False)
        self.assertTrue(os.path.exists(os.path.join(self.state, "state.db")))

    # per-device verbs -----------------------------------------------------------------------------
    def test_device_verbs(self):
        code, out, err = self.run_labctl("bmc", "-i", self.example, "server1-bmc", "info", "--json")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["version"], "1.62")
        code, out, err = self.run_labctl("bmc", "-i", self.example, "server1-bmc", "power", "off")
        self.assertEqual(code, 0, err)
        self.assertIn("Chassis Power is off", out)
        code, out, _ = self.run_labctl("bmc", "server1-bmc", "power", "status", env={"LABCTL_INVENTORY": self.example})
        self.assertIn("Chassis Power is off", out)
        code, out, _ = self.run_labctl("bmc", "-i", self.example, "server1-bmc")
        self.assertEqual(code, 0)
        self.assertIn("power action", out)
        code, _, err = self.run_labctl("bmc", "-i", self.example, "server1-bmc", "powr")
        self.assertEqual(code, 1)
        self.assertIn("unknown verb 'powr' (did you mean 'power'?)", err)
        code, _, err = self.run_labctl("bmc", "-i", self.example, "server1-bmc", "power", "explode")
        self.assertEqual(code, 1)
        self.assertIn("is not one of status, on, off, cycle", err)
        code, _, err = self.run_labctl("bmc", "-i", self.example, "phone1", "info")
        self.assertEqual(code, 1)
        self.assertIn("'phone1' is a sim-phone, not a bmc", err)
        code, _, err = self.run_labctl("hypervisor", "-i", self.example, "esx3", "vms")
        self.assertEqual(code, 1)
        self.assertIn("did you mean 'esx1'", err)
        code, out, err = self.run_labctl("hypervisor", "-i", self.example, "esx1", "vms")
        self.assertEqual(code, 0, err)
        self.assertIn("dns  stopped", out)

    # the rest of the contract ------------------------------------------------------------------
    def test_agent_init_needs_its_directory_and_an_agent(self):
        # Every command of the contract exists now (`firmware fetch`: tests/firmware/test_fetch.py;
        # `agent`: tests/agent/test_agent.py); a missing argument is a usage error naming it.
        code, out, err = self.run_labctl("agent", "init")
        self.assertNotEqual(code, 0)
        self.assertIn("--dir", err)
        self.assertEqual(out, "")

    def test_dhcp_options_print_option_150_as_addresses(self):
        code, out, err = self.run_labctl("dhcp", "options", "--tftp", "10.99.0.1,10.99.0.2",
                                         "--format", "hex")
        self.assertEqual(code, 0, err)
        self.assertIn("96080a6300010a630002", out.replace(" ", ""))
        code, out, err = self.run_labctl("dhcp", "options", "--tftp", "10.99.0.1", "--format",
                                         "dnsmasq")
        self.assertEqual(code, 0, err)
        self.assertIn("dhcp-option-force=150,10.99.0.1", out)
        for bad in (["--tftp", "10.99.0.1", "--format", "pfsense"], ["--tftp", "10.99.0.300"],
                    ["--tftp", "text.example"]):
            code, out, err = self.run_labctl("dhcp", "options", *bad)
            self.assertEqual(code, 1, bad)
            self.assertEqual(out, "", bad)
            self.assertTrue(err.strip(), bad)

    def test_serve_without_services_says_so(self):
        # The example lab's segment serves DHCP on eth1, which this machine does not have: a clear
        # error naming the segment and the interface, exit 1, nothing started.
        code, out, err = self.run_labctl("serve", self.example)
        self.assertEqual(code, 1)
        self.assertIn("segment", err)

    def phone_web(self, mac="000B8201FC42", load="SCCP11.8-5-2S"):
        """A phone's web server on 127.0.0.1: /DeviceInformationX as a 7911 answers it."""
        body = (f"<?xml version=\"1.0\"?><DeviceInformation><MACAddress>{mac}</MACAddress>"
                f"<HostName>SEP{mac}</HostName><phoneDN>1001</phoneDN><appLoadID>{load}</appLoadID>"
                "<bootLoadID>tnp11.8-5-2TH1-9</bootLoadID><modelNumber>CP-7911G</modelNumber>"
                "</DeviceInformation>").encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                ok = self.path == "/DeviceInformationX"
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "text/xml")
                self.end_headers()
                if ok:
                    self.wfile.write(body)

            def log_message(self, *a):
                pass

        srv = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        return srv.server_address[1]

    def phone_inventory(self, port):
        inv = os.path.join(self.tmp, "phones.yaml")
        with open(inv, "w") as f:
            f.write(textwrap.dedent(f"""\
                version: 1
                site: t
                devices:
                  - name: reception
                    type: cisco-phone
                    model: CP-7911G
                    mac: 00:0b:82:01:fc:42
                    ip: 127.0.0.1
                    extension: "1001"
                    web-port: {port}
                    sip:
                      server: 192.0.2.10
                      password: {{env: LABCTL_TEST_SIP_PW}}
                """))
        return inv

    def test_phone_info_reads_the_phones_web_server(self):
        inv = self.phone_inventory(self.phone_web())
        env = {"LABCTL_TEST_SIP_PW": "hunter2hunter2"}
        code, out, err = self.run_labctl("phone", "reception", "info", "-i", inv, env=env)
        self.assertEqual(code, 0, err)
        self.assertIn("SCCP11.8-5-2S", out)
        self.assertIn("tnp11.8-5-2TH1-9", out)
        code, out, err = self.run_labctl("phone", "reception", "info", "--json", "-i", inv, env=env)
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["version"], "SCCP11.8-5-2S")
        # Another phone answering at that address is a finding, not silence.
        inv = self.phone_inventory(self.phone_web(mac="000B8201FC99"))
        code, out, err = self.run_labctl("phone", "reception", "info", "-i", inv, env=env)
        self.assertIn("000B8201FC99", out + err)
        # Nothing listening: unreachable, exit 1, a message naming the phone.
        inv = self.phone_inventory(1)
        code, out, err = self.run_labctl("phone", "reception", "info", "-i", inv, env=env)
        self.assertEqual(code, 1)
        self.assertIn("reception", err)

    def test_phone_config_hides_the_password_and_checks_its_length(self):
        inv = self.phone_inventory(1)
        code, out, err = self.run_labctl("phone", "reception", "config", "-i", inv,
                                         env={"LABCTL_TEST_SIP_PW": "hunter2hunter2"})
        self.assertEqual(code, 0, err)
        self.assertIn("SEP000B8201FC42.cnf.xml", out)
        self.assertIn("<authName>1001</authName>", out)
        self.assertNotIn("hunter2", out + err)
        self.assertIn("*" * 14, out)
        # The seed's 32-character FreePBX password: refused before anything, by validate too.
        long_pw = {"LABCTL_TEST_SIP_PW": "0123456789abcdef0123456789abcdef"}
        code, out, err = self.run_labctl("validate", inv, env=long_pw)
        self.assertEqual(code, 1)
        self.assertIn("sip.password: 32 characters", err + out)
        self.assertNotIn("0123456789abcdef", err + out)

    def test_firmware_store_from_the_command_line(self):
        code, out, err = self.run_labctl("firmware", "list", "--json")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["bundles"], [])
        # Not a bundle: a clear error naming the file, exit 1, nothing stored.
        bogus = os.path.join(self.tmp, "cmterm-7911-sip.9-4-2.cop.sgn")
        with open(bogus, "wb") as f:
            f.write(b"\x01\x00\x02\x01\x00" + b"not a signed header")
        code, out, err = self.run_labctl("firmware", "import", bogus)
        self.assertEqual(code, 1)
        self.assertIn("cmterm-7911-sip.9-4-2.cop.sgn", out + err)
        code, out, err = self.run_labctl("firmware", "list", "--json")
        self.assertEqual(json.loads(out)["bundles"], [])

    def test_firmware_verify_checks_a_supermicro_bmc_image(self):
        # A small ATEN WPCM450 image built from the published layout (tests/lib/aten.py).
        img, _ = aten.build()
        path = os.path.join(self.tmp, "SMT_313.bin")
        with open(path, "wb") as f:
            f.write(img)

        code, out, err = self.run_labctl("firmware", "verify", path)
        self.assertEqual(code, 0, out + err)
        self.assertIn("WPCM450 Boot Loader [ Version:1.0.14 ]", out)
        self.assertIn("image 3 kernel", out)
        self.assertIn("verified: every checksum matches, firmware 3.13", out)
        code, out, err = self.run_labctl("firmware", "verify", "--json", path)
        self.assertEqual(code, 0, out + err)
        item = json.loads(out)["files"][0]
        self.assertEqual((item["status"], item["file_format"], item["in_store"]),
                         ("ok", "aten-wpcm450", False))
        self.assertEqual(item["image"]["version"], "3.13")

        img[0x400 + 10] ^= 0x01  # one bit inside 1stFS
        with open(path, "wb") as f:
            f.write(img)
        code, out, err = self.run_labctl("firmware", "verify", path)
        self.assertEqual(code, 1, out + err)
        self.assertIn('image 2 "1stFS"', out)
        self.assertIn("image checksum", out)
        self.assertIn("footer checksum", out)

        other = os.path.join(self.tmp, "notes.bin")
        with open(other, "wb") as f:
            f.write(b"not firmware at all\n")
        code, out, err = self.run_labctl("firmware", "verify", other)
        self.assertEqual(code, 1)
        self.assertIn("unknown firmware format", out)

    def test_phone_doctor_reads_the_seeds_syslog(self):
        log = os.path.join(ARGS.source, "tests", "data", "seed-in.tftpd.log")
        code, out, err = self.run_labctl("phone", "doctor", "--log", log, "--year", "2024")
        self.assertEqual(code, 2, err)  # something to report
        self.assertIn("192.168.0.224: critical: asked term06.default.loads 6 times", out)
        self.assertIn("SCCP11.8-5-2S", out)
        code, out, err = self.run_labctl("phone", "doctor", "--log", log, "--json")
        self.assertEqual(code, 2, err)
        doc = json.loads(out)
        self.assertEqual(doc["requests"], 18)
        codes = {(d["client"], d["code"]) for d in doc["diagnoses"]}
        self.assertIn(("192.168.0.224", "term-file-loop"), codes)
        self.assertIn(("192.168.0.245", "load-fetched"), codes)
        code, out, err = self.run_labctl("phone", "doctor", "--log", os.path.join(self.tmp, "nope.log"))
        self.assertEqual(code, 1)
        self.assertIn("nope.log", err)
        code, out, err = self.run_labctl("phone", "doctor")
        self.assertEqual(code, 1)
        self.assertIn("--log", err)

    def test_bad_arguments(self):
        for args in (["plan"], ["frobnicate"], ["plan", "--parallel", "0", self.example],
                     ["audit", "--format", "xml", self.example], []):
            code, out, err = self.run_labctl(*args)
            self.assertNotEqual(code, 0, args)
            self.assertTrue(err, args)

    def test_help_everywhere(self):
        for args in (["--help"], ["plan", "--help"], ["apply", "--help"], ["audit", "schedule", "--help"],
                     ["bmc", "--help"], ["dhcp", "options", "--help"], ["tftp", "get", "--help"]):
            code, out, _ = self.run_labctl(*args)
            self.assertEqual(code, 0, args)
            self.assertIn("Usage", out, args)

    def test_plugins_describe(self):
        code, out, _ = self.run_labctl("plugins")
        self.assertEqual(code, 0)
        for t in ("sim-bmc", "sim-phone", "sim-hypervisor", "sim-drive"):
            self.assertIn(t, out)
        code, out, _ = self.run_labctl("plugins", "sim-hypervisor")
        self.assertEqual(code, 0)
        self.assertIn("bmc: device name", out)
        code, _, err = self.run_labctl("plugins", "sim-hypervisr")
        self.assertEqual(code, 1)
        self.assertIn("did you mean 'sim-hypervisor'", err)


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
    import harness
    harness.run(globals())
