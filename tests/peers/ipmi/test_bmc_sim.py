#!/usr/bin/python3
"""Self-test of tests/peers/ipmi/bmc_sim.py (ipmi_sim BMCs shaped like a Supermicro X8SIL-F),
checked with the real clients, ipmitool and FreeIPMI:

  - Get Device ID: `ipmitool mc info` shows manufacturer 10876, product 2312, firmware 2.50;
  - chassis: power on/off/cycle/reset reach chassis.sh (chassis.log: a cycle is "power 0" then,
    ~1 s later, "power 1") and `chassis power status` follows;
  - sensors: `ipmitool sdr elist` / `ipmitool sensor` / `ipmi-sensors` list CPU Temp, System Temp,
    FAN1-3, 12V with readings and thresholds; set_sensor() changes a reading at run time;
  - users: `user list 1`; `user set password 2 NEWPASS` then a login with it; configured users,
    a disabled one, the anonymous user;
  - restart(firmware="2.60"): `mc info` shows 2.60 on the same port, the changed password kept;
  - start_many(5): FreeIPMI `bmc-info` fan-out over the five ports answers for each;
  - nothing left behind: every ipmi_sim started here is gone (stop, atexit, killed parent).

  test_bmc_sim.py [--labctl PATH] --source DIR [unittest args]     (--labctl is not used)
"""
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True                  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
import bmc_sim  # noqa: E402
import harness  # noqa: E402

ARGS = None
STARTED = set()          # every ipmi_sim PID this test started (also in child processes)


def has(tool):
    return subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode == 0


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def field(text, name):
    m = re.search(rf"^\s*{re.escape(name)}\s*:\s*(.*?)\s*$", text, re.M)
    return m.group(1) if m else None


class BmcSim(unittest.TestCase):
    bmc = None

    @classmethod
    def setUpClass(cls):
        for tool in ("ipmi_sim", "ipmitool"):
            if not has(tool):
                raise unittest.SkipTest(f"{tool} not installed (packages openipmi, ipmitool)")
        cls.t0 = time.monotonic()
        cls.bmc = bmc_sim.start()
        STARTED.add(cls.bmc.pid)

    @classmethod
    def tearDownClass(cls):
        if cls.bmc:
            cls.bmc.stop()

    def ipmi(self, *args, **kw):
        r = self.bmc.ipmitool(*args, **kw)
        self.assertEqual(r.returncode, 0, f"ipmitool {' '.join(args)}: {r.stdout}{r.stderr}")
        return r.stdout

    # ------------------------------------------------------------------------------------------
    def test_01_mc_info(self):
        out = self.ipmi("mc", "info")
        self.assertEqual(field(out, "Manufacturer ID"), "10876")
        self.assertEqual(field(out, "Firmware Revision"), "2.50")
        self.assertEqual(field(out, "Product ID"), "2312 (0x0908)")
        self.assertEqual(field(out, "Device ID"), "32")
        self.assertEqual(field(out, "IPMI Version"), "2.0")
        self.assertIn("Super Micro", field(out, "Manufacturer Name"))

    def test_02_power(self):
        b = self.bmc
        self.assertIn("Chassis Power is on", self.ipmi("chassis", "power", "status"))
        n = len(b.power_log())
        self.ipmi("chassis", "power", "off")
        b.wait_power_log(["power 0"], since=n)
        self.assertEqual(b.power_state(), 0)
        self.assertIn("Chassis Power is off", self.ipmi("chassis", "power", "status"))
        self.ipmi("chassis", "power", "on")
        b.wait_power_log(["power 0", "power 1"], since=n)
        self.assertIn("Chassis Power is on", self.ipmi("chassis", "power", "status"))

        # a cycle: ipmi_sim sets power 0 at once and power 1 from a 1 s timer
        n = len(b.power_log())
        self.ipmi("chassis", "power", "cycle")
        off, on = b.wait_power_log(["power 0", "power 1"], since=n, timeout=5)
        self.assertGreaterEqual(on.time - off.time, 0.8, "power came back too early for a cycle")
        self.assertLess(on.time - off.time, 3.0)
        self.assertIn("Chassis Power is on", self.ipmi("chassis", "power", "status"))

        n = len(b.power_log())
        self.ipmi("chassis", "power", "reset")
        b.wait_power_log(["reset 1"], since=n)
        self.ipmi("chassis", "power", "soft")
        b.wait_power_log(["reset 1", "shutdown 1"], since=n)
        self.assertIn("Chassis Power is off", self.ipmi("chassis", "power", "status"))
        self.ipmi("chassis", "power", "on")
        b.wait_power_log(["reset 1", "shutdown 1", "power 1"], since=n)
        # the log lines: "<unix time> <action>"
        with open(os.path.join(b.dir, "chassis.log")) as f:
            for line in f:
                self.assertRegex(line, r"^\d+\.\d+ (power [01]|reset 1|shutdown 1|boot \w+|identify [\d ]+)$")

    def test_03_sdr_and_sensors(self):
        out = self.ipmi("sdr", "elist")
        rows = {}
        for line in out.splitlines():
            cols = [c.strip() for c in line.split("|")]
            if len(cols) == 5:
                rows[cols[0]] = cols
        expect = {"CPU Temp": ("01h", "40 degrees C"), "System Temp": ("02h", "32 degrees C"),
                  "FAN1": ("41h", "3600 RPM"), "FAN2": ("42h", "3525 RPM"), "FAN3": ("43h", "18750 RPM"),
                  "12V": ("30h", "12 Volts")}
        for name, (num, reading) in expect.items():
            self.assertIn(name, rows, out)
            self.assertEqual(rows[name][1], num)
            self.assertEqual(rows[name][2], "ok")
            self.assertEqual(rows[name][4], reading)

        # thresholds, as ipmitool reads them (Get Sensor Thresholds + the SDR's M/B/R)
        out = self.ipmi("sensor")
        sens = {c[0]: c for c in ([x.strip() for x in line.split("|")] for line in out.splitlines()) if len(c) >= 10}
        self.assertEqual(sens["12V"][1:4], ["12.000", "Volts", "ok"])
        self.assertEqual(sens["12V"][4:10], ["10.500", "10.800", "11.100", "12.900", "13.200", "13.500"])
        self.assertEqual(sens["CPU Temp"][4:10], ["5.000", "7.000", "10.000", "80.000", "85.000", "90.000"])
        self.assertEqual(sens["FAN1"][4:10], ["300.000", "450.000", "600.000", "na", "na", "na"])
        fan3 = self.bmc.sensor(bmc_sim.FAN3)
        self.assertGreater(fan3.value(), 0.95 * fan3.value(255), "FAN3 should run close to its maximum")

        if not has("ipmi-sensors"):
            self.skipTest("FreeIPMI not installed")
        r = self.bmc.freeipmi("ipmi-sensors", "--output-sensor-thresholds", "--quiet-cache")
        self.assertEqual(r.returncode, 0, r.stderr)
        fi = {c[1]: c for c in ([x.strip() for x in line.split("|")] for line in r.stdout.splitlines()) if len(c) > 10}
        self.assertEqual(fi["FAN3"][2:5], ["Fan", "18750.00", "RPM"])
        self.assertEqual(fi["System Temp"][2:5], ["Temperature", "32.00", "C"])
        self.assertEqual(fi["12V"][5:11], ["10.50", "10.80", "11.10", "12.90", "13.20", "13.50"])

    def test_04_set_sensor(self):
        b = self.bmc
        self.assertEqual(b.set_sensor(bmc_sim.FAN1, 10), 750)
        self.assertEqual(field(self.ipmi("sdr", "get", "FAN1"), "Sensor Reading"), "750 (+/- 0) RPM")
        self.assertEqual(b.set_sensor_value("FAN1", 450), 450)           # at LCR: critical
        out = self.ipmi("sdr", "get", "FAN1")
        self.assertEqual(field(out, "Sensor Reading"), "450 (+/- 0) RPM")
        self.assertIn("Lower Critical", field(out, "Status"))
        b.set_sensor(bmc_sim.CPU_TEMP, 88)                               # past UCR
        line = next(x for x in self.ipmi("sdr", "elist").splitlines() if x.startswith("CPU Temp"))
        self.assertRegex(line, r"\| ucr \|.*\| 88 degrees C$")
        b.set_sensor(bmc_sim.FAN1, 48)
        b.set_sensor(bmc_sim.CPU_TEMP, 40)
        self.assertIn("| ok  |  3.1 | 40 degrees C", self.ipmi("sdr", "elist"))
        with self.assertRaises(RuntimeError):
            b.console("sensor_set_value 0x20 0 0x77 0x10 0")           # no such sensor

    def test_05_users_and_password(self):
        b = self.bmc
        out = self.ipmi("user", "list", "1")
        row2 = next(line for line in out.splitlines() if line.startswith("2 "))
        self.assertRegex(row2, r"^2\s+ADMIN\s+true\s+\w+\s+true\s+ADMINISTRATOR")
        self.assertIn("Set User Password command successful (user 2)",
                      self.ipmi("user", "set", "password", "2", "NEWPASS"))
        self.assertEqual(b.ipmitool("mc", "info", password="NEWPASS").returncode, 0)
        self.assertNotEqual(b.ipmitool("mc", "info", password="ADMIN", timeout=20).returncode, 0)
        b.password = "NEWPASS"

    def test_06_restart_with_firmware(self):
        b = self.bmc
        port, pid = b.port, b.pid
        b.restart(firmware="2.60")
        STARTED.add(b.pid)
        self.assertFalse(alive(pid), "the old ipmi_sim is still running")
        self.assertEqual(b.port, port)
        out = self.ipmi("mc", "info")                                  # NEWPASS: users persisted
        self.assertEqual(field(out, "Firmware Revision"), "2.60")
        self.assertEqual(field(out, "Manufacturer ID"), "10876")
        self.assertTrue(os.path.exists(os.path.join(b.persist_dir, "users.mc20")))
        self.assertEqual(len(re.findall(r"^FAN\d", self.ipmi("sdr", "elist"), re.M)), 3)   # no duplicate SDRs
        self.assertGreater(len(b.power_log()), 0)                     # chassis.log kept

    def test_07_configured_users(self):
        U = bmc_sim.User
        with bmc_sim.start(users=[U(2, "ADMIN", "secret"), U(3, "op", "oppw", priv="operator"),
                                  U(4, "off", "offpw", enabled=False)], anonymous=True) as b:
            STARTED.add(b.pid)
            self.assertEqual(b.ipmitool("mc", "info").returncode, 0)                # ADMIN/secret
            self.assertEqual(b.ipmitool("mc", "info", user="op", password="oppw", priv="OPERATOR").returncode, 0)
            self.assertNotEqual(b.ipmitool("mc", "info", user="off", password="offpw").returncode, 0)
            self.assertEqual(b.ipmitool("mc", "info", user="", password="").returncode, 0)   # anonymous
            out = b.ipmitool("user", "list", "1").stdout
            self.assertRegex(out, r"(?m)^3\s+op\s+.*OPERATOR")
            self.assertIn("Enabled User Count  : 3", b.ipmitool("user", "summary", "1").stdout)
        with bmc_sim.start() as b:                                    # default: anonymous disabled
            STARTED.add(b.pid)
            self.assertNotEqual(b.ipmitool("mc", "info", user="", password="").returncode, 0)

    def test_08_start_many_fanout(self):
        if not has("bmc-info"):
            self.skipTest("FreeIPMI not installed")
        t = time.monotonic()
        with bmc_sim.start_many(5) as group:
            STARTED.update(b.pid for b in group)
            self.assertEqual(len(set(group.ports)), 5)
            hosts = group.freeipmi_hosts()
            for spec in (hosts, "127.0.0.1:[" + ",".join(map(str, group.ports)) + "]"):
                r = subprocess.run(["bmc-info", "-h", spec, "-u", "ADMIN", "-p", "ADMIN", "-F", "64",
                                    "-W", "opensesspriv", "-D", "LAN_2_0", "-l", "ADMIN", "--get-device-id"],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                for p in group.ports:
                    self.assertRegex(r.stdout, rf"(?m)^127\.0\.0\.1:{p}: Firmware Revision\s+: 2\.50$")
                    self.assertRegex(r.stdout, rf"(?m)^127\.0\.0\.1:{p}: Manufacturer ID\s+: Super Micro.*\(10876\)$")
            pids = [b.pid for b in group]
        self.assertFalse([p for p in pids if alive(p)], "start_many left ipmi_sim running")
        self.assertLess(time.monotonic() - t, 20)

    def test_09_nothing_left_behind(self):
        # a script that starts BMCs and exits without stopping them (atexit), and one that is
        # SIGKILLed (PR_SET_PDEATHSIG)
        code = textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {HERE!r})
            import bmc_sim
            g = bmc_sim.start_many(2)
            print(" ".join(str(b.pid) for b in g), " ".join(b.dir for b in g), flush=True)
            sys.stdin.readline()                 # then exit without stopping them
            if sys.argv[1] == "hang":
                time.sleep(60)
        """)
        for mode in ("exit", "hang"):
            p = subprocess.Popen([sys.executable, "-c", code, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
            line = p.stdout.readline().split()
            pids, dirs = [int(x) for x in line[:2]], line[2:]
            STARTED.update(pids)
            self.assertTrue(pids and all(alive(x) for x in pids), line)
            p.stdin.write("go\n")
            p.stdin.flush()
            if mode == "hang":
                time.sleep(0.2)
                p.kill()
            p.wait(timeout=30)
            p.stdin.close()
            p.stdout.close()
            end = time.monotonic() + 5
            while any(alive(x) for x in pids) and time.monotonic() < end:
                time.sleep(0.05)
            self.assertFalse([x for x in pids if alive(x)], f"{mode}: ipmi_sim left running")
            if mode == "exit":
                self.assertFalse([d for d in dirs if os.path.exists(d)], "temp dirs left behind")
            for d in dirs:                       # a SIGKILLed parent cannot remove its dirs
                shutil.rmtree(d, ignore_errors=True)

    def test_99_everything_stopped(self):
        b = self.bmc
        d = b.dir
        b.stop()
        self.assertFalse(os.path.exists(d))
        # every ipmi_sim this test started, here or in its child scripts (other ipmi_sim processes
        # on the machine are not ours to judge)
        self.assertGreaterEqual(len(STARTED), 12)
        left = sorted(p for p in set(bmc_sim.ipmi_sim_pids()) & STARTED if alive(p))
        self.assertEqual(left, [], "ipmi_sim processes left running")
        self.assertLess(time.monotonic() - self.t0, 60, "the self-test should stay under a minute")


if __name__ == "__main__":
    if "--labctl" not in sys.argv:               # not used: the harness only, no labctl
        sys.argv += ["--labctl", "unused"]
    if "--source" not in sys.argv:
        sys.argv += ["--source", os.path.abspath(os.path.join(HERE, "..", "..", ".."))]
    harness.run(globals())
