#include "common/digest.h"

#include <fstream>

#include <gtest/gtest.h>

namespace labctl {
namespace {

TEST(Digest, KnownVectors) {
  // FIPS 180-2 examples.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;
  h.update("a");
  h.update("bc");
  EXPECT_EQ(h.hex_final(), sha256_hex("abc"));
  const unsigned char b[] = {0x00, 0x0f, 0xa0, 0xff};
  EXPECT_EQ(hex_lower(b), "000fa0ff");
}

TEST(Digest, Files) {
  const std::string path = ::testing::TempDir() + "/digest-test";
  std::ofstream(path) << std::string(200'000, 'x');
  std::uint64_t size = 0;
  EXPECT_EQ(sha256_file_hex(path, &size), sha256_hex(std::string(200'000, 'x')));
  EXPECT_EQ(size, 200'000u);
  EXPECT_EQ(sha256_file_hex(path + ".missing"), "");
}

}  // namespace
}  // namespace labctl
