// sha256 through OpenSSL, as lower-case hex: the one way labctl writes a checksum down.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace labctl {

std::string sha256_hex(std::span<const std::uint8_t> data);
std::string sha256_hex(std::string_view data);
// Bytes as lower-case hex.
std::string hex(std::span<const unsigned char> bytes);

}  // namespace labctl
