#include "plugins/optical_drive/flash.h"

#include <openssl/evp.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "common/json_number.h"
#include "common/text.h"

namespace labctl::optical_drive {

using nlohmann::json;
namespace s = scsi;

namespace {

// The largest image labctl writes: what WRITE BUFFER's 24-bit fields can address.
constexpr std::uint64_t kMaxImage = s::kMax24;

std::string where(const inventory::Release& r, const std::string& file) {
  return file + ":" + std::to_string(r.mark.line) + ":" + std::to_string(r.mark.column) +
         ": release " + r.version.text;
}

// An integer option: a JSON number, or a string such as "0x0E".
std::optional<std::int64_t> integer(const json& v) {
  if (const auto n = json_number::whole<std::int64_t>(v)) return n;
  if (v.is_string()) {
    const std::string t = v.get<std::string>();
    try {
      std::size_t used = 0;
      const auto n = std::stoll(t, &used, 0);
      if (used == t.size()) return n;
    } catch (const std::exception&) {
    }
  }
  return std::nullopt;
}

}  // namespace

std::string mode_name(std::uint8_t mode) {
  switch (mode) {
    case s::kModeDownloadSave:
      return "5 (download microcode, save, activate)";
    case s::kModeDownloadOffsetsSave:
      return "7 (download microcode with offsets, save, activate)";
    case s::kModeDownloadOffsetsDefer:
      return "0x0E (download microcode with offsets, save, defer activation)";
    case s::kModeActivateDeferred:
      return "0x0F (activate deferred microcode)";
    default:
      return std::to_string(mode);
  }
}

Result<FlashOptions> flash_options(const inventory::Release& r, const std::string& file) {
  FlashOptions o;
  const json& opts = r.options;
  if (opts.is_null()) return o;
  if (!opts.is_object())
    return fail(Errc::InvalidInput, where(r, file) + ": options must be a mapping");
  auto bad = [&](const std::string& key, const std::string& why) {
    return fail(Errc::InvalidInput, where(r, file) + ": options." + key + ": " + why);
  };
  if (opts.contains("write-buffer-mode")) {
    auto m = integer(opts.at("write-buffer-mode"));
    if (!m || (*m != 5 && *m != 7 && *m != 14))
      return bad("write-buffer-mode", opts.at("write-buffer-mode").dump() +
                                          " is not 5, 7 or 14 (0x0E, deferred activation)");
    o.mode = static_cast<std::uint8_t>(*m);
  }
  if (opts.contains("chunk-size")) {
    auto c = integer(opts.at("chunk-size"));
    if (!c || *c < 512 || *c > static_cast<std::int64_t>(s::kMax24))
      return bad("chunk-size", opts.at("chunk-size").dump() + " is not 512..16777215 bytes");
    if (o.mode == s::kModeDownloadSave)
      return bad("chunk-size",
                 "mode 5 sends the whole image in one command; a chunk size needs "
                 "mode 7 or 14");
    o.chunk = static_cast<std::uint32_t>(*c);
  }
  if (opts.contains("activate")) {
    if (!opts.at("activate").is_boolean()) return bad("activate", "must be true or false");
    o.activate = opts.at("activate").get<bool>();
    if (o.mode != s::kModeDownloadOffsetsDefer && !o.activate)
      return bad("activate",
                 "only mode 14 (0x0E) defers activation; modes 5 and 7 activate "
                 "when the image is complete");
  }
  return o;
}

Result<ImageSpec> image_spec(const inventory::Release& r, const std::string& file) {
  ImageSpec spec;
  if (r.files.empty())
    return fail(Errc::NotSupported,
                "release " + r.version.text +
                    " has no firmware file in the catalog (the version drives ship with): "
                    "there is nothing to write");
  const json img = r.options.is_object() ? r.options.value("image", json()) : json();
  if (!img.is_null() && !img.is_object())
    return fail(Errc::InvalidInput, where(r, file) + ": options.image must be a mapping");
  static const std::set<std::string> known = {"file", "offset", "length", "sha256"};
  if (img.is_object())
    for (const auto& [k, v] : img.items())
      if (!known.count(k))
        return fail(Errc::InvalidInput, where(r, file) + ": options.image." + k +
                                            ": unknown (file, offset, length, sha256)");
  const inventory::FirmwareFile* f = nullptr;
  if (img.is_object() && img.contains("file")) {
    const std::string name = img.value("file", std::string());
    for (const auto& x : r.files)
      if (text::iequals(x.name, name)) f = &x;
    if (!f)
      return fail(Errc::InvalidInput, where(r, file) + ": options.image.file '" + name +
                                          "' is not one of the release's files");
  } else if (r.files.size() == 1) {
    f = &r.files.front();
  } else {
    return fail(Errc::InvalidInput,
                where(r, file) + ": the release has " + std::to_string(r.files.size()) +
                    " files; options.image.file must say which one holds the image");
  }
  spec.file = f->name;
  spec.size = f->size;
  const bool has_off = img.is_object() && img.contains("offset");
  const bool has_len = img.is_object() && img.contains("length");
  const bool has_sha = img.is_object() && img.contains("sha256");
  if (has_off || has_len || has_sha) {
    std::vector<std::string> missing;
    if (!has_off) missing.push_back("offset");
    if (!has_len) missing.push_back("length");
    if (!has_sha) missing.push_back("sha256");
    if (!missing.empty())
      return fail(Errc::InvalidInput,
                  where(r, file) + ": options.image: extracting the image from " + spec.file +
                      " needs offset, length and sha256 together; missing " +
                      text::join_list(missing));
    auto off = integer(img.at("offset"));
    auto len = integer(img.at("length"));
    const std::string sha = img.at("sha256").is_string() ? img.at("sha256").get<std::string>() : "";
    if (!off || *off < 0)
      return fail(Errc::InvalidInput, where(r, file) + ": options.image.offset: not a byte offset");
    if (!len || *len <= 0 || static_cast<std::uint64_t>(*len) > kMaxImage)
      return fail(Errc::InvalidInput,
                  where(r, file) + ": options.image.length: not 1..16777215 bytes");
    if (sha.size() != 64 || !std::all_of(sha.begin(), sha.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) != 0;
        }))
      return fail(Errc::InvalidInput, where(r, file) + ": options.image.sha256: not 64 hex digits");
    spec.extract = true;
    spec.offset = static_cast<std::uint64_t>(*off);
    spec.length = static_cast<std::uint64_t>(*len);
    spec.sha256 = text::lower(sha);
    return spec;
  }
  const std::string lower = text::lower(spec.file);
  if (lower.ends_with(".exe"))
    return fail(Errc::NotSupported,
                "release " + r.version.text + ": " + spec.file +
                    " is a vendor updater (a Windows executable); labctl writes the image inside "
                    "one only where the catalog gives its exact place and checksum, and it does "
                    "not: options.image needs offset, length and sha256 of the image in " +
                    spec.file +
                    " (extraction from this updater is not confirmed), or list the "
                    "raw image as the release's file");
  return spec;
}

bool is_windows_executable(std::span<const std::uint8_t> b) {
  if (b.size() < 0x40 || b[0] != 'M' || b[1] != 'Z') return false;
  const std::uint32_t pe =
      static_cast<std::uint32_t>(b[0x3C]) | static_cast<std::uint32_t>(b[0x3D]) << 8 |
      static_cast<std::uint32_t>(b[0x3E]) << 16 | static_cast<std::uint32_t>(b[0x3F]) << 24;
  if (pe > b.size() - 4) return true;  // an MZ stub pointing outside: still not microcode
  return b[pe] == 'P' && b[pe + 1] == 'E' && b[pe + 2] == 0 && b[pe + 3] == 0;
}

std::string sha256_hex(std::span<const std::uint8_t> bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += digits[md[i] >> 4];
    out += digits[md[i] & 15];
  }
  return out;
}

Result<std::vector<std::uint8_t>> load_image(const ImageSpec& spec,
                                             const std::vector<sdk::FirmwareImage>& files) {
  const sdk::FirmwareImage* f = nullptr;
  for (const auto& x : files)
    if (text::iequals(x.name, spec.file)) f = &x;
  if (!f) return fail(Errc::NotFound, spec.file + ": not among the release's files in the store");
  const std::uint64_t from = spec.extract ? spec.offset : 0;
  const std::uint64_t want = spec.extract ? spec.length : f->size;
  if (spec.extract && (spec.offset > f->size || spec.length > f->size - spec.offset))
    return fail(Errc::InvalidInput,
                spec.file + ": the image at offset " + std::to_string(spec.offset) + ", " +
                    std::to_string(spec.length) + " bytes, runs past its end (" +
                    std::to_string(f->size) + " bytes)");
  if (want == 0) return fail(Errc::InvalidInput, spec.file + ": the image is empty");
  if (want > kMaxImage)
    return fail(Errc::InvalidInput, spec.file + ": " + std::to_string(want) +
                                        " bytes, over the 16 MiB - 1 WRITE BUFFER can address");
  std::ifstream in(f->path, std::ios::binary);
  if (!in) return fail(Errc::NotFound, spec.file + ": cannot read " + f->path.string());
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(want));
  in.seekg(static_cast<std::streamoff>(from));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(want));
  if (static_cast<std::uint64_t>(in.gcount()) != want)
    return fail(Errc::InvalidInput, spec.file + ": read " + std::to_string(in.gcount()) + " of " +
                                        std::to_string(want) + " bytes");
  if (spec.extract) {
    const std::string got = sha256_hex(bytes);
    if (got != spec.sha256)
      return fail(Errc::VerifyMismatch,
                  spec.file + ": the " + std::to_string(want) + " bytes at offset " +
                      std::to_string(from) + " have sha256 " + got + ", the catalog gives " +
                      spec.sha256 + "; not the image this release describes, refusing");
  } else if (spec.size && *spec.size != want) {
    return fail(Errc::VerifyMismatch, spec.file + ": " + std::to_string(want) +
                                          " bytes, the catalog gives " +
                                          std::to_string(*spec.size));
  }
  if (is_windows_executable(bytes))
    return fail(Errc::InvalidInput,
                spec.file +
                    ": this is a Windows executable (a vendor updater), not microcode; "
                    "refusing to write it to a drive");
  return bytes;
}

Status write_image(Drive& drive, const FlashOptions& o, std::span<const std::uint8_t> image,
                   std::chrono::milliseconds timeout, const WriteHooks& hooks) {
  const std::uint64_t total = image.size();
  if (total == 0 || total > kMaxImage)
    return fail(Errc::InvalidInput, "image of " + std::to_string(total) + " bytes");
  auto progress = [&](std::uint64_t done) {
    if (hooks.progress) hooks.progress(done, total);
  };
  if (o.mode == s::kModeDownloadSave) {
    progress(0);
    if (auto st = drive.write_buffer(o.mode, 0, image, timeout); !st) return st;
    progress(total);
    return {};
  }
  if (o.mode != s::kModeDownloadOffsetsSave && o.mode != s::kModeDownloadOffsetsDefer)
    return fail(Errc::InvalidInput,
                "WRITE BUFFER mode " + mode_name(o.mode) + " does not download microcode");
  const std::uint64_t chunk = std::max<std::uint32_t>(o.chunk, 1);
  for (std::uint64_t off = 0; off < total; off += chunk) {
    const std::uint64_t n = std::min(chunk, total - off);
    const bool last = off + n == total;
    if (!last && hooks.cancelled && hooks.cancelled())
      return fail(Errc::Cancelled, "download stopped at byte " + std::to_string(off) + " of " +
                                       std::to_string(total) +
                                       " (the drive still runs its old microcode)");
    if (auto st = drive.write_buffer(
            o.mode, static_cast<std::uint32_t>(off),
            image.subspan(static_cast<std::size_t>(off), static_cast<std::size_t>(n)), timeout);
        !st)
      return st;
    progress(off + n);
  }
  if (o.mode == s::kModeDownloadOffsetsDefer && o.activate)
    return drive.write_buffer(s::kModeActivateDeferred, 0, {}, timeout);
  return {};
}

}  // namespace labctl::optical_drive
