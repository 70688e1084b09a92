#!/usr/bin/python3
"""`labctl firmware fetch` and raw drive images in the store, end to end, against an HTTP mirror
of the test's own on loopback (tests/peers/http/mirror.py: byte ranges, and on request a transfer
cut off midway, Range ignored, an error status, corrupted bytes).

  test_fetch.py --labctl PATH --source DIR [unittest args]

- An interrupted transfer is resumed with a Range request in the same run (the mirror's log shows
  `bytes=N-` with N what arrived), and a run that gave up leaves its partial file for the next
  run to resume from; the file is then in the store, pinned.
- A mirror that ignores Range: the download starts over and is still right.
- Wrong bytes (against the catalog's sha256, or against the pin of an earlier import): deleted,
  not imported, exit 1; the next mirror is tried and used when it is right. A 404 mirror is
  skipped. A file already in the store is not downloaded again.
- Arguments: FAMILY@VERSION, unknown names (did you mean), a non-HTTP mirror refused.
- `labctl firmware import` of a raw drive image the catalog lists stores and pins it; another file
  under the same name is refused afterwards.
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "peers", "http"))
sys.path.insert(0, os.path.join(HERE, "..", "peers", "drive"))
import drive_emulator  # noqa: E402
import harness  # noqa: E402
import labctl_run  # noqa: E402
import mirror  # noqa: E402

ARGS = None


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Fetch(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="labctl-fetch-")
        self.state = os.path.join(self.tmp, "state")
        self.root = os.path.join(self.tmp, "mirror")
        self.root2 = os.path.join(self.tmp, "mirror2")
        os.makedirs(self.root)
        os.makedirs(self.root2)
        self.m = mirror.start(self.root)
        self.m2 = mirror.start(self.root2)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LABCTL_")}
        self.env["NO_COLOR"] = "1"
        # Large enough that a cut transfer is really partial, small enough to stay fast.
        self.exe = drive_emulator.windows_updater(drive_emulator.microcode("BD-MLT UJ240AS", "1.04", 300_000))
        self.raw = drive_emulator.microcode("BD-MLT UJ240AS", "1.12", 50_000, seed=2)

    def tearDown(self):
        self.m.stop()
        self.m2.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def catalog(self, exe_mirrors=None, exe_sha="pin", extra=""):
        mirrors = exe_mirrors if exe_mirrors is not None else [self.m.url("uj240as_v104.exe")]
        path = os.path.join(self.tmp, "catalog.yaml")
        with open(path, "w") as f:
            f.write(f"""version: 1
families:
  - name: panasonic-uj240as
    models: [UJ240AS]
    scheme: dotted
    releases:
      - {{version: "1.01", files: []}}
      - version: "1.04"
        files:
          - name: uj240as_v104.exe
            sha256: {exe_sha}
            mirrors: {json.dumps(mirrors)}
      - version: "1.12"
        files: [{{name: UJ240AS-1.12.bin, sha256: pin}}]
{extra}""")
        return path

    def labctl(self, *args, check=None, timeout=120):
        return labctl_run.run(ARGS.labctl, self.state, args, self.env, check=check, timeout=timeout)

    def fetch(self, cat, *names, check=0):
        return labctl_run.run_json(ARGS.labctl, self.state, ["--catalog", cat, "firmware", "fetch", "--json", *names],
                                   self.env, check=check)

    def put(self, root, name, data):
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)

    def pins(self, cat):
        r = self.labctl("--catalog", cat, "firmware", "list", "--json", check=0)
        return {(p["release"], p["name"]): p["sha256"] for p in json.loads(r.stdout)["pins"]}

    def partial(self):
        return os.path.join(self.state, "firmware", ".fetch", "uj240as_v104.exe.part")

    def test_resumes_an_interrupted_transfer_with_range(self):
        self.put(self.root, "uj240as_v104.exe", self.exe)
        self.m.rules({"/uj240as_v104.exe": {"cut_after": 100_000, "times": 1}})
        cat = self.catalog()
        out = self.fetch(cat, "uj240as_v104.exe")
        res = out["results"][0]
        self.assertEqual(res["status"], "fetched", res)
        self.assertEqual(res["sha256"], sha(self.exe))
        self.assertEqual(len(res["attempts"]), 2, res)
        self.assertEqual(res["attempts"][1]["resumed_from"], 100_000)
        self.assertEqual(res["attempts"][1]["http_status"], 206)
        reqs = self.m.requests()
        self.assertEqual([r["range"] for r in reqs], [None, "bytes=100000-"])
        self.assertEqual(reqs[1]["sent"], len(self.exe) - 100_000)
        self.assertEqual(self.pins(cat)[("1.04", "uj240as_v104.exe")], sha(self.exe))
        self.assertFalse(os.path.exists(self.partial()))
        # Already in the store: no request at all.
        self.m.clear_log()
        again = self.fetch(cat, "uj240as_v104.exe")
        self.assertEqual(again["results"][0]["status"], "already-present")
        self.assertEqual(self.m.requests(), [])

    def test_a_later_run_resumes_the_partial_file(self):
        self.put(self.root, "uj240as_v104.exe", self.exe)
        # Every answer stops after 40000 bytes: four attempts are not enough for 308 KiB.
        self.m.rules({"/uj240as_v104.exe": {"cut_after": 40_000}})
        cat = self.catalog()
        out = self.fetch(cat, "uj240as_v104.exe", check=1)
        self.assertEqual(out["results"][0]["status"], "error")
        self.assertIn("gave up after 4 attempts", out["results"][0]["error"]["message"])
        self.assertEqual(os.path.getsize(self.partial()), 4 * 40_000)
        self.assertEqual(self.pins(cat), {})
        self.m.rules({})
        self.m.clear_log()
        res = self.fetch(cat, "uj240as_v104.exe")["results"][0]
        self.assertEqual(res["status"], "fetched")
        self.assertEqual([r["range"] for r in self.m.requests()], ["bytes=160000-"])
        self.assertEqual(res["sha256"], sha(self.exe))

    def test_a_mirror_that_ignores_range_starts_over(self):
        self.put(self.root, "uj240as_v104.exe", self.exe)
        os.makedirs(os.path.dirname(self.partial()), exist_ok=True)
        with open(self.partial(), "wb") as f:
            f.write(self.exe[:70_000])
        self.m.rules({"/uj240as_v104.exe": {"ignore_range": True}})
        res = self.fetch(self.catalog(), "uj240as_v104.exe")["results"][0]
        self.assertEqual(res["status"], "fetched")
        self.assertEqual(res["attempts"][0]["http_status"], 200)
        self.assertIn("restarted", res["attempts"][0]["result"])
        self.assertEqual(self.m.requests()[0]["range"], "bytes=70000-")
        self.assertEqual(res["sha256"], sha(self.exe))

    def test_wrong_bytes_are_never_imported(self):
        # The catalog's checksum is the good file's; the first mirror serves other bytes, the
        # second the right ones.
        self.put(self.root, "uj240as_v104.exe", self.exe)
        self.put(self.root2, "uj240as_v104.exe", self.exe)
        self.m.rules({"/uj240as_v104.exe": {"corrupt": True}})
        cat = self.catalog([self.m.url("uj240as_v104.exe")], exe_sha=sha(self.exe))
        bad = self.fetch(cat, "uj240as_v104.exe", check=1)["results"][0]
        self.assertEqual(bad["error"]["code"], "verify-mismatch")
        self.assertIn("expected " + sha(self.exe), bad["error"]["message"])
        self.assertIn("deleted, not imported", bad["error"]["message"])
        self.assertFalse(os.path.exists(self.partial()))
        self.assertEqual(self.pins(cat), {})
        two = self.catalog([self.m.url("uj240as_v104.exe"), self.m2.url("uj240as_v104.exe")],
                           exe_sha=sha(self.exe))
        res = self.fetch(two, "uj240as_v104.exe")["results"][0]
        self.assertEqual(res["status"], "fetched")
        self.assertEqual(res["url"], self.m2.url("uj240as_v104.exe"))
        self.assertEqual(res["checked_against"], "catalog")

    def test_the_pin_of_an_earlier_import_is_what_a_download_must_match(self):
        cat = self.catalog([self.m.url("uj240as_v104.exe")])
        local = os.path.join(self.tmp, "uj240as_v104.exe")
        with open(local, "wb") as f:
            f.write(self.exe)
        self.labctl("--catalog", cat, "firmware", "import", local, check=0)
        os.remove(os.path.join(self.state, "firmware", "sha256", sha(self.exe)))  # blob lost
        other = drive_emulator.windows_updater(drive_emulator.microcode("BD-MLT UJ240AS", "1.04", 1000))
        self.put(self.root, "uj240as_v104.exe", other)
        res = self.fetch(cat, "uj240as_v104.exe", check=1)["results"][0]
        self.assertEqual(res["error"]["code"], "verify-mismatch")
        self.put(self.root, "uj240as_v104.exe", self.exe)
        res = self.fetch(cat, "uj240as_v104.exe")["results"][0]
        self.assertEqual(res["status"], "fetched")
        self.assertEqual(res["checked_against"], "pin")

    def test_missing_files_errors_and_arguments(self):
        self.put(self.root2, "uj240as_v104.exe", self.exe)
        cat = self.catalog([self.m.url("uj240as_v104.exe"), self.m2.url("uj240as_v104.exe")])
        res = self.fetch(cat, "panasonic-uj240as@1.04")["results"][0]
        self.assertEqual(res["status"], "fetched")
        self.assertEqual([r["status"] for r in self.m.requests()], [404])
        r = self.labctl("--catalog", cat, "firmware", "fetch", "uj240as_v14.exe", check=1)
        self.assertIn("did you mean 'uj240as_v104.exe'", r.stderr)
        r = self.labctl("--catalog", cat, "firmware", "fetch", "panasonic-uj240as@1.01", check=1)
        self.assertIn("no files", r.stderr)
        nomirror = self.fetch(cat, "UJ240AS-1.12.bin", check=1)["results"][0]
        self.assertIn("lists no mirror", nomirror["error"]["message"])
        shutil.rmtree(os.path.join(self.state, "firmware"))
        local = self.catalog(["file:///etc/passwd"])
        r = self.fetch(local, "uj240as_v104.exe", check=1)["results"][0]
        self.assertIn("not an http:// or https:// URL", r["error"]["message"])
        self.m.rules({"/uj240as_v104.exe": {"status": 500}})
        gone = self.catalog([self.m.url("uj240as_v104.exe")])
        r = self.fetch(gone, "uj240as_v104.exe", check=1)["results"][0]
        self.assertIn("HTTP 500", r["error"]["message"])
        self.assertEqual(len([q for q in self.m.requests() if q["status"] == 500]), 4)

    def test_raw_drive_image_import_pins_it(self):
        cat = self.catalog()
        path = os.path.join(self.tmp, "UJ240AS-1.12.bin")
        with open(path, "wb") as f:
            f.write(self.raw)
        r = self.labctl("--catalog", cat, "firmware", "import", "--json", path, check=0)
        res = json.loads(r.stdout)["results"][0]
        self.assertEqual(res["bundle"]["format"], "file")
        self.assertEqual(res["new_pins"], 1)
        self.assertEqual(self.pins(cat)[("1.12", "UJ240AS-1.12.bin")], sha(self.raw))
        with open(path, "wb") as f:
            f.write(drive_emulator.microcode("BD-MLT UJ240AS", "1.12", 50_000, seed=3))
        r = self.labctl("--catalog", cat, "firmware", "import", path, check=1)
        self.assertIn("is pinned to sha256 " + sha(self.raw), r.stderr)


if __name__ == "__main__":
    harness.run(globals())
