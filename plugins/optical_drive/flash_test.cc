// Catalog options and images for drive firmware, and the WRITE BUFFER download against the
// emulated drive: every mode, chunk boundaries, cancellation, failures.
#include "plugins/optical_drive/flash.h"

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "inventory/catalog.h"
#include "plugins/optical_drive/emulator.h"

namespace labctl::optical_drive {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kProduct = "BD-MLT UJ240AS";

inventory::Release release(nlohmann::json options, std::vector<std::string> files = {"x.bin"}) {
  inventory::Release r;
  r.version.text = "1.04";
  r.options = std::move(options);
  r.mark = {12, 7};
  for (auto& f : files) {
    inventory::FirmwareFile ff;
    ff.name = f;
    r.files.push_back(ff);
  }
  return r;
}

TEST(FlashOptions, ValidAndInvalid) {
  auto def = flash_options(release(nullptr), "c.yaml");
  ASSERT_TRUE(def.has_value());
  EXPECT_EQ(def->mode, 5);
  EXPECT_TRUE(def->activate);
  auto m7 = flash_options(release({{"write-buffer-mode", 7}, {"chunk-size", 65536}}), "c.yaml");
  ASSERT_TRUE(m7.has_value());
  EXPECT_EQ(m7->mode, 7);
  EXPECT_EQ(m7->chunk, 65536u);
  auto m14 = flash_options(release({{"write-buffer-mode", "0x0E"}, {"activate", false}}), "c");
  ASSERT_TRUE(m14.has_value());
  EXPECT_EQ(m14->mode, 0x0E);
  EXPECT_FALSE(m14->activate);

  struct Case {
    nlohmann::json options;
    const char* error;
  };
  const Case bad[] = {
      {{{"write-buffer-mode", 6}}, "options.write-buffer-mode: 6 is not 5, 7 or 14"},
      {{{"write-buffer-mode", "five"}}, "write-buffer-mode"},
      {{{"write-buffer-mode", 7}, {"chunk-size", 100}}, "chunk-size: 100 is not 512..16777215"},
      {{{"chunk-size", 4096}}, "mode 5 sends the whole image in one command"},
      {{{"write-buffer-mode", 7}, {"activate", false}}, "only mode 14 (0x0E) defers"},
      {{{"write-buffer-mode", 14}, {"activate", "yes"}}, "activate: must be true or false"},
      {nlohmann::json::array(), "options must be a mapping"},
  };
  for (const auto& c : bad) {
    auto o = flash_options(release(c.options), "c.yaml");
    ASSERT_FALSE(o.has_value()) << c.error;
    EXPECT_EQ(o.error().code(), Errc::InvalidInput);
    EXPECT_THAT(o.error().message(), HasSubstr("c.yaml:12:7: release 1.04"));
    EXPECT_THAT(o.error().message(), HasSubstr(c.error));
  }
}

TEST(ImageSpec, RawUpdaterAndWhatIsMissing) {
  auto raw = image_spec(release(nullptr, {"UJ240AS-1.04.bin"}), "c");
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(raw->file, "UJ240AS-1.04.bin");
  EXPECT_FALSE(raw->extract);

  // The shipped catalog's case: an updater and nothing about the image inside.
  auto exe = image_spec(release({{"write-buffer-mode", 5}}, {"uj240as_v104.exe"}), "c");
  ASSERT_FALSE(exe.has_value());
  EXPECT_EQ(exe.error().code(), Errc::NotSupported);
  EXPECT_THAT(exe.error().message(), HasSubstr("uj240as_v104.exe is a vendor updater"));
  EXPECT_THAT(exe.error().message(), HasSubstr("offset, length and sha256"));

  const std::string sha(64, 'a');
  auto ok = image_spec(
      release({{"image", {{"offset", 4096}, {"length", 1000}, {"sha256", sha}}}}, {"u.exe"}), "c");
  ASSERT_TRUE(ok.has_value()) << ok.error().message();
  EXPECT_TRUE(ok->extract);
  EXPECT_EQ(ok->offset, 4096u);
  EXPECT_EQ(ok->length, 1000u);

  auto partial = image_spec(release({{"image", {{"offset", 4096}}}}, {"u.exe"}), "c");
  ASSERT_FALSE(partial.has_value());
  EXPECT_THAT(partial.error().message(), HasSubstr("missing length and sha256"));

  auto none = image_spec(release(nullptr, {}), "c");
  ASSERT_FALSE(none.has_value());
  EXPECT_THAT(none.error().message(), HasSubstr("nothing to write"));

  auto two = image_spec(release(nullptr, {"a.bin", "b.exe"}), "c");
  ASSERT_FALSE(two.has_value());
  EXPECT_THAT(two.error().message(), HasSubstr("options.image.file must say which one"));
  auto picked = image_spec(release({{"image", {{"file", "A.BIN"}}}}, {"a.bin", "b.exe"}), "c");
  ASSERT_TRUE(picked.has_value());
  EXPECT_EQ(picked->file, "a.bin");
  EXPECT_FALSE(image_spec(release({{"image", {{"file", "c.bin"}}}}, {"a.bin"}), "c").has_value());
  EXPECT_FALSE(
      image_spec(release({{"image", {{"offset", 1}, {"length", 1}, {"sha256", "xy"}}}}), "c")
          .has_value());
  EXPECT_FALSE(image_spec(release({{"image", {{"size", 1}}}}), "c").has_value());
}

std::vector<std::uint8_t> pe_stub(std::size_t n) {
  std::vector<std::uint8_t> b(n, 0);
  b[0] = 'M';
  b[1] = 'Z';
  b[0x3C] = 0x80;
  b[0x80] = 'P';
  b[0x81] = 'E';
  return b;
}

class LoadImage : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("labctl-flash-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  sdk::FirmwareImage put(const std::string& name, const std::vector<std::uint8_t>& bytes) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<long>(bytes.size()));
    return {name, sha256_hex(bytes), bytes.size(), p};
  }
  fs::path dir_;
};

TEST_F(LoadImage, ExtractsAtTheCatalogsOffsetAndChecksIt) {
  const auto image = build_test_microcode(kProduct, "1.04", 3000, 4);
  auto exe = pe_stub(10'000);
  std::copy(image.begin(), image.end(), exe.begin() + 5000);
  const auto f = put("u.exe", exe);
  ImageSpec spec{"u.exe", true, 5000, 3000, sha256_hex(image), {}};
  auto got = load_image(spec, {f});
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(*got, image);

  ImageSpec shifted = spec;
  shifted.offset = 5001;
  auto wrong = load_image(shifted, {f});
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code(), Errc::VerifyMismatch);
  EXPECT_THAT(wrong.error().message(), HasSubstr("the catalog gives " + spec.sha256));

  ImageSpec past = spec;
  past.offset = 9000;
  auto beyond = load_image(past, {f});
  ASSERT_FALSE(beyond.has_value());
  EXPECT_THAT(beyond.error().message(), HasSubstr("runs past its end (10000 bytes)"));

  ImageSpec missing = spec;
  missing.file = "other.exe";
  EXPECT_EQ(load_image(missing, {f}).error().code(), Errc::NotFound);
}

TEST_F(LoadImage, NeverWritesAnExecutable) {
  const auto f = put("fw.bin", pe_stub(4096));
  ImageSpec spec{"fw.bin", false, 0, 0, "", {}};
  auto r = load_image(spec, {f});
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("Windows executable"));
  EXPECT_TRUE(is_windows_executable(pe_stub(4096)));
  auto mz_only = pe_stub(4096);
  mz_only[0x80] = 'X';
  EXPECT_FALSE(is_windows_executable(mz_only));
  EXPECT_FALSE(is_windows_executable(build_test_microcode(kProduct, "1.04", 4096, 1)));
  // The catalog's size, when it gives one, must match.
  const auto raw = put("raw.bin", build_test_microcode(kProduct, "1.04", 4096, 1));
  ImageSpec sized{"raw.bin", false, 0, 0, "", 4000};
  EXPECT_EQ(load_image(sized, {raw}).error().code(), Errc::VerifyMismatch);
  EXPECT_EQ(put("empty.bin", {}).size, 0u);
  EXPECT_FALSE(load_image({"empty.bin", false, 0, 0, "", {}}, {put("empty.bin", {})}));
}

// ---- The download ----

struct Drive1 {
  Drive1() : emu(EmulatorConfig{}), transport(emu), drive(transport, milliseconds(1000)) {
    transport.clock = [this] { return now; };
    (void)drive.test_unit_ready();
  }
  std::string revision() {
    now += milliseconds(5000);  // past any reboot
    auto q = drive.inquiry();
    return q ? q->revision : q.error().message();
  }
  Clock::time_point now = Clock::now();
  DriveEmulator emu;
  InProcessTransport transport;
  Drive drive;
};

TEST(WriteImage, EveryMode) {
  const auto image = build_test_microcode(kProduct, "1.04", 70'000, 2);
  struct Case {
    FlashOptions o;
    std::size_t commands;
  };
  const Case cases[] = {
      {{5, 32768, true}, 1},
      {{7, 32768, true}, 3},         // 32768 + 32768 + 4464
      {{7, 70'000, true}, 1},        // one chunk holds it all
      {{0x0E, 16384, true}, 5 + 1},  // five chunks, then 0x0F
  };
  for (const auto& c : cases) {
    Drive1 d;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;
    WriteHooks hooks;
    hooks.progress = [&](std::uint64_t done, std::uint64_t total) {
      seen.emplace_back(done, total);
    };
    auto r = write_image(d.drive, c.o, image, milliseconds(1000), hooks);
    ASSERT_TRUE(r.has_value()) << mode_name(c.o.mode) << ": " << r.error().message();
    const auto writes = d.emu.state()["writes"];
    EXPECT_EQ(writes.size(), c.commands) << mode_name(c.o.mode);
    std::uint64_t expect_off = 0;
    for (const auto& w : writes) {
      if (w["mode"] == 0x0F) continue;
      EXPECT_EQ(w["mode"], c.o.mode);
      EXPECT_EQ(w["offset"], expect_off);
      expect_off += w["length"].get<std::uint64_t>();
    }
    EXPECT_EQ(expect_off, image.size());
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.back().first, image.size());
    EXPECT_EQ(d.revision(), "1.04") << mode_name(c.o.mode);
  }
}

TEST(WriteImage, DeferredWithoutActivationWaitsForPowerOn) {
  Drive1 d;
  const auto image = build_test_microcode(kProduct, "1.04", 20'000, 2);
  ASSERT_TRUE(write_image(d.drive, {0x0E, 8192, false}, image, milliseconds(1000)));
  EXPECT_EQ(d.revision(), "1.01");
  EXPECT_EQ(d.emu.state()["deferred"], "1.04");
}

TEST(WriteImage, CancelledBetweenChunksLeavesTheOldMicrocode) {
  Drive1 d;
  const auto image = build_test_microcode(kProduct, "1.04", 20'000, 2);
  int asked = 0;
  WriteHooks hooks;
  hooks.cancelled = [&] { return ++asked >= 2; };
  auto r = write_image(d.drive, {7, 8192, true}, image, milliseconds(1000), hooks);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Errc::Cancelled);
  EXPECT_THAT(r.error().message(), HasSubstr("stopped at byte 8192 of 20000"));
  EXPECT_EQ(d.emu.state()["writes"].size(), 1u);
  EXPECT_EQ(d.revision(), "1.01");
  // The last chunk is never interrupted: with two chunks, cancellation is asked once.
  Drive1 e;
  int asked2 = 0;
  hooks.cancelled = [&] {
    ++asked2;
    return false;
  };
  ASSERT_TRUE(write_image(e.drive, {7, 16384, true}, image, milliseconds(1000), hooks));
  EXPECT_EQ(asked2, 1);
}

TEST(WriteImage, DriveRefusalIsAClearError) {
  Drive1 d;
  const auto other = build_test_microcode("BD-MLT UJ260", "1.04", 20'000, 2);
  auto r = write_image(d.drive, {7, 8192, true}, other, milliseconds(1000));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Errc::PreconditionFailed);
  EXPECT_THAT(r.error().message(),
              HasSubstr("WRITE BUFFER mode 0x07 at offset 16384 (3616 bytes): ILLEGAL REQUEST: "
                        "INVALID FIELD IN PARAMETER LIST (26/00)"));
  EXPECT_EQ(d.revision(), "1.01");
  EXPECT_FALSE(write_image(d.drive, {5, 1, true}, {}, milliseconds(1000)).has_value());
  EXPECT_FALSE(write_image(d.drive, {0x0F, 1, true}, other, milliseconds(1000)).has_value());
}

}  // namespace
}  // namespace labctl::optical_drive
