#include "common/digest.h"

#include <openssl/evp.h>

namespace labctl {

std::string hex(std::span<const unsigned char> bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

std::string sha256_hex(std::span<const std::uint8_t> data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return hex({md, len});
}

std::string sha256_hex(std::string_view data) {
  return sha256_hex(std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
}

}  // namespace labctl
