#include "plugins/optical_drive/scan.h"

#include <algorithm>
#include <fstream>

#include "common/text.h"

namespace labctl::optical_drive {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxDevices = 4096;

// A sysfs attribute's first line, trimmed; "" when unreadable. Attributes are small: read at most
// 256 bytes, so a hostile tree cannot make the scan read much.
std::string attribute(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return "";
  std::string line(256, '\0');
  in.read(line.data(), static_cast<std::streamsize>(line.size()));
  line.resize(static_cast<std::size_t>(in.gcount()));
  if (auto nl = line.find('\n'); nl != std::string::npos) line.resize(nl);
  return std::string(text::trim(line));
}

// "sg12" -> 12, for sorting; -1 for other names.
long number_of(const std::string& name, const char* prefix) {
  if (!name.starts_with(prefix)) return -1;
  const std::string digits = name.substr(std::string_view(prefix).size());
  if (digits.empty() || digits.size() > 9 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return -1;
  return std::stol(digits);
}

}  // namespace

nlohmann::json ScannedDevice::to_json() const {
  return {{"sg", sg},       {"block", block},       {"hctl", hctl},
          {"type", type},   {"optical", optical()}, {"vendor", vendor},
          {"model", model}, {"revision", revision}};
}

std::vector<ScannedDevice> ScanResult::drives() const {
  std::vector<ScannedDevice> out;
  std::copy_if(all.begin(), all.end(), std::back_inserter(out),
               [](const ScannedDevice& d) { return d.optical(); });
  return out;
}

Result<ScanResult> scan_sysfs(const fs::path& sysfs) {
  ScanResult r;
  r.dir = sysfs / "class" / "scsi_generic";
  std::error_code ec;
  if (!fs::is_directory(r.dir, ec)) return r;
  r.class_present = true;
  std::vector<std::pair<long, std::string>> names;
  for (fs::directory_iterator it(r.dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const long n = number_of(name, "sg");
    if (n < 0) continue;
    names.emplace_back(n, name);
    if (names.size() >= kMaxDevices) break;
  }
  if (ec) return fail(Errc::Internal, r.dir.string() + ": " + ec.message());
  std::sort(names.begin(), names.end());
  for (const auto& [n, name] : names) {
    const fs::path dev = r.dir / name / "device";
    ScannedDevice d;
    d.sg = "/dev/" + name;
    const std::string type = attribute(dev / "type");
    if (!type.empty() && type.size() <= 3 &&
        std::all_of(type.begin(), type.end(), [](char c) { return c >= '0' && c <= '9'; }))
      d.type = std::stoi(type);
    d.vendor = attribute(dev / "vendor");
    d.model = attribute(dev / "model");
    d.revision = attribute(dev / "rev");
    // The SCSI device's own directory is named by its address: .../0:0:0:0.
    const fs::path real = fs::canonical(dev, ec);
    if (!ec) {
      const std::string base = real.filename().string();
      if (std::count(base.begin(), base.end(), ':') == 3) d.hctl = base;
    }
    ec.clear();
    long best = -1;
    for (fs::directory_iterator it(dev / "block", ec), end; !ec && it != end; it.increment(ec)) {
      const std::string b = it->path().filename().string();
      const long k = number_of(b, "sr");
      if (k >= 0 && (best < 0 || k < best)) {
        best = k;
        d.block = "/dev/" + b;
      }
    }
    ec.clear();
    r.all.push_back(std::move(d));
  }
  return r;
}

}  // namespace labctl::optical_drive
