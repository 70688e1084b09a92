// The SCSI/MMC codec of the optical drive plugin: command descriptor blocks (CDBs) it sends, and
// parsers for what comes back (INQUIRY data, the unit serial number page, GET CONFIGURATION's
// feature header and descriptors, fixed and descriptor sense data). No I/O: the transport
// (transport.h) moves these bytes, the emulator (emulator.h) answers them, the fuzzer feeds them.
//
// Sources: SPC-4 (INQUIRY, TEST UNIT READY, REQUEST SENSE, WRITE BUFFER, sense data, ASC/ASCQ
// assignments) and MMC-6 (GET CONFIGURATION, profiles). Every parser is written for hostile input:
// a length field never makes it read past the buffer; a truncated buffer is an error that says
// which byte is missing.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace labctl::optical_drive::scsi {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

// Operation codes.
inline constexpr std::uint8_t kTestUnitReady = 0x00;
inline constexpr std::uint8_t kRequestSense = 0x03;
inline constexpr std::uint8_t kInquiry = 0x12;
inline constexpr std::uint8_t kWriteBuffer = 0x3B;
inline constexpr std::uint8_t kGetConfiguration = 0x46;

// Status bytes.
inline constexpr std::uint8_t kGood = 0x00;
inline constexpr std::uint8_t kCheckCondition = 0x02;
inline constexpr std::uint8_t kBusy = 0x08;

// Sense keys.
inline constexpr std::uint8_t kNoSense = 0x0;
inline constexpr std::uint8_t kNotReady = 0x2;
inline constexpr std::uint8_t kMediumError = 0x3;
inline constexpr std::uint8_t kHardwareError = 0x4;
inline constexpr std::uint8_t kIllegalRequest = 0x5;
inline constexpr std::uint8_t kUnitAttention = 0x6;
inline constexpr std::uint8_t kAbortedCommand = 0xB;

// WRITE BUFFER modes used for drive firmware (SPC-4 6.49).
inline constexpr std::uint8_t kModeDownloadSave = 0x05;          // whole image, save, activate
inline constexpr std::uint8_t kModeDownloadOffsetsSave = 0x07;   // chunks, save + activate at end
inline constexpr std::uint8_t kModeDownloadOffsetsDefer = 0x0E;  // chunks, save, defer activation
inline constexpr std::uint8_t kModeActivateDeferred = 0x0F;      // activate deferred microcode

// The largest offset and parameter list length WRITE BUFFER can carry (24 bits).
inline constexpr std::uint32_t kMax24 = 0xFFFFFF;

// Peripheral device type of CD/DVD/BD drives (MMC).
inline constexpr std::uint8_t kTypeOptical = 0x05;

// ---- CDBs --------------------------------------------------------------------------------------

Bytes test_unit_ready_cdb();
// Standard INQUIRY data (evpd false) or a vital product data page.
Bytes inquiry_cdb(std::uint16_t allocation, bool evpd = false, std::uint8_t page = 0);
Bytes request_sense_cdb(std::uint8_t allocation, bool descriptor = false);
// rt: 0 all features, 1 current features only, 2 the one feature `start`.
Bytes get_configuration_cdb(std::uint8_t rt, std::uint16_t start, std::uint16_t allocation);
// InvalidInput when offset or length does not fit 24 bits, or the mode is not 0..0x1F.
Result<Bytes> write_buffer_cdb(std::uint8_t mode, std::uint8_t buffer_id, std::uint32_t offset,
                               std::uint32_t length);

// The length of a CDB with this operation code by its group (SPC-4 4.2.5.1); 0 for the reserved
// and vendor-specific groups, whose length the code does not say.
std::size_t cdb_length(std::uint8_t opcode);
// "TEST UNIT READY", "WRITE BUFFER", ..., else "operation 0xNN".
std::string opcode_name(std::uint8_t opcode);

struct WriteBufferCdb {
  std::uint8_t mode = 0;
  std::uint8_t mode_specific = 0;
  std::uint8_t buffer_id = 0;
  std::uint32_t offset = 0;
  std::uint32_t length = 0;  // parameter list length
};
// A WRITE BUFFER CDB as a device reads it (the emulator; tests check the builder against it).
Result<WriteBufferCdb> parse_write_buffer_cdb(ByteView cdb);

// ---- INQUIRY -----------------------------------------------------------------------------------

struct InquiryData {
  std::uint8_t qualifier = 0;    // peripheral qualifier (0: a device is connected)
  std::uint8_t device_type = 0;  // 0x05 for optical drives
  bool removable = false;
  std::uint8_t version = 0;  // claimed standard (0x05 SPC-3, 0x06 SPC-4)
  std::uint8_t response_format = 0;
  std::uint8_t additional_length = 0;
  std::string vendor;    // bytes 8-15, trailing spaces removed
  std::string product;   // bytes 16-31, trailing spaces removed
  std::string revision;  // bytes 32-35, trailing spaces removed
};
// Standard INQUIRY data: at least 36 bytes (the identification fields). Identification fields
// must be printable ASCII (SPC-4 4.4.1); a NUL or control byte is an error naming its offset.
Result<InquiryData> parse_inquiry(ByteView data);
// 36 bytes (plus `extra` zero bytes of vendor data) with the fields space-padded; fields longer
// than their space are cut.
Bytes build_inquiry(const InquiryData& d, std::size_t extra = 0);
std::string device_type_name(std::uint8_t type);  // "CD/DVD/BD drive", "disk", ...

// The Unit Serial Number VPD page (0x80): the serial, trailing spaces removed.
Result<std::string> parse_unit_serial(ByteView data);
Bytes build_unit_serial(std::uint8_t device_type, std::string_view serial);

// ---- GET CONFIGURATION -------------------------------------------------------------------------

struct Feature {
  std::uint16_t code = 0;
  std::uint8_t version = 0;
  bool persistent = false;
  bool current = false;
  Bytes data;  // the additional data
};
struct Configuration {
  std::uint32_t data_length = 0;  // as the header says (bytes after the length field)
  std::uint16_t current_profile = 0;
  std::vector<Feature> features;
  bool truncated = false;  // the header claims more than the buffer holds (allocation too small)
  // Profile numbers of the Profile List feature (0x0000), when it came back.
  std::vector<std::uint16_t> profiles() const;
};
// The 8-byte feature header and the descriptors the buffer holds. A descriptor that does not fit
// ends the list (`truncated`); fewer than 8 bytes is an error.
Result<Configuration> parse_configuration(ByteView data);
// A response with `current` as current profile and a Profile List of `profiles` (the current one
// marked), trimmed to `allocation` bytes.
Bytes build_configuration(std::uint16_t current, const std::vector<std::uint16_t>& profiles,
                          std::size_t allocation);

// "BD-ROM", "DVD+RW", "CD-R", "none" (0), else "profile 0xNNNN".
std::string profile_name(std::uint16_t profile);
// "BD", "DVD", "CD", "none", or "other".
std::string_view profile_class(std::uint16_t profile);

// ---- Sense data --------------------------------------------------------------------------------

struct Sense {
  std::uint8_t response_code = 0;  // 0x70/0x71 fixed, 0x72/0x73 descriptor
  bool descriptor_format = false;
  bool deferred = false;  // 0x71/0x73: about an earlier command
  std::uint8_t key = 0;
  std::uint8_t asc = 0, ascq = 0;
  std::optional<std::uint64_t> information;
  // NOT READY's progress indication (sense-key specific), 0..65535 of 65536.
  std::optional<std::uint16_t> progress;
};
// Fixed (0x70/0x71) or descriptor (0x72/0x73) format. Fixed data shorter than 14 bytes (ASC and
// ASCQ) or descriptor data shorter than 8 bytes is an error; the additional length is trusted only
// as far as the buffer goes.
Result<Sense> parse_sense(ByteView data);
Bytes build_fixed_sense(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq,
                        std::optional<std::uint16_t> progress = std::nullopt);
Bytes build_descriptor_sense(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq,
                             std::optional<std::uint64_t> information = std::nullopt);

std::string sense_key_name(std::uint8_t key);  // "NOT READY", ...
// The ASC/ASCQ text for the codes this plugin meets (SPC-4 annex D), else "ASC 0xNN ASCQ 0xNN".
std::string asc_name(std::uint8_t asc, std::uint8_t ascq);
// "NOT READY: MEDIUM NOT PRESENT - TRAY CLOSED (3A/01)" (and ", 42% done" with a progress).
std::string describe(const Sense& s);
std::string status_name(std::uint8_t status);  // "GOOD", "CHECK CONDITION", ...

nlohmann::json to_json(const InquiryData& d);
nlohmann::json to_json(const Sense& s);

// Lower-case hex with a space between bytes ("12 00 00 00 24 00"), as sg_inq --inhex reads it.
std::string hex(ByteView data);

}  // namespace labctl::optical_drive::scsi
