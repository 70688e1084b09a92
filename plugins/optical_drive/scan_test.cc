// `labctl drive scan` on fake sysfs trees: the layout the kernel makes (class/scsi_generic/sgN
// linking to the SCSI device's directory under devices/), a disk next to a drive, numeric order,
// no sg driver, no devices, junk.
#include "plugins/optical_drive/scan.h"

#include <unistd.h>

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace labctl::optical_drive {
namespace {

namespace fs = std::filesystem;

class Scan : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("labctl-scan-test-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  static void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }

  // A SCSI device at `hctl` with an sg node (and an sr node when `block` is given), as the kernel
  // lays it out: the class entry is a link into devices/.
  void device(const std::string& sg, const std::string& hctl, const std::string& type,
              const std::string& vendor, const std::string& model, const std::string& rev,
              const std::string& block = "") {
    const fs::path dev = root_ / "devices" / "pci0000:00" / ("host" + hctl.substr(0, 1)) / hctl;
    write(dev / "type", type + "\n");
    write(dev / "vendor", vendor + "\n");
    write(dev / "model", model + "\n");
    write(dev / "rev", rev + "\n");
    if (!block.empty()) fs::create_directories(dev / "block" / block);
    fs::create_directories(dev / "scsi_generic" / sg);
    fs::create_directory_symlink(dev, dev / "scsi_generic" / sg / "device");
    fs::create_directories(root_ / "class" / "scsi_generic");
    fs::create_directory_symlink(dev / "scsi_generic" / sg, root_ / "class" / "scsi_generic" / sg);
  }

  fs::path root_;
};

TEST_F(Scan, FindsTheDriveAmongDisks) {
  device("sg0", "0:0:0:0", "0", "ATA", "Samsung SSD 860", "4B6Q");
  device("sg1", "1:0:0:0", "5", "MATSHITA", "BD-MLT UJ240AS", "1.01", "sr0");
  device("sg10", "3:0:0:0", "5", "HL-DT-ST", "DVDRAM GH24NSD1", "LG00", "sr1");
  device("sg2", "2:0:0:0", "0", "USB", "Flash Disk", "1.00");
  auto r = scan_sysfs(root_);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_TRUE(r->class_present);
  ASSERT_EQ(r->all.size(), 4u);
  EXPECT_EQ(r->all[0].sg, "/dev/sg0");
  EXPECT_EQ(r->all[2].sg, "/dev/sg2");  // numeric order: sg2 before sg10
  EXPECT_EQ(r->all[3].sg, "/dev/sg10");
  const auto drives = r->drives();
  ASSERT_EQ(drives.size(), 2u);
  EXPECT_EQ(drives[0].sg, "/dev/sg1");
  EXPECT_EQ(drives[0].block, "/dev/sr0");
  EXPECT_EQ(drives[0].hctl, "1:0:0:0");
  EXPECT_EQ(drives[0].vendor, "MATSHITA");
  EXPECT_EQ(drives[0].model, "BD-MLT UJ240AS");
  EXPECT_EQ(drives[0].revision, "1.01");
  EXPECT_EQ(drives[0].type, 5);
  EXPECT_EQ(drives[1].block, "/dev/sr1");
  EXPECT_EQ(drives[0].to_json()["optical"], true);
}

TEST_F(Scan, NoSgDriverAndNoDevices) {
  auto none = scan_sysfs(root_);
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->class_present);
  EXPECT_TRUE(none->all.empty());
  fs::create_directories(root_ / "class" / "scsi_generic");
  auto empty = scan_sysfs(root_);
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->class_present);
  EXPECT_TRUE(empty->drives().empty());
}

TEST_F(Scan, JunkIsSkippedNotTrusted) {
  device("sg3", "4:0:0:0", "five", "X", "Y", "Z");
  write(root_ / "class" / "scsi_generic" / "notsg" / "device" / "type", "5\n");
  write(root_ / "class" / "scsi_generic" / "sgx" / "device" / "type", "5\n");
  // A huge attribute is read only so far.
  device("sg4", "5:0:0:0", "5", std::string(100'000, 'V'), "M", "R");
  auto r = scan_sysfs(root_);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->all.size(), 2u);
  EXPECT_EQ(r->all[0].type, -1);
  EXPECT_FALSE(r->all[0].optical());
  EXPECT_LE(r->all[1].vendor.size(), 256u);
  EXPECT_TRUE(r->all[1].optical());
}

}  // namespace
}  // namespace labctl::optical_drive
