#!/usr/bin/python3
"""The supermicro-bmc plugin end to end: labctl against OpenIPMI ipmi_sim BMCs shaped like a
Supermicro X8SIL-F (tests/peers/ipmi/bmc_sim.py), each on its own loopback UDP port, with ipmitool
as the independent client that checks what labctl reports and what it changed.

  test_bmc.py --labctl PATH --source DIR [unittest args]

- Probe (one shared BMC, factory login ADMIN/ADMIN in the inventory): `labctl bmc NAME info --json`
  (firmware 2.50, manufacturer 10876, product 0x0908, power; findings default-credentials,
  cipher-suite-0 when ipmi_sim takes cipher suite 0 with a wrong password, fan-full-speed for
  FAN3 only, anonymous-login only on a BMC with the anonymous user on); power on/off/cycle/reset/
  soft seen in the BMC's chassis log and `power status` agreeing with ipmitool; `sensors`
  against `ipmitool sensor` (readings within a count, thresholds, states); FAN1 at its lower
  critical threshold gives fan-failed; `users` against `ipmitool user list 1`; `lan` against
  `ipmitool lan print 1` after ipmitool set it; the ad hoc `--host` form.
- Reconcile: a factory BMC and an inventory with another login and a static LAN: plan
  (set-credentials, disable-factory-login, set-lan), apply, ipmitool logs in with the new login
  and no longer with ADMIN/ADMIN, `lan print` shows the address, a second apply has nothing to
  do, and the password is in no output and no file of the state dir. A 17-20 character password
  (Set User Password's 20-byte form): ipmi_sim 2.0.33 keeps only the first 16 bytes of it (checked
  here with ipmitool first); then apply must fail its read-back and leave the factory login alone.
- Resume: credentials applied first, then `lan:` added: the plan has set-lan only.
- Errors: refused login with the factory one disabled (auth-failed, names the factory reset),
  nothing on the port (unreachable, bounded), `--host` with an unset --password-env variable or a
  bad port.
- Audit: three BMCs on 127.0.0.1 (one provisioned with ipmitool, one factory, one port where
  nothing answers): exit code and per-device results of `labctl audit --format json`.
"""
import json
import os
import re
import secrets
import shutil
import string
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True                  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "peers", "ipmi"))
import bmc_sim  # noqa: E402
import aten  # noqa: E402
import harness  # noqa: E402
import lab as lablib  # noqa: E402

ARGS = None
User = bmc_sim.User
LAN = {"source": "static", "address": "10.1.2.3", "netmask": "255.255.255.0", "gateway": "10.1.2.1"}
SENSOR_NAMES = {"CPU Temp", "System Temp", "FAN1", "FAN2", "FAN3", "12V"}
IPMITOOL_PRIV = {"ADMINISTRATOR": "administrator", "OPERATOR": "operator", "USER": "user",
                 "CALLBACK": "callback", "NO ACCESS": "no-access"}
IPMITOOL_SOURCE = {"Static Address": "static", "DHCP Address": "dhcp", "Unspecified": "unspecified",
                   "BIOS Assigned Address": "bios", "Other": "other"}


def has(tool):
    return shutil.which(tool) is not None


def password(n):
    """A random password of n characters (letters and digits: no YAML or shell quoting)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def field(text, name):
    m = re.search(rf"^\s*{re.escape(name)}\s*:\s*(.*?)\s*$", text, re.M)
    return m.group(1) if m else None


def codes(findings):
    return [f["code"] for f in findings]


def ipmitool_users(text):
    """`ipmitool user list 1` -> {id: (name, ipmi_msg, privilege text)}."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\d+)\s+(?:(\S+)\s+)?(true|false)\s+(true|false)\s+(true|false)\s+(.+?)\s*$", line)
        if m:
            out[int(m.group(1))] = (m.group(2) or "", m.group(5) == "true", m.group(6))
    return out


def ipmitool_sensors(text):
    """`ipmitool sensor` -> {name: [value, units, status, lnr, lc, lnc, unc, uc, unr]}."""
    out = {}
    for line in text.splitlines():
        cols = [c.strip() for c in line.split("|")]
        if len(cols) >= 10:
            out[cols[0]] = cols[1:10]
    return out


def bmc_device(name, port, user, var, lan=None, extra=""):
    text = f"""  - name: {name}
    type: supermicro-bmc
    ip: 127.0.0.1
    port: {port}
    credentials: {{user: {user}, password: {{env: {var}}}}}
"""
    if lan:
        text += "    lan: {" + ", ".join(f"{k}: {v}" for k, v in lan.items()) + "}\n"
    return text + extra


class Lab(lablib.Lab):
    def __init__(self, prefix):
        super().__init__(ARGS, f"bmc-{prefix}", site="bmc-test")


def requirements():
    for tool in ("ipmi_sim", "ipmitool"):
        if not has(tool):
            raise unittest.SkipTest(f"{tool} not installed (packages openipmi, ipmitool)")


def cipher0_accepted(bmc, user):
    """Whether this BMC opens a cipher suite 0 session for `user` with a wrong password (ipmitool)."""
    return bmc.ipmitool("mc", "info", user=user, password=password(12), cipher=0, timeout=20).returncode == 0


def login_ok(bmc, user, pw):
    return bmc.ipmitool("mc", "info", user=user, password=pw, timeout=20).returncode == 0


# ----------------------------------------------------------------------------------------------
class Probe(unittest.TestCase):
    """One BMC with the factory login, shared by the read-mostly tests."""

    @classmethod
    def setUpClass(cls):
        requirements()
        cls.bmc = bmc_sim.start(name="probe")
        cls.lab = Lab("probe")
        cls.lab.env["BMC_PW"] = "ADMIN"
        cls.lab.write(bmc_device("srv1", cls.bmc.port, "ADMIN", "BMC_PW"))

    @classmethod
    def tearDownClass(cls):
        cls.bmc.stop()
        cls.lab.cleanup()

    def ipmi(self, *args, **kw):
        r = self.bmc.ipmitool(*args, **kw)
        self.assertEqual(r.returncode, 0, f"ipmitool {' '.join(map(str, args))}: {r.stdout}{r.stderr}")
        return r.stdout

    def bmc_verb(self, *args):
        return self.lab.json("bmc", "srv1", *args, "-i", self.lab.inv, "--json")

    def ipmitool_power(self):
        out = self.ipmi("chassis", "power", "status")
        m = re.search(r"Chassis Power is (on|off)", out)
        self.assertIsNotNone(m, out)
        return m.group(1)

    def test_01_info(self):
        mc = self.ipmi("mc", "info")
        j = self.bmc_verb("info")
        self.assertEqual(j["version"], "2.50")
        self.assertEqual(j["version"], field(mc, "Firmware Revision"))
        self.assertEqual(j["facts"]["manufacturer"], 10876)
        self.assertEqual(str(j["facts"]["manufacturer"]), field(mc, "Manufacturer ID"))
        self.assertEqual(j["facts"]["product"], 0x0908)
        self.assertEqual(field(mc, "Product ID"), f"{j['facts']['product']} (0x0908)")
        self.assertEqual(j["facts"]["device_id"], int(field(mc, "Device ID")))
        self.assertEqual(j["model"], "product 0x0908")
        self.assertEqual(j["components"]["ipmi"], field(mc, "IPMI Version"))
        self.assertEqual(j["health"]["power"], self.ipmitool_power())
        self.assertEqual(j["facts"]["login"], "inventory")

        found = codes(j["findings"])
        # the inventory's login is ADMIN/ADMIN
        self.assertIn("default-credentials", found)
        # cipher suite 0: what ipmitool says about this BMC decides what labctl must say
        if cipher0_accepted(self.bmc, "ADMIN"):
            self.assertIn("cipher-suite-0", found)
        else:
            self.assertNotIn("cipher-suite-0", found)
        # FAN3 runs at 98% of its top reading, FAN1 and FAN2 do not
        fans = [f for f in j["findings"] if f["code"] == "fan-full-speed"]
        self.assertEqual(len(fans), 1, j["findings"])
        self.assertEqual(fans[0]["severity"], "warning")
        self.assertIn("FAN3", fans[0]["message"])
        # no anonymous user here (ipmitool agrees), nothing else wrong
        self.assertNotEqual(self.bmc.ipmitool("mc", "info", user="", password="", timeout=20).returncode, 0)
        for code in ("anonymous-login", "null-user-enabled", "fan-failed", "sensor-critical", "not-supermicro",
                     "fan-fault", "update-in-progress"):
            self.assertNotIn(code, found)
        for f in j["findings"]:
            self.assertIn(f["severity"], ("critical", "warning", "info"))

        text = self.lab.labctl("bmc", "srv1", "info", "-i", self.lab.inv, check=0).stdout
        self.assertTrue(text.startswith(f"srv1: firmware 2.50, product 0x0908, power {j['health']['power']}, "
                                        "login inventory"), text)

    def test_02_anonymous_login(self):
        with bmc_sim.start(name="anon", anonymous=True) as anon:
            self.assertEqual(anon.ipmitool("mc", "info", user="", password="").returncode, 0,
                             "ipmi_sim should take the anonymous login")
            lab = Lab("anon")
            try:
                lab.env["BMC_PW"] = "ADMIN"
                lab.write(bmc_device("anon", anon.port, "ADMIN", "BMC_PW"))
                j = lab.json("bmc", "anon", "info", "-i", lab.inv, "--json")
                self.assertIn("anonymous-login", codes(j["findings"]))
                # ipmi_sim's user 1 with IPMI messaging on (ipmitool agrees)
                self.assertTrue(ipmitool_users(anon.ipmitool("user", "list", "1").stdout)[1][1])
                self.assertIn("null-user-enabled", codes(j["findings"]))
            finally:
                lab.cleanup()

    def test_03_power(self):
        b = self.bmc
        for action, log, state in (("off", ["power 0"], "off"), ("on", ["power 1"], "on"),
                                   ("cycle", ["power 0", "power 1"], "on"), ("reset", ["reset 1"], "on"),
                                   ("soft", ["shutdown 1"], "off"), ("on", ["power 1"], "on")):
            n = len(b.power_log())
            j = self.bmc_verb("power", action)
            self.assertEqual(j["action"], action)
            if action != "cycle":            # a cycle's "on" comes 1 s later
                self.assertEqual(j["power"], state, f"power {action}")
            got = b.wait_power_log(log, since=n, timeout=5)
            self.assertEqual([e.action for e in b.power_log()[n:]], log, f"power {action}: one chassis action")
            if action == "cycle":
                self.assertGreater(got[1].time, got[0].time)
            if action in ("off", "cycle", "soft"):
                status = self.bmc_verb("power", "status")
                self.assertEqual(status["action"], "status")
                self.assertEqual(status["power"], self.ipmitool_power())
                self.assertEqual(status["power"], state)
                self.assertEqual(b.power_state(), 1 if state == "on" else 0)
        r = self.lab.labctl("bmc", "srv1", "power", "-i", self.lab.inv)
        self.assertNotEqual(r.returncode, 0, "power without an action must be refused")
        self.assertIn("missing action", r.stderr)

    def test_04_sensors(self):
        j = self.bmc_verb("sensors")
        rows = {s["name"]: s for s in j}
        self.assertEqual(set(rows), SENSOR_NAMES)
        self.assertEqual(len(j), 6)
        it = ipmitool_sensors(self.ipmi("sensor"))
        keys = (("lower_critical", 4), ("lower_non_critical", 5), ("upper_non_critical", 6), ("upper_critical", 7))
        kinds = {bmc_sim.TEMPERATURE: ("temperature", "C"), bmc_sim.FAN: ("fan", "RPM"),
                 bmc_sim.VOLTAGE: ("voltage", "V")}
        problems = []
        for name, s in rows.items():
            sim = self.bmc.sensor(name)
            step = abs(sim.m * 10 ** sim.r_exp)                  # one count of the raw reading
            self.assertEqual(s["number"], sim.number, name)
            self.assertEqual((s["type"], s["units"]), kinds[sim.stype], name)
            self.assertLessEqual(abs(s["value"] - sim.value()), step / 2 + 1e-9, name)
            self.assertLessEqual(abs(s["value"] - float(it[name][0])), step / 2 + 1e-9, name)
            self.assertAlmostEqual(s["maximum"], sim.value(255), places=3, msg=name)
            # thresholds as ipmitool reads them; "na" (not readable) must not be reported
            for key, col in keys:
                want = it[name][col]
                if want == "na":
                    if s.get(key) is not None:
                        problems.append(f"{name}: {key} {s[key]} reported, ipmitool: na")
                elif s.get(key) is None or abs(s[key] - float(want)) > 1e-3:
                    problems.append(f"{name}: {key} {s.get(key)}, ipmitool: {want}")
            if it[name][2] == "ok" and s["state"] != "ok":
                problems.append(f"{name}: state {s['state']}, ipmitool: ok ({s['value']} {s['units']})")
        if problems:
            self.fail("labctl's sensors disagree with ipmitool's:\n" + "\n".join(problems))
        text = self.lab.labctl("bmc", "srv1", "sensors", "-i", self.lab.inv, check=0).stdout
        self.assertRegex(text, r"(?m)^FAN1\s+fan\s+3600 RPM\s+ok$")
        self.assertRegex(text, r"(?m)^12V\s+voltage\s+12\.00 V\s+ok$")

    def test_05_fan_failed_and_sensor_critical(self):
        b = self.bmc
        fan1 = b.sensor(bmc_sim.FAN1)
        normal, cpu_normal = fan1.raw, b.sensor(bmc_sim.CPU_TEMP).raw
        lc = fan1.thresholds["lc"]                                 # raw 6 = 450 RPM
        try:
            self.assertEqual(b.set_sensor(bmc_sim.FAN1, lc), 450)
            self.assertIn("Lower Critical", field(self.ipmi("sdr", "get", "FAN1"), "Status"))
            j = self.bmc_verb("info")
            failed = [f for f in j["findings"] if f["code"] == "fan-failed"]
            self.assertEqual(len(failed), 1, j["findings"])
            self.assertEqual(failed[0]["severity"], "critical")
            self.assertIn("FAN1", failed[0]["message"])
            rows = {s["name"]: s for s in self.bmc_verb("sensors")}
            self.assertEqual(rows["FAN1"]["value"], 450)
            self.assertEqual(rows["FAN1"]["state"], "below-lower-critical")
            self.assertNotEqual(rows["FAN2"]["state"], "below-lower-critical")
            # a temperature past its upper critical threshold (ipmitool: "ucr")
            self.assertEqual(b.set_sensor(bmc_sim.CPU_TEMP, 88), 88)
            line = next(x for x in self.ipmi("sdr", "elist").splitlines() if x.startswith("CPU Temp"))
            self.assertRegex(line, r"\| ucr \|")
            j = self.bmc_verb("info")
            crit = [f for f in j["findings"] if f["code"] == "sensor-critical"]
            self.assertEqual(len(crit), 1, j["findings"])
            self.assertIn("CPU Temp", crit[0]["message"])
            cpu = next(s for s in j["health"]["sensors"] if s["name"] == "CPU Temp")
            self.assertEqual((cpu["value"], cpu["state"]), (88, "above-upper-critical"))
        finally:
            b.set_sensor(bmc_sim.FAN1, normal)
            b.set_sensor(bmc_sim.CPU_TEMP, cpu_normal)
        j = self.bmc_verb("info")
        self.assertNotIn("fan-failed", codes(j["findings"]))
        self.assertNotIn("sensor-critical", codes(j["findings"]))

    def test_06_users(self):
        j = self.bmc_verb("users")
        it = ipmitool_users(self.ipmi("user", "list", "1"))
        self.assertGreaterEqual(len(it), 10, "ipmitool user list 1 not understood")
        ids = [u["id"] for u in j]
        self.assertEqual(ids, sorted(set(ids)))
        for u in j:
            self.assertIn(u["id"], it, u)
            name, msg, priv = it[u["id"]]
            self.assertEqual(u["name"], name, u)
            self.assertEqual(u["ipmi_messaging"], msg, u)
            self.assertEqual(u["privilege"], IPMITOOL_PRIV.get(priv, priv), u)
        named = {i: v[0] for i, v in it.items() if v[0]}
        self.assertEqual({u["id"]: u["name"] for u in j if u["name"]}, named)
        self.assertEqual(named, {2: "ADMIN"})
        admin = next(u for u in j if u["id"] == 2)
        self.assertTrue(admin["enabled"])
        text = self.lab.labctl("bmc", "srv1", "users", "-i", self.lab.inv, check=0).stdout
        self.assertRegex(text, r"(?m)^2  ADMIN  enabled  administrator$")

    def test_07_lan(self):
        # something else than ipmi_sim's zeros, set with ipmitool, so that byte order shows
        for args in (("ipsrc", "static"), ("ipaddr", "192.168.7.20"), ("netmask", "255.255.240.0"),
                     ("defgw", "ipaddr", "192.168.1.254")):
            self.ipmi("lan", "set", "1", *args)
        j = self.bmc_verb("lan")
        lp = self.ipmi("lan", "print", "1")
        self.assertEqual(j["channel"], 1)
        self.assertEqual(j["source"], IPMITOOL_SOURCE[field(lp, "IP Address Source")])
        self.assertEqual(j["address"], field(lp, "IP Address"))
        self.assertEqual(j["netmask"], field(lp, "Subnet Mask"))
        self.assertEqual(j["gateway"], field(lp, "Default Gateway IP"))
        self.assertEqual(j["mac"], field(lp, "MAC Address").lower())
        self.assertEqual((j["source"], j["address"], j["netmask"], j["gateway"]),
                         ("static", "192.168.7.20", "255.255.240.0", "192.168.1.254"))

    def test_08_adhoc_host(self):
        env = dict(self.lab.env, BMC_ADHOC="ADMIN")
        j = self.lab.json("bmc", "--host", f"127.0.0.1:{self.bmc.port}", "--user", "ADMIN",
                          "--password-env", "BMC_ADHOC", "info", "--json", env=env)
        self.assertEqual(j["version"], "2.50")
        self.assertEqual(j["facts"]["manufacturer"], 10876)
        self.assertEqual(j["facts"]["product"], 2312)
        self.assertIn("default-credentials", codes(j["findings"]))
        j = self.lab.json("bmc", "--host", f"127.0.0.1:{self.bmc.port}", "--user", "ADMIN",
                          "--password-env", "BMC_ADHOC", "power", "status", "--json", env=env)
        self.assertEqual(j["power"], self.ipmitool_power())
        r = self.lab.labctl("bmc", "--host", f"127.0.0.1:{self.bmc.port}", "--password-env", "BMC_ADHOC",
                            "info", env=env, check=0)                  # --user defaults to ADMIN
        self.assertIn("firmware 2.50", r.stdout)


    def test_09_firmware_verify(self):
        """An SMT_*.bin checked offline and against this BMC; a damaged one refused, by flash too,
        which then sends nothing."""
        img, payload = aten.build(major=3, minor_bcd=0x13)
        path = os.path.join(self.lab.tmp, "SMT_313.bin")
        with open(path, "wb") as f:
            f.write(img)
        # Without a board model there is nothing to check the image against: refused, said so.
        j = self.bmc_verb("firmware", "verify", path)
        self.assertFalse(j["fits"], j)
        self.assertIn("board model", j["refused"])
        inv = self.lab.write(bmc_device("srv1", self.bmc.port, "ADMIN", "BMC_PW",
                                        extra="    model: X8SIL-F\n"),
                             path=os.path.join(self.lab.tmp, "x8.yaml"))
        verb = lambda *a: self.lab.json("bmc", "srv1", *a, "-i", inv, "--json")  # noqa: E731
        j = verb("firmware", "verify", path)
        self.assertTrue(j["fits"], j)
        self.assertEqual(j["image"]["version"], "3.13")
        self.assertEqual(j["running"], field(self.ipmi("mc", "info"), "Firmware Revision"))
        img[payload + 10] ^= 0x01
        with open(path, "wb") as f:
            f.write(img)
        j = verb("firmware", "verify", path)
        self.assertFalse(j["fits"], j)
        self.assertIn("checksum", j["refused"])
        self.assertNotIn("running", j)
        # flash (tests/bmc/test_flash.py) refuses the damaged image before anything is sent
        r = self.lab.labctl("bmc", "srv1", "firmware", "flash", path, "--preserve-config", "-i", inv)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("checksum", r.stderr)
        self.assertIn("nothing was sent", r.stderr)

# ----------------------------------------------------------------------------------------------
class Reconcile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        requirements()
        # Does this ipmi_sim keep a password set with Set User Password's 20-byte form? (ipmitool,
        # on a BMC of its own.) OpenIPMI 2.0.33 keeps the first 16 bytes only.
        long_pw = password(19)
        with bmc_sim.start(name="pw20") as b:
            for args in (("user", "set", "name", 3, "probe20"), ("user", "set", "password", 3, long_pw, 20),
                         ("channel", "setaccess", 1, 3, "ipmi=on", "privilege=4"), ("user", "enable", 3)):
                r = b.ipmitool(*args)
                assert r.returncode == 0, f"ipmitool {args}: {r.stdout}{r.stderr}"
            cls.sim_keeps_20 = login_ok(b, "probe20", long_pw)
            cls.sim_keeps_16_of_20 = not cls.sim_keeps_20 and login_ok(b, "probe20", long_pw[:16])

    def setUp(self):
        self.lab = Lab("reconcile")
        self.bmcs = []

    def tearDown(self):
        for b in self.bmcs:
            b.stop()
        self.lab.cleanup()

    def factory_bmc(self, name):
        b = bmc_sim.start(name=name)
        self.bmcs.append(b)
        return b

    def plan_keys(self, device="srv1"):
        j = self.lab.json("plan", self.lab.inv, "--json")
        dev = next(d for d in j["devices"] if d["name"] == device)
        return dev, [s["key"] for s in dev["steps"]]

    def test_01_apply_provisions_a_factory_bmc(self):
        lab = self.lab
        pw = password(16)           # the longest ipmi_sim keeps whole (see test_02 for 17-20)
        b = self.factory_bmc("fresh")
        lab.env["BMC_PW"] = pw
        lab.write(bmc_device("srv1", b.port, "labadmin", "BMC_PW", lan=LAN))
        lab.labctl("validate", lab.inv, check=0)

        dev, keys = self.plan_keys()
        self.assertEqual(dev["status"], "changes")
        self.assertEqual(keys, ["set-credentials", "disable-factory-login", "set-lan"])
        self.assertIn("default-credentials", codes(dev["findings"]))
        lan_step = dev["steps"][2]
        self.assertEqual(lan_step["args"]["lan"], LAN)
        text = lab.labctl("plan", lab.inv, check=0).stdout
        self.assertIn("set the inventory's login (labadmin)", text)
        self.assertIn("disable the factory login ADMIN", text)
        self.assertIn("static 10.1.2.3", text)

        r = lab.labctl("apply", lab.inv, "--yes", timeout=90, check=0)
        self.assertNotIn("not converged", r.stdout)

        # ipmitool: the new login, not the factory one
        self.assertTrue(login_ok(b, "labadmin", pw), "ipmitool cannot log in with the inventory's login")
        self.assertFalse(login_ok(b, "ADMIN", "ADMIN"), "ADMIN/ADMIN still accepted")
        users = ipmitool_users(b.ipmitool("user", "list", "1", user="labadmin", password=pw).stdout)
        mine = [(i, u) for i, u in users.items() if u[0] == "labadmin"]
        self.assertEqual(len(mine), 1, users)
        slot, (name, msg, priv) = mine[0]
        self.assertGreaterEqual(slot, 3)
        self.assertTrue(msg)
        self.assertEqual(priv, "ADMINISTRATOR")
        self.assertFalse(users[2][1], "ADMIN still has IPMI messaging")
        lp = b.ipmitool("lan", "print", "1", user="labadmin", password=pw).stdout
        self.assertEqual(field(lp, "IP Address Source"), "Static Address", lp)
        self.assertEqual(field(lp, "IP Address"), LAN["address"])
        self.assertEqual(field(lp, "Subnet Mask"), LAN["netmask"])
        self.assertEqual(field(lp, "Default Gateway IP"), LAN["gateway"])

        # nothing left to do, and the probe says so
        r = lab.labctl("apply", lab.inv, "--yes", timeout=60, check=0)
        self.assertIn("Nothing to do", r.stdout)
        dev, keys = self.plan_keys()
        self.assertEqual((dev["status"], keys), ("up-to-date", []))
        j = lab.json("bmc", "srv1", "info", "-i", lab.inv, "--json")
        self.assertEqual(j["facts"]["login"], "inventory")
        self.assertNotIn("default-credentials", codes(j["findings"]))
        lab.assert_secret_kept(self, pw)

    def test_02_twenty_byte_password(self):
        lab = self.lab
        pw = password(19)           # over 16: Set User Password's 20-byte form
        b = self.factory_bmc("long")
        lab.env["BMC_PW"] = pw
        lab.write(bmc_device("srv1", b.port, "labadmin", "BMC_PW"))
        dev, keys = self.plan_keys()
        self.assertEqual(keys, ["set-credentials", "disable-factory-login"])
        r = lab.labctl("apply", lab.inv, "--yes", timeout=90)
        if self.sim_keeps_20:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertTrue(login_ok(b, "labadmin", pw))
            self.assertFalse(login_ok(b, "ADMIN", "ADMIN"))
        else:
            # ipmi_sim stored the first 16 bytes (ipmitool's own 20-byte set does the same): the
            # read-back through a new session fails, and labctl must stop there -- the factory
            # login stays, or nobody could log in any more.
            self.assertTrue(self.sim_keeps_16_of_20, "ipmi_sim lost a 20-byte password entirely")
            self.assertNotEqual(r.returncode, 0, r.stdout)
            self.assertIn("verify-mismatch", r.stdout + r.stderr)
            self.assertIn("does not open a session", r.stdout + r.stderr)
            self.assertTrue(login_ok(b, "ADMIN", "ADMIN"), "the factory login was disabled after a failed step")
            self.assertTrue(login_ok(b, "labadmin", pw[:16]),
                            "the 20-byte Set User Password did not reach the BMC as ipmitool's does")
            self.assertFalse(login_ok(b, "labadmin", pw))
        lab.assert_secret_kept(self, pw)

    def test_03_lan_added_later_plans_set_lan_only(self):
        lab = self.lab
        pw = password(14)
        b = self.factory_bmc("resume")
        lab.env["BMC_PW"] = pw
        lab.write(bmc_device("srv1", b.port, "labadmin", "BMC_PW"))
        self.assertEqual(self.plan_keys()[1], ["set-credentials", "disable-factory-login"])
        lab.labctl("apply", lab.inv, "--yes", timeout=90, check=0)
        self.assertTrue(login_ok(b, "labadmin", pw))
        self.assertEqual(self.plan_keys()[1], [])

        lab.write(bmc_device("srv1", b.port, "labadmin", "BMC_PW", lan=LAN))
        dev, keys = self.plan_keys()
        self.assertEqual(keys, ["set-lan"])
        self.assertEqual(dev["steps"][0]["args"]["lan"], LAN)
        lab.labctl("apply", lab.inv, "--yes", timeout=90, check=0)
        lp = b.ipmitool("lan", "print", "1", user="labadmin", password=pw).stdout
        self.assertEqual((field(lp, "IP Address"), field(lp, "Subnet Mask"), field(lp, "Default Gateway IP")),
                         (LAN["address"], LAN["netmask"], LAN["gateway"]))
        self.assertIn("Nothing to do", lab.labctl("apply", lab.inv, "--yes", check=0).stdout)
        lab.assert_secret_kept(self, pw)


# ----------------------------------------------------------------------------------------------
class Errors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        requirements()
        # factory login gone: ADMIN has another password, labadmin is the real login
        cls.right = password(16)
        cls.bmc = bmc_sim.start(name="locked", users=[User(2, "ADMIN", password(12)),
                                                      User(3, "labadmin", cls.right)])
        cls.lab = Lab("errors")

    @classmethod
    def tearDownClass(cls):
        cls.bmc.stop()
        cls.lab.cleanup()

    def test_01_wrong_password_and_no_factory_login(self):
        lab, b = self.lab, self.bmc
        wrong = password(16)
        self.assertFalse(login_ok(b, "ADMIN", "ADMIN"))
        self.assertFalse(login_ok(b, "labadmin", wrong))
        self.assertTrue(login_ok(b, "labadmin", self.right))
        lab.env["BMC_WRONG"] = wrong
        inv = lab.write(bmc_device("srv1", b.port, "labadmin", "BMC_WRONG"),
                        path=os.path.join(lab.tmp, "wrong.yaml"))
        t = time.monotonic()
        r = lab.labctl("bmc", "srv1", "info", "-i", inv, timeout=30)
        self.assertLess(time.monotonic() - t, 15)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("[auth-failed]", r.stderr)
        self.assertIn("factory settings", r.stderr)
        self.assertIn("ADMIN/ADMIN", r.stderr)
        self.assertEqual(r.stdout, "")
        j = lab.json("plan", inv, "--json", check=2)
        self.assertEqual(j["devices"][0]["problem"]["code"], "auth-failed")
        lab.assert_secret_kept(self, wrong)

    def test_02_nothing_listens(self):
        lab = self.lab
        port = bmc_sim.free_port()
        self.assertFalse(bmc_sim.ping(port))
        lab.env["BMC_PW"] = "ADMIN"
        inv = lab.write(bmc_device("gone", port, "ADMIN", "BMC_PW"), path=os.path.join(lab.tmp, "gone.yaml"))
        t = time.monotonic()
        r = lab.labctl("bmc", "gone", "info", "-i", inv, timeout=30)
        took = time.monotonic() - t
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("[unreachable]", r.stderr)
        self.assertIn(str(port), r.stderr)
        self.assertLess(took, 15, "an unreachable BMC must fail in bounded time")

    def test_03_adhoc_password_env_unset(self):
        env = {k: v for k, v in self.lab.env.items() if k != "BMC_NOT_SET"}
        r = self.lab.labctl("bmc", "--host", f"127.0.0.1:{self.bmc.port}", "--user", "labadmin",
                            "--password-env", "BMC_NOT_SET", "info", env=env, timeout=30)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("BMC_NOT_SET", r.stderr)
        self.assertIn("not set", r.stderr)
        self.assertEqual(r.stdout, "")
        # with the variable set, the same command works
        env["BMC_NOT_SET"] = self.right
        r = self.lab.labctl("bmc", "--host", f"127.0.0.1:{self.bmc.port}", "--user", "labadmin",
                            "--password-env", "BMC_NOT_SET", "info", env=env, check=0)
        self.assertIn("login inventory", r.stdout)

    def test_04_adhoc_bad_host(self):
        env = dict(self.lab.env, BMC_PW="ADMIN")
        for host, msg in (("127.0.0.1:99999", "port must be 1..65535"), ("127.0.0.1:0", "port must be 1..65535"),
                          ("127.0.0.1:abc", "port must be 1..65535"), ("127.0.0.1:", "port must be 1..65535"),
                          ("bmc.example:623", "not an IPv4 address")):
            t = time.monotonic()
            r = self.lab.labctl("bmc", "--host", host, "--password-env", "BMC_PW", "info", env=env, timeout=30)
            self.assertNotEqual(r.returncode, 0, f"{host}: {r.stdout}")
            self.assertIn(msg, r.stderr, host)
            self.assertIn(host, r.stderr)
            self.assertLess(time.monotonic() - t, 5, f"{host}: refused without trying the network")
        r = self.lab.labctl("bmc", "--host", f"127.0.0.1:{self.bmc.port}", "info", env=env)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--password-env", r.stderr)


# ----------------------------------------------------------------------------------------------
class Audit(unittest.TestCase):
    def test_three_bmcs_fine_factory_and_gone(self):
        requirements()
        lab = Lab("audit")
        pw = password(16)
        fine = factory = None
        try:
            fine = bmc_sim.start(name="fine")
            factory = bmc_sim.start(name="factory")
            # fine: a login of its own set up with ipmitool, the factory ADMIN disabled, fans normal
            for args in (("user", "set", "name", 3, "labadmin"), ("user", "set", "password", 3, pw),
                         ("channel", "setaccess", 1, 3, "ipmi=on", "privilege=4"), ("user", "enable", 3)):
                r = fine.ipmitool(*args)
                self.assertEqual(r.returncode, 0, f"{args}: {r.stdout}{r.stderr}")
            for args in (("user", "set", "password", 2, password(16)), ("user", "disable", 2)):
                r = fine.ipmitool(*args, user="labadmin", password=pw)
                self.assertEqual(r.returncode, 0, f"{args}: {r.stdout}{r.stderr}")
            self.assertFalse(login_ok(fine, "ADMIN", "ADMIN"))
            fine.set_sensor(bmc_sim.FAN3, 48)
            fine_cipher0 = cipher0_accepted(fine, "labadmin")
            gone = bmc_sim.free_port()

            lab.env.update(BMC_PW=pw, BMC_GONE="ADMIN")
            lab.write(bmc_device("fine", fine.port, "labadmin", "BMC_PW"),
                      bmc_device("factory", factory.port, "labadmin", "BMC_PW"),
                      bmc_device("gone", gone, "ADMIN", "BMC_GONE"), site="bmc-audit")
            lab.labctl("validate", lab.inv, check=0)        # three BMCs on 127.0.0.1, ports differ

            t = time.monotonic()
            r = lab.labctl("audit", lab.inv, "--format", "json", timeout=60)
            took = time.monotonic() - t
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)   # 2: drift or findings
            self.assertLess(took, 15, "the probes run in parallel: one timeout, not three")
            j = json.loads(r.stdout)
            self.assertEqual((j["format"], j["format_version"], j["site"]), ("labctl-audit", 1, "bmc-audit"))
            self.assertEqual((j["compliant"], j["exit_code"]), (False, 2))
            self.assertEqual(j["summary"]["devices"], 3)
            self.assertEqual(j["summary"]["unreachable"], 1)
            self.assertEqual(j["summary"]["configuration_drift"], 1)
            devs = {d["name"]: d for d in j["devices"]}
            self.assertEqual(set(devs), {"fine", "factory", "gone"})
            self.assertTrue(devs["fine"]["reachable"])
            self.assertIsNone(devs["fine"]["error"])
            self.assertEqual(devs["fine"]["firmware"]["installed"], "2.50")
            self.assertEqual(devs["fine"]["changes"], [])
            self.assertTrue(devs["factory"]["reachable"])
            self.assertEqual(devs["factory"]["firmware"]["installed"], "2.50")
            self.assertEqual(len(devs["factory"]["changes"]), 2, devs["factory"])
            self.assertIn("labadmin", devs["factory"]["changes"][0])
            self.assertIn("factory login ADMIN", devs["factory"]["changes"][1])
            self.assertFalse(devs["gone"]["reachable"])
            self.assertIn(str(gone), devs["gone"]["error"])
            self.assertEqual(devs["gone"]["changes"], [])

            by = {}
            for f in j["findings"]:
                by.setdefault(f["device"], set()).add(f["code"])
            self.assertEqual(by.get("fine", set()), {"cipher-suite-0"} if fine_cipher0 else set(), j["findings"])
            self.assertTrue({"default-credentials", "fan-full-speed"} <= by.get("factory", set()), j["findings"])
            self.assertNotIn("gone", by)
            crit = sum(1 for f in j["findings"] if f["severity"] == "critical")
            self.assertEqual(j["summary"]["findings"]["critical"], crit)

            # the fine BMC alone, without the security checks ipmi_sim cannot pass: compliant, exit 0
            lab.write(bmc_device("fine", fine.port, "labadmin", "BMC_PW", extra="    security-checks: false\n"),
                      site="bmc-audit", path=os.path.join(lab.tmp, "fine.yaml"))
            r = lab.labctl("audit", os.path.join(lab.tmp, "fine.yaml"), "--format", "json", timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            j = json.loads(r.stdout)
            self.assertEqual((j["compliant"], j["exit_code"], j["findings"]), (True, 0, []))
            lab.assert_secret_kept(self, pw)
        finally:
            for b in (fine, factory):
                if b:
                    b.stop()
            lab.cleanup()


if __name__ == "__main__":
    harness.run(globals())
