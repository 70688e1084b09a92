// Drive firmware: how a catalog release says to flash it (its `options`, catalog/README.md), where
// its microcode is (a raw image, or a byte range of a vendor updater with its own checksum), and
// the WRITE BUFFER download itself.
//
// Nothing here trusts a file: an image is read from the firmware store's verified blob, extracted
// only at the offset and length the catalog gives and accepted only when its sha256 is the
// catalog's; a Windows executable is never written to a drive as it is.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "inventory/catalog.h"
#include "plugins/optical_drive/drive.h"
#include "plugins/sdk/plugin.h"

namespace labctl::optical_drive {

struct FlashOptions {
  std::uint8_t mode = scsi::kModeDownloadSave;  // 5, 7 or 0x0E
  std::uint32_t chunk = 32 * 1024;              // bytes per command in modes 7 and 0x0E
  bool activate = true;                         // 0x0E: send 0x0F after the download
};

// Where a release's microcode is.
struct ImageSpec {
  std::string file;  // the catalog file it is in (or is)
  bool extract = false;
  std::uint64_t offset = 0, length = 0;  // extract
  std::string sha256;                    // extract: of the extracted bytes, lower-case hex
  std::optional<std::uint64_t> size;     // raw: the catalog's size, when it gives one
};

// The release's flashing options; InvalidInput names the catalog position and the option.
Result<FlashOptions> flash_options(const inventory::Release& release,
                                   const std::string& catalog_file);
// The release's image; NotSupported when the catalog does not say enough to write one (no file, or
// a vendor updater without offset, length and sha256 of the image inside), with what is missing.
Result<ImageSpec> image_spec(const inventory::Release& release, const std::string& catalog_file);

// "MZ" with a PE header where its e_lfanew points: a Windows executable (a vendor updater).
bool is_windows_executable(std::span<const std::uint8_t> bytes);
std::string sha256_hex(std::span<const std::uint8_t> bytes);

// The image bytes from the store's files of the release, checked: the file is there, the range is
// inside it, the extracted sha256 is the catalog's, the image is not empty, fits WRITE BUFFER and
// the drive's modes, and is not a Windows executable.
Result<std::vector<std::uint8_t>> load_image(const ImageSpec& spec,
                                             const std::vector<sdk::FirmwareImage>& files);

struct WriteHooks {
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
  // Asked between chunks, never during the last one or after it.
  std::function<bool()> cancelled;
};

// The download: mode 5 in one command, modes 7 and 0x0E in chunks at increasing offsets, then
// 0x0F when the options say so. Each command bounded by `timeout`. Cancelled only between chunks
// before the last one (the old microcode is still active then).
Status write_image(Drive& drive, const FlashOptions& options, std::span<const std::uint8_t> image,
                   std::chrono::milliseconds timeout, const WriteHooks& hooks = {});

std::string mode_name(std::uint8_t mode);  // "5 (download and save)", ...

}  // namespace labctl::optical_drive
