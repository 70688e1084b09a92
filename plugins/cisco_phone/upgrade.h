// Staged phone upgrades: what labctl publishes to one phone for one hop, and how it follows the
// phone through that hop from the TFTP service's event log.
//
// A hop is three journaled steps (plugin.cc): publish, trigger, watch. `publish` writes a
// Publication -- the hop's load, its verified files in the firmware store, the phone's term file
// -- to <plugin state>/published/<MAC>.json; the TFTP service (`labctl serve`, through the
// plugin's hooks) then gives THIS phone that term file, those files and a configuration whose
// loadInformation names the load, while other phones keep what they have. `watch` reads the
// service's event log from where it stood at publication and decides, from the phone's requests
// alone, when the hop is done: every .sbn of the load transferred completely, and after that the
// phone asking for its configuration (it booted the new load). Pure functions here; files and
// sockets in plugin.cc.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/net/tftp/server.h"
#include "common/error.h"

namespace labctl::cisco_phone {

struct PublishedFile {
  std::string name;  // as the catalog names it
  std::string sha256;
  std::uint64_t size = 0;
  std::filesystem::path path;  // the store's blob
};

struct Publication {
  std::string device;     // inventory name
  std::string mac;        // "000B8201FC42"
  std::string load;       // the hop's load id, "SCCP11.8-5-2S"
  int hop = 0, hops = 0;  // 1-based
  std::string term;       // "term06.default.loads": the file this model asks after a reset
  std::vector<PublishedFile> files;  // the hop's release, verified when published
  // The release the phone runs before this hop, when the store has it: a phone whose saved
  // configuration still names it asks for its files once more before it reads the new
  // configuration (a real phone keeps its configured load).
  std::vector<PublishedFile> keep;
  std::int64_t published_ms = 0;
  std::uint64_t log_offset = 0;   // size of the TFTP event log when published
  std::int64_t triggered_ms = 0;  // 0 until the trigger step ran
  std::string trigger;            // "check-sync" or "operator"

  nlohmann::json to_json() const;
  static Result<Publication> from_json(const nlohmann::json& j);
  // The .sbn files of the load, in the order the catalog lists them.
  std::vector<const PublishedFile*> sbn() const;
  // The file the phone may fetch under `name` (case-insensitive): the term file, a file of the
  // hop, or a kept one. nullptr otherwise.
  const PublishedFile* find(std::string_view name) const;
};

// "<dir>/<MAC>.json".
std::filesystem::path publication_path(const std::filesystem::path& dir, std::string_view mac);
// nullopt when there is none; InvalidInput when the file is damaged.
Result<std::optional<Publication>> read_publication(const std::filesystem::path& path);
// Written to a temporary file, fsync'd and renamed into place: a reader sees the old or the new.
Status write_publication(const std::filesystem::path& path, const Publication& p);

// Where a phone stands in a hop, from its TFTP requests since the publication.
struct HopProgress {
  std::size_t files_total = 0, files_done = 0;  // .sbn files of the load
  std::uint64_t bytes_total = 0, bytes_done = 0;
  std::vector<std::string> missing;  // .sbn files not yet transferred completely
  bool config_asked = false;         // SEP<MAC>.cnf.xml asked after the last .sbn completed
  bool done = false;                 // every .sbn complete, then the configuration asked
  int term_requests = 0;             // term-file requests since publication
  int term_since_sbn = 0;            // term-file requests after the last .sbn activity
  bool any_sbn = false;              // some .sbn of the load was asked at all
  std::vector<std::string> refused;  // "name: reason" for refused requests of the load's files
  std::int64_t last_ms = 0;          // time of the phone's last request
  // The phone keeps asking the term file and never a .sbn: its bootloader refuses the load (the
  // seed's loop), the watch can stop waiting.
  bool looping(int threshold = 3) const { return !any_sbn && term_since_sbn >= threshold; }
  std::string summary() const;  // "3/5 files, 1.2 of 4.0 MB"
};

// `events`: the service's events in log order (any clients); only those from `client` at or
// after the publication count. `sep` is the phone's SEP<MAC>.cnf.xml.
HopProgress follow_hop(const std::vector<tftp::Event>& events, const std::string& client,
                       const Publication& pub, std::string_view sep);

// Reads a JSON event log as it grows: every call returns the complete lines appended since the
// previous one, parsed (lines that are not events are counted and skipped). A file that shrank
// (rotated) is read again from its start.
class EventLogTail {
 public:
  EventLogTail(std::filesystem::path path, std::uint64_t offset)
      : path_(std::move(path)), offset_(offset) {}
  std::vector<tftp::Event> poll();
  std::uint64_t offset() const { return offset_; }
  std::size_t bad_lines() const { return bad_; }

 private:
  std::filesystem::path path_;
  std::uint64_t offset_ = 0;
  std::size_t bad_ = 0;
};

// The size of a file, 0 when it does not exist.
std::uint64_t file_size_or_zero(const std::filesystem::path& path);

// What the operator does to make an SCCP phone (which has no check-sync) fetch its load, and what
// to do when it will not boot: the text the trigger step prints.
std::string operator_instructions(const std::string& device, const std::string& model,
                                  const std::string& ip, const std::string& load);

}  // namespace labctl::cisco_phone
