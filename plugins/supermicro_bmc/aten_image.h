// Supermicro BMC firmware images (`SMT_*.bin`) of ATEN's firmware for the Winbond (now Nuvoton)
// WPCM450 on X8 and X9 boards: an offline parser and verifier, so that no image reaches a BMC
// before every checksum in it has been checked, and a builder that tests (and fakes of the BMC's
// web flasher) use to make valid and deliberately broken images.
//
// The layout, from devicenull/ipmi_firmware_tools (README.md, ipmifw/FirmwareImage.py,
// ipmifw/FirmwareFooter.py, ipmifw/Winbond.py) and that author's listing of the X8SIL-F's
// SMT_313.bin (blog.devicenull.org, 2014-02-09); all integers little-endian:
//
//   0x0              the WPCM450 boot loader, "WPCM450 Boot Loader [ Version:1.0.14 ]"
//   image bytes      at each header's base address, minus the flash window 0x40000000
//   image headers    in a 64-byte block (the last one of a 64 KiB flash block in real files):
//                      +0  12 bytes padding (usually FF)
//                      +12 number, +16 base, +20 length, +24 load address, +28 exec address
//                      +32 name, 16 bytes, NUL-terminated (bytes after the NUL are not always 0)
//                      +48 image checksum, +52 signature (bytes 9F FF FF A0), +56 type flags
//                      +60 header checksum over +12..+60
//   global footer    "ATENs_FW", major, minor (BCD: 0x13 is "13"), then
//                      footer 1 (older firmware): checksum (4 bytes)
//                      footer 2: 0x71, checksum (4 bytes), 0x17
//                    the checksum is the CRC-32 of the images' CRC-32s (4 bytes each, in the
//                    order the headers appear in the file)
//
// Both checksums in a header use ATEN's own sum (aten_checksum below); the footer uses CRC-32.
//
// Board identity: nothing in these images names the board they are for (no model string in the
// headers or the footer). check_image_for() can refuse a wrong version and a board of the wrong
// generation, not a wrong X8/X9 board: the plugin relies on the catalog's sha256 pin of the file
// for that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/error.h"

namespace labctl::supermicro_bmc {

// Base addresses count from where the BMC maps its flash.
inline constexpr std::uint32_t kAtenFlashWindow = 0x40000000;
inline constexpr std::size_t kAtenHeaderBlock = 64;
// At most this many image headers are read (real files have 3 to 5); more is a problem.
inline constexpr std::size_t kAtenMaxImages = 16;

// Image type flags (FirmwareImage.IMAGE_*).
inline constexpr std::uint32_t kAtenTypeActive = 0x01;
inline constexpr std::uint32_t kAtenTypeCopyToRam = 0x02;
inline constexpr std::uint32_t kAtenTypeExec = 0x04;
inline constexpr std::uint32_t kAtenTypeFile = 0x08;
inline constexpr std::uint32_t kAtenTypeCompressed = 0x10;

// ATEN's image and header checksum: starting from 0xFFFFFFFF, subtract each byte shifted into its
// position in a little-endian word, with an end-around borrow.
std::uint32_t aten_checksum(std::span<const std::uint8_t> data);
// CRC-32 (IEEE 802.3, as zlib's crc32), for the footer.
std::uint32_t aten_crc32(std::span<const std::uint8_t> data);

// What kind of BMC image a file is, from cheap markers.
enum class BmcImageKind {
  Unknown,
  AtenWpcm450,  // the WPCM450 boot loader string, an image header or an ATENs_FW footer
  Aspeed,       // X10 and later (AST2400/AST2500): refused
};
struct BmcImageDetection {
  BmcImageKind kind = BmcImageKind::Unknown;
  std::string evidence;  // what was found, with its offset
};
BmcImageDetection detect_bmc_image(std::span<const std::uint8_t> data);

struct AtenBootloader {
  bool found = false;
  std::string
      version;  // the printable text at the marker: "WPCM450 Boot Loader [ Version:1.0.14 ]"
  std::size_t version_offset = 0;
  std::size_t size = 0;  // bytes before the first image or image header
};

struct AtenImageHeader {
  std::size_t offset = 0;  // of the 64-byte block holding the header
  std::uint32_t number = 0;
  std::uint32_t base = 0;
  std::uint64_t file_offset = 0;  // where the image's bytes are in the file
  std::uint32_t length = 0;
  std::uint32_t load_addr = 0;
  std::uint32_t exec_addr = 0;
  std::string name;  // up to the first NUL; bytes outside printable ASCII as \xNN
  std::uint32_t image_checksum = 0;
  std::uint32_t computed_image_checksum = 0;  // 0 when the bytes are not all in the file
  std::uint32_t type = 0;
  std::uint32_t header_checksum = 0;
  std::uint32_t computed_header_checksum = 0;
  std::uint32_t crc32 = 0;  // of the image's bytes, for the footer
  bool in_file = false;     // all of the image's bytes are in the file
  bool image_checksum_ok = false;
  bool header_checksum_ok = false;

  // "active, copy2ram, exec, compressed"; unknown bits as hex.
  std::string type_text() const;
};

struct AtenFooter {
  bool found = false;
  std::size_t offset = 0;  // of "ATENs_FW"
  int footer_version = 0;  // 1 or 2; 0 when cut off
  std::uint8_t major = 0;
  std::uint8_t minor = 0;  // BCD
  std::uint32_t checksum = 0;
  std::uint32_t computed_checksum = 0;
  bool checksum_ok = false;

  // "3.13": major in decimal, minor as its two BCD digits; "" without a footer.
  std::string version() const;
};

struct AtenImage {
  std::size_t size = 0;
  AtenBootloader bootloader;
  std::vector<AtenImageHeader> images;  // in file order
  AtenFooter footer;
  // Everything that makes the image unfit to flash, each naming the byte offset and why.
  std::vector<std::string> problems;

  bool ok() const { return problems.empty(); }
};

// Parses and verifies an image completely. Fails (InvalidInput) when the bytes are not an ATEN
// WPCM450 image at all, and (NotSupported) for an ASpeed image; everything wrong inside an ATEN
// image is a problem in the result.
Result<AtenImage> parse_aten_image(std::span<const std::uint8_t> data);

// Whether `img` may be flashed to a `board_model` BMC that should end up at `want_version`:
// refuses an image with problems, another version, and a board outside the WPCM450 generations
// (X8, X9). See the note on board identity at the top.
Status check_image_for(const AtenImage& img, std::string_view board_model,
                       std::string_view want_version);

nlohmann::json to_json(const AtenImage& img);
// Human text: the boot loader, each image (number, name, base, length, checksums), the footer and
// the problems.
std::string describe(const AtenImage& img);

// Builder ------------------------------------------------------------------------------------

struct AtenBuildPart {
  std::uint32_t number = 2;
  std::string name;  // at most 16 bytes
  std::vector<std::uint8_t> data;
  std::uint32_t load_addr = 0xd00000;
  std::uint32_t exec_addr = 0xd00000;
  std::uint32_t type = kAtenTypeFile;
  // Where the bytes go; default: the flash block after the previous header.
  std::optional<std::size_t> file_offset;
  // Overrides, to build broken images: the length the header claims, and either checksum.
  std::optional<std::uint32_t> length;
  std::optional<std::uint32_t> image_checksum;
  std::optional<std::uint32_t> header_checksum;
  // Bytes written after the name's NUL (real files have some).
  std::vector<std::uint8_t> name_tail;
};

struct AtenBuildSpec {
  // Written at offset 0x40, NUL-terminated; "" for none.
  std::string bootloader = "WPCM450 Boot Loader [ Version:1.0.14 ]";
  // Headers sit at the end of a block of this size (64 KiB in real files).
  std::size_t block_size = 0x10000;
  // Where the first image's bytes go (0: the first block after the boot loader).
  std::size_t first_image_offset = 0;
  std::vector<AtenBuildPart> images;
  int footer_version = 2;  // 0: no footer; 1 or 2
  std::uint8_t major = 3;
  std::uint8_t minor = 0x13;  // BCD
  std::optional<std::uint32_t> footer_checksum;
  // The file is padded with `fill` to this size, else to the next 64 KiB.
  std::size_t total_size = 0;
  std::uint8_t fill = 0xFF;
};

// Lays the parts out as rebuild_image.py does: each header in the last 64 bytes of the block its
// image ends in (or of the next block when those bytes are taken), the footer starting 13 bytes
// before the last header's 64-byte block.
std::vector<std::uint8_t> build_aten_image(const AtenBuildSpec& spec);

}  // namespace labctl::supermicro_bmc
