// SHA-256 through OpenSSL's EVP interface, and lower-case hex: the one place labctl turns bytes
// into the digests it pins, compares and names things by.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace labctl {

// "00ff..." for the bytes given.
std::string hex_lower(std::span<const unsigned char> bytes);

// An incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // The digest as 64 hex digits; the object is spent afterwards.
  std::string hex_final();

 private:
  void* ctx_;  // EVP_MD_CTX
};

std::string sha256_hex(std::string_view data);
std::string sha256_hex(std::span<const std::uint8_t> data);
// The SHA-256 of a file's bytes (and its size when `size` is given); "" when it cannot be read.
std::string sha256_file_hex(const std::filesystem::path& path, std::uint64_t* size = nullptr);

}  // namespace labctl
