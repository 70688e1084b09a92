#include "plugins/supermicro_bmc/aten_image.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <sstream>

#include <nlohmann/json.hpp>

namespace labctl::supermicro_bmc {

namespace {

// Offsets inside a 64-byte header block.
constexpr std::size_t kFieldsAt = 12;  // after the padding
constexpr std::size_t kNumberAt = 12;
constexpr std::size_t kBaseAt = 16;
constexpr std::size_t kLengthAt = 20;
constexpr std::size_t kLoadAt = 24;
constexpr std::size_t kExecAt = 28;
constexpr std::size_t kNameAt = 32;
constexpr std::size_t kNameSize = 16;
constexpr std::size_t kImageSumAt = 48;
constexpr std::size_t kSignatureAt = 52;
constexpr std::size_t kTypeAt = 56;
constexpr std::size_t kHeaderSumAt = 60;
constexpr std::array<std::uint8_t, 4> kSignature = {0x9F, 0xFF, 0xFF, 0xA0};

constexpr std::string_view kFooterMagic = "ATENs_FW";
constexpr std::uint8_t kFooterTag1 = 0x71;
constexpr std::uint8_t kFooterTag2 = 0x17;
constexpr std::size_t kFooter1Size = 14;  // magic, major, minor, checksum
constexpr std::size_t kFooter2Size = 16;  // magic, major, minor, 0x71, checksum, 0x17
constexpr std::size_t kFooter3Size = 28;  // ASpeed: magic, major, minor, 8, 0x71, 8, 0x17
// More ATENs_FW markers than this in one file are not looked at.
constexpr std::size_t kMaxFooterCandidates = 64;

constexpr std::string_view kBootloaderMarker = "WPCM450 Boot Loader";
constexpr std::size_t kBootloaderSearch = 0x10000;
constexpr std::size_t kBootloaderTextMax = 96;

// ASpeed images (X10 and later) carry an index of their images, "[img]: start length crc name",
// at this offset (read_header.py's test for them).
constexpr std::size_t kAspeedIndexAt = 0x01fc0000;
constexpr std::string_view kAspeedIndexMarker = "[img]";

// The BMC's flash is erased in 64 KiB blocks; whole images are a whole number of them.
constexpr std::size_t kFlashBlock = 0x10000;

std::uint32_t le32(std::span<const std::uint8_t> d, std::size_t at) {
  return static_cast<std::uint32_t>(d[at]) | static_cast<std::uint32_t>(d[at + 1]) << 8 |
         static_cast<std::uint32_t>(d[at + 2]) << 16 | static_cast<std::uint32_t>(d[at + 3]) << 24;
}

void put_le32(std::vector<std::uint8_t>& d, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    d[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
}

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string hex8(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::string span_text(std::uint64_t begin, std::uint64_t end) {
  return hex(begin) + ".." + hex(end);
}

std::string_view as_chars(std::span<const std::uint8_t> d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

// Offsets of `needle` in `d`, at most `limit` of them.
std::vector<std::size_t> find_all(std::span<const std::uint8_t> d, std::string_view needle,
                                  std::size_t limit) {
  std::vector<std::size_t> at;
  const std::string_view hay = as_chars(d);
  for (std::size_t p = hay.find(needle); p != std::string_view::npos && at.size() < limit;
       p = hay.find(needle, p + 1))
    at.push_back(p);
  return at;
}

bool has_signature(std::span<const std::uint8_t> d, std::size_t block) {
  return block + kSignatureAt + kSignature.size() <= d.size() &&
         std::equal(kSignature.begin(), kSignature.end(), d.begin() + block + kSignatureAt);
}

bool footer2_tags(std::span<const std::uint8_t> d, std::size_t at) {
  return at + kFooter2Size <= d.size() && d[at + 10] == kFooterTag1 && d[at + 15] == kFooterTag2;
}

bool footer3_tags(std::span<const std::uint8_t> d, std::size_t at) {
  return at + kFooter3Size <= d.size() && d[at + 18] == kFooterTag1 && d[at + 27] == kFooterTag2;
}

std::string printable(std::span<const std::uint8_t> bytes) {
  std::string out;
  for (std::uint8_t c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

bool is_bcd(std::uint8_t v) {
  return (v & 0x0f) <= 9 && (v >> 4) <= 9;
}

bool overlaps(std::uint64_t a0, std::uint64_t a1, std::uint64_t b0, std::uint64_t b1) {
  return a0 < b1 && b0 < a1;
}

std::string label(const AtenImageHeader& h) {
  return "image " + std::to_string(h.number) + " \"" + h.name + "\" (header at " + hex(h.offset) +
         ")";
}

std::uint64_t image_end(const AtenImageHeader& h) {
  return h.file_offset + h.length;
}

std::size_t round_up(std::size_t v, std::size_t to) {
  return (v + to - 1) / to * to;
}

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = make_crc_table();

std::uint32_t crc_of_crcs(const std::vector<std::uint32_t>& crcs) {
  std::vector<std::uint8_t> raw(crcs.size() * 4);
  for (std::size_t i = 0; i < crcs.size(); ++i)
    put_le32(raw, i * 4, crcs[i]);
  return aten_crc32(raw);
}

// One image header from the 64-byte block at `at` (the block is entirely in `d`).
AtenImageHeader read_header(std::span<const std::uint8_t> d, std::size_t at) {
  AtenImageHeader h;
  h.offset = at;
  h.number = le32(d, at + kNumberAt);
  h.base = le32(d, at + kBaseAt);
  h.length = le32(d, at + kLengthAt);
  h.load_addr = le32(d, at + kLoadAt);
  h.exec_addr = le32(d, at + kExecAt);
  auto name = d.subspan(at + kNameAt, kNameSize);
  auto nul = std::find(name.begin(), name.end(), std::uint8_t{0});
  h.name = printable(name.first(static_cast<std::size_t>(nul - name.begin())));
  h.image_checksum = le32(d, at + kImageSumAt);
  h.type = le32(d, at + kTypeAt);
  h.header_checksum = le32(d, at + kHeaderSumAt);
  h.computed_header_checksum = aten_checksum(d.subspan(at + kFieldsAt, kHeaderSumAt - kFieldsAt));
  h.header_checksum_ok = h.computed_header_checksum == h.header_checksum;
  // read_header.py: base addresses count from the flash window; some tools write plain offsets.
  h.file_offset = h.base >= kAtenFlashWindow ? h.base - kAtenFlashWindow : h.base;
  h.in_file = image_end(h) <= d.size();
  if (h.in_file) {
    auto bytes = d.subspan(static_cast<std::size_t>(h.file_offset), h.length);
    h.computed_image_checksum = aten_checksum(bytes);
    h.image_checksum_ok = h.computed_image_checksum == h.image_checksum;
    h.crc32 = aten_crc32(bytes);
  }
  return h;
}

void check_images(AtenImage& img) {
  auto& p = img.problems;
  for (std::size_t i = 0; i < img.images.size(); ++i) {
    const auto& h = img.images[i];
    const std::string who = label(h);
    if (!h.header_checksum_ok)
      p.push_back(who + ": header checksum at " + hex(h.offset + kHeaderSumAt) + " is " +
                  hex8(h.header_checksum) + ", but the header bytes " +
                  span_text(h.offset + kFieldsAt, h.offset + kHeaderSumAt) + " sum to " +
                  hex8(h.computed_header_checksum));
    if (h.number == 0) p.push_back(who + ": image number 0 is reserved and never in a real image");
    for (std::size_t j = 0; j < i; ++j)
      if (img.images[j].number == h.number)
        p.push_back(who + ": image number " + std::to_string(h.number) +
                    " is also used by the header at " + hex(img.images[j].offset));
    if (h.length == 0) p.push_back(who + ": length 0");
    if (!h.in_file) {
      p.push_back(who + ": its bytes " + span_text(h.file_offset, image_end(h)) + " (base " +
                  hex(h.base) + ", length " + hex(h.length) + ") run past the end of the file at " +
                  hex(img.size) + ": truncated?");
    } else if (!h.image_checksum_ok) {
      p.push_back(who + ": image checksum at " + hex(h.offset + kImageSumAt) + " is " +
                  hex8(h.image_checksum) + ", but the bytes " +
                  span_text(h.file_offset, image_end(h)) + " sum to " +
                  hex8(h.computed_image_checksum));
    }
  }
  // Nothing may share bytes: images with each other, with a header's fields, with the boot loader.
  for (std::size_t i = 0; i < img.images.size(); ++i) {
    const auto& a = img.images[i];
    if (a.length == 0) continue;
    for (std::size_t j = i + 1; j < img.images.size(); ++j) {
      const auto& b = img.images[j];
      if (b.length != 0 && overlaps(a.file_offset, image_end(a), b.file_offset, image_end(b)))
        p.push_back(label(a) + " and " + label(b) + " overlap: bytes " +
                    span_text(a.file_offset, image_end(a)) + " and " +
                    span_text(b.file_offset, image_end(b)));
    }
    for (const auto& b : img.images)
      if (overlaps(a.file_offset, image_end(a), b.offset + kFieldsAt, b.offset + kAtenHeaderBlock))
        p.push_back(label(a) + ": its bytes " + span_text(a.file_offset, image_end(a)) +
                    " cover the header at " + hex(b.offset));
    if (img.bootloader.found && overlaps(a.file_offset, image_end(a), img.bootloader.version_offset,
                                         img.bootloader.version_offset + kBootloaderMarker.size()))
      p.push_back(label(a) + ": its bytes " + span_text(a.file_offset, image_end(a)) +
                  " cover the boot loader's text at " + hex(img.bootloader.version_offset));
  }
}

void read_footer(std::span<const std::uint8_t> d, AtenImage& img) {
  auto& p = img.problems;
  // ATENs_FW inside an image's bytes is payload, not the footer.
  std::vector<std::size_t> outside, inside;
  for (std::size_t at : find_all(d, kFooterMagic, kMaxFooterCandidates)) {
    bool in_image = false;
    for (const auto& h : img.images)
      if (h.in_file && at >= h.file_offset && at < image_end(h)) in_image = true;
    (in_image ? inside : outside).push_back(at);
  }
  if (outside.empty()) {
    if (inside.empty())
      p.push_back("no ATENs_FW footer: the firmware version is unknown (truncated file?)");
    else
      p.push_back("no ATENs_FW footer outside the images' bytes (the marker at " +
                  hex(inside.front()) + " is inside an image): the firmware version is unknown");
    return;
  }
  if (outside.size() > 1) {
    std::string where;
    for (std::size_t at : outside)
      where += (where.empty() ? "" : ", ") + hex(at);
    p.push_back(std::to_string(outside.size()) + " ATENs_FW footers (at " + where +
                "): a real image has one");
  }
  AtenFooter& f = img.footer;
  f.found = true;
  f.offset = outside.front();
  const std::size_t at = f.offset;
  const std::size_t after = at + kFooterMagic.size();
  if (after + 2 > d.size()) {
    p.push_back("ATENs_FW footer at " + hex(at) + " is cut off by the end of the file");
    return;
  }
  f.major = d[after];
  f.minor = d[after + 1];
  std::size_t sum_at = 0;
  if (footer2_tags(d, at)) {
    f.footer_version = 2;
    sum_at = at + 11;
  } else if (at + kFooter1Size <= d.size()) {
    f.footer_version = 1;
    sum_at = at + 10;
  } else {
    p.push_back("ATENs_FW footer at " + hex(at) + " is cut off by the end of the file");
    return;
  }
  f.checksum = le32(d, sum_at);
  if (!is_bcd(f.minor))
    p.push_back("footer at " + hex(at) + ": minor version byte " + hex(f.minor) +
                " is not BCD (0x13 means .13)");

  const std::uint64_t f_end = at + (f.footer_version == 2 ? kFooter2Size : kFooter1Size);
  for (const auto& h : img.images)
    if (h.length != 0 && overlaps(h.file_offset, image_end(h), at, f_end))
      p.push_back(label(h) + ": its bytes " + span_text(h.file_offset, image_end(h)) +
                  " overlap the footer at " + hex(at));

  if (img.images.empty()) return;  // reported once, as "no image headers"
  std::vector<std::uint32_t> crcs;
  for (const auto& h : img.images) {
    if (!h.in_file) {
      p.push_back("footer checksum at " + hex(sum_at) + " cannot be checked: " + label(h) +
                  " is not all in the file");
      return;
    }
    crcs.push_back(h.crc32);
  }
  f.computed_checksum = crc_of_crcs(crcs);
  f.checksum_ok = f.computed_checksum == f.checksum;
  if (!f.checksum_ok)
    p.push_back("footer checksum at " + hex(sum_at) + " is " + hex8(f.checksum) +
                ", but the CRC-32 of the images' CRC-32s is " + hex8(f.computed_checksum));
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

std::uint32_t aten_checksum(std::span<const std::uint8_t> data) {
  std::uint32_t sum = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < data.size(); ++i) {
    const std::uint32_t v = static_cast<std::uint32_t>(data[i]) << (8 * (i % 4));
    // Subtracting past zero wraps and borrows one more (FirmwareImage.computeChecksum).
    sum = v > sum ? sum - v - 1 : sum - v;
  }
  return sum;
}

std::uint32_t aten_crc32(std::span<const std::uint8_t> data) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::uint8_t b : data)
    c = kCrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string AtenImageHeader::type_text() const {
  static constexpr std::pair<std::uint32_t, const char*> kNames[] = {
      {kAtenTypeActive, "active"},
      {kAtenTypeCopyToRam, "copy2ram"},
      {kAtenTypeExec, "exec"},
      {kAtenTypeFile, "file"},
      {kAtenTypeCompressed, "compressed"}};
  std::string out;
  std::uint32_t rest = type;
  for (const auto& [bit, name] : kNames)
    if (type & bit) {
      out += (out.empty() ? "" : ", ") + std::string(name);
      rest &= ~bit;
    }
  if (rest != 0) out += (out.empty() ? "" : ", ") + hex(rest);
  return out.empty() ? "none" : out;
}

std::string AtenFooter::version() const {
  if (!found || footer_version == 0) return "";
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%02x", static_cast<unsigned>(major),
                static_cast<unsigned>(minor));
  return buf;
}

BmcImageDetection detect_bmc_image(std::span<const std::uint8_t> data) {
  if (data.size() >= kAspeedIndexAt + kAspeedIndexMarker.size() &&
      as_chars(data.subspan(kAspeedIndexAt, kAspeedIndexMarker.size())) == kAspeedIndexMarker)
    return {BmcImageKind::Aspeed, "the ASpeed image index \"[img]\" at " + hex(kAspeedIndexAt)};
  const auto footers = find_all(data, kFooterMagic, kMaxFooterCandidates);
  for (std::size_t at : footers)
    if (!footer2_tags(data, at) && footer3_tags(data, at))
      return {BmcImageKind::Aspeed, "an ATENs_FW footer of the ASpeed format (tags 0x71 at " +
                                        hex(at + 18) + ", 0x17 at " + hex(at + 27) + ")"};
  const auto head = data.first(std::min(data.size(), kBootloaderSearch));
  if (auto at = as_chars(head).find(kBootloaderMarker); at != std::string_view::npos)
    return {BmcImageKind::AtenWpcm450, "the WPCM450 boot loader's text at " + hex(at)};
  for (std::size_t b = 0; b < data.size(); b += kAtenHeaderBlock)
    if (has_signature(data, b))
      return {BmcImageKind::AtenWpcm450, "an image header signature at " + hex(b + kSignatureAt)};
  if (!footers.empty())
    return {BmcImageKind::AtenWpcm450, "an ATENs_FW footer at " + hex(footers.front())};
  return {};
}

Result<AtenImage> parse_aten_image(std::span<const std::uint8_t> data) {
  const auto kind = detect_bmc_image(data);
  if (kind.kind == BmcImageKind::Aspeed)
    return fail(Errc::NotSupported,
                "an ASpeed AST2400/AST2500 BMC image (X10 and later boards), recognised by " +
                    kind.evidence + ": labctl verifies only ATEN images for the WPCM450 (X8, X9)");
  if (kind.kind == BmcImageKind::Unknown)
    return fail(Errc::InvalidInput,
                std::to_string(data.size()) +
                    " bytes: not an ATEN WPCM450 BMC image (no \"WPCM450 Boot Loader\" text in the "
                    "first 64 KiB, no image header signature 9F FF FF A0 at offset 52 of a 64-byte "
                    "block, no ATENs_FW footer)");

  AtenImage img;
  img.size = data.size();
  auto& p = img.problems;

  const auto head = data.first(std::min(data.size(), kBootloaderSearch));
  if (auto at = as_chars(head).find(kBootloaderMarker); at != std::string_view::npos) {
    img.bootloader.found = true;
    img.bootloader.version_offset = at;
    std::size_t end = at;
    while (end < data.size() && end - at < kBootloaderTextMax && data[end] >= 0x20 &&
           data[end] < 0x7f)
      ++end;
    img.bootloader.version = std::string(trim(as_chars(data.subspan(at, end - at))));
  } else {
    p.push_back("no \"WPCM450 Boot Loader\" text in the first 64 KiB: not the WPCM450 boot loader");
  }

  for (std::size_t b = 0; b + kSignatureAt + kSignature.size() <= data.size();
       b += kAtenHeaderBlock) {
    if (!has_signature(data, b)) continue;
    if (b + kAtenHeaderBlock > data.size()) {
      p.push_back("image header at " + hex(b) + " is cut off by the end of the file at " +
                  hex(data.size()) + ": truncated?");
      break;
    }
    if (img.images.size() == kAtenMaxImages) {
      p.push_back("more than " + std::to_string(kAtenMaxImages) + " image headers (another at " +
                  hex(b) + "): not a real image; the rest are not read");
      break;
    }
    img.images.push_back(read_header(data, b));
  }
  if (img.images.empty())
    p.push_back("no image headers (signature 9F FF FF A0 at offset 52 of a 64-byte block)");

  std::size_t first = data.size();
  for (const auto& h : img.images)
    first = std::min<std::uint64_t>(first, std::min<std::uint64_t>(h.offset, h.file_offset));
  if (img.bootloader.found) img.bootloader.size = first;

  check_images(img);
  read_footer(data, img);

  if (data.size() % kFlashBlock != 0)
    p.push_back("file size " + std::to_string(data.size()) + " (" + hex(data.size()) +
                ") is not a whole number of 64 KiB flash blocks: truncated or padded?");
  return img;
}

Status check_image_for(const AtenImage& img, std::string_view board_model,
                       std::string_view want_version) {
  const std::string_view board = trim(board_model);
  const std::string_view want = trim(want_version);
  if (board.empty()) return fail(Errc::InvalidInput, "no board model to check the image against");
  if (want.empty()) return fail(Errc::InvalidInput, "no firmware version to check the image for");
  if (!img.ok())
    return fail(Errc::PreconditionFailed, "the image has " + std::to_string(img.problems.size()) +
                                              " problem" + (img.problems.size() == 1 ? "" : "s") +
                                              ", the first: " + img.problems.front());
  const std::string have = img.footer.version();
  if (have != want)
    return fail(Errc::PreconditionFailed, "the image is BMC firmware " +
                                              (have.empty() ? std::string("(unknown)") : have) +
                                              ", not the wanted " + std::string(want));
  const std::string model = upper(board);
  if (!model.starts_with("X8") && !model.starts_with("X9"))
    return fail(Errc::PreconditionFailed,
                "board " + std::string(board) +
                    ": ATEN WPCM450 images are for X8 and X9 boards (later boards have ASpeed "
                    "BMCs); the image itself names no board");
  return {};
}

nlohmann::json to_json(const AtenImage& img) {
  nlohmann::json images = nlohmann::json::array();
  for (const auto& h : img.images)
    images.push_back({{"header_offset", h.offset},
                      {"number", h.number},
                      {"name", h.name},
                      {"base", h.base},
                      {"file_offset", h.file_offset},
                      {"length", h.length},
                      {"load_addr", h.load_addr},
                      {"exec_addr", h.exec_addr},
                      {"type", h.type},
                      {"type_text", h.type_text()},
                      {"in_file", h.in_file},
                      {"image_checksum", h.image_checksum},
                      {"computed_image_checksum", h.computed_image_checksum},
                      {"image_checksum_ok", h.image_checksum_ok},
                      {"header_checksum", h.header_checksum},
                      {"computed_header_checksum", h.computed_header_checksum},
                      {"header_checksum_ok", h.header_checksum_ok},
                      {"crc32", h.crc32}});
  nlohmann::json footer = {{"found", img.footer.found}};
  if (img.footer.found) {
    footer["offset"] = img.footer.offset;
    footer["footer_version"] = img.footer.footer_version;
    footer["major"] = img.footer.major;
    footer["minor"] = img.footer.minor;
    footer["version"] = img.footer.version();
    footer["checksum"] = img.footer.checksum;
    footer["computed_checksum"] = img.footer.computed_checksum;
    footer["checksum_ok"] = img.footer.checksum_ok;
  }
  nlohmann::json boot = {{"found", img.bootloader.found}};
  if (img.bootloader.found) {
    boot["version"] = img.bootloader.version;
    boot["version_offset"] = img.bootloader.version_offset;
    boot["size"] = img.bootloader.size;
  }
  return {{"format", "aten-wpcm450"}, {"size", img.size},
          {"ok", img.ok()},           {"version", img.footer.version()},
          {"bootloader", boot},       {"images", images},
          {"footer", footer},         {"problems", img.problems}};
}

std::string describe(const AtenImage& img) {
  std::ostringstream out;
  out << "ATEN WPCM450 BMC firmware image, " << img.size << " bytes\n";
  if (img.bootloader.found)
    out << "  boot loader: " << img.bootloader.version << " (text at "
        << hex(img.bootloader.version_offset) << ", " << hex(img.bootloader.size)
        << " bytes before the first image)\n";
  else
    out << "  boot loader: not found\n";
  for (const auto& h : img.images) {
    out << "  image " << h.number << " " << h.name << ": base " << hex(h.base) << " (file "
        << hex(h.file_offset) << "), length " << hex(h.length) << " (" << h.length << "), load "
        << hex(h.load_addr) << ", exec " << hex(h.exec_addr) << ", type " << h.type_text() << " ("
        << hex(h.type) << ")\n";
    out << "    image checksum " << hex8(h.image_checksum) << " "
        << (!h.in_file ? "NOT CHECKED (bytes past the end of the file)"
            : h.image_checksum_ok
                ? "ok"
                : "BAD (the bytes sum to " + hex8(h.computed_image_checksum) + ")")
        << ", header checksum " << hex8(h.header_checksum) << " "
        << (h.header_checksum_ok ? "ok" : "BAD (computed " + hex8(h.computed_header_checksum) + ")")
        << ", header at " << hex(h.offset) << "\n";
  }
  if (img.footer.found && img.footer.footer_version != 0)
    out << "  footer: firmware " << img.footer.version() << " (footer format "
        << img.footer.footer_version << " at " << hex(img.footer.offset) << "), checksum "
        << hex8(img.footer.checksum) << " "
        << (img.footer.checksum_ok ? "ok"
                                   : "BAD (computed " + hex8(img.footer.computed_checksum) + ")")
        << "\n";
  else
    out << "  footer: not found\n";
  if (img.ok()) {
    out << "verified: every checksum matches, firmware " << img.footer.version() << "\n";
  } else {
    out << img.problems.size() << " problem" << (img.problems.size() == 1 ? "" : "s") << ":\n";
    for (const auto& p : img.problems)
      out << "  - " << p << "\n";
  }
  return out.str();
}

std::vector<std::uint8_t> build_aten_image(const AtenBuildSpec& spec) {
  const std::size_t block = round_up(std::max<std::size_t>(spec.block_size, 1), kAtenHeaderBlock);
  std::vector<std::uint8_t> out;
  auto ensure = [&](std::size_t n) {
    if (out.size() < n) out.resize(n, spec.fill);
  };

  std::size_t cursor = 0;
  if (!spec.bootloader.empty()) {
    constexpr std::size_t kAt = 0x40;
    ensure(kAt + spec.bootloader.size() + 1);
    std::memcpy(out.data() + kAt, spec.bootloader.data(), spec.bootloader.size());
    out[kAt + spec.bootloader.size()] = 0;
    cursor = kAt + spec.bootloader.size() + 1;
  }
  cursor = spec.first_image_offset != 0 ? spec.first_image_offset
                                        : round_up(std::max<std::size_t>(cursor, 1), block);

  struct Placed {
    std::size_t header;
    std::uint32_t crc;
  };
  std::vector<Placed> placed;
  std::size_t last_header = 0;
  const bool footer = spec.footer_version == 1 || spec.footer_version == 2;
  for (std::size_t i = 0; i < spec.images.size(); ++i) {
    const AtenBuildPart& part = spec.images[i];
    const std::size_t at = part.file_offset.value_or(cursor);
    ensure(at + part.data.size());
    std::copy(part.data.begin(), part.data.end(), out.begin() + static_cast<std::ptrdiff_t>(at));
    // rebuild_image.py leaves room for the footer, 13 bytes before the last header's block.
    const bool last = i + 1 == spec.images.size();
    const std::size_t room = kAtenHeaderBlock + (last && footer ? 13 : 0);
    const std::size_t h = round_up(at + part.data.size() + room, block) - kAtenHeaderBlock;
    ensure(h + kAtenHeaderBlock);
    std::fill_n(out.begin() + static_cast<std::ptrdiff_t>(h), kFieldsAt, std::uint8_t{0xFF});
    put_le32(out, h + kNumberAt, part.number);
    put_le32(out, h + kBaseAt, static_cast<std::uint32_t>(kAtenFlashWindow + at));
    put_le32(out, h + kLengthAt,
             part.length.value_or(static_cast<std::uint32_t>(part.data.size())));
    put_le32(out, h + kLoadAt, part.load_addr);
    put_le32(out, h + kExecAt, part.exec_addr);
    std::array<std::uint8_t, kNameSize> name{};
    const std::size_t n = std::min(part.name.size(), kNameSize);
    std::memcpy(name.data(), part.name.data(), n);
    for (std::size_t k = 0; k < part.name_tail.size() && n + 1 + k < kNameSize; ++k)
      name[n + 1 + k] = part.name_tail[k];
    std::copy(name.begin(), name.end(), out.begin() + static_cast<std::ptrdiff_t>(h + kNameAt));
    put_le32(out, h + kImageSumAt, part.image_checksum.value_or(aten_checksum(part.data)));
    std::copy(kSignature.begin(), kSignature.end(),
              out.begin() + static_cast<std::ptrdiff_t>(h + kSignatureAt));
    put_le32(out, h + kTypeAt, part.type);
    const auto fields =
        std::span<const std::uint8_t>(out).subspan(h + kFieldsAt, kHeaderSumAt - kFieldsAt);
    put_le32(out, h + kHeaderSumAt, part.header_checksum.value_or(aten_checksum(fields)));
    placed.push_back({h, aten_crc32(part.data)});
    last_header = h;
    cursor = h + kAtenHeaderBlock;
  }

  if (footer) {
    std::sort(placed.begin(), placed.end(),
              [](const Placed& a, const Placed& b) { return a.header < b.header; });
    std::vector<std::uint32_t> crcs;
    for (const auto& pl : placed)
      crcs.push_back(pl.crc);
    const std::uint32_t sum = spec.footer_checksum.value_or(crc_of_crcs(crcs));
    const std::size_t at = placed.empty() ? cursor : last_header - 13;
    const std::size_t size = spec.footer_version == 2 ? kFooter2Size : kFooter1Size;
    ensure(at + size);
    std::memcpy(out.data() + at, kFooterMagic.data(), kFooterMagic.size());
    out[at + 8] = spec.major;
    out[at + 9] = spec.minor;
    if (spec.footer_version == 2) {
      out[at + 10] = kFooterTag1;
      put_le32(out, at + 11, sum);
      out[at + 15] = kFooterTag2;
    } else {
      put_le32(out, at + 10, sum);
    }
  }

  if (spec.total_size != 0)
    out.resize(spec.total_size, spec.fill);
  else
    ensure(round_up(out.size(), kFlashBlock));
  return out;
}

}  // namespace labctl::supermicro_bmc
