#include "plugins/supermicro_bmc/aten_image.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace labctl::supermicro_bmc {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::vector<std::uint8_t> pattern(std::size_t n, std::uint32_t seed) {
  std::vector<std::uint8_t> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v)
    b = static_cast<std::uint8_t>(rng());
  return v;
}

AtenBuildPart part(std::uint32_t number, std::string name, std::vector<std::uint8_t> data) {
  AtenBuildPart p;
  p.number = number;
  p.name = std::move(name);
  p.data = std::move(data);
  return p;
}

// A small image shaped like SMT_313.bin: 1stFS, kernel, 2ndFS, firmware 3.13, footer format 2.
AtenBuildSpec small_spec() {
  AtenBuildSpec s;
  s.images.push_back(part(2, "1stFS", pattern(5000, 1)));
  auto kernel = part(3, "kernel", pattern(3001, 2));
  kernel.load_addr = kernel.exec_addr = 0x8000;
  kernel.type = kAtenTypeActive | kAtenTypeCopyToRam | kAtenTypeExec | kAtenTypeCompressed;
  s.images.push_back(std::move(kernel));
  s.images.push_back(part(4, "2ndFS", pattern(777, 3)));
  return s;
}

AtenImage parse_ok(const std::vector<std::uint8_t>& bytes) {
  auto r = parse_aten_image(bytes);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
  return r ? *r : AtenImage{};
}

std::string all_problems(const AtenImage& img) {
  std::string s;
  for (const auto& p : img.problems)
    s += p + "\n";
  return s;
}

TEST(AtenChecksums, KnownValues) {
  const std::string check = "123456789";
  std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(check.data()),
                                      check.size());
  EXPECT_EQ(aten_crc32(bytes), 0xCBF43926u);  // the CRC-32 check value
  EXPECT_EQ(aten_crc32({}), 0u);
  EXPECT_EQ(aten_checksum({}), 0xFFFFFFFFu);
  // One byte: 0xFFFFFFFF - 1. A byte in the top lane: 0xFFFFFFFF - 0x01000000.
  const std::uint8_t one[] = {1};
  EXPECT_EQ(aten_checksum(one), 0xFFFFFFFEu);
  const std::uint8_t top[] = {0, 0, 0, 1};
  EXPECT_EQ(aten_checksum(top), 0xFEFFFFFFu);
  // Borrow: subtracting past zero wraps and takes one more.
  const std::uint8_t wrap[] = {0xFF, 0xFF, 0xFF, 0xFF, 0x01};
  EXPECT_EQ(aten_checksum(wrap), 0xFFFFFFFEu);
}

// The image headers of SMT_313.bin (X8SIL-F, firmware 3.13), as read_header.py printed them on
// blog.devicenull.org ("SuperMicro IPMI Rebuild Successful", 2014-02-09), each followed there by
// "footer checksum matches"; the file is 16777216 bytes, its footer checksum 0x9f29618c, tag
// 0x7117 (format 2), minor byte printed as 19 (0x13).
struct Published {
  std::uint32_t number, base, length, load, exec;
  const char* name;
  std::uint32_t image_checksum, type, header_checksum;
};
constexpr Published kSmt313[] = {
    {2, 0x40180000, 0x7be000, 0xd00000, 0xd00000, "1stFS", 0xaec12c0a, 0x8, 0x279680c7},
    {3, 0x40980000, 0x112aa8, 0x8000, 0x8000, "kernel", 0x9cccf523, 0x17, 0x13160eaa},
    {4, 0x40b80000, 0x1e1000, 0xd00000, 0xd00000, "2ndFS", 0x9a9c1cac, 0x8, 0x3b896522},
};
constexpr std::uint32_t kSmt313FooterChecksum = 0x9f29618c;

// The 48 header bytes the header checksum covers, laid out from the published fields by hand.
std::vector<std::uint8_t> published_fields(const Published& p) {
  std::vector<std::uint8_t> b;
  auto put = [&](std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
      b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  };
  put(p.number);
  put(p.base);
  put(p.length);
  put(p.load);
  put(p.exec);
  char name[16] = {};
  std::strncpy(name, p.name, sizeof name);
  b.insert(b.end(), name, name + sizeof name);
  put(p.image_checksum);
  b.insert(b.end(), {0x9F, 0xFF, 0xFF, 0xA0});
  put(p.type);
  return b;
}

TEST(AtenImage, PublishedSmt313HeaderChecksums) {
  // The layout and the checksum reproduce the real file's header checksums exactly.
  for (const auto& p : kSmt313) {
    auto fields = published_fields(p);
    ASSERT_EQ(fields.size(), 48u);
    EXPECT_EQ(aten_checksum(fields), p.header_checksum) << p.name;
  }
}

TEST(AtenImage, PublishedSmt313HeadersInASyntheticImage) {
  // A 16 MiB file with the published headers (payload bytes synthetic, of the published lengths).
  AtenBuildSpec s;
  s.total_size = 16777216;
  s.major = 3;
  s.minor = 0x13;
  s.footer_checksum = kSmt313FooterChecksum;
  for (std::size_t i = 0; i < std::size(kSmt313); ++i) {
    const auto& p = kSmt313[i];
    AtenBuildPart part;
    part.number = p.number;
    part.name = p.name;
    part.data = pattern(p.length, static_cast<std::uint32_t>(i));
    part.file_offset = p.base - kAtenFlashWindow;
    part.load_addr = p.load;
    part.exec_addr = p.exec;
    part.type = p.type;
    part.image_checksum = p.image_checksum;
    s.images.push_back(std::move(part));
  }
  const auto bytes = build_aten_image(s);
  ASSERT_EQ(bytes.size(), 16777216u);
  auto img = parse_ok(bytes);
  ASSERT_EQ(img.images.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& p = kSmt313[i];
    const auto& h = img.images[i];
    SCOPED_TRACE(p.name);
    EXPECT_EQ(h.number, p.number);
    EXPECT_EQ(h.name, p.name);
    EXPECT_EQ(h.base, p.base);
    EXPECT_EQ(h.file_offset, p.base - kAtenFlashWindow);
    EXPECT_EQ(h.length, p.length);
    EXPECT_EQ(h.load_addr, p.load);
    EXPECT_EQ(h.exec_addr, p.exec);
    EXPECT_EQ(h.type, p.type);
    EXPECT_EQ(h.image_checksum, p.image_checksum);
    // The builder computed the header checksum itself: it is the published one.
    EXPECT_EQ(h.header_checksum, p.header_checksum);
    EXPECT_TRUE(h.header_checksum_ok);
    // The payload is not the real one, so its checksum cannot match.
    EXPECT_FALSE(h.image_checksum_ok);
    // Byte for byte: the header's 48 covered bytes are the published fields.
    auto want = published_fields(p);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), bytes.begin() + h.offset + 12));
  }
  EXPECT_EQ(img.images[0].type_text(), "file");
  EXPECT_EQ(img.images[1].type_text(), "active, copy2ram, exec, compressed");
  EXPECT_EQ(img.footer.footer_version, 2);
  EXPECT_EQ(img.footer.version(), "3.13");
  EXPECT_EQ(img.footer.checksum, kSmt313FooterChecksum);
  EXPECT_FALSE(img.footer.checksum_ok);
  EXPECT_TRUE(img.bootloader.found);
  EXPECT_EQ(img.bootloader.version, "WPCM450 Boot Loader [ Version:1.0.14 ]");
  EXPECT_EQ(img.bootloader.size, 0x180000u);
  // Three image checksums and the footer: four problems, nothing else.
  EXPECT_EQ(img.problems.size(), 4u) << all_problems(img);
  EXPECT_THAT(all_problems(img), AllOf(HasSubstr("image 2 \"1stFS\""),
                                       HasSubstr("image checksum at 0x93fff0 is 0xaec12c0a"),
                                       HasSubstr("footer checksum")));
}

TEST(AtenImage, RoundTrip) {
  const auto bytes = build_aten_image(small_spec());
  EXPECT_EQ(bytes.size() % 0x10000, 0u);
  auto img = parse_ok(bytes);
  EXPECT_TRUE(img.ok()) << all_problems(img);
  ASSERT_EQ(img.images.size(), 3u);
  EXPECT_EQ(img.images[0].name, "1stFS");
  EXPECT_EQ(img.images[0].file_offset, 0x10000u);
  EXPECT_EQ(img.images[0].base, 0x40010000u);
  EXPECT_EQ(img.images[0].length, 5000u);
  EXPECT_EQ(img.images[0].offset, 0x1ffc0u);  // the last 64 bytes of its 64 KiB block
  EXPECT_EQ(img.images[1].name, "kernel");
  EXPECT_EQ(img.images[1].file_offset, 0x20000u);
  EXPECT_EQ(img.images[1].type, 0x17u);
  EXPECT_EQ(img.images[2].number, 4u);
  for (const auto& h : img.images) {
    EXPECT_TRUE(h.image_checksum_ok);
    EXPECT_TRUE(h.header_checksum_ok);
    EXPECT_TRUE(h.in_file);
  }
  EXPECT_TRUE(img.footer.found);
  EXPECT_EQ(img.footer.footer_version, 2);
  EXPECT_EQ(img.footer.offset, img.images[2].offset - 13);
  EXPECT_TRUE(img.footer.checksum_ok);
  EXPECT_EQ(img.footer.version(), "3.13");
  EXPECT_EQ(img.bootloader.version_offset, 0x40u);

  const auto text = describe(img);
  EXPECT_THAT(text, AllOf(HasSubstr("WPCM450 Boot Loader [ Version:1.0.14 ]"),
                          HasSubstr("image 2 1stFS: base 0x40010000"), HasSubstr("image 3 kernel"),
                          HasSubstr("footer: firmware 3.13"),
                          HasSubstr("verified: every checksum matches, firmware 3.13")));
  const auto j = to_json(img);
  EXPECT_EQ(j["format"], "aten-wpcm450");
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["version"], "3.13");
  EXPECT_EQ(j["images"].size(), 3u);
  EXPECT_EQ(j["images"][1]["name"], "kernel");
  EXPECT_EQ(j["footer"]["checksum_ok"], true);
  EXPECT_EQ(j["problems"].size(), 0u);
}

TEST(AtenImage, FooterFormat1AndVersionText) {
  auto s = small_spec();
  s.footer_version = 1;
  s.major = 2;
  s.minor = 0x50;
  auto img = parse_ok(build_aten_image(s));
  EXPECT_TRUE(img.ok()) << all_problems(img);
  EXPECT_EQ(img.footer.footer_version, 1);
  EXPECT_EQ(img.footer.version(), "2.50");
}

TEST(AtenImage, MinorVersionMustBeBcd) {
  auto s = small_spec();
  s.minor = 0x1f;
  auto img = parse_ok(build_aten_image(s));
  EXPECT_THAT(all_problems(img), HasSubstr("minor version byte 0x1f is not BCD"));
}

TEST(AtenImage, CorruptImageByteIsNamed) {
  auto bytes = build_aten_image(small_spec());
  bytes[0x20000 + 100] ^= 0x01;  // inside "kernel"
  auto img = parse_ok(bytes);
  EXPECT_FALSE(img.ok());
  EXPECT_FALSE(img.images[1].image_checksum_ok);
  EXPECT_TRUE(img.images[0].image_checksum_ok);
  // The footer's CRC of CRCs catches it too.
  EXPECT_FALSE(img.footer.checksum_ok);
  EXPECT_EQ(img.problems.size(), 2u) << all_problems(img);
  EXPECT_THAT(img.problems[0],
              AllOf(HasSubstr("image 3 \"kernel\" (header at 0x2ffc0)"),
                    HasSubstr("image checksum at 0x2fff0"), HasSubstr("bytes 0x20000..0x20bb9")));
  EXPECT_THAT(img.problems[1], HasSubstr("footer checksum at "));
  EXPECT_THAT(describe(img), HasSubstr("BAD (the bytes sum to"));
}

TEST(AtenImage, CorruptHeaderIsNamed) {
  auto bytes = build_aten_image(small_spec());
  const std::size_t header = 0x1ffc0;
  bytes[header + 24] ^= 0x10;  // the load address of 1stFS
  auto img = parse_ok(bytes);
  EXPECT_FALSE(img.images[0].header_checksum_ok);
  EXPECT_TRUE(img.images[0].image_checksum_ok);
  ASSERT_EQ(img.problems.size(), 1u) << all_problems(img);
  EXPECT_THAT(img.problems[0],
              AllOf(HasSubstr("image 2 \"1stFS\""), HasSubstr("header checksum at 0x1fffc"),
                    HasSubstr("header bytes 0x1ffcc..0x1fffc")));
}

TEST(AtenImage, StoredImageChecksumWrong) {
  auto s = small_spec();
  s.images[2].image_checksum = 0x12345678;
  auto img = parse_ok(build_aten_image(s));
  EXPECT_TRUE(img.images[2].header_checksum_ok);  // the header is consistent with itself
  EXPECT_FALSE(img.images[2].image_checksum_ok);
  ASSERT_EQ(img.problems.size(), 1u) << all_problems(img);
  EXPECT_THAT(img.problems[0], AllOf(HasSubstr("image 4 \"2ndFS\""), HasSubstr("0x12345678")));
}

TEST(AtenImage, StoredHeaderChecksumWrong) {
  auto s = small_spec();
  s.images[0].header_checksum = 0;
  auto img = parse_ok(build_aten_image(s));
  ASSERT_EQ(img.problems.size(), 1u) << all_problems(img);
  EXPECT_THAT(img.problems[0], HasSubstr("header checksum at 0x1fffc is 0x00000000"));
}

TEST(AtenImage, FooterChecksumWrong) {
  auto s = small_spec();
  s.footer_checksum = 0xdeadbeef;
  auto img = parse_ok(build_aten_image(s));
  EXPECT_FALSE(img.footer.checksum_ok);
  ASSERT_EQ(img.problems.size(), 1u) << all_problems(img);
  EXPECT_THAT(img.problems[0], AllOf(HasSubstr("footer checksum at "), HasSubstr("0xdeadbeef"),
                                     HasSubstr("CRC-32 of the images' CRC-32s")));
}

TEST(AtenImage, FooterMissing) {
  auto s = small_spec();
  s.footer_version = 0;
  auto img = parse_ok(build_aten_image(s));
  EXPECT_FALSE(img.footer.found);
  EXPECT_EQ(img.footer.version(), "");
  ASSERT_EQ(img.problems.size(), 1u) << all_problems(img);
  EXPECT_THAT(img.problems[0], HasSubstr("no ATENs_FW footer"));
  EXPECT_THAT(describe(img), HasSubstr("footer: not found"));
}

TEST(AtenImage, TwoFooters) {
  auto bytes = build_aten_image(small_spec());
  const std::string extra = "ATENs_FW";
  std::copy(extra.begin(), extra.end(), bytes.end() - 100);
  auto img = parse_ok(bytes);
  EXPECT_THAT(all_problems(img), HasSubstr("2 ATENs_FW footers"));
}

TEST(AtenImage, FooterTextInsideAnImageIsPayload) {
  auto s = small_spec();
  const std::string marker = "ATENs_FW";
  std::copy(marker.begin(), marker.end(), s.images[0].data.begin() + 10);
  auto img = parse_ok(build_aten_image(s));
  EXPECT_TRUE(img.ok()) << all_problems(img);
}

TEST(AtenImage, TruncatedAtSeveralPoints) {
  const auto full = build_aten_image(small_spec());
  struct Cut {
    std::size_t size;
    const char* expect;
  };
  const Cut cuts[] = {
      {0x10000 + 2000, "no image headers"},                     // inside 1stFS
      {0x20000 + 500, "no ATENs_FW footer"},                    // inside kernel
      {0x3ffb3 + 12, "ATENs_FW footer at 0x3ffb3 is cut off"},  // inside the footer
      {0x3ffc0 + 58, "image header at 0x3ffc0 is cut off"},     // inside 2ndFS's header
      {0x3ffff, "not a whole number of 64 KiB"},                // one byte short
  };
  for (const auto& c : cuts) {
    SCOPED_TRACE(c.size);
    std::vector<std::uint8_t> part(full.begin(), full.begin() + static_cast<long>(c.size));
    auto img = parse_ok(part);
    EXPECT_FALSE(img.ok());
    EXPECT_THAT(all_problems(img), HasSubstr(c.expect));
    EXPECT_THAT(all_problems(img), HasSubstr("64 KiB flash blocks"));
  }
  // Cut inside the boot loader, before its text: nothing is left to recognise.
  std::vector<std::uint8_t> tiny(full.begin(), full.begin() + 0x50);
  auto r = parse_aten_image(tiny);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Errc::InvalidInput);
  EXPECT_THAT(r.error().message(), HasSubstr("80 bytes: not an ATEN WPCM450 BMC image"));
}

TEST(AtenImage, ImagePastTheEnd) {
  auto s = small_spec();
  s.images[2].length = 0x01000000;  // the header claims 16 MiB
  auto img = parse_ok(build_aten_image(s));
  EXPECT_FALSE(img.images[2].in_file);
  EXPECT_THAT(all_problems(img),
              AllOf(HasSubstr("image 4 \"2ndFS\""), HasSubstr("run past the end of the file"),
                    HasSubstr("footer checksum at "), HasSubstr("cannot be checked")));
  EXPECT_THAT(describe(img), HasSubstr("NOT CHECKED"));
}

TEST(AtenImage, OverlappingImages) {
  auto s = small_spec();
  s.images[0].length = 0x10100;  // 1stFS claims bytes up into kernel's
  auto img = parse_ok(build_aten_image(s));
  EXPECT_THAT(all_problems(img),
              HasSubstr("image 2 \"1stFS\" (header at 0x1ffc0) and image 3 \"kernel\" (header at "
                        "0x2ffc0) overlap: bytes 0x10000..0x20100 and 0x20000..0x20bb9"));
}

TEST(AtenImage, ImageCoveringAHeader) {
  auto s = small_spec();
  s.images[1].length = 0x10000;  // kernel's claimed bytes run over its own header
  auto img = parse_ok(build_aten_image(s));
  EXPECT_THAT(all_problems(img), HasSubstr("cover the header at 0x2ffc0"));
}

TEST(AtenImage, DuplicateAndReservedNumbers) {
  auto s = small_spec();
  s.images[1].number = 2;
  s.images[2].number = 0;
  auto img = parse_ok(build_aten_image(s));
  EXPECT_THAT(all_problems(img), AllOf(HasSubstr("image number 2 is also used by the header at "
                                                 "0x1ffc0"),
                                       HasSubstr("image number 0 is reserved")));
}

TEST(AtenImage, NameWithBytesAfterTheNul) {
  // Real X9 files carry bytes after the name's NUL; they count in the header checksum.
  auto s = small_spec();
  s.images[0].name_tail = {0x40, 0xC2, 0x01};
  auto img = parse_ok(build_aten_image(s));
  EXPECT_TRUE(img.ok()) << all_problems(img);
  EXPECT_EQ(img.images[0].name, "1stFS");
}

TEST(AtenImage, MissingBootloader) {
  auto s = small_spec();
  s.bootloader = "";
  auto img = parse_ok(build_aten_image(s));
  EXPECT_FALSE(img.bootloader.found);
  ASSERT_EQ(img.problems.size(), 1u) << all_problems(img);
  EXPECT_THAT(img.problems[0], HasSubstr("no \"WPCM450 Boot Loader\" text"));
}

TEST(AtenImage, TooManyHeadersIsBounded) {
  AtenBuildSpec s;
  s.block_size = 0x400;
  for (std::uint32_t i = 0; i < kAtenMaxImages + 3; ++i)
    s.images.push_back(part(i + 1, "x", pattern(100, i)));
  auto img = parse_ok(build_aten_image(s));
  EXPECT_EQ(img.images.size(), kAtenMaxImages);
  EXPECT_THAT(all_problems(img), HasSubstr("more than 16 image headers"));
}

TEST(AtenImage, AspeedIsRefused) {
  // The ASpeed image index at 0x1fc0000 (read_header.py's test).
  std::vector<std::uint8_t> big(0x2000000, 0xFF);
  const std::string index = "[img]: 0 1ec38 45ad7679 u-boot.bin[end]";
  std::copy(index.begin(), index.end(), big.begin() + 0x1fc0000);
  auto r = parse_aten_image(big);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Errc::NotSupported);
  EXPECT_THAT(r.error().message(),
              AllOf(HasSubstr("ASpeed"), HasSubstr("\"[img]\" at 0x1fc0000"), HasSubstr("X8")));
  EXPECT_EQ(detect_bmc_image(big).kind, BmcImageKind::Aspeed);

  // An ATENs_FW footer of format 3 (ASpeed): tags 0x71 at +18 and 0x17 at +27.
  std::vector<std::uint8_t> small(0x10000, 0xFF);
  const std::string footer = "ATENs_FW";
  std::copy(footer.begin(), footer.end(), small.begin() + 0x8000);
  small[0x8000 + 8] = 3;
  small[0x8000 + 9] = 0x75;
  std::memcpy(small.data() + 0x8000 + 10, "ae68dd00", 8);
  small[0x8000 + 18] = 0x71;
  std::memcpy(small.data() + 0x8000 + 19, "3af67950", 8);
  small[0x8000 + 27] = 0x17;
  r = parse_aten_image(small);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Errc::NotSupported);
  EXPECT_THAT(r.error().message(), HasSubstr("ASpeed format"));
}

TEST(AtenImage, DetectKinds) {
  EXPECT_EQ(detect_bmc_image(build_aten_image(small_spec())).kind, BmcImageKind::AtenWpcm450);
  const std::string text = "just some text, not firmware at all\n";
  std::vector<std::uint8_t> bytes(text.begin(), text.end());
  EXPECT_EQ(detect_bmc_image(bytes).kind, BmcImageKind::Unknown);
  auto r = parse_aten_image(bytes);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Errc::InvalidInput);
  EXPECT_EQ(parse_aten_image({}).error().code(), Errc::InvalidInput);
}

TEST(AtenImage, CheckImageFor) {
  auto img = parse_ok(build_aten_image(small_spec()));
  EXPECT_TRUE(check_image_for(img, "X8SIL-F", "3.13").has_value());
  EXPECT_TRUE(check_image_for(img, "x9scl-f", " 3.13 ").has_value());

  auto wrong = check_image_for(img, "X8SIL-F", "2.50");
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code(), Errc::PreconditionFailed);
  EXPECT_THAT(wrong.error().message(), HasSubstr("firmware 3.13, not the wanted 2.50"));

  auto board = check_image_for(img, "X10SLM-F", "3.13");
  ASSERT_FALSE(board.has_value());
  EXPECT_THAT(board.error().message(), AllOf(HasSubstr("X10SLM-F"), HasSubstr("names no board")));

  EXPECT_EQ(check_image_for(img, "", "3.13").error().code(), Errc::InvalidInput);
  EXPECT_EQ(check_image_for(img, "X8SIL-F", "").error().code(), Errc::InvalidInput);

  auto s = small_spec();
  s.footer_checksum = 1;
  auto bad = parse_ok(build_aten_image(s));
  auto refused = check_image_for(bad, "X8SIL-F", "3.13");
  ASSERT_FALSE(refused.has_value());
  EXPECT_THAT(refused.error().message(), HasSubstr("the image has 1 problem, the first: footer"));
}

TEST(AtenImage, GarbageNeverCrashes) {
  std::mt19937 rng(4242);
  // Random bytes of many sizes.
  for (int i = 0; i < 300; ++i) {
    auto bytes = pattern(rng() % 5000, static_cast<std::uint32_t>(rng()));
    auto r = parse_aten_image(bytes);
    if (!r) {
      EXPECT_FALSE(r.error().message().empty());
    }
  }
  // A valid image, mutated: flipped bytes (often in headers and the footer), then cut.
  AtenBuildSpec s = small_spec();
  s.block_size = 0x400;
  const auto base = build_aten_image(s);
  for (int i = 0; i < 300; ++i) {
    auto bytes = base;
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int f = 0; f < flips; ++f) {
      std::size_t at = rng() % bytes.size();
      if (rng() % 2) at = (at & ~std::size_t{63}) + 12 + rng() % 52;  // inside a header block
      bytes[at] = static_cast<std::uint8_t>(rng());
    }
    if (rng() % 3 == 0) bytes.resize(rng() % bytes.size());
    auto r = parse_aten_image(bytes);
    if (r) {
      (void)describe(*r);
      (void)to_json(*r).dump();
      (void)check_image_for(*r, "X8SIL-F", "3.13");
    } else {
      EXPECT_FALSE(r.error().message().empty());
    }
  }
}

}  // namespace
}  // namespace labctl::supermicro_bmc
