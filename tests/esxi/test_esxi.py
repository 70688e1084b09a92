#!/usr/bin/python3
"""The esxi plugin end to end: labctl against libvirt's test driver, against libvirt's real ESX
driver talking to VMware's vSphere API simulator (tests/peers/vcsim), and powering a host through
its BMC (an OpenIPMI ipmi_sim, tests/peers/ipmi/bmc_sim.py). virsh is the independent client that
checks what labctl reports and what it changed.

  test_esxi.py --labctl PATH --source DIR [unittest args]

- TestDriver (test:///tests/data/esxi/seed-node.xml, the seed's host with every VM shut off): plan
  in start order; apply (the DNS VM first, every VM after the VMs it lists in `after:`, autostart
  set, the old VM snapshotted and removed, a VM defined from its template), with the write calls
  as the plugin counted them (<state>/plugins/esxi/calls/esx1.json); a node file already in the
  inventory's state: "Nothing to do" and zero write calls; audit (VM drift, an unexpected VM);
  info/vms; `--uri` outside an inventory. The test driver keeps its state per connection, so each
  labctl process starts from the node file again: the in-process "second pass writes nothing" is
  plugins/esxi/plugin_test.cc, the cross-process one is Vsphere below.
- Vsphere (vcsim as the seed's ESXi 4.1.0 build 260247): connect with credentials, version and
  build, node info and the VM list against virsh; start, hard stop, autostart on/off and snapshot
  verbs seen by virsh; apply defines, starts and sets autostart, a second labctl apply makes zero
  write calls, removal; a wrong password is auth-failed (and never printed); no certificate check
  skipped without no-verify; version drift against the catalog in the audit.
- HostPower (ipmi_sim + vcsim): `labctl hypervisor esx1 power cycle` goes through the BMC (the
  simulator's chassis script logs power 0, power 1), then waits until the hypervisor answers: the
  simulator is started only after the power-on; power off and status; a host that never answers
  is a timeout.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "peers", "ipmi"))
sys.path.insert(0, os.path.join(HERE, "..", "peers", "vcsim"))
import bmc_sim  # noqa: E402
import harness  # noqa: E402
import lab as lablib  # noqa: E402
import vcsim  # noqa: E402

ARGS = None
SANITIZER = lablib.SANITIZER
SEED_VERSION, SEED_BUILD = "4.1.0", "260247"
_vcsim_binary = None


def vcsim_binary():
    """vcsim, built once per build directory (build/<preset>/peers/vcsim)."""
    global _vcsim_binary
    if _vcsim_binary is None:
        build_dir = os.path.dirname(os.path.dirname(os.path.abspath(ARGS.labctl)))
        try:
            _vcsim_binary = vcsim.build(os.path.join(build_dir, "peers", "vcsim"))
        except vcsim.Unavailable as e:
            raise unittest.SkipTest(str(e)) from None
    return _vcsim_binary


def seed_node():
    return os.path.join(ARGS.source, "tests", "data", "esxi", "seed-node.xml")


SEED_VMS = """    vms:
      - {name: vcenter, autostart: true, after: [dns]}
      - {name: iis, after: [dns, sql1]}
      - {name: sql1, after: [dns]}
      - {name: dns, autostart: true}
      - {name: pfsense, autostart: true}
      - {name: trixbox, after: [dns]}
      - {name: whs2011, state: stopped}
      - {name: osx-server, template: TEMPLATES/osx-server.xml, after: [dns]}
      - {name: old-test, state: absent, snapshot-before-destroy: true}
"""


class Lab(lablib.Lab):
    """The shared lab, without the operator's libvirt settings, plus the plugin's call counts."""

    def __init__(self, prefix):
        super().__init__(ARGS, f"esxi-{prefix}", site="esxi-test")
        self.env = {k: v for k, v in self.env.items() if not k.startswith("LIBVIRT_")}

    def labctl(self, *args, timeout=120, **kw):
        return super().labctl(*args, timeout=timeout, **kw)

    def calls(self, device="esx1"):
        """The libvirt calls the last labctl process made for the device (the plugin's counts)."""
        with open(os.path.join(self.state, "plugins", "esxi", "calls", f"{device}.json")) as f:
            return json.load(f)

    def forget_calls(self, device="esx1"):
        try:
            os.unlink(os.path.join(self.state, "plugins", "esxi", "calls", f"{device}.json"))
        except FileNotFoundError:
            pass


def writes(calls, call):
    """The VMs of each write `call`, in order."""
    return [w["vm"] for w in calls["write_log"] if w["call"] == call]


def step_keys(plan):
    return [s["key"] for d in plan["devices"] for s in d["steps"]]


def assert_start_order(tc, started):
    """The DNS VM first; every VM after the VMs it lists in `after:`."""
    tc.assertEqual(started[0], "dns", started)
    for vm, deps in {"vcenter": ["dns"], "sql1": ["dns"], "iis": ["dns", "sql1"], "trixbox": ["dns"],
                     "osx-server": ["dns"]}.items():
        for dep in deps:
            tc.assertLess(started.index(dep), started.index(vm), f"{dep} before {vm}: {started}")


# ----------------------------------------------------------------------------------------------
class TestDriver(unittest.TestCase):
    """libvirt's test driver: a real in-process hypervisor, fresh from the node file in every
    labctl process."""

    def setUp(self):
        if shutil.which("virsh") is None:
            self.skipTest("virsh not installed (package libvirt-clients)")
        self.lab = Lab("test")
        templates = os.path.join(ARGS.source, "tests", "data", "esxi")
        self.lab.write(f"""  - name: esx1
    type: esxi
    uri: test://{seed_node()}
""" + SEED_VMS.replace("TEMPLATES", templates))

    def tearDown(self):
        self.lab.cleanup()

    def test_plan_in_start_order(self):
        plan = self.lab.json("plan", self.lab.inv, "--json")
        self.assertEqual(step_keys(plan), [
            "stop@old-test", "snapshot@old-test", "undefine@old-test",
            "autostart@dns", "start@dns", "autostart@pfsense", "start@pfsense", "start@trixbox",
            "define@osx-server", "start@osx-server", "autostart@vcenter", "start@vcenter",
            "start@sql1", "start@iis"])
        dev = plan["devices"][0]
        self.assertEqual(dev["status"], "changes")
        self.assertEqual([f["code"] for f in dev["findings"]], ["unexpected-vm"])
        self.assertIn("'scratch'", dev["findings"][0]["message"])
        # Planning is read-only.
        self.assertEqual(self.lab.calls()["writes"], 0)

    def test_apply_in_start_order_with_counted_writes(self):
        r = self.lab.labctl("apply", "--yes", self.lab.inv, check=0)
        self.assertIn("14 steps run", r.stdout)
        calls = self.lab.calls()
        self.assertEqual(calls["writes"], 14, calls["by_call"])
        assert_start_order(self, writes(calls, "virDomainCreate"))
        self.assertEqual(writes(calls, "virDomainSetAutostart"), ["dns", "pfsense", "vcenter"])
        self.assertEqual(writes(calls, "virDomainDefineXML"), ["osx-server"])
        log = [(w["call"], w["vm"]) for w in calls["write_log"]]
        self.assertLess(log.index(("virDomainSnapshotCreateXML", "old-test")),
                        log.index(("virDomainUndefineFlags", "old-test")))
        # One connection for the probe and every step (the test driver's state is per connection).
        self.assertEqual(calls["by_call"]["virConnectOpenAuth"], 1)

    def test_converged_node_makes_no_write_calls(self):
        # The seed's VMs already as an inventory without autostart wants them (the test driver's
        # node file cannot mark a VM autostarted).
        with open(seed_node()) as f:
            node = f.read()
        node = re.sub(r"(<name>(?:dns|pfsense|vcenter|sql1|iis|trixbox)</name>\s*<uuid>[^<]*</uuid>\s*"
                      r"<test:runstate>)5<", r"\g<1>1<", node)
        node = re.sub(r"<domain [^>]*>\s*<name>old-test</name>.*?</domain>\s*", "", node, flags=re.S)
        path = os.path.join(self.lab.tmp, "converged.xml")
        with open(path, "w") as f:
            f.write(node)
        self.lab.write(f"""  - name: esx1
    type: esxi
    uri: test://{path}
    vms:
""" + "".join(f"      - {{name: {vm}}}\n" for vm in ("dns", "pfsense", "vcenter", "sql1", "iis", "trixbox"))
            + "      - {name: whs2011, state: stopped}\n      - {name: old-test, state: absent}\n")
        r = self.lab.labctl("apply", "--yes", self.lab.inv, check=0)
        self.assertIn("Nothing to do", r.stdout)
        calls = self.lab.calls()
        self.assertEqual(calls["writes"], 0, calls)
        # Reads: the host (5), the list (1) and two per VM -- no more.
        self.assertEqual(calls["reads"], 5 + 1 + 2 * 8, calls["by_call"])

    def test_audit_reports_vm_drift_and_unexpected_vms(self):
        report = self.lab.json("audit", self.lab.inv, "--format", "json", check=2)
        dev = report["devices"][0]
        self.assertTrue(dev["reachable"])
        self.assertFalse(dev["firmware"]["drift"])
        self.assertIn("start VM dns", dev["changes"])
        self.assertIn("remove VM old-test", dev["changes"])
        self.assertEqual([(f["code"], f["device"]) for f in report["findings"]], [("unexpected-vm", "esx1")])

    def test_info_and_vms(self):
        info = self.lab.json("hypervisor", "-i", self.lab.inv, "esx1", "info", "--json")
        self.assertEqual(info["model"], "TEST")
        self.assertEqual(info["facts"]["node"]["cpus"], 8)
        self.assertEqual(info["health"]["vms"], 9)
        vms = self.lab.json("hypervisor", "-i", self.lab.inv, "esx1", "vms", "--json")
        by_name = {v["name"]: v for v in vms}
        self.assertEqual(by_name["old-test"]["state"], "running")
        self.assertEqual(by_name["vcenter"]["vcpus"], 4)
        self.assertEqual(by_name["vcenter"]["memory_mib"], 12 * 1024)
        r = self.lab.labctl("hypervisor", "-i", self.lab.inv, "esx1", "start", "nope", check=1)
        self.assertIn("VM 'nope' is not defined", r.stderr)
        self.assertIn("[precondition-failed]", r.stderr)

    def test_adhoc_uri(self):
        vms = self.lab.json("hypervisor", "--uri", "test:///default", "vms", "--json")
        self.assertEqual([(v["name"], v["state"]) for v in vms], [("test", "running")])
        r = self.lab.labctl("hypervisor", "--uri", "xen://host/", "info", check=1)
        self.assertIn("is not a libvirt URI this plugin uses", r.stderr)
        r = self.lab.labctl("hypervisor", "--uri", "test:///no/such/node.xml", "info", check=1)
        self.assertIn("'/no/such/node.xml' does not exist", r.stderr)


# ----------------------------------------------------------------------------------------------
def vmware_template(directory, name):
    path = os.path.join(directory, f"{name}.xml")
    with open(path, "w") as f:
        f.write(f"""<domain type='vmware'>
  <name>{name}</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <source file='[LocalDS_0] {name}/{name}.vmdk'/>
      <target dev='sda' bus='scsi'/>
    </disk>
    <controller type='scsi' index='0' model='lsilogic'/>
    <interface type='bridge'><source bridge='VM Network'/><model type='e1000'/></interface>
  </devices>
</domain>
""")
    return path


def virsh_field(text, name):
    m = re.search(rf"^{re.escape(name)}:\s*(.*?)\s*$", text, re.M)
    return m.group(1) if m else None


class Vsphere(unittest.TestCase):
    """libvirt's ESX driver against govmomi's simulator, as the seed's ESXi 4.1.0 build 260247.
    One simulator for the class: its VMs persist across connections and labctl processes."""

    PASSWORD = "pass"

    @classmethod
    def setUpClass(cls):
        cls.sim = vcsim.start(vcsim_binary(), about_version=SEED_VERSION, about_build=SEED_BUILD)
        cls.lab = Lab("vsphere")
        cls.lab.env["VCSIM_PW"] = cls.PASSWORD

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        cls.lab.cleanup()

    def host(self, extra="", vms="", target=SEED_VERSION + " build " + SEED_BUILD, no_verify=True):
        return f"""  - name: esx1
    type: esxi
    model: ESXi
    uri: {self.sim.uri}
    no-verify: {'true' if no_verify else 'false'}
    credentials: {{user: {vcsim.USER}, password: {{env: VCSIM_PW}}}}
    firmware: {{target: "{target}"}}
{extra}{vms}"""

    def virsh(self, *args):
        r = self.sim.virsh(*args)
        self.assertEqual(r.returncode, 0, f"virsh {' '.join(args)}: {r.stdout}{r.stderr}")
        return r.stdout

    def virsh_states(self):
        out = {}
        for line in self.virsh("list", "--all").splitlines()[2:]:
            cols = line.split(None, 2)
            if len(cols) == 3:
                out[cols[1]] = cols[2].strip()
        return out

    def test_connect_version_build_and_node(self):
        self.lab.write(self.host(extra="    unexpected-vms: ignore\n"))
        info = self.lab.json("hypervisor", "-i", self.lab.inv, "esx1", "info", "--json")
        self.assertEqual(info["model"], "VMware ESXi")
        self.assertEqual(info["version"], f"{SEED_VERSION} build {SEED_BUILD}")
        self.assertEqual(info["facts"]["about"]["full_name"], f"VMware ESXi {SEED_VERSION} build-{SEED_BUILD}")
        self.assertEqual(info["facts"]["driver"], "ESX")
        node = self.virsh("nodeinfo")
        self.assertEqual(info["facts"]["node"]["cpus"], int(virsh_field(node, "CPU(s)")))
        self.assertEqual(info["facts"]["node"]["mhz"], int(virsh_field(node, "CPU frequency").split()[0]))
        self.assertEqual(info["facts"]["node"]["memory_mib"], int(virsh_field(node, "Memory size").split()[0]) // 1024)
        self.assertEqual(info["facts"]["hostname"], self.virsh("hostname").strip())
        self.assertEqual([f["code"] for f in info["findings"]], ["tls-not-verified"])
        # The version is what the catalog audits: the seed's target, no drift.
        report = self.lab.json("audit", self.lab.inv, "--format", "json", check=2)  # 2: the finding
        self.assertFalse(report["devices"][0]["firmware"]["drift"])
        self.assertEqual(report["devices"][0]["firmware"]["installed"], f"{SEED_VERSION} build {SEED_BUILD}")

    def test_vms_match_virsh(self):
        self.lab.write(self.host())
        vms = self.lab.json("hypervisor", "-i", self.lab.inv, "esx1", "vms", "--json")
        states = self.virsh_states()
        self.assertEqual(sorted(v["name"] for v in vms), sorted(states))
        for v in vms:
            self.assertEqual(v["state"], {"running": "running", "shut off": "stopped",
                                          "paused": "paused"}[states[v["name"]]], v)
            self.assertEqual(v["autostart"], virsh_field(self.virsh("dominfo", v["name"]), "Autostart") == "enable")

    def test_start_stop_autostart_snapshot_verbs(self):
        self.lab.write(self.host())
        vm = "ha-host_VM1"
        hv = ["hypervisor", "-i", self.lab.inv, "esx1"]
        self.assertEqual(self.lab.json(*hv, "stop", vm, "force", "--json")["state"], "stopped")
        self.assertEqual(self.virsh_states()[vm], "shut off")
        self.assertEqual(self.lab.json(*hv, "start", vm, "--json")["state"], "running")
        self.assertEqual(self.virsh_states()[vm], "running")
        self.lab.json(*hv, "autostart", vm, "on", "--json")
        self.assertEqual(virsh_field(self.virsh("dominfo", vm), "Autostart"), "enable")
        self.lab.json(*hv, "autostart", vm, "off", "--json")
        self.assertEqual(virsh_field(self.virsh("dominfo", vm), "Autostart"), "disable")
        self.lab.json(*hv, "snapshot", vm, "labctl-e2e", "--json")
        self.assertIn("labctl-e2e", self.virsh("snapshot-list", vm, "--name").split())
        calls = self.lab.calls()
        self.assertEqual(writes(calls, "virDomainSnapshotCreateXML"), [vm])
        self.assertEqual(calls["writes"], 1)  # each labctl process counts its own

    def test_apply_then_a_second_apply_writes_nothing_then_removal(self):
        t = self.lab.tmp
        vms = f"""    vms:
      - {{name: web, template: {vmware_template(t, 'web')}, after: [dns], autostart: true}}
      - {{name: dns, template: {vmware_template(t, 'dns')}, autostart: true}}
      - {{name: ha-host_VM0}}
      - {{name: ha-host_VM1}}
      - {{name: spare, template: {vmware_template(t, 'spare')}, state: stopped}}
"""
        self.lab.write(self.host(vms=vms))
        self.lab.labctl("apply", "--yes", self.lab.inv, check=0)
        calls = self.lab.calls()
        self.assertEqual(writes(calls, "virDomainDefineXML"), ["dns", "spare", "web"])  # start order
        self.assertEqual(writes(calls, "virDomainCreate"), ["dns", "web"])
        self.assertEqual(writes(calls, "virDomainSetAutostart"), ["dns", "web"])
        states = self.virsh_states()
        self.assertEqual((states["dns"], states["web"], states["spare"]), ("running", "running", "shut off"))
        for vm in ("dns", "web"):
            self.assertEqual(virsh_field(self.virsh("dominfo", vm), "Autostart"), "enable")
        # A second labctl process against the same host: nothing to do, not one write call.
        self.lab.forget_calls()
        r = self.lab.labctl("apply", "--yes", self.lab.inv, check=0)
        self.assertIn("Nothing to do", r.stdout)
        second = self.lab.calls()
        self.assertEqual(second["writes"], 0, second["by_call"])
        self.assertGreater(second["reads"], 0)
        # Removal: web is running (graceful shutdown first), spare is not.
        self.lab.write(self.host(vms=vms.replace("autostart: true}", "state: absent}").replace(
            "state: stopped}", "state: absent}")))
        plan = self.lab.json("plan", self.lab.inv, "--json")
        # In reverse start order: web waits for dns, so it goes first.
        self.assertEqual(step_keys(plan), ["stop@web", "undefine@web", "undefine@spare", "stop@dns",
                                           "undefine@dns"])
        self.lab.labctl("apply", "--yes", self.lab.inv, check=0)
        states = self.virsh_states()
        for vm in ("dns", "web", "spare"):
            self.assertNotIn(vm, states)
        self.assertEqual(writes(self.lab.calls(), "virDomainUndefineFlags"), ["web", "spare", "dns"])

    def test_wrong_password_is_an_authentication_error(self):
        env = dict(self.lab.env, VCSIM_PW="Wr0ng-pa55word-e2e")
        self.lab.write(self.host())
        r = self.lab.labctl("hypervisor", "-i", self.lab.inv, "esx1", "info", env=env, check=1)
        self.assertIn("[auth-failed]", r.stderr)
        self.assertIn("Login failure", r.stderr)
        self.assertIn("esx1", r.stderr)
        r = self.lab.labctl("apply", "--yes", self.lab.inv, env=env)
        self.assertNotEqual(r.returncode, 0)
        for out in self.lab.printed:
            self.assertNotIn("Wr0ng-pa55word-e2e", out)
            self.assertNotIn(self.PASSWORD + "\n", out)
        r = self.lab.labctl("hypervisor", "--uri", self.sim.uri, "--user", "user", "--password-env", "VCSIM_PW",
                            "--no-verify", "vms", env=env, check=1)
        self.assertIn("[auth-failed]", r.stderr)

    def test_certificate_is_checked_unless_no_verify(self):
        self.lab.write(self.host(no_verify=False))
        r = self.lab.labctl("hypervisor", "-i", self.lab.inv, "esx1", "info", check=1)
        self.assertIn("[precondition-failed]", r.stderr)
        self.assertIn("certificate", r.stderr)
        self.assertIn("no-verify: true", r.stderr)

    def test_an_odd_about_loses_the_build_not_the_host(self):
        with vcsim.start(vcsim_binary(), about_build="5969303-beta") as odd:
            self.lab.write(f"""  - name: esx1
    type: esxi
    uri: {odd.uri}
    no-verify: true
    credentials: {{user: {vcsim.USER}, password: {{env: VCSIM_PW}}}}
    unexpected-vms: ignore
""")
            info = self.lab.json("hypervisor", "-i", self.lab.inv, "esx1", "info", "--json")
        self.assertEqual(info["version"], "6.5.0")  # libvirt's, without the build
        self.assertIn("build-unknown", [f["code"] for f in info["findings"]])
        self.assertIn("not a build number", info["facts"]["about_error"])
        self.assertEqual(info["health"]["vms"], 2)

    def test_version_drift_is_audited_not_installed(self):
        self.lab.write(self.host(target="6.5.0", extra="    unexpected-vms: ignore\n"))
        report = self.lab.json("audit", self.lab.inv, "--format", "json", check=2)
        fw = report["devices"][0]["firmware"]
        self.assertTrue(fw["drift"], fw)
        self.assertEqual(fw["installed"], f"{SEED_VERSION} build {SEED_BUILD}")
        self.assertIn("does not install them", fw["blocked"])
        plan = self.lab.json("plan", self.lab.inv, "--json", check=2)
        self.assertEqual(plan["devices"][0]["status"], "blocked")
        self.assertEqual(step_keys(plan), [])


# ----------------------------------------------------------------------------------------------
class HostPower(unittest.TestCase):
    """The hypervisor's host is powered through its BMC: an ipmi_sim whose chassis script logs
    every power action. The vSphere simulator plays the hypervisor, and is started only once the
    BMC has powered the host on."""

    @classmethod
    def setUpClass(cls):
        for tool in ("ipmi_sim", "ipmitool"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest(f"{tool} not installed (packages openipmi, ipmitool)")
        cls.binary = vcsim_binary()
        cls.bmc = bmc_sim.start(name="esx-host")
        cls.lab = Lab("power")
        cls.lab.env["BMC_PW"] = "ADMIN"
        cls.lab.env["VCSIM_PW"] = vcsim.PASSWORD

    @classmethod
    def tearDownClass(cls):
        cls.bmc.stop()
        cls.lab.cleanup()

    def inventory(self, port, wait="60s"):
        return self.lab.write(f"""  - name: server1-bmc
    type: supermicro-bmc
    ip: 127.0.0.1
    port: {self.bmc.port}
    credentials: {{user: ADMIN, password: {{env: BMC_PW}}}}
    security-checks: false
  - name: esx1
    type: esxi
    uri: esx://127.0.0.1:{port}/
    no-verify: true
    credentials: {{user: {vcsim.USER}, password: {{env: VCSIM_PW}}}}
    bmc: server1-bmc
    power-wait: {wait}
""")

    def test_power_cycle_goes_through_the_bmc_then_waits_for_the_hypervisor(self):
        port = vcsim.free_port()
        self.inventory(port)
        since = len(self.bmc.power_log())
        argv = [ARGS.labctl, "--state-dir", self.lab.state, "hypervisor", "-i", self.lab.inv, "esx1",
                "power", "cycle", "--json"]
        proc = subprocess.Popen(argv, env=self.lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, stdin=subprocess.DEVNULL)
        try:
            self.bmc.wait_power_log(["power 0", "power 1"], since=since, timeout=20)
            time.sleep(1.0)  # labctl has tried, and failed, to reach the hypervisor by now
            self.assertIsNone(proc.poll(), "labctl returned before the hypervisor answered")
            with vcsim.start(self.binary, port=port):
                out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for bad in SANITIZER:
            self.assertNotIn(bad, err)
        self.assertEqual(proc.returncode, 0, out + err)
        r = json.loads(out)
        self.assertEqual(r["bmc"], "server1-bmc")
        self.assertEqual(r["action"], "cycle")
        self.assertGreaterEqual(r["attempts"], 2)
        self.assertGreaterEqual(r["answered_after_ms"], 1000)

    def test_power_off_and_status(self):
        self.inventory(vcsim.free_port())
        since = len(self.bmc.power_log())
        r = self.lab.json("hypervisor", "-i", self.lab.inv, "esx1", "power", "off", "--json")
        self.assertEqual(r["bmc_result"]["power"], "off")
        self.bmc.wait_power_log(["power 0"], since=since)
        self.assertEqual(self.bmc.power_state(), 0)
        r = self.lab.json("hypervisor", "-i", self.lab.inv, "esx1", "power", "status", "--json")
        self.assertEqual(r["bmc_result"]["power"], "off")
        self.assertFalse(r["answers"])  # no hypervisor on that port

    def test_power_on_gives_up_when_the_hypervisor_never_answers(self):
        self.inventory(vcsim.free_port(), wait="2s")
        since = len(self.bmc.power_log())
        t0 = time.monotonic()
        r = self.lab.labctl("hypervisor", "-i", self.lab.inv, "esx1", "power", "on", check=1)
        self.assertLess(time.monotonic() - t0, 30)
        self.assertIn("[timeout]", r.stderr)
        self.assertIn("did not answer within 2 s after power on", r.stderr)
        self.bmc.wait_power_log(["power 1"], since=since)

    def test_no_bmc_no_power(self):
        self.lab.write("""  - name: esx1
    type: esxi
    uri: test:///default
""")
        r = self.lab.labctl("hypervisor", "-i", self.lab.inv, "esx1", "power", "cycle", check=1)
        self.assertIn("has no bmc: in the inventory", r.stderr)


if __name__ == "__main__":
    harness.run(globals())
