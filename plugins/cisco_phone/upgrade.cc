#include "plugins/cisco_phone/upgrade.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/json_number.h"
#include "common/text.h"

namespace labctl::cisco_phone {

using text::iequals;
using text::join_list;
using text::lower;
using text::split;
using text::trim;

using nlohmann::json;

namespace {

json files_json(const std::vector<PublishedFile>& files) {
  json a = json::array();
  for (const auto& f : files)
    a.push_back({{"name", f.name}, {"sha256", f.sha256}, {"size", f.size}, {"path", f.path}});
  return a;
}

std::vector<PublishedFile> files_from(const json& a) {
  std::vector<PublishedFile> out;
  for (const auto& f : a)
    out.push_back({f.at("name").get<std::string>(), f.at("sha256").get<std::string>(),
                   json_number::at<std::uint64_t>(f, "size"), f.at("path").get<std::string>()});
  return out;
}

bool is_sbn(std::string_view name) {
  return name.size() > 4 && iequals(name.substr(name.size() - 4), ".sbn");
}

std::string megabytes(std::uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(b) / 1e6);
  return buf;
}

}  // namespace

json Publication::to_json() const {
  return {{"device", device},
          {"mac", mac},
          {"load", load},
          {"hop", hop},
          {"hops", hops},
          {"term", term},
          {"files", files_json(files)},
          {"keep", files_json(keep)},
          {"published_ms", published_ms},
          {"log_offset", log_offset},
          {"triggered_ms", triggered_ms},
          {"trigger", trigger}};
}

Result<Publication> Publication::from_json(const json& j) {
  try {
    Publication p;
    p.device = j.at("device").get<std::string>();
    p.mac = j.at("mac").get<std::string>();
    p.load = j.at("load").get<std::string>();
    p.hop = json_number::value(j, "hop", 0);
    p.hops = json_number::value(j, "hops", 0);
    p.term = j.at("term").get<std::string>();
    p.files = files_from(j.at("files"));
    p.keep = files_from(j.value("keep", json::array()));
    p.published_ms = json_number::at<std::int64_t>(j, "published_ms");
    p.log_offset = json_number::value(j, "log_offset", std::uint64_t{0});
    p.triggered_ms = json_number::value(j, "triggered_ms", std::int64_t{0});
    p.trigger = j.value("trigger", "");
    return p;
  } catch (const std::exception& e) {  // json's, and json_number's invalid_argument
    return fail(Errc::InvalidInput, std::string("publication: ") + e.what());
  }
}

std::vector<const PublishedFile*> Publication::sbn() const {
  std::vector<const PublishedFile*> out;
  for (const auto& f : files)
    if (is_sbn(f.name)) out.push_back(&f);
  return out;
}

const PublishedFile* Publication::find(std::string_view name) const {
  for (const auto* list : {&files, &keep})
    for (const auto& f : *list)
      if (iequals(f.name, name)) return &f;
  return nullptr;
}

std::filesystem::path publication_path(const std::filesystem::path& dir, std::string_view mac) {
  return dir / (std::string(mac) + ".json");
}

Result<std::optional<Publication>> read_publication(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::optional<Publication>();
    return fail(Errc::Internal, path.string() + ": " + std::strerror(errno));
  }
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return fail(Errc::InvalidInput, path.string() + ": not JSON");
  auto p = Publication::from_json(j);
  if (!p) return fail(std::move(p.error()).context(path.string()));
  return std::optional<Publication>(std::move(*p));
}

Status write_publication(const std::filesystem::path& path, const Publication& p) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return fail(Errc::Internal, path.parent_path().string() + ": " + ec.message());
  // One writer per phone at a time (the SDK never overlaps calls for one device); a temporary left
  // by a writer that died is truncated and reused.
  const std::string tmp = path.string() + ".tmp";
  const std::string text = p.to_json().dump(2) + "\n";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return fail(Errc::Internal, tmp + ": " + std::strerror(errno));
  std::size_t off = 0;
  while (off < text.size()) {
    ssize_t w = ::write(fd, text.data() + off, text.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return fail(Errc::Internal, tmp + ": " + std::strerror(err));
    }
    off += static_cast<std::size_t>(w);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return fail(Errc::Internal, path.string() + ": " + std::strerror(err));
  }
  // The rename is durable once the directory is on disk too.
  if (int dir = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return {};
}

std::string HopProgress::summary() const {
  return std::to_string(files_done) + "/" + std::to_string(files_total) + " files, " +
         megabytes(bytes_done) + " of " + megabytes(bytes_total) + " MB" +
         (done ? ", configuration asked" : "");
}

HopProgress follow_hop(const std::vector<tftp::Event>& events, const std::string& client,
                       const Publication& pub, std::string_view sep) {
  HopProgress p;
  const auto sbn = pub.sbn();
  p.files_total = sbn.size();
  for (const auto* f : sbn)
    p.bytes_total += f->size;
  std::set<std::string> complete;  // lower-case names
  std::map<std::string, std::uint64_t> partial;
  std::int64_t all_done_ms = -1;
  for (const auto& e : events) {
    if (e.client != client || e.time_ms < pub.published_ms) continue;
    if (e.op == "WRQ") continue;
    p.last_ms = std::max(p.last_ms, e.time_ms);
    const std::string name = lower(e.name);
    const PublishedFile* file = nullptr;
    for (const auto* f : sbn)
      if (lower(f->name) == name) file = f;
    // A refused file of the hop (the .loads file, the term file, a .sbn) stops the phone there.
    if (e.kind == tftp::EventKind::Refused &&
        std::any_of(pub.files.begin(), pub.files.end(),
                    [&](const PublishedFile& f) { return iequals(f.name, name); }))
      p.refused.push_back(e.name + ": " + (e.reason.empty() ? "refused" : e.reason));
    if (iequals(name, pub.term)) {
      if (e.kind == tftp::EventKind::Request) {
        ++p.term_requests;
        ++p.term_since_sbn;
      }
      continue;
    }
    if (file != nullptr) {
      p.any_sbn = true;
      p.term_since_sbn = 0;
      switch (e.kind) {
        case tftp::EventKind::Complete:
          // Complete only when every byte of the published file went out.
          if (e.bytes == file->size) {
            complete.insert(name);
            partial.erase(name);
          }
          break;
        case tftp::EventKind::Progress:
          if (!complete.count(name)) partial[name] = e.bytes;
          break;
        default:
          break;
      }
      if (complete.size() == sbn.size() && all_done_ms < 0) all_done_ms = e.time_ms;
      continue;
    }
    if (iequals(name, sep) && e.kind == tftp::EventKind::Request && all_done_ms >= 0 &&
        e.time_ms >= all_done_ms)
      p.config_asked = true;
  }
  p.files_done = complete.size();
  for (const auto* f : sbn) {
    const std::string n = lower(f->name);
    if (complete.count(n))
      p.bytes_done += f->size;
    else {
      p.missing.push_back(f->name);
      if (auto it = partial.find(n); it != partial.end()) p.bytes_done += it->second;
    }
  }
  p.done = !sbn.empty() && p.files_done == sbn.size() && p.config_asked;
  return p;
}

std::vector<tftp::Event> EventLogTail::poll() {
  std::vector<tftp::Event> out;
  const std::uint64_t size = file_size_or_zero(path_);
  if (size < offset_) offset_ = 0;  // rotated or truncated: read it again from the start
  if (size == offset_) return out;
  std::ifstream in(path_, std::ios::binary);
  if (!in) return out;
  in.seekg(static_cast<std::streamoff>(offset_));
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline yet: the writer is mid-line; read it next time
    offset_ += line.size() + 1;
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    auto e = j.is_discarded() ? Result<tftp::Event>(fail(Errc::InvalidInput, "not JSON"))
                              : tftp::event_from_json(j);
    if (!e) {
      ++bad_;
      continue;
    }
    out.push_back(std::move(*e));
  }
  return out;
}

std::uint64_t file_size_or_zero(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_size);
}

std::string operator_instructions(const std::string& device, const std::string& model,
                                  const std::string& ip, const std::string& load) {
  std::ostringstream o;
  o << device << " (" << model << (ip.empty() ? "" : ", " + ip) << ") runs an SCCP load: it has "
    << "no check-sync, so it fetches " << load << " when it restarts.\n"
    << "  1. Restart it: unplug its power (or the PoE cable) and plug it back in.\n"
    << "  2. If it does not come back (blank screen, or it cycles through 'Upgrading' and "
       "restarts on the same load): factory reset -- unplug it, hold '#' while plugging it back "
       "in, release when the line buttons flash amber, then key 123456789*0#.\n"
    << "  3. If it still does not boot, erase its flash the same way with 3491672850*# instead "
       "(it then loads everything from TFTP).\n"
    << "labctl watches its TFTP requests and goes on by itself.";
  return o.str();
}

}  // namespace labctl::cisco_phone
