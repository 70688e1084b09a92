// The local firmware store: vendor bundles unpacked into content-addressed blobs, with an index
// in the state database and the catalog's checksums pinned on first import
// (docs/firmware-store.md).
//
//   <state-dir>/firmware/            0700
//     sha256/<hex>                   0644 blobs, named by the sha256 of their bytes
//     .import-XXXXXX/                a running import's scratch directory (removed when it ends)
//   <state-dir>/state.db             tables firmware_bundles, firmware_files, firmware_pins
//
// Bundles: `.cop.sgn` (a TLV signing header, then a gzip'd tar that may hold another tar), `.cop`
// (gzip'd tar), `.zip`, `.tar`, `.tar.gz`, through libarchive (tar and zip; gzip through zlib, so
// its CRC is checked). A file whose name the catalog lists (e.g. SMT_SX_250.bin) is stored as it
// is.
//
// Every part that reads a bundle is written for hostile input: lengths are checked against the
// file, member names are reduced to a base name (and refused when they climb or are absolute),
// links and devices are refused, and sizes are limited (WalkLimits), so a zip bomb is an error.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "inventory/catalog.h"

struct sqlite3;

namespace labctl::controller::firmware {

// ---- The `.cop.sgn` signing header
// ---------------------------------------------------------------

struct TlvRecord {
  std::uint8_t tag = 0;
  std::size_t offset = 0;    // of the tag byte
  std::uint16_t length = 0;  // of the value
};

struct SignedHeader {
  std::uint8_t version_major = 0, version_minor = 0;  // tag 1
  std::uint16_t header_length = 0;                    // tag 2: where the payload starts
  std::vector<TlvRecord> records;                     // every record, in file order
};

// Whether `prefix` starts like a signing header (tag 1 with a 2-byte value).
bool looks_signed(std::span<const std::uint8_t> prefix);

// Parses the TLV records at the start of a file of `file_size` bytes; `prefix` is the file's first
// bytes (at least min(file_size, 65536) of them; the header length is 16 bits). Records are
// 1-byte tag, 2-byte big-endian length, value. The first must be tag 1 (header version, 2 bytes),
// one must be tag 2 (header length, 2 bytes, big-endian); the records must end exactly at the
// header length, and the payload after it must not be empty. InvalidInput names the byte offset
// of whatever does not hold.
Result<SignedHeader> parse_signed_header(std::span<const std::uint8_t> prefix,
                                         std::uint64_t file_size);

// ---- Member names
// ---------------------------------------------------------------------------------

// The base name a member is stored under. Refuses (InvalidInput, saying why) empty names, control
// characters (NUL included), absolute paths ("/x", "\x", "C:x"), any ".." component and names
// that end without a file name. Both '/' and '\' separate directories.
Result<std::string> member_basename(std::string_view raw);

// `raw` with control and non-ASCII bytes as \xNN, cut at 200 characters: safe to print.
std::string printable(std::string_view raw);

// What a file name alone says (Cisco phone loads; everything else is Kind::Other).
struct NameInfo {
  enum class Kind { Other, Loads, TermLoads, Sbn };
  Kind kind = Kind::Other;
  std::string load_id;     // Loads: "SIP11.9-4-2SR1-1S"
  std::string protocol;    // "sip", "sccp" or ""
  std::string model_code;  // "11" (Loads, Sbn: the model family), "06"/"11" (TermLoads)
  std::string component;   // Sbn: "jar", "cnu", "apps", "dsp", "cvm"
  std::string version;     // Loads: "9-4-2SR1-1S"; Sbn: "9-4-2ES9"
};
NameInfo classify_name(std::string_view name);
std::string_view kind_name(NameInfo::Kind k);  // "other", "loads", "term-loads", "sbn"
// "06" -> "CP-7906G", "11" -> "CP-7911G", else "".
std::string model_for_code(std::string_view code);

// ---- Walking a bundle
// -----------------------------------------------------------------------------

struct WalkLimits {
  std::uint64_t max_member = 512ull << 20;  // bytes of one member
  std::uint64_t max_total = 2ull << 30;     // bytes of all members, and of each decompressed stream
  int max_depth = 3;                        // archives inside archives
  std::size_t max_members = 10000;          // entries of every level together
};

struct MemberInfo {
  std::string name;  // base name (member_basename)
  std::string path;  // where it is: "inner.tar/dir/name", printable
  std::optional<std::uint64_t> declared_size;
};

// Receives the regular files of a bundle, one at a time: begin, write..., end.
class MemberSink {
 public:
  virtual ~MemberSink() = default;
  // true: keep the bytes (write() gets them); false: they are read (and counted) but dropped.
  virtual Result<bool> begin(const MemberInfo& member) = 0;
  virtual Status write(std::span<const std::uint8_t> data) = 0;
  virtual Status end() = 0;
};

struct WalkInfo {
  std::string format;  // "cop.sgn", "cop", "tar.gz", "tar", "zip", "file"
  std::optional<SignedHeader> header;
  std::uint64_t expanded = 0;       // bytes of all members
  std::size_t entries = 0;          // entries of every level (directories too)
  std::vector<std::string> nested;  // paths of the archives found inside
};

// Walks a bundle held in memory (the fuzz target uses this). `name` decides only the messages and
// whether a signing header is required (".sgn"); the format is detected from the bytes.
Result<WalkInfo> walk_bundle_memory(std::span<const std::uint8_t> data, const std::string& name,
                                    const WalkLimits& limits, MemberSink& sink);
// The same for a file, streamed.
Result<WalkInfo> walk_bundle_file(const std::filesystem::path& path, const WalkLimits& limits,
                                  MemberSink& sink);

// ---- Identification
// -------------------------------------------------------------------------------

struct ReleaseMatch {
  std::string family, release;                // catalog family name, release version text
  bool complete = false;                      // every file of the release is in the bundle
  bool identified = false;                    // complete, or the bundle's load id is this release
  std::vector<std::string> present, missing;  // catalog file names
};

struct Identification {
  std::string load_id;                 // the one *.loads load id, "" when none or several
  std::vector<std::string> load_ids;   // every one found
  std::string protocol;                // "sip", "sccp", ""
  std::string version;                 // display form ("SIP 9.4(2)SR1"), "" when unknown
  std::string model_code;              // "11" from the load id (or the .sbn files)
  std::vector<std::string> models;     // from termNN.default.loads: "CP-7906G", ...
  std::vector<ReleaseMatch> releases;  // complete first, then by files present
  std::vector<std::string> warnings;
};

// From the names of a bundle's files (and the catalog, when there is one).
Identification identify(const std::vector<std::string>& names, const inventory::Catalog* catalog);
nlohmann::json to_json(const Identification& id);

// ---- The store
// ------------------------------------------------------------------------------------

struct StoredFile {
  std::string name;
  std::string sha256;
  std::uint64_t size = 0;
  std::filesystem::path path;  // the blob
  std::string bundle;          // the bundle it came from (newest import)
};

struct ImportedFile {
  std::string name, sha256, member;  // member: where in the bundle
  std::uint64_t size = 0;
  NameInfo info;
  bool new_blob = false;  // not in the store before this import
};

struct ImportReport {
  std::string path;  // as given
  std::string name;  // base name of the bundle
  std::string sha256;
  std::uint64_t size = 0;
  std::string format;
  bool already_present = false;  // same bytes imported before: the index is unchanged
  std::size_t repaired = 0;      // already_present: damaged or missing blobs put back
  std::string previous_name;     // already_present: the name it was imported under
  std::int64_t imported_at = 0;  // unix ms (the earlier import's when already_present)
  std::vector<ImportedFile> files;
  std::vector<std::string> ignored;  // members that are not firmware files (paths)
  std::vector<std::string> nested;   // archives found inside
  Identification id;
  std::size_t new_pins = 0;
  std::vector<std::string> warnings;
};

struct BundleRecord {
  std::int64_t id = 0;
  std::string name, sha256, format, load_id, protocol;
  std::uint64_t size = 0;
  std::int64_t imported_at = 0;
  nlohmann::json identification;  // to_json(Identification) as at import
  std::vector<StoredFile> files;
};

struct PinRecord {
  std::string family, release, name, sha256, source;  // source: "pin" or "catalog"
  std::uint64_t size = 0;
  std::int64_t pinned_at = 0;
};

struct BlobCheck {
  std::string sha256;
  std::uint64_t size = 0;          // as indexed
  std::vector<std::string> names;  // file names that use it
  std::string status;              // "ok", "missing", "corrupt", "size-mismatch", "not-a-file"
  std::string actual_sha256;       // when corrupt
  std::uint64_t actual_size = 0;   // when size-mismatch / corrupt
};

struct VerifyReport {
  std::vector<BlobCheck> blobs;
  std::vector<std::string> orphans;     // blobs no index row names (harmless; not problems)
  std::vector<std::string> stale_temp;  // leftovers of an interrupted import
  std::size_t problems() const;
};

class FirmwareStore {
 public:
  // Opens `<state_dir>/firmware` (creating it 0700, with sha256/) and the index tables in
  // `<state_dir>/state.db` (its own connection; CREATE TABLE IF NOT EXISTS; PRAGMA user_version
  // is left to the StateStore).
  static Result<std::unique_ptr<FirmwareStore>> open(const std::filesystem::path& state_dir);
  ~FirmwareStore();
  FirmwareStore(const FirmwareStore&) = delete;
  FirmwareStore& operator=(const FirmwareStore&) = delete;

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path blob_path(std::string_view sha256) const;
  void set_limits(const WalkLimits& limits) { limits_ = limits; }

  // Imports one bundle (or catalog-named image). All or nothing: on any error the store directory
  // and the index are as they were, and the error names the bundle, the member and why.
  // `catalog` may be null (no identification against it, nothing pinned). A bundle imported
  // before (same sha256) is a no-op when its blobs are intact; when some are damaged or missing
  // it is unpacked again and only those blobs are put back (`repaired`).
  Result<ImportReport> import(const std::filesystem::path& bundle,
                              const inventory::Catalog* catalog);

  // A file by name: exact match first, then case-insensitive; the newest import wins.
  Result<std::optional<StoredFile>> lookup(std::string_view name);
  // Every stored content under `name` (case-insensitive), one per sha256, newest import first.
  Result<std::vector<StoredFile>> lookup_all(std::string_view name);
  // The files recorded (pinned) for a catalog release, by name.
  Result<std::vector<StoredFile>> release_files(std::string_view family, std::string_view release);
  // Every file the catalog lists for `release`, pinned and re-hashed now: NotFound (naming the
  // bundle to import) when some file was never imported, VerifyMismatch when a blob differs from
  // its pin or from the catalog's sha256. What a step hands a device, after this check only.
  Result<std::vector<StoredFile>> verified_release(const inventory::Family& family,
                                                   const inventory::Release& release);
  Result<std::vector<BundleRecord>> bundles();  // oldest first, with their files
  Result<std::vector<PinRecord>> pins();
  // Re-hashes every blob the index names.
  Result<VerifyReport> verify();
  // Re-hashes one blob; `size` is what the index says.
  BlobCheck check_blob(const std::string& sha256, std::uint64_t size) const;

 private:
  FirmwareStore(sqlite3* db, std::filesystem::path root) : db_(db), root_(std::move(root)) {}
  sqlite3* db_ = nullptr;
  std::filesystem::path root_;
  WalkLimits limits_;
};

// sha256 of a file's bytes, lower-case hex.
Result<std::string> sha256_file(const std::filesystem::path& path);

}  // namespace labctl::controller::firmware
