#include "plugins/optical_drive/scsi.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <utility>

namespace labctl::optical_drive::scsi {

namespace {

std::uint16_t be16(ByteView d, std::size_t at) {
  return static_cast<std::uint16_t>(d[at] << 8 | d[at + 1]);
}

std::uint32_t be24(ByteView d, std::size_t at) {
  return static_cast<std::uint32_t>(d[at]) << 16 | static_cast<std::uint32_t>(d[at + 1]) << 8 |
         d[at + 2];
}

std::uint32_t be32(ByteView d, std::size_t at) {
  return static_cast<std::uint32_t>(d[at]) << 24 | be24(d, at + 1);
}

void put16(Bytes& b, std::size_t at, std::uint32_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}

void put24(Bytes& b, std::size_t at, std::uint32_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 16);
  put16(b, at + 1, v);
}

std::string hex2(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02X", v & 0xFF);
  return buf;
}

std::string hex4(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04X", v & 0xFFFF);
  return buf;
}

// An identification field: printable ASCII, trailing spaces (and NUL padding some devices use
// against the standard) removed. A control byte before the padding is an error.
Result<std::string> ascii_field(ByteView d, std::size_t from, std::size_t to, const char* what) {
  std::size_t end = to;
  while (end > from && (d[end - 1] == ' ' || d[end - 1] == 0))
    --end;
  std::string out;
  for (std::size_t i = from; i < end; ++i) {
    if (d[i] < 0x20 || d[i] > 0x7E)
      return fail(Errc::InvalidInput, std::string(what) + ": byte " + std::to_string(i) + " is 0x" +
                                          hex2(d[i]) + ", not printable ASCII");
    out += static_cast<char>(d[i]);
  }
  return out;
}

void put_field(Bytes& b, std::size_t at, std::size_t width, std::string_view s) {
  for (std::size_t i = 0; i < width; ++i)
    b[at + i] = i < s.size() ? static_cast<std::uint8_t>(s[i]) : ' ';
}

}  // namespace

// ---- CDBs ----

Bytes test_unit_ready_cdb() {
  return Bytes(6, 0);
}

Bytes inquiry_cdb(std::uint16_t allocation, bool evpd, std::uint8_t page) {
  Bytes c(6, 0);
  c[0] = kInquiry;
  c[1] = evpd ? 1 : 0;
  c[2] = evpd ? page : 0;
  put16(c, 3, allocation);
  return c;
}

Bytes request_sense_cdb(std::uint8_t allocation, bool descriptor) {
  Bytes c(6, 0);
  c[0] = kRequestSense;
  c[1] = descriptor ? 1 : 0;
  c[4] = allocation;
  return c;
}

Bytes get_configuration_cdb(std::uint8_t rt, std::uint16_t start, std::uint16_t allocation) {
  Bytes c(10, 0);
  c[0] = kGetConfiguration;
  c[1] = rt & 0x03;
  put16(c, 2, start);
  put16(c, 7, allocation);
  return c;
}

Result<Bytes> write_buffer_cdb(std::uint8_t mode, std::uint8_t buffer_id, std::uint32_t offset,
                               std::uint32_t length) {
  if (mode > 0x1F)
    return fail(Errc::InvalidInput, "WRITE BUFFER mode 0x" + hex2(mode) + " does not fit 5 bits");
  if (offset > kMax24)
    return fail(Errc::InvalidInput, "WRITE BUFFER offset " + std::to_string(offset) +
                                        " does not fit 24 bits (at most 16 MiB - 1)");
  if (length > kMax24)
    return fail(Errc::InvalidInput, "WRITE BUFFER length " + std::to_string(length) +
                                        " does not fit 24 bits (at most 16 MiB - 1)");
  Bytes c(10, 0);
  c[0] = kWriteBuffer;
  c[1] = mode;
  c[2] = buffer_id;
  put24(c, 3, offset);
  put24(c, 6, length);
  return c;
}

std::size_t cdb_length(std::uint8_t opcode) {
  switch (opcode >> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return 0;  // group 3 (reserved / variable length), 6 and 7 (vendor specific)
  }
}

std::string opcode_name(std::uint8_t opcode) {
  switch (opcode) {
    case kTestUnitReady:
      return "TEST UNIT READY";
    case kRequestSense:
      return "REQUEST SENSE";
    case kInquiry:
      return "INQUIRY";
    case kWriteBuffer:
      return "WRITE BUFFER";
    case kGetConfiguration:
      return "GET CONFIGURATION";
    default:
      return "operation 0x" + hex2(opcode);
  }
}

Result<WriteBufferCdb> parse_write_buffer_cdb(ByteView cdb) {
  if (cdb.size() < 10)
    return fail(Errc::InvalidInput,
                "WRITE BUFFER CDB: " + std::to_string(cdb.size()) + " bytes, needs 10");
  if (cdb[0] != kWriteBuffer)
    return fail(Errc::InvalidInput, "not a WRITE BUFFER CDB (operation 0x" + hex2(cdb[0]) + ")");
  WriteBufferCdb w;
  w.mode = cdb[1] & 0x1F;
  w.mode_specific = static_cast<std::uint8_t>(cdb[1] >> 5);
  w.buffer_id = cdb[2];
  w.offset = be24(cdb, 3);
  w.length = be24(cdb, 6);
  return w;
}

// ---- INQUIRY ----

Result<InquiryData> parse_inquiry(ByteView d) {
  if (d.size() < 36)
    return fail(Errc::InvalidInput, "INQUIRY data: " + std::to_string(d.size()) +
                                        " bytes, the identification fields need 36");
  InquiryData q;
  q.qualifier = static_cast<std::uint8_t>(d[0] >> 5);
  q.device_type = d[0] & 0x1F;
  q.removable = (d[1] & 0x80) != 0;
  q.version = d[2];
  q.response_format = d[3] & 0x0F;
  q.additional_length = d[4];
  auto vendor = ascii_field(d, 8, 16, "INQUIRY vendor");
  if (!vendor) return fail(vendor.error());
  auto product = ascii_field(d, 16, 32, "INQUIRY product");
  if (!product) return fail(product.error());
  auto revision = ascii_field(d, 32, 36, "INQUIRY revision");
  if (!revision) return fail(revision.error());
  q.vendor = std::move(*vendor);
  q.product = std::move(*product);
  q.revision = std::move(*revision);
  return q;
}

Bytes build_inquiry(const InquiryData& d, std::size_t extra) {
  Bytes b(36 + extra, 0);
  b[0] = static_cast<std::uint8_t>((d.qualifier & 0x07) << 5 | (d.device_type & 0x1F));
  b[1] = d.removable ? 0x80 : 0;
  b[2] = d.version;
  b[3] = d.response_format & 0x0F;
  b[4] = static_cast<std::uint8_t>(std::min<std::size_t>(b.size() - 5, 255));
  put_field(b, 8, 8, d.vendor);
  put_field(b, 16, 16, d.product);
  put_field(b, 32, 4, d.revision);
  return b;
}

std::string device_type_name(std::uint8_t type) {
  switch (type) {
    case 0x00:
      return "disk";
    case 0x01:
      return "tape";
    case 0x03:
      return "processor";
    case 0x05:
      return "CD/DVD/BD drive";
    case 0x07:
      return "optical memory";
    case 0x08:
      return "medium changer";
    case 0x0C:
      return "storage array";
    case 0x0D:
      return "enclosure";
    case 0x0E:
      return "simplified direct-access";
    case 0x1F:
      return "unknown or no device";
    default:
      return "device type 0x" + hex2(type);
  }
}

Result<std::string> parse_unit_serial(ByteView d) {
  if (d.size() < 4)
    return fail(Errc::InvalidInput, "unit serial number page: " + std::to_string(d.size()) +
                                        " bytes, the header needs 4");
  if (d[1] != 0x80)
    return fail(Errc::InvalidInput,
                "unit serial number page: page code 0x" + hex2(d[1]) + ", expected 0x80");
  const std::size_t len = be16(d, 2);
  const std::size_t end = std::min(d.size(), 4 + len);
  // Serial numbers are left-padded by some devices and right-padded by others.
  std::size_t from = 4;
  while (from < end && (d[from] == ' ' || d[from] == 0))
    ++from;
  return ascii_field(d, from, end, "unit serial number");
}

Bytes build_unit_serial(std::uint8_t device_type, std::string_view serial) {
  const std::size_t n = std::min<std::size_t>(serial.size(), 250);
  Bytes b(4 + n, 0);
  b[0] = device_type & 0x1F;
  b[1] = 0x80;
  put16(b, 2, static_cast<std::uint32_t>(n));
  put_field(b, 4, n, serial);
  return b;
}

// ---- GET CONFIGURATION ----

std::vector<std::uint16_t> Configuration::profiles() const {
  std::vector<std::uint16_t> out;
  for (const auto& f : features) {
    if (f.code != 0x0000) continue;
    for (std::size_t i = 0; i + 4 <= f.data.size(); i += 4)
      out.push_back(static_cast<std::uint16_t>(f.data[i] << 8 | f.data[i + 1]));
  }
  return out;
}

Result<Configuration> parse_configuration(ByteView d) {
  if (d.size() < 8)
    return fail(Errc::InvalidInput, "GET CONFIGURATION data: " + std::to_string(d.size()) +
                                        " bytes, the feature header needs 8");
  Configuration c;
  c.data_length = be32(d, 0);
  c.current_profile = be16(d, 6);
  // The header's length counts the bytes after its own four; trust it only inside the buffer.
  const std::uint64_t claimed = std::uint64_t{c.data_length} + 4;
  if (claimed < 8)
    return fail(Errc::InvalidInput, "GET CONFIGURATION data: data length " +
                                        std::to_string(c.data_length) +
                                        " is shorter than the feature header");
  std::size_t end = d.size();
  if (claimed < end)
    end = static_cast<std::size_t>(claimed);
  else if (claimed > end)
    c.truncated = true;
  std::size_t at = 8;
  while (at < end) {
    if (at + 4 > end) {
      c.truncated = true;
      break;
    }
    Feature f;
    f.code = be16(d, at);
    f.version = static_cast<std::uint8_t>((d[at + 2] >> 2) & 0x0F);
    f.persistent = (d[at + 2] & 0x02) != 0;
    f.current = (d[at + 2] & 0x01) != 0;
    const std::size_t len = d[at + 3];
    if (at + 4 + len > end) {
      c.truncated = true;
      break;
    }
    f.data.assign(d.begin() + static_cast<std::ptrdiff_t>(at + 4),
                  d.begin() + static_cast<std::ptrdiff_t>(at + 4 + len));
    c.features.push_back(std::move(f));
    at += 4 + len;
  }
  return c;
}

Bytes build_configuration(std::uint16_t current, const std::vector<std::uint16_t>& profiles,
                          std::size_t allocation) {
  const std::size_t list = std::min<std::size_t>(profiles.size(), 63) * 4;
  Bytes b(8 + 4 + list, 0);
  put16(b, 0, 0);
  put16(b, 2, static_cast<std::uint32_t>(b.size() - 4));
  put16(b, 6, current);
  // Feature 0x0000 Profile List: version 0, persistent, current.
  b[8] = 0;
  b[9] = 0;
  b[10] = 0x03;
  b[11] = static_cast<std::uint8_t>(list);
  for (std::size_t i = 0; i < list / 4; ++i) {
    put16(b, 12 + 4 * i, profiles[i]);
    b[12 + 4 * i + 2] = profiles[i] == current ? 0x01 : 0x00;
  }
  if (b.size() > allocation) b.resize(allocation);
  return b;
}

std::string profile_name(std::uint16_t p) {
  static const std::map<std::uint16_t, const char*> names = {
      {0x0000, "none"},
      {0x0001, "non-removable disk"},
      {0x0002, "removable disk"},
      {0x0008, "CD-ROM"},
      {0x0009, "CD-R"},
      {0x000A, "CD-RW"},
      {0x0010, "DVD-ROM"},
      {0x0011, "DVD-R"},
      {0x0012, "DVD-RAM"},
      {0x0013, "DVD-RW (restricted overwrite)"},
      {0x0014, "DVD-RW"},
      {0x0015, "DVD-R DL"},
      {0x0016, "DVD-R DL (layer jump)"},
      {0x0017, "DVD-RW DL"},
      {0x001A, "DVD+RW"},
      {0x001B, "DVD+R"},
      {0x002A, "DVD+RW DL"},
      {0x002B, "DVD+R DL"},
      {0x0040, "BD-ROM"},
      {0x0041, "BD-R (SRM)"},
      {0x0042, "BD-R (RRM)"},
      {0x0043, "BD-RE"},
      {0xFFFF, "non-conforming"}};
  auto it = names.find(p);
  return it != names.end() ? it->second : "profile 0x" + hex4(p);
}

std::string_view profile_class(std::uint16_t p) {
  if (p == 0) return "none";
  if (p >= 0x0008 && p <= 0x000A) return "CD";
  if ((p >= 0x0010 && p <= 0x001B) || p == 0x002A || p == 0x002B) return "DVD";
  if (p >= 0x0040 && p <= 0x0043) return "BD";
  return "other";
}

// ---- Sense ----

Result<Sense> parse_sense(ByteView d) {
  if (d.empty()) return fail(Errc::InvalidInput, "sense data: empty");
  Sense s;
  s.response_code = d[0] & 0x7F;
  switch (s.response_code) {
    case 0x70:
    case 0x71: {
      if (d.size() < 14)
        return fail(Errc::InvalidInput, "fixed sense data: " + std::to_string(d.size()) +
                                            " bytes, ASC and ASCQ need 14");
      s.deferred = s.response_code == 0x71;
      s.key = d[2] & 0x0F;
      if (d[0] & 0x80) s.information = be32(d, 3);
      // The additional length bounds the fields past byte 7; the buffer bounds everything.
      const std::size_t end = std::min<std::size_t>(d.size(), 8 + std::size_t{d[7]});
      s.asc = end > 12 ? d[12] : 0;
      s.ascq = end > 13 ? d[13] : 0;
      if (end >= 18 && (d[15] & 0x80) && s.key == kNotReady) s.progress = be16(d, 16);
      return s;
    }
    case 0x72:
    case 0x73: {
      if (d.size() < 8)
        return fail(Errc::InvalidInput, "descriptor sense data: " + std::to_string(d.size()) +
                                            " bytes, the header needs 8");
      s.descriptor_format = true;
      s.deferred = s.response_code == 0x73;
      s.key = d[1] & 0x0F;
      s.asc = d[2];
      s.ascq = d[3];
      const std::size_t end = std::min<std::size_t>(d.size(), 8 + std::size_t{d[7]});
      std::size_t at = 8;
      while (at + 2 <= end) {
        const std::uint8_t type = d[at];
        const std::size_t len = d[at + 1];
        if (at + 2 + len > end) break;  // a descriptor cut short by the buffer: ignore it
        if (type == 0x00 && len >= 10 && (d[at + 2] & 0x80)) {
          std::uint64_t v = 0;
          for (std::size_t i = 0; i < 8; ++i)
            v = v << 8 | d[at + 4 + i];
          s.information = v;
        } else if (type == 0x02 && len >= 6 && (d[at + 4] & 0x80) && s.key == kNotReady) {
          s.progress = be16(d, at + 5);
        }
        at += 2 + len;
      }
      return s;
    }
    default:
      return fail(Errc::InvalidInput,
                  "sense data: response code 0x" + hex2(s.response_code) +
                      " is neither fixed (0x70/0x71) nor descriptor format (0x72/0x73)");
  }
}

Bytes build_fixed_sense(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq,
                        std::optional<std::uint16_t> progress) {
  Bytes b(18, 0);
  b[0] = 0x70;
  b[2] = key & 0x0F;
  b[7] = 10;
  b[12] = asc;
  b[13] = ascq;
  if (progress) {
    b[15] = 0x80;
    put16(b, 16, *progress);
  }
  return b;
}

Bytes build_descriptor_sense(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq,
                             std::optional<std::uint64_t> information) {
  Bytes b(8, 0);
  b[0] = 0x72;
  b[1] = key & 0x0F;
  b[2] = asc;
  b[3] = ascq;
  if (information) {
    Bytes desc(12, 0);
    desc[0] = 0x00;
    desc[1] = 10;
    desc[2] = 0x80;
    for (std::size_t i = 0; i < 8; ++i)
      desc[4 + i] = static_cast<std::uint8_t>(*information >> (56 - 8 * i));
    b.insert(b.end(), desc.begin(), desc.end());
  }
  b[7] = static_cast<std::uint8_t>(b.size() - 8);
  return b;
}

std::string sense_key_name(std::uint8_t key) {
  static const char* names[16] = {
      "NO SENSE",       "RECOVERED ERROR", "NOT READY",      "MEDIUM ERROR",
      "HARDWARE ERROR", "ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT",
      "BLANK CHECK",    "VENDOR SPECIFIC", "COPY ABORTED",   "ABORTED COMMAND",
      "sense key 0xC",  "VOLUME OVERFLOW", "MISCOMPARE",     "COMPLETED"};
  return names[key & 0x0F];
}

std::string asc_name(std::uint8_t asc, std::uint8_t ascq) {
  static const std::map<std::pair<int, int>, const char*> names = {
      {{0x00, 0x00}, "NO ADDITIONAL SENSE INFORMATION"},
      {{0x04, 0x00}, "LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE"},
      {{0x04, 0x01}, "LOGICAL UNIT IS IN PROCESS OF BECOMING READY"},
      {{0x04, 0x02}, "LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED"},
      {{0x04, 0x03}, "LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED"},
      {{0x04, 0x07}, "LOGICAL UNIT NOT READY, OPERATION IN PROGRESS"},
      {{0x04, 0x08}, "LOGICAL UNIT NOT READY, LONG WRITE IN PROGRESS"},
      {{0x0C, 0x00}, "WRITE ERROR"},
      {{0x20, 0x00}, "INVALID COMMAND OPERATION CODE"},
      {{0x24, 0x00}, "INVALID FIELD IN CDB"},
      {{0x25, 0x00}, "LOGICAL UNIT NOT SUPPORTED"},
      {{0x26, 0x00}, "INVALID FIELD IN PARAMETER LIST"},
      {{0x26, 0x01}, "PARAMETER NOT SUPPORTED"},
      {{0x26, 0x02}, "PARAMETER VALUE INVALID"},
      {{0x28, 0x00}, "NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED"},
      {{0x29, 0x00}, "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED"},
      {{0x29, 0x01}, "POWER ON OCCURRED"},
      {{0x29, 0x02}, "SCSI BUS RESET OCCURRED"},
      {{0x2C, 0x00}, "COMMAND SEQUENCE ERROR"},
      {{0x3A, 0x00}, "MEDIUM NOT PRESENT"},
      {{0x3A, 0x01}, "MEDIUM NOT PRESENT - TRAY CLOSED"},
      {{0x3A, 0x02}, "MEDIUM NOT PRESENT - TRAY OPEN"},
      {{0x3E, 0x01}, "LOGICAL UNIT FAILURE"},
      {{0x3F, 0x01}, "MICROCODE HAS BEEN CHANGED"},
      {{0x3F, 0x03}, "INQUIRY DATA HAS CHANGED"},
      {{0x44, 0x00}, "INTERNAL TARGET FAILURE"},
      {{0x53, 0x02}, "MEDIUM REMOVAL PREVENTED"},
      {{0x5A, 0x01}, "OPERATOR MEDIUM REMOVAL REQUEST"},
  };
  auto it = names.find({asc, ascq});
  if (it != names.end()) return it->second;
  return "ASC 0x" + hex2(asc) + " ASCQ 0x" + hex2(ascq);
}

std::string describe(const Sense& s) {
  std::string out = sense_key_name(s.key) + ": " + asc_name(s.asc, s.ascq) + " (" + hex2(s.asc) +
                    "/" + hex2(s.ascq) + ")";
  if (s.progress) out += ", " + std::to_string(*s.progress * 100 / 65536) + "% done";
  if (s.deferred) out += " [deferred error]";
  return out;
}

std::string status_name(std::uint8_t status) {
  switch (status) {
    case 0x00:
      return "GOOD";
    case 0x02:
      return "CHECK CONDITION";
    case 0x04:
      return "CONDITION MET";
    case 0x08:
      return "BUSY";
    case 0x18:
      return "RESERVATION CONFLICT";
    case 0x28:
      return "TASK SET FULL";
    case 0x30:
      return "ACA ACTIVE";
    case 0x40:
      return "TASK ABORTED";
    default:
      return "status 0x" + hex2(status);
  }
}

nlohmann::json to_json(const InquiryData& d) {
  return {{"vendor", d.vendor},
          {"product", d.product},
          {"revision", d.revision},
          {"device_type", d.device_type},
          {"device_type_name", device_type_name(d.device_type)},
          {"qualifier", d.qualifier},
          {"removable", d.removable},
          {"version", d.version},
          {"response_format", d.response_format}};
}

nlohmann::json to_json(const Sense& s) {
  nlohmann::json j = {{"key", s.key},
                      {"key_name", sense_key_name(s.key)},
                      {"asc", s.asc},
                      {"ascq", s.ascq},
                      {"asc_name", asc_name(s.asc, s.ascq)},
                      {"format", s.descriptor_format ? "descriptor" : "fixed"},
                      {"deferred", s.deferred}};
  if (s.information) j["information"] = *s.information;
  if (s.progress) j["progress"] = *s.progress;
  return j;
}

std::string hex(ByteView data) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 3);
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (i) out += ' ';
    out += digits[data[i] >> 4];
    out += digits[data[i] & 15];
  }
  return out;
}

}  // namespace labctl::optical_drive::scsi
