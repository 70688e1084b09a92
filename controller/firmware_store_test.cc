// The firmware store: the .cop.sgn header parser, member-name policy, name classification,
// identification against the catalog, and imports of bundles built here with libarchive's write
// API (same structure as Cisco's bundles, our own bytes: no vendor file is ever shipped).
#include "controller/firmware_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <sstream>

#include "controller/context.h"
#include "controller/firmware_commands.h"

namespace labctl::controller::firmware {
namespace {

namespace fs = std::filesystem;

const std::string kShippedCatalog = std::string(LABCTL_SOURCE_DIR) + "/catalog/catalog.yaml";

const std::vector<std::string> kSipFiles = {"SIP11.9-4-2SR1-1S.loads", "term06.default.loads",
                                            "term11.default.loads",    "jar11sip.9-4-2ES9.sbn",
                                            "cnu11.9-4-2ES9.sbn",      "apps11.9-4-2ES9.sbn",
                                            "dsp11.9-4-2ES9.sbn",      "cvm11sip.9-4-2ES9.sbn"};
const std::vector<std::string> kSccpFiles = {"SCCP11.8-5-2S.loads",  "term06.default.loads",
                                             "term11.default.loads", "jar11sccp.8-5-2TH1-9.sbn",
                                             "cnu11.8-5-2TH1-9.sbn", "apps11.8-5-2TH1-9.sbn",
                                             "dsp11.8-5-2TH1-9.sbn", "cvm11sccp.8-5-2TH1-9.sbn"};

std::vector<std::uint8_t> bytes(const std::string& s) {
  return std::vector<std::uint8_t>(s.begin(), s.end());
}

// Deterministic filler: `n` pseudo-random bytes from `seed`.
std::string filler(const std::string& seed, std::size_t n) {
  std::seed_seq seq(seed.begin(), seed.end());
  std::mt19937 rng(seq);
  std::string out(n, '\0');
  for (auto& c : out)
    c = static_cast<char>(rng() & 0xff);
  return out;
}

// ---- Building bundles ---------------------------------------------------------------------------

struct Entry {
  enum class Type { File, Dir, Symlink, Hardlink, Fifo, CharDevice };
  Entry(std::string n, std::string d, Type t = Type::File, std::string l = "")
      : name(std::move(n)), data(std::move(d)), type(t), link(std::move(l)) {}
  std::string name;
  std::string data;
  Type type = Type::File;
  std::string link;
};

enum class Fmt { Tar, TarGz, Zip };

la_ssize_t append_cb(archive*, void* client, const void* buf, size_t n) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

std::string make_archive(Fmt fmt, const std::vector<Entry>& entries) {
  std::string out;
  archive* a = archive_write_new();
  if (fmt == Fmt::TarGz) {
    EXPECT_EQ(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    // No time in the gzip header: the same entries give the same bytes, whatever the second
    // (a re-import is recognised by the bundle's sha256; a build across a second boundary made
    // VerifyDetectsCorruptAndMissingBlobs fail once in CI).
    EXPECT_EQ(archive_write_set_filter_option(a, "gzip", "timestamp", nullptr), ARCHIVE_OK);
    // No zero padding after the gzip data (as gzip and bsdtar write files); padded output is
    // tested on its own.
    EXPECT_EQ(archive_write_set_bytes_in_last_block(a, 1), ARCHIVE_OK);
  }
  if (fmt == Fmt::Zip) {
    EXPECT_EQ(archive_write_set_format_zip(a), ARCHIVE_OK);
  } else {
    EXPECT_EQ(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
  }
  EXPECT_EQ(archive_write_open(a, &out, nullptr, append_cb, nullptr), ARCHIVE_OK);
  for (const auto& e : entries) {
    archive_entry* en = archive_entry_new();
    archive_entry_set_pathname(en, e.name.c_str());
    archive_entry_set_perm(en, 0644);
    archive_entry_set_mtime(en, 1700000000, 0);
    switch (e.type) {
      case Entry::Type::File:
        archive_entry_set_filetype(en, AE_IFREG);
        archive_entry_set_size(en, static_cast<la_int64_t>(e.data.size()));
        break;
      case Entry::Type::Dir:
        archive_entry_set_filetype(en, AE_IFDIR);
        archive_entry_set_perm(en, 0755);
        break;
      case Entry::Type::Symlink:
        archive_entry_set_filetype(en, AE_IFLNK);
        archive_entry_set_symlink(en, e.link.c_str());
        break;
      case Entry::Type::Hardlink:
        archive_entry_set_filetype(en, AE_IFREG);
        archive_entry_set_hardlink(en, e.link.c_str());
        archive_entry_set_size(en, 0);
        break;
      case Entry::Type::Fifo:
        archive_entry_set_filetype(en, AE_IFIFO);
        break;
      case Entry::Type::CharDevice:
        archive_entry_set_filetype(en, AE_IFCHR);
        archive_entry_set_rdev(en, 0x0103);
        break;
    }
    EXPECT_EQ(archive_write_header(a, en), ARCHIVE_OK) << e.name << ": " << archive_error_string(a);
    if (e.type == Entry::Type::File && !e.data.empty()) {
      EXPECT_EQ(archive_write_data(a, e.data.data(), e.data.size()),
                static_cast<la_ssize_t>(e.data.size()));
    }
    archive_entry_free(en);
  }
  EXPECT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
  return out;
}

// A signing header like Cisco's: tag 1 version 1.0, tag 2 header length, then signer-like records
// and a filler record so the records end exactly at `header_length`.
std::string sgn_header(std::uint16_t header_length) {
  std::string h;
  auto rec = [&](std::uint8_t tag, const std::string& v) {
    h += static_cast<char>(tag);
    h += static_cast<char>(v.size() >> 8);
    h += static_cast<char>(v.size() & 0xff);
    h += v;
  };
  rec(1, std::string("\x01\x00", 2));
  rec(2,
      std::string{static_cast<char>(header_length >> 8), static_cast<char>(header_length & 0xff)});
  rec(3, "labctl-test-signer");
  rec(4, "CN=labctl test;OU=not cisco");
  const std::size_t pad = header_length - h.size() - 3;
  rec(15, std::string(pad, '\x5a'));
  EXPECT_EQ(h.size(), header_length);
  return h;
}

// The firmware files of a load, with our own contents (`variant` changes them).
std::vector<Entry> load_entries(const std::vector<std::string>& names, const std::string& dir,
                                const std::string& variant = "") {
  std::vector<Entry> out;
  if (!dir.empty()) out.push_back(Entry{dir, "", Entry::Type::Dir, ""});
  for (std::size_t i = 0; i < names.size(); ++i) {
    // One member bigger than the 64 KiB read chunk.
    const std::size_t n = i == 3 ? 200 * 1024 + 17 : 1000 + 37 * i;
    out.push_back(Entry{dir + names[i], "labctl test bytes for " + names[i] + variant + "\n" +
                                            filler(names[i] + variant, n)});
  }
  return out;
}

// The test bundles are byte-for-byte reproducible: the gzip header carries no time (RFC 1952:
// MTIME, bytes 4..7, zero when there is none).
TEST(TestBundles, GzipHeaderHasNoTime) {
  const std::string a = make_archive(Fmt::TarGz, {Entry{"x.sbn", "payload"}});
  ASSERT_GE(a.size(), 10u);
  EXPECT_EQ(static_cast<unsigned char>(a[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(a[1]), 0x8b);
  EXPECT_EQ(a.substr(4, 4), std::string(4, '\0'));
}

// Cisco-like: header + gzip(tar{ inner.tar{ dir/files }, README }).
std::string make_cop_sgn(const std::vector<Entry>& files,
                         const std::string& inner_name = "load.tar") {
  const std::string inner = make_archive(Fmt::Tar, files);
  const std::string payload =
      make_archive(Fmt::TarGz, {Entry{inner_name, inner}, Entry{"README", "not firmware\n"}});
  return sgn_header(300) + payload;
}

std::string sip_cop_sgn(const std::string& variant = "") {
  return make_cop_sgn(load_entries(kSipFiles, "cmterm-sip/", variant));
}

// ---- Temp dirs and snapshots --------------------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "labctl-fwstore-XXXXXX").string();
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::optional<inventory::Catalog> load_catalog_text(const std::string& yaml) {
  inventory::Diagnostics diags;
  auto c = inventory::load_catalog_text(yaml, "test-catalog.yaml", diags);
  for (const auto& d : diags.sorted())
    ADD_FAILURE() << d.format();
  return c;
}

class Store : public testing::Test {
 protected:
  void SetUp() override {
    inventory::Diagnostics diags;
    auto c = inventory::load_catalog(kShippedCatalog, diags);
    ASSERT_TRUE(c) << kShippedCatalog;
    catalog_ = std::move(*c);
    auto s = FirmwareStore::open(state_.path());
    ASSERT_TRUE(s) << s.error().message();
    store_ = std::move(*s);
  }

  fs::path put(const std::string& name, const std::string& data) {
    const fs::path p = in_.path() / name;
    write_file(p, data);
    return p;
  }

  Result<ImportReport> import(const std::string& name, const std::string& data,
                              const inventory::Catalog* catalog = nullptr) {
    return store_->import(put(name, data), catalog ? catalog : &catalog_);
  }

  // Everything an import may change: the files under the store, and the index.
  std::string snapshot() {
    std::ostringstream s;
    std::vector<std::string> lines;
    for (const auto& e : fs::recursive_directory_iterator(store_->root())) {
      std::string line = fs::relative(e.path(), store_->root()).string();
      if (e.is_regular_file()) line += " " + std::to_string(e.file_size());
      lines.push_back(line);
    }
    std::sort(lines.begin(), lines.end());
    for (const auto& l : lines)
      s << l << "\n";
    auto bundles = store_->bundles();
    EXPECT_TRUE(bundles);
    for (const auto& b : *bundles) {
      s << "bundle " << b.name << " " << b.sha256 << "\n";
      for (const auto& f : b.files)
        s << "  " << f.name << " " << f.sha256 << "\n";
    }
    auto pins = store_->pins();
    EXPECT_TRUE(pins);
    for (const auto& p : *pins)
      s << "pin " << p.family << " " << p.release << " " << p.name << " " << p.sha256 << "\n";
    return s.str();
  }

  // Imports `data` expecting failure; checks nothing changed and returns the message.
  std::string refused(const std::string& name, const std::string& data,
                      const inventory::Catalog* catalog = nullptr) {
    const std::string before = snapshot();
    auto r = import(name, data, catalog);
    EXPECT_FALSE(r) << name << " was imported";
    EXPECT_EQ(snapshot(), before) << name << ": the store changed after a failed import";
    if (r) return "";
    EXPECT_NE(r.error().message().find(name), std::string::npos)
        << "the error does not name the bundle: " << r.error().message();
    return r.error().message();
  }

  TempDir state_, in_;
  inventory::Catalog catalog_;
  std::unique_ptr<FirmwareStore> store_;
};

// ---- Signed header ------------------------------------------------------------------------------

TEST(SignedHeader, ParsesRecordsUpToTheHeaderLength) {
  const std::string file = sgn_header(300) + "payload";
  const auto d = bytes(file);
  auto h = parse_signed_header(d, d.size());
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_EQ(h->version_major, 1);
  EXPECT_EQ(h->version_minor, 0);
  EXPECT_EQ(h->header_length, 300);
  ASSERT_EQ(h->records.size(), 5u);
  EXPECT_EQ(h->records[0].tag, 1);
  EXPECT_EQ(h->records[1].tag, 2);
  EXPECT_EQ(h->records[1].offset, 5u);
  EXPECT_EQ(h->records[4].tag, 15);
  EXPECT_TRUE(looks_signed(d));
  EXPECT_FALSE(looks_signed(bytes("\x1f\x8b\x08")));
}

struct BadHeader {
  std::string name;
  std::string file;
  std::string message;  // a substring of the error
};

std::string be16(unsigned v) {
  return std::string{static_cast<char>(v >> 8), static_cast<char>(v & 0xff)};
}

class SignedHeaderErrors : public testing::TestWithParam<BadHeader> {};

TEST_P(SignedHeaderErrors, SayWhatAndWhere) {
  const auto& c = GetParam();
  const auto d = bytes(c.file);
  auto h = parse_signed_header(d, d.size());
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), Errc::InvalidInput);
  EXPECT_NE(h.error().message().find(c.message), std::string::npos) << h.error().message();
  EXPECT_EQ(h.error().message().rfind("signed header: ", 0), 0u) << h.error().message();
}

const std::string kV = std::string("\x01\x00\x02\x01\x00", 5);  // tag 1, length 2, version 1.0

INSTANTIATE_TEST_SUITE_P(
    All, SignedHeaderErrors,
    testing::Values(
        BadHeader{"Empty", "", "truncated: record at offset 0 needs 3 bytes"},
        BadHeader{"TwoBytes", std::string("\x01\x00", 2), "the file has 2 bytes"},
        BadHeader{
            "TruncatedVersion", std::string("\x01\x00\x02\x01", 4),
            "record at offset 0 (tag 1, length 2) ends at byte 5, past the end of the file (4 "
            "bytes)"},
        BadHeader{"FirstTagNotVersion", std::string("\x02\x00\x02\x00\x10", 5) + "xxxxxxxxxxxx",
                  "the first record (offset 0) has tag 2, expected 1"},
        BadHeader{"VersionLength", std::string("\x01\x00\x03\x01\x00\x00", 6) + "xxxxx",
                  "header-version record (tag 1) at offset 0 has length 3, expected 2"},
        BadHeader{"NoLengthRecord", kV + std::string("\x03\x00\x01", 3) + "x",
                  "the file ends at byte 9 before a header-length record (tag 2)"},
        BadHeader{"TruncatedLengthRecord", kV + std::string("\x02\x00", 2),
                  "truncated: record at offset 5 needs 3 bytes"},
        BadHeader{"HeaderLengthPastEof", kV + "\x02" + be16(2) + be16(5000) + "payload",
                  "header length 5000 (record at offset 5) is past the end of the file (17 bytes)"},
        BadHeader{"HeaderLengthInsideRecords", kV + "\x02" + be16(2) + be16(6) + "payload",
                  "header length 6 (record at offset 5) ends inside the records read so far (they "
                  "reach byte 10)"},
        BadHeader{"NoPayload", kV + "\x02" + be16(2) + be16(10),
                  "no payload: the header length 10 is the whole file"},
        BadHeader{"RecordPastHeaderLength",
                  kV + "\x02" + be16(2) + be16(16) + "\x03" + be16(10) + "0123456789" + "payload",
                  "record at offset 10 (tag 3, length 10) ends at byte 23, past the header length "
                  "16"},
        BadHeader{
            "RecordPastEof", kV + "\x03" + be16(60000) + "short",
            "record at offset 5 (tag 3, length 60000) ends at byte 60008, past the end of the "
            "file (13 bytes)"},
        BadHeader{"ShortTailBeforeHeaderLength",
                  kV + "\x02" + be16(2) + be16(12) + "\x03\x00" + "payload",
                  "record at offset 10: needs 3 bytes for its tag and length, but the header "
                  "(length 12) ends at byte 12"},
        BadHeader{"NoLengthRecordInHeaderRange",
                  kV + "\x03" + be16(65524) + std::string(65524, 'x') + "\x03" + be16(0) +
                      std::string(100, 'p'),
                  "no header-length record (tag 2) in the first 65535 bytes"},
        BadHeader{"SecondVersion", kV + kV + "\x02" + be16(2) + be16(15) + "payload",
                  "a second header-version record (tag 1) at offset 5"},
        BadHeader{"SecondLength",
                  kV + "\x02" + be16(2) + be16(15) + "\x02" + be16(2) + be16(15) + "payload",
                  "a second header-length record (tag 2) at offset 10"}),
    [](const auto& info) { return info.param.name; });

// ---- Names --------------------------------------------------------------------------------------

TEST(MemberNames, KeepOnlyTheBaseName) {
  for (auto [raw, base] : std::vector<std::pair<std::string, std::string>>{
           {"jar11sip.9-4-2ES9.sbn", "jar11sip.9-4-2ES9.sbn"},
           {"dir/sub/term06.default.loads", "term06.default.loads"},
           {"./x.sbn", "x.sbn"},
           {"win\\path\\x.sbn", "x.sbn"},
           {"a/./b", "b"},
           {"..x", "..x"}}) {
    auto r = member_basename(raw);
    ASSERT_TRUE(r) << raw << ": " << r.error().message();
    EXPECT_EQ(*r, base) << raw;
  }
}

TEST(MemberNames, RefuseHostileNames) {
  for (auto [raw, why] : std::vector<std::pair<std::string, std::string>>{
           {"", "empty"},
           {"../x.sbn", "'..'"},
           {"a/../../x.sbn", "'..'"},
           {"..", "'..'"},
           {"a\\..\\x.sbn", "'..'"},
           {"/etc/passwd", "absolute"},
           {"\\x.sbn", "absolute"},
           {"C:x.sbn", "drive letter"},
           // Its base name alone would be absolute: found by the cop fuzz target.
           {"d/C:x", "drive letter ('C:')"},
           {"dir/", "no file name"},
           {".", "no file name"},
           {std::string("a\0b", 3), "NUL"},
           {"x\x1b[2Jy.sbn", "control character"},
           {std::string(300, 'a'), "longer than 255"}}) {
    auto r = member_basename(raw);
    ASSERT_FALSE(r) << printable(raw);
    EXPECT_NE(r.error().message().find(why), std::string::npos)
        << printable(raw) << ": " << r.error().message();
  }
  EXPECT_EQ(printable("a\x1b[2J\xff"), "a\\x1b[2J\\xff");
}

TEST(ClassifyName, CiscoPhoneFiles) {
  auto n = classify_name("SIP11.9-4-2SR1-1S.loads");
  EXPECT_EQ(n.kind, NameInfo::Kind::Loads);
  EXPECT_EQ(n.load_id, "SIP11.9-4-2SR1-1S");
  EXPECT_EQ(n.protocol, "sip");
  EXPECT_EQ(n.model_code, "11");
  EXPECT_EQ(n.version, "9-4-2SR1-1S");

  n = classify_name("SCCP11.8-5-2S.loads");
  EXPECT_EQ(n.kind, NameInfo::Kind::Loads);
  EXPECT_EQ(n.protocol, "sccp");
  EXPECT_EQ(n.version, "8-5-2S");

  n = classify_name("term06.default.loads");
  EXPECT_EQ(n.kind, NameInfo::Kind::TermLoads);
  EXPECT_EQ(n.model_code, "06");
  EXPECT_EQ(model_for_code(n.model_code), "CP-7906G");
  n = classify_name("TERM11.DEFAULT.LOADS");
  EXPECT_EQ(n.kind, NameInfo::Kind::TermLoads);
  EXPECT_EQ(model_for_code(n.model_code), "CP-7911G");

  n = classify_name("jar11sip.9-4-2ES9.sbn");
  EXPECT_EQ(n.kind, NameInfo::Kind::Sbn);
  EXPECT_EQ(n.component, "jar");
  EXPECT_EQ(n.protocol, "sip");
  EXPECT_EQ(n.model_code, "11");
  EXPECT_EQ(n.version, "9-4-2ES9");

  n = classify_name("cvm11sccp.8-5-2TH1-9.sbn");
  EXPECT_EQ(n.component, "cvm");
  EXPECT_EQ(n.protocol, "sccp");
  EXPECT_EQ(n.version, "8-5-2TH1-9");

  n = classify_name("cnu11.9-4-2ES9.sbn");
  EXPECT_EQ(n.component, "cnu");
  EXPECT_EQ(n.protocol, "");

  EXPECT_EQ(classify_name("README").kind, NameInfo::Kind::Other);
  EXPECT_EQ(classify_name("SMT_SX_250.bin").kind, NameInfo::Kind::Other);
  EXPECT_EQ(classify_name(".loads").kind, NameInfo::Kind::Loads);  // no crash on odd names
  EXPECT_EQ(classify_name(".sbn").component, "");
}

TEST(Identify, SipLoadAgainstTheShippedCatalog) {
  inventory::Diagnostics diags;
  auto catalog = inventory::load_catalog(kShippedCatalog, diags);
  ASSERT_TRUE(catalog);
  auto id = identify(kSipFiles, &*catalog);
  EXPECT_EQ(id.load_id, "SIP11.9-4-2SR1-1S");
  EXPECT_EQ(id.protocol, "sip");
  EXPECT_EQ(id.model_code, "11");
  EXPECT_EQ(id.version, "SIP 9.4(2)SR1");
  EXPECT_EQ(id.models, (std::vector<std::string>{"CP-7906G", "CP-7911G"}));
  ASSERT_GE(id.releases.size(), 2u);
  EXPECT_EQ(id.releases[0].family, "cisco-7906-7911");
  EXPECT_EQ(id.releases[0].release, "SIP11.9-4-2SR1-1S");
  EXPECT_TRUE(id.releases[0].complete);
  EXPECT_TRUE(id.releases[0].identified);
  // The SCCP load shares the term files by name only: a partial match, not this bundle.
  EXPECT_EQ(id.releases[1].release, "SCCP11.8-5-2S");
  EXPECT_FALSE(id.releases[1].identified);
  EXPECT_EQ(id.releases[1].present.size(), 2u);
  EXPECT_TRUE(id.warnings.empty());
}

TEST(Identify, IncompleteLoadSaysWhatIsMissing) {
  inventory::Diagnostics diags;
  auto catalog = inventory::load_catalog(kShippedCatalog, diags);
  ASSERT_TRUE(catalog);
  std::vector<std::string> names = kSccpFiles;
  names.erase(names.begin() + 4);  // cnu11.8-5-2TH1-9.sbn
  auto id = identify(names, &*catalog);
  EXPECT_EQ(id.load_id, "SCCP11.8-5-2S");
  EXPECT_EQ(id.protocol, "sccp");
  ASSERT_FALSE(id.releases.empty());
  EXPECT_TRUE(id.releases[0].identified);
  EXPECT_FALSE(id.releases[0].complete);
  EXPECT_EQ(id.releases[0].missing, (std::vector<std::string>{"cnu11.8-5-2TH1-9.sbn"}));
  ASSERT_EQ(id.warnings.size(), 1u);
  EXPECT_NE(id.warnings[0].find("missing cnu11.8-5-2TH1-9.sbn"), std::string::npos);

  // Without a catalog: names alone.
  auto bare = identify({"jar11sip.9-4-2ES9.sbn", "jar11sccp.8-5-2TH1-9.sbn"}, nullptr);
  EXPECT_EQ(bare.load_id, "");
  EXPECT_EQ(bare.model_code, "11");
  EXPECT_EQ(bare.warnings.size(), 2u);  // two protocols, two versions
}

// ---- Walking from memory (what the fuzz target does)
// ---------------------------------------------

class CountingSink : public MemberSink {
 public:
  Result<bool> begin(const MemberInfo& m) override {
    names.push_back(m.name);
    paths.push_back(m.path);
    return true;
  }
  Status write(std::span<const std::uint8_t> d) override {
    bytes += d.size();
    return {};
  }
  Status end() override { return {}; }
  std::vector<std::string> names, paths;
  std::uint64_t bytes = 0;
};

TEST(Walk, NestedTarInsideASignedBundleFromMemory) {
  const auto d = bytes(sip_cop_sgn());
  CountingSink sink;
  auto r = walk_bundle_memory(d, "x.cop.sgn", WalkLimits{}, sink);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->format, "cop.sgn");
  ASSERT_TRUE(r->header);
  EXPECT_EQ(r->header->header_length, 300);
  EXPECT_EQ(r->nested, (std::vector<std::string>{"load.tar"}));
  EXPECT_EQ(sink.names.size(), kSipFiles.size() + 1);  // + README
  EXPECT_EQ(sink.paths[0], "load.tar/cmterm-sip/" + kSipFiles[0]);
}

TEST(Walk, DepthLimit) {
  std::string inner = make_archive(Fmt::Tar, {Entry{"a.sbn", "x"}});
  for (int i = 0; i < 3; ++i)
    inner = make_archive(Fmt::Tar, {Entry{"level" + std::to_string(i) + ".tar", inner}});
  const auto d = bytes(inner);
  CountingSink sink;
  WalkLimits limits;
  limits.max_depth = 2;
  auto r = walk_bundle_memory(d, "deep.tar", limits, sink);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("nested deeper than 2 levels"), std::string::npos)
      << r.error().message();
  limits.max_depth = 3;
  CountingSink sink2;
  ASSERT_TRUE(walk_bundle_memory(d, "deep.tar", limits, sink2));
  EXPECT_EQ(sink2.paths, (std::vector<std::string>{"level2.tar/level1.tar/level0.tar/a.sbn"}));
}

TEST(Walk, EntryCountLimit) {
  std::vector<Entry> many;
  for (int i = 0; i < 20; ++i)
    many.push_back(Entry{"f" + std::to_string(i), "x"});
  const auto d = bytes(make_archive(Fmt::Tar, many));
  CountingSink sink;
  WalkLimits limits;
  limits.max_members = 10;
  auto r = walk_bundle_memory(d, "many.tar", limits, sink);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("more than 10 entries"), std::string::npos);
}

// ---- Imports ------------------------------------------------------------------------------------

struct FormatCase {
  std::string name;
  std::function<std::string()> build;
  std::string format;
  std::vector<std::string> nested;
};

class ImportFormats : public Store, public testing::WithParamInterface<FormatCase> {};

TEST_P(ImportFormats, ImportsTheCompleteLoad) {
  const auto& c = GetParam();
  auto r = import(c.name, c.build());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(r->already_present);
  EXPECT_EQ(r->format, c.format);
  EXPECT_EQ(r->nested, c.nested);
  ASSERT_EQ(r->files.size(), kSipFiles.size());
  EXPECT_EQ(r->id.load_id, "SIP11.9-4-2SR1-1S");
  EXPECT_EQ(r->id.protocol, "sip");
  ASSERT_FALSE(r->id.releases.empty());
  EXPECT_TRUE(r->id.releases[0].complete);
  EXPECT_EQ(r->new_pins, kSipFiles.size());
  for (const auto& f : r->files) {
    EXPECT_TRUE(f.new_blob) << f.name;
    const fs::path blob = store_->blob_path(f.sha256);
    ASSERT_TRUE(fs::is_regular_file(blob)) << f.name;
    EXPECT_EQ(fs::file_size(blob), f.size);
    auto sha = sha256_file(blob);
    ASSERT_TRUE(sha);
    EXPECT_EQ(*sha, f.sha256);
    struct stat st {};
    ASSERT_EQ(::stat(blob.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0644u) << f.name;
  }
  struct stat st {};
  ASSERT_EQ(::stat(store_->root().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  // The contents are the bytes we put in.
  auto jar = store_->lookup("jar11sip.9-4-2ES9.sbn");
  ASSERT_TRUE(jar && *jar);
  const auto entries = load_entries(kSipFiles, "cmterm-sip/");
  EXPECT_EQ(read_file((*jar)->path), entries[4].data);
  EXPECT_EQ((*jar)->bundle, c.name);
  // No scratch left.
  for (const auto& e : fs::directory_iterator(store_->root()))
    EXPECT_FALSE(e.path().filename().string().starts_with(".import-"));
  auto files = store_->release_files("cisco-7906-7911", "SIP11.9-4-2SR1-1S");
  ASSERT_TRUE(files);
  EXPECT_EQ(files->size(), kSipFiles.size());
}

INSTANTIATE_TEST_SUITE_P(
    All, ImportFormats,
    testing::Values(
        FormatCase{"cmterm-7911_7906-sip.9-4-2SR1-1.cop.sgn",
                   [] { return sip_cop_sgn(); },
                   "cop.sgn",
                   {"load.tar"}},
        FormatCase{"cmterm-7911_7906-sip.9-4-2SR1-1.cop",
                   [] { return make_archive(Fmt::TarGz, load_entries(kSipFiles, "cmterm-sip/")); },
                   "cop",
                   {}},
        FormatCase{"sip.zip",
                   [] {
                     // A .zip bundle holds a tar with the files.
                     return make_archive(
                         Fmt::Zip,
                         {Entry{"sip/cmterm-sip.tar",
                                make_archive(Fmt::Tar, load_entries(kSipFiles, "cmterm-sip/"))}});
                   },
                   "zip",
                   {"sip/cmterm-sip.tar"}},
        FormatCase{"sip-flat.zip",
                   [] { return make_archive(Fmt::Zip, load_entries(kSipFiles, "")); },
                   "zip",
                   {}},
        FormatCase{"sip.tar",
                   [] { return make_archive(Fmt::Tar, load_entries(kSipFiles, "d/")); },
                   "tar",
                   {}},
        FormatCase{"sip.tar.gz",
                   [] {
                     return make_archive(
                         Fmt::TarGz,
                         {Entry{"inner.tar.gz",
                                make_archive(Fmt::TarGz, load_entries(kSipFiles, ""))}});
                   },
                   "tar.gz",
                   {"inner.tar.gz"}}),
    [](const auto& info) {
      std::string n;
      for (char ch : info.param.name)
        n += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
      return n;
    });

TEST_F(Store, NestedTarReportsIgnoredMembers) {
  auto r = import("b.cop.sgn", sip_cop_sgn());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->ignored, (std::vector<std::string>{"README"}));
  EXPECT_EQ(r->files[0].member, "load.tar/cmterm-sip/" + kSipFiles[0]);
  ASSERT_TRUE(r->id.releases.size() >= 1);
}

TEST_F(Store, ReimportIsANoOp) {
  const std::string data = sip_cop_sgn();
  ASSERT_TRUE(import("a.cop.sgn", data));
  const std::string before = snapshot();
  auto again = import("a.cop.sgn", data);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_TRUE(again->already_present);
  EXPECT_EQ(again->previous_name, "a.cop.sgn");
  EXPECT_EQ(again->files.size(), kSipFiles.size());
  EXPECT_EQ(snapshot(), before);
  // The same bytes under another name are the same bundle.
  auto renamed = import("renamed.cop.sgn", data);
  ASSERT_TRUE(renamed);
  EXPECT_TRUE(renamed->already_present);
  EXPECT_EQ(renamed->previous_name, "a.cop.sgn");
  EXPECT_EQ(snapshot(), before);
}

TEST_F(Store, SameFilesInAnotherContainerShareBlobsAndPins) {
  ASSERT_TRUE(import("a.cop.sgn", sip_cop_sgn()));
  auto r = import("a.zip", make_archive(Fmt::Zip, load_entries(kSipFiles, "cmterm-sip/")));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(r->already_present);
  EXPECT_EQ(r->new_pins, 0u);
  for (const auto& f : r->files)
    EXPECT_FALSE(f.new_blob) << f.name;
  auto bundles = store_->bundles();
  ASSERT_TRUE(bundles);
  EXPECT_EQ(bundles->size(), 2u);
}

TEST_F(Store, PinConflictIsRefusedNamingBothHashes) {
  auto first = import("a.cop.sgn", sip_cop_sgn());
  ASSERT_TRUE(first);
  // Another bundle of the same load where one file differs.
  auto entries = load_entries(kSipFiles, "cmterm-sip/");
  entries[5].data += "tampered";  // cnu11.9-4-2ES9.sbn
  const std::string msg = refused("b.cop.sgn", make_cop_sgn(entries));
  std::string old_sha, new_sha;
  for (const auto& f : first->files)
    if (f.name == "cnu11.9-4-2ES9.sbn") old_sha = f.sha256;
  EXPECT_NE(
      msg.find("cnu11.9-4-2ES9.sbn of cisco-7906-7911 SIP11.9-4-2SR1-1S is pinned to sha256 " +
               old_sha + " (first imported from a.cop.sgn)"),
      std::string::npos)
      << msg;
  EXPECT_NE(msg.find("this bundle has sha256 "), std::string::npos) << msg;
  EXPECT_NE(msg.find("load.tar/cmterm-sip/cnu11.9-4-2ES9.sbn"), std::string::npos) << msg;
  auto r = import("b.cop.sgn", make_cop_sgn(entries));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::VerifyMismatch);
}

const char* kTestCatalog = R"Y(version: 1
families:
  - name: test-bmc
    models: [X-TEST]
    scheme: major-minor
    releases:
      - version: "2.50"
        files:
          - {name: SMT_TEST_250.bin, sha256: SHA}
  - name: test-bundle
    models: [Y-TEST]
    scheme: dotted
    releases:
      - version: "1.0"
        files:
          - {name: fw-a.bin, sha256: SHA}
          - {name: fw-b.bin, sha256: pin, size: 5}
)Y";

std::string test_catalog_text(const std::string& sha) {
  std::string t = kTestCatalog;
  for (std::size_t p; (p = t.find("SHA")) != std::string::npos;)
    t.replace(p, 3, sha);
  return t;
}

std::string sha_of(const std::string& data) {
  TempDir d;
  write_file(d.path() / "x", data);
  return *sha256_file(d.path() / "x");
}

TEST_F(Store, CatalogChecksumMustMatch) {
  auto catalog = load_catalog_text(test_catalog_text(sha_of("good image")));
  ASSERT_TRUE(catalog);
  // A plain image the catalog names.
  std::string msg = refused("SMT_TEST_250.bin", "bad image", &*catalog);
  EXPECT_NE(msg.find("the catalog gives sha256 " + sha_of("good image") +
                     " for SMT_TEST_250.bin "
                     "(test-bmc 2.50), this bundle has " +
                     sha_of("bad image")),
            std::string::npos)
      << msg;
  auto ok = import("SMT_TEST_250.bin", "good image", &*catalog);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->format, "file");
  EXPECT_EQ(ok->new_pins, 1u);
  auto pins = store_->pins();
  ASSERT_TRUE(pins);
  ASSERT_EQ(pins->size(), 1u);
  EXPECT_EQ((*pins)[0].source, "catalog");

  // Inside a bundle, and the catalog's size.
  msg = refused("y.zip",
                make_archive(Fmt::Zip, {Entry{"fw-a.bin", "evil"}, Entry{"fw-b.bin", "12345"}}),
                &*catalog);
  EXPECT_NE(msg.find("fw-a.bin: the catalog gives sha256"), std::string::npos) << msg;
  msg = refused(
      "y.zip", make_archive(Fmt::Zip, {Entry{"fw-a.bin", "good image"}, Entry{"fw-b.bin", "1234"}}),
      &*catalog);
  EXPECT_NE(msg.find("the catalog gives 5 bytes for fw-b.bin (test-bundle 1.0), this bundle has 4"),
            std::string::npos)
      << msg;
  auto good =
      import("y.zip",
             make_archive(Fmt::Zip, {Entry{"fw-a.bin", "good image"}, Entry{"fw-b.bin", "12345"}}),
             &*catalog);
  ASSERT_TRUE(good) << good.error().message();
  EXPECT_EQ(good->new_pins, 2u);
}

TEST_F(Store, TruncatedAndCorruptGzipAreRefused) {
  const std::string cop = make_archive(Fmt::TarGz, load_entries(kSipFiles, "cmterm-sip/"));
  for (std::size_t cut :
       {std::size_t{1}, std::size_t{4}, std::size_t{8}, cop.size() / 2, cop.size() - 20}) {
    const std::string msg = refused("t.cop", cop.substr(0, cop.size() - cut));
    EXPECT_NE(msg.find("truncated"), std::string::npos) << "cut " << cut << ": " << msg;
  }
  // A flipped byte in the compressed data: zlib's CRC check (libarchive alone would not notice).
  std::string flipped = cop;
  flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x55);
  std::string msg = refused("c.cop", flipped);
  EXPECT_TRUE(msg.find("corrupt gzip data") != std::string::npos ||
              msg.find("truncated") != std::string::npos ||
              msg.find("Damaged") != std::string::npos)
      << msg;
  // The CRC itself.
  std::string crc = cop;
  crc[crc.size() - 6] = static_cast<char>(crc[crc.size() - 6] ^ 1);
  msg = refused("crc.cop", crc);
  EXPECT_NE(msg.find("incorrect data check"), std::string::npos) << msg;
  // Trailing garbage after the gzip stream.
  msg = refused("tail.cop", cop + "garbage");
  EXPECT_NE(msg.find("unexpected bytes after the gzip data at byte " + std::to_string(cop.size())),
            std::string::npos)
      << msg;
  // Trailing zeros are padding, accepted.
  EXPECT_TRUE(import("zeros.cop", cop + std::string(100, '\0')));
}

TEST_F(Store, TruncatedSignedBundlesAreRefused) {
  const std::string sgn = sip_cop_sgn();
  std::string msg = refused("h.cop.sgn", sgn.substr(0, 4));
  EXPECT_NE(msg.find("signed header: record at offset 0 (tag 1, length 2) ends at byte 5"),
            std::string::npos)
      << msg;
  msg = refused("h.cop.sgn", sgn.substr(0, 200));
  EXPECT_NE(msg.find("signed header: header length 300 (record at offset 5) is past the end of the "
                     "file (200 bytes)"),
            std::string::npos)
      << msg;
  msg = refused("h.cop.sgn", sgn.substr(0, sgn.size() - 100));
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  // A .sgn without a header at all.
  msg = refused("nohdr.cop.sgn", make_archive(Fmt::TarGz, load_entries(kSipFiles, "")));
  EXPECT_NE(msg.find("the first record (offset 0) has tag 31, expected 1"), std::string::npos)
      << msg;
  // A header whose payload is not gzip'd tar.
  msg = refused("junk.cop.sgn", sgn_header(300) + std::string(1000, 'j'));
  EXPECT_NE(msg.find("the payload at byte 300 is not a gzip'd tar, tar or zip archive (it starts "
                     "with 6a6a6a6a)"),
            std::string::npos)
      << msg;
}

TEST_F(Store, TruncatedTarIsRefused) {
  const std::string tar = make_archive(Fmt::Tar, load_entries(kSipFiles, ""));
  const std::string msg = refused("t.tar", tar.substr(0, 100 * 1024));
  EXPECT_NE(msg.find("jar11sip.9-4-2ES9.sbn"), std::string::npos) << msg;
}

TEST_F(Store, HostileMemberNamesAreRefused) {
  for (auto [name, why] : std::vector<std::pair<std::string, std::string>>{
           {"../../etc/jar11sip.9-4-2ES9.sbn", "member path contains '..'"},
           {"/etc/cron.d/x.sbn", "absolute member path"},
           {"ok/../../x.loads", "member path contains '..'"},
           {"C:\\boot\\x.sbn", "drive letter"},
           {"boot/c:x.sbn", "drive letter ('c:')"},
           {"x\x07y.sbn", "control character"}}) {
    auto entries = load_entries(kSipFiles, "d/");
    entries.push_back(Entry{name, "payload"});
    for (Fmt fmt : {Fmt::TarGz, Fmt::Zip}) {
      const std::string msg =
          refused(fmt == Fmt::Zip ? "h.zip" : "h.cop", make_archive(fmt, entries));
      EXPECT_NE(msg.find(why), std::string::npos) << msg;
      std::string raw = name;
      if (fmt == Fmt::Zip) std::replace(raw.begin(), raw.end(), '\\', '/');  // zip writer
      EXPECT_NE(msg.find(printable(raw)), std::string::npos) << msg;
      EXPECT_NE(msg.find("refusing the bundle"), std::string::npos) << msg;
    }
  }
}

TEST_F(Store, LinksAndDevicesAreRefused) {
  for (auto [entry, why] : std::vector<std::pair<Entry, std::string>>{
           {Entry{"jar11sip.9-4-2ES9.sbn", "", Entry::Type::Symlink, "/etc/shadow"},
            "a symbolic link (to /etc/shadow)"},
           {Entry{"evil.loads", "", Entry::Type::Hardlink, "d/SIP11.9-4-2SR1-1S.loads"},
            "a hard link (to d/SIP11.9-4-2SR1-1S.loads)"},
           {Entry{"pipe", "", Entry::Type::Fifo, ""}, "a fifo"},
           {Entry{"tty", "", Entry::Type::CharDevice, ""}, "a character device"}}) {
    auto entries = load_entries(kSipFiles, "d/");
    entries.push_back(entry);
    const std::string msg = refused("l.tar", make_archive(Fmt::Tar, entries));
    EXPECT_NE(msg.find(entry.name + ": " + why), std::string::npos) << msg;
  }
}

TEST_F(Store, SizeBombsAreRefused) {
  WalkLimits limits;
  limits.max_member = 256 * 1024;
  limits.max_total = 1024 * 1024;
  store_->set_limits(limits);
  // One member of 8 MiB of zeros: a few KiB compressed.
  const std::string bomb =
      make_archive(Fmt::TarGz, {Entry{"jar11sip.9-4-2ES9.sbn", std::string(8 << 20, '\0')}});
  ASSERT_LT(bomb.size(), 64u * 1024);
  std::string msg = refused("bomb.cop", bomb);
  EXPECT_NE(msg.find("limit"), std::string::npos) << msg;
  EXPECT_NE(msg.find("jar11sip.9-4-2ES9.sbn"), std::string::npos) << msg;
  // The same inside a zip.
  msg =
      refused("bomb.zip",
              make_archive(Fmt::Zip, {Entry{"jar11sip.9-4-2ES9.sbn", std::string(8 << 20, 'A')}}));
  EXPECT_NE(msg.find("limit for one member"), std::string::npos) << msg;
  // Many members, each under the limit, together over it.
  std::vector<Entry> many;
  for (int i = 0; i < 8; ++i)
    many.push_back(Entry{"f" + std::to_string(i) + ".sbn", std::string(200 * 1024, 'z')});
  msg = refused("many.tar.gz", make_archive(Fmt::TarGz, many));
  EXPECT_NE(msg.find("limit"), std::string::npos) << msg;
  EXPECT_NE(msg.find("zip bomb"), std::string::npos) << msg;
}

TEST_F(Store, DuplicateNamesWithDifferentContentsAreRefused) {
  std::vector<Entry> entries = load_entries(kSipFiles, "a/");
  entries.push_back(Entry{"b/TERM06.default.loads", "something else"});
  const std::string msg = refused("dup.tar", make_archive(Fmt::Tar, entries));
  EXPECT_NE(msg.find("two members named TERM06.default.loads (a/term06.default.loads and "
                     "b/TERM06.default.loads) with different contents"),
            std::string::npos)
      << msg;
  // The same contents twice: kept once, with a warning.
  entries.back().data = load_entries(kSipFiles, "a/")[2].data;
  auto r = import("dup-same.tar", make_archive(Fmt::Tar, entries));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->files.size(), kSipFiles.size());
  ASSERT_FALSE(r->warnings.empty());
  EXPECT_NE(r->warnings[0].find("repeats a/term06.default.loads"), std::string::npos);
}

TEST_F(Store, BundlesWithoutFirmwareAndNonBundlesAreRefused) {
  std::string msg = refused("docs.zip", make_archive(Fmt::Zip, {Entry{"README", "hello"}}));
  EXPECT_NE(msg.find("no firmware files in it"), std::string::npos) << msg;
  EXPECT_NE(msg.find("it holds README"), std::string::npos) << msg;
  msg = refused("random.zip", filler("random", 5000));
  EXPECT_NE(msg.find("is not a gzip'd tar, tar or zip archive"), std::string::npos) << msg;
  msg = refused("empty.tar.gz", "");
  EXPECT_NE(msg.find("empty file"), std::string::npos) << msg;
  msg = refused("not-a-tar.cop", make_archive(Fmt::TarGz, {}).substr(0, 10) + "");
  EXPECT_FALSE(msg.empty());
  auto missing = store_->import(in_.path() / "does-not-exist.cop.sgn", &catalog_);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::NotFound);
}

TEST_F(Store, FailureAfterSomeMembersLeavesNoScratch) {
  // Good files are written to the scratch directory before the bad member is reached.
  auto entries = load_entries(kSipFiles, "d/");
  entries.push_back(Entry{"link.sbn", "", Entry::Type::Symlink, "x"});
  refused("late.tar", make_archive(Fmt::Tar, entries));
  for (const auto& e : fs::directory_iterator(store_->root()))
    EXPECT_FALSE(e.path().filename().string().starts_with(".import-")) << e.path();
  EXPECT_TRUE(fs::is_empty(store_->root() / "sha256"));
}

TEST_F(Store, LookupIsExactFirstThenCaseInsensitive) {
  ASSERT_TRUE(import("a.cop.sgn", sip_cop_sgn()));
  auto f = store_->lookup("TERM06.DEFAULT.LOADS");
  ASSERT_TRUE(f);
  ASSERT_TRUE(*f);
  EXPECT_EQ((*f)->name, "term06.default.loads");
  EXPECT_TRUE(fs::is_regular_file((*f)->path));
  auto none = store_->lookup("term07.default.loads");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);

  // Two files differing only by case: the exact one wins, whichever was imported last.
  ASSERT_TRUE(import("Foo11.1-2-3.sbn", "upper"));
  ASSERT_TRUE(import("foo11.1-2-3.sbn", "lower"));
  auto upper = store_->lookup("Foo11.1-2-3.sbn");
  ASSERT_TRUE(upper && *upper);
  EXPECT_EQ(read_file((*upper)->path), "upper");
  auto lower = store_->lookup("foo11.1-2-3.sbn");
  ASSERT_TRUE(lower && *lower);
  EXPECT_EQ(read_file((*lower)->path), "lower");
  auto other = store_->lookup("FOO11.1-2-3.SBN");
  ASSERT_TRUE(other && *other);
  EXPECT_EQ(read_file((*other)->path), "lower");  // the newest
  auto all = store_->lookup_all("FOO11.1-2-3.sbn");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 2u);
}

TEST_F(Store, VerifyDetectsCorruptAndMissingBlobs) {
  auto r = import("a.cop.sgn", sip_cop_sgn());
  ASSERT_TRUE(r);
  auto v = store_->verify();
  ASSERT_TRUE(v);
  EXPECT_EQ(v->problems(), 0u);
  EXPECT_EQ(v->blobs.size(), kSipFiles.size());

  const auto& jar = r->files[3];
  const auto& cnu = r->files[4];
  {
    std::fstream f(store_->blob_path(jar.sha256), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('X');
  }
  fs::remove(store_->blob_path(cnu.sha256));
  write_file(store_->root() / "sha256" / std::string(64, 'a'), "orphan");
  v = store_->verify();
  ASSERT_TRUE(v);
  EXPECT_EQ(v->problems(), 2u);
  std::map<std::string, BlobCheck> by;
  for (const auto& b : v->blobs)
    by[b.sha256] = b;
  EXPECT_EQ(by[jar.sha256].status, "corrupt");
  EXPECT_FALSE(by[jar.sha256].actual_sha256.empty());
  EXPECT_NE(by[jar.sha256].actual_sha256, jar.sha256);
  EXPECT_EQ(by[jar.sha256].names, (std::vector<std::string>{jar.name}));
  EXPECT_EQ(by[cnu.sha256].status, "missing");
  EXPECT_EQ(v->orphans, (std::vector<std::string>{std::string(64, 'a')}));

  // Importing the same bundle again puts the damaged and missing blobs back; the index stays.
  auto again = import("a.cop.sgn", sip_cop_sgn());
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_TRUE(again->already_present);
  EXPECT_EQ(again->repaired, 2u);
  v = store_->verify();
  ASSERT_TRUE(v);
  EXPECT_EQ(v->problems(), 0u);
  auto bundles = store_->bundles();
  ASSERT_TRUE(bundles);
  EXPECT_EQ(bundles->size(), 1u);
  // And then it is a no-op again.
  auto third = import("a.cop.sgn", sip_cop_sgn());
  ASSERT_TRUE(third);
  EXPECT_EQ(third->repaired, 0u);
}

TEST_F(Store, AnotherBundleRepairsADamagedBlob) {
  auto r = import("a.cop.sgn", sip_cop_sgn());
  ASSERT_TRUE(r);
  const auto& jar = r->files[3];
  {
    std::fstream f(store_->blob_path(jar.sha256), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('X');
  }
  auto zip = import("a.zip", make_archive(Fmt::Zip, load_entries(kSipFiles, "cmterm-sip/")));
  ASSERT_TRUE(zip) << zip.error().message();
  EXPECT_EQ(zip->repaired, 1u);
  auto v = store_->verify();
  ASSERT_TRUE(v);
  EXPECT_EQ(v->problems(), 0u);
}

const inventory::Release& sip_release(const inventory::Catalog& c) {
  const auto* fam = c.family("cisco-7906-7911");
  EXPECT_NE(fam, nullptr);
  const auto* rel = fam->find("SIP11.9-4-2SR1-1S");
  EXPECT_NE(rel, nullptr);
  return *rel;
}

TEST_F(Store, VerifiedReleaseHandsOutEveryFileOfTheRelease) {
  const std::string bundle = "cmterm-7911_7906-sip.9-4-2SR1-1.cop.sgn";
  ASSERT_TRUE(import(bundle, sip_cop_sgn()));
  const auto& fam = *catalog_.family("cisco-7906-7911");
  const auto& rel = sip_release(catalog_);
  auto r = store_->verified_release(fam, rel);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->size(), rel.files.size());
  const auto entries = load_entries(kSipFiles, "cmterm-sip/");
  for (std::size_t i = 0; i < r->size(); ++i) {
    const auto& f = (*r)[i];
    // In the catalog's order, under the catalog's names.
    EXPECT_EQ(f.name, rel.files[i].name);
    EXPECT_EQ(f.path, store_->blob_path(f.sha256)) << f.name;
    EXPECT_EQ(f.bundle, bundle) << f.name;
    ASSERT_TRUE(fs::is_regular_file(f.path)) << f.name;
    EXPECT_EQ(fs::file_size(f.path), f.size) << f.name;
    auto sha = sha256_file(f.path);
    ASSERT_TRUE(sha);
    EXPECT_EQ(*sha, f.sha256) << f.name;
    // The bytes the bundle carried for that name.
    auto e = std::find_if(entries.begin(), entries.end(),
                          [&](const Entry& x) { return x.name == "cmterm-sip/" + f.name; });
    ASSERT_NE(e, entries.end()) << f.name;
    EXPECT_EQ(read_file(f.path), e->data) << f.name;
  }
}

TEST_F(Store, VerifiedReleaseNamesTheMissingFileAndTheBundleToImport) {
  const auto& fam = *catalog_.family("cisco-7906-7911");
  const auto& rel = sip_release(catalog_);
  // Nothing imported: every file is missing.
  auto none = store_->verified_release(fam, rel);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), Errc::NotFound);
  for (const auto& f : kSipFiles)
    EXPECT_NE(none.error().message().find(f), std::string::npos) << none.error().message();

  // A bundle without the cvm file: the load is identified by its .loads, seven files are pinned.
  std::vector<std::string> names(kSipFiles.begin(), kSipFiles.end() - 1);
  auto r = import("partial.tar", make_archive(Fmt::Tar, load_entries(names, "d/")));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->new_pins, names.size());
  auto v = store_->verified_release(fam, rel);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code(), Errc::NotFound);
  const std::string& msg = v.error().message();
  EXPECT_NE(msg.find("SIP11.9-4-2SR1-1S"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cvm11sip.9-4-2ES9.sbn"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cmterm-7911_7906-sip.9-4-2SR1-1.cop.sgn"), std::string::npos) << msg;
  EXPECT_NE(msg.find("labctl firmware import"), std::string::npos) << msg;
  // Only the missing one is named.
  EXPECT_EQ(msg.find("jar11sip"), std::string::npos) << msg;

  // The complete bundle afterwards fills the gap.
  ASSERT_TRUE(import("cmterm-7911_7906-sip.9-4-2SR1-1.cop.sgn", sip_cop_sgn()));
  auto ok = store_->verified_release(fam, rel);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->size(), kSipFiles.size());
}

TEST_F(Store, VerifiedReleaseRefusesADamagedBlob) {
  const std::string bundle = "cmterm-7911_7906-sip.9-4-2SR1-1.cop.sgn";
  auto r = import(bundle, sip_cop_sgn());
  ASSERT_TRUE(r);
  const auto& fam = *catalog_.family("cisco-7906-7911");
  const auto& rel = sip_release(catalog_);
  const auto jar = std::find_if(r->files.begin(), r->files.end(),
                                [](const auto& f) { return f.name == "jar11sip.9-4-2ES9.sbn"; });
  ASSERT_NE(jar, r->files.end());
  {
    // One byte changed, the size the same.
    std::fstream f(store_->blob_path(jar->sha256), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5000);
    f.put('X');
  }
  auto v = store_->verified_release(fam, rel);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code(), Errc::VerifyMismatch);
  EXPECT_NE(v.error().message().find("jar11sip.9-4-2ES9.sbn"), std::string::npos)
      << v.error().message();
  EXPECT_NE(v.error().message().find("corrupt"), std::string::npos) << v.error().message();
  EXPECT_NE(v.error().message().find(bundle), std::string::npos) << v.error().message();

  // A blob that is gone is not handed out either.
  ASSERT_TRUE(import(bundle, sip_cop_sgn()));  // repairs
  ASSERT_TRUE(store_->verified_release(fam, rel));
  fs::remove(store_->blob_path(jar->sha256));
  v = store_->verified_release(fam, rel);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code(), Errc::VerifyMismatch);
  EXPECT_NE(v.error().message().find("missing"), std::string::npos) << v.error().message();

  // A catalog whose checksum differs from the pin (edited after the import) is refused too.
  ASSERT_TRUE(import(bundle, sip_cop_sgn()));
  inventory::Release edited = rel;
  edited.files[3].sha256 = std::string(64, '0');
  v = store_->verified_release(fam, edited);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code(), Errc::VerifyMismatch);
  EXPECT_NE(v.error().message().find("the catalog says " + std::string(64, '0')), std::string::npos)
      << v.error().message();
}

TEST_F(Store, StateDatabaseIsSharedWithTheStateStore) {
  ASSERT_TRUE(import("a.cop.sgn", sip_cop_sgn()));
  // The StateStore opens the same file afterwards and migrates it; both keep working.
  auto ss = StateStore::open(state_.path());
  ASSERT_TRUE(ss) << ss.error().message();
  EXPECT_GE((*ss)->schema_version(), 1);
  auto again = FirmwareStore::open(state_.path());
  ASSERT_TRUE(again);
  auto b = (*again)->bundles();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->size(), 1u);
  struct stat st {};
  ASSERT_EQ(::stat((state_.path() / "state.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// ---- Commands -----------------------------------------------------------------------------------

class Commands : public Store {
 protected:
  Context context() {
    GlobalOptions g;
    g.state_dir = state_.path().string();
    g.catalog = kShippedCatalog;
    return Context(g);
  }
  int run(const std::function<int(Context&)>& cmd, std::string* out) {
    Context ctx = context();
    testing::internal::CaptureStdout();
    testing::internal::CaptureStderr();
    const int code = cmd(ctx);
    *out = testing::internal::GetCapturedStdout();
    err_ = testing::internal::GetCapturedStderr();
    return code;
  }
  std::string err_;
};

TEST_F(Commands, ImportListVerifyJson) {
  const fs::path a = put("cmterm-7911_7906-sip.9-4-2SR1-1.cop.sgn", sip_cop_sgn());
  const fs::path bad = put("bad.cop.sgn", std::string("\x01\x00\x02\x01", 4));
  std::string out;
  int code = run(
      [&](Context& c) {
        return cmd_firmware_import(c, {a.string(), bad.string()}, true);
      },
      &out);
  EXPECT_EQ(code, 1);
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["format"], "labctl-firmware-import");
  EXPECT_EQ(j["format_version"], 1);
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_EQ(j["results"][0]["status"], "imported");
  EXPECT_EQ(j["results"][0]["bundle"]["format"], "cop.sgn");
  EXPECT_EQ(j["results"][0]["identification"]["load_id"], "SIP11.9-4-2SR1-1S");
  EXPECT_EQ(j["results"][0]["identification"]["releases"][0]["complete"], true);
  EXPECT_EQ(j["results"][0]["files"].size(), kSipFiles.size());
  EXPECT_EQ(j["results"][0]["files"][3]["component"], "jar");
  EXPECT_EQ(j["results"][0]["new_pins"], 8);
  EXPECT_EQ(j["results"][1]["status"], "error");
  EXPECT_EQ(j["results"][1]["error"]["code"], "invalid-input");
  EXPECT_NE(err_.find("bad.cop.sgn: "), std::string::npos) << err_;

  code = run([&](Context& c) { return cmd_firmware_import(c, {a.string()}, false); }, &out);
  EXPECT_EQ(code, 0);
  EXPECT_NE(out.find("already in the store"), std::string::npos) << out;

  code = run([&](Context& c) { return cmd_firmware_list(c, true); }, &out);
  EXPECT_EQ(code, 0);
  j = nlohmann::json::parse(out);
  EXPECT_EQ(j["format"], "labctl-firmware-list");
  ASSERT_EQ(j["bundles"].size(), 1u);
  EXPECT_EQ(j["bundles"][0]["load_id"], "SIP11.9-4-2SR1-1S");
  EXPECT_EQ(j["bundles"][0]["files"].size(), kSipFiles.size());
  EXPECT_EQ(j["pins"].size(), kSipFiles.size());
  EXPECT_EQ(j["pins"][0]["source"], "pin");

  code = run([&](Context& c) { return cmd_firmware_list(c, false); }, &out);
  EXPECT_EQ(code, 0);
  EXPECT_NE(out.find("catalog: cisco-7906-7911 SIP11.9-4-2SR1-1S (complete)"), std::string::npos)
      << out;

  code = run([&](Context& c) { return cmd_firmware_verify(c, {}, true); }, &out);
  EXPECT_EQ(code, 0);
  j = nlohmann::json::parse(out);
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["blobs"].size(), kSipFiles.size());

  // A file on disk checked against the store, and a stored name.
  const auto entries = load_entries(kSipFiles, "");
  const fs::path same = put("jar11sip.9-4-2ES9.sbn", entries[3].data);
  const fs::path other = put("cnu11.9-4-2ES9.sbn", "not it");
  code = run(
      [&](Context& c) {
        return cmd_firmware_verify(c, {same.string(), other.string(), "DSP11.9-4-2ES9.SBN"}, true);
      },
      &out);
  EXPECT_EQ(code, 1);
  j = nlohmann::json::parse(out);
  ASSERT_EQ(j["files"].size(), 3u);
  EXPECT_EQ(j["files"][0]["status"], "ok");
  EXPECT_EQ(j["files"][1]["status"], "mismatch");
  EXPECT_EQ(j["files"][2]["status"], "ok");
  EXPECT_EQ(j["problems"], 1);

  // Corrupt a blob: verify fails with exit 1 and says which.
  auto jar = store_->lookup("jar11sip.9-4-2ES9.sbn");
  ASSERT_TRUE(jar && *jar);
  write_file((*jar)->path, "corrupted");
  code = run([&](Context& c) { return cmd_firmware_verify(c, {}, false); }, &out);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("CORRUPT  sha256/" + (*jar)->sha256 +
                     " (jar11sip.9-4-2ES9.sbn): its bytes "
                     "hash to "),
            std::string::npos)
      << out;
}

TEST_F(Commands, HumanImportOutput) {
  const fs::path a = put("cmterm-7911_7906-sccp.8-5-2.cop.sgn",
                         make_cop_sgn(load_entries(kSccpFiles, "cmterm-sccp/")));
  std::string out;
  EXPECT_EQ(run([&](Context& c) { return cmd_firmware_import(c, {a.string()}, false); }, &out), 0);
  EXPECT_NE(out.find("cmterm-7911_7906-sccp.8-5-2.cop.sgn: imported 8 files (cop.sgn"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("load SCCP11.8-5-2S: SCCP 8.5(2), model family 11"), std::string::npos) << out;
  EXPECT_NE(out.find("term files for CP-7906G and CP-7911G"), std::string::npos) << out;
  EXPECT_NE(out.find("catalog: cisco-7906-7911 SCCP11.8-5-2S, complete (8 files)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("ignored: README"), std::string::npos) << out;
}

}  // namespace
}  // namespace labctl::controller::firmware
