#include "plugins/optical_drive/scsi.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace labctl::optical_drive::scsi {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Bytes hexbytes(const std::string& s) {
  Bytes out;
  for (std::size_t i = 0; i + 1 < s.size();) {
    if (s[i] == ' ') {
      ++i;
      continue;
    }
    out.push_back(static_cast<std::uint8_t>(std::stoi(s.substr(i, 2), nullptr, 16)));
    i += 2;
  }
  return out;
}

// ---- CDBs: every builder, byte for byte (SPC-4 / MMC-6 layouts) ----

struct CdbCase {
  const char* name;
  Bytes got;
  const char* want;
};

TEST(Cdb, EveryBuilderByteForByte) {
  const CdbCase cases[] = {
      {"TEST UNIT READY", test_unit_ready_cdb(), "00 00 00 00 00 00"},
      {"INQUIRY standard 96", inquiry_cdb(96), "12 00 00 00 60 00"},
      {"INQUIRY 0x1234", inquiry_cdb(0x1234), "12 00 00 12 34 00"},
      {"INQUIRY VPD 0x80", inquiry_cdb(252, true, 0x80), "12 01 80 00 fc 00"},
      {"INQUIRY page ignored without EVPD", inquiry_cdb(36, false, 0x80), "12 00 00 00 24 00"},
      {"REQUEST SENSE fixed", request_sense_cdb(18), "03 00 00 00 12 00"},
      {"REQUEST SENSE descriptor", request_sense_cdb(252, true), "03 01 00 00 fc 00"},
      {"GET CONFIGURATION current", get_configuration_cdb(1, 0, 512),
       "46 01 00 00 00 00 00 02 00 00"},
      {"GET CONFIGURATION one feature", get_configuration_cdb(2, 0x0107, 0xffff),
       "46 02 01 07 00 00 00 ff ff 00"},
      {"GET CONFIGURATION rt masked", get_configuration_cdb(7, 0, 8),
       "46 03 00 00 00 00 00 00 08 00"},
      {"WRITE BUFFER mode 5", *write_buffer_cdb(5, 0, 0, 0x123456),
       "3b 05 00 00 00 00 12 34 56 00"},
      {"WRITE BUFFER mode 7 offset", *write_buffer_cdb(7, 0, 0x010000, 0x8000),
       "3b 07 00 01 00 00 00 80 00 00"},
      {"WRITE BUFFER mode 0x0E buffer 2", *write_buffer_cdb(0x0E, 2, 0xfffffe, 1),
       "3b 0e 02 ff ff fe 00 00 01 00"},
      {"WRITE BUFFER mode 0x0F", *write_buffer_cdb(0x0F, 0, 0, 0), "3b 0f 00 00 00 00 00 00 00 00"},
  };
  for (const auto& c : cases)
    EXPECT_EQ(hex(c.got), std::string(c.want)) << c.name;
}

TEST(Cdb, WriteBufferFieldsThatDoNotFit) {
  EXPECT_TRUE(write_buffer_cdb(5, 0, kMax24, kMax24).has_value());
  auto off = write_buffer_cdb(7, 0, kMax24 + 1, 1);
  ASSERT_FALSE(off.has_value());
  EXPECT_THAT(off.error().message(), HasSubstr("offset 16777216 does not fit 24 bits"));
  auto len = write_buffer_cdb(5, 0, 0, 1u << 24);
  ASSERT_FALSE(len.has_value());
  EXPECT_THAT(len.error().message(), HasSubstr("length"));
  EXPECT_FALSE(write_buffer_cdb(0x20, 0, 0, 0).has_value());
}

TEST(Cdb, WriteBufferRoundTrip) {
  for (std::uint8_t mode : {0x05, 0x07, 0x0E, 0x0F}) {
    auto cdb = write_buffer_cdb(mode, 3, 0x00ABCD, 0x0FEDCB);
    ASSERT_TRUE(cdb.has_value());
    auto w = parse_write_buffer_cdb(*cdb);
    ASSERT_TRUE(w.has_value());
    EXPECT_EQ(w->mode, mode);
    EXPECT_EQ(w->buffer_id, 3);
    EXPECT_EQ(w->offset, 0x00ABCDu);
    EXPECT_EQ(w->length, 0x0FEDCBu);
  }
  EXPECT_FALSE(parse_write_buffer_cdb(hexbytes("3b 05 00")).has_value());
  EXPECT_FALSE(parse_write_buffer_cdb(test_unit_ready_cdb()).has_value());
  // MODE SPECIFIC (bits 7-5 of byte 1) is not part of the mode.
  auto w = parse_write_buffer_cdb(hexbytes("3b e7 00 00 00 00 00 00 10 00"));
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->mode, 7);
  EXPECT_EQ(w->mode_specific, 7);
}

TEST(Cdb, LengthByGroup) {
  EXPECT_EQ(cdb_length(kTestUnitReady), 6u);
  EXPECT_EQ(cdb_length(kInquiry), 6u);
  EXPECT_EQ(cdb_length(kWriteBuffer), 10u);
  EXPECT_EQ(cdb_length(kGetConfiguration), 10u);
  EXPECT_EQ(cdb_length(0x88), 16u);  // READ(16)
  EXPECT_EQ(cdb_length(0xA8), 12u);  // READ(12)
  EXPECT_EQ(cdb_length(0x7F), 0u);   // variable length
  EXPECT_EQ(cdb_length(0xC0), 0u);   // vendor specific
  EXPECT_EQ(opcode_name(0x3B), "WRITE BUFFER");
  EXPECT_EQ(opcode_name(0xA8), "operation 0xA8");
}

// ---- INQUIRY ----

// sg3_utils' own example (/work/shared/peers/sg/inq_std.hex); tests/drive cross-checks the parse
// against `sg_inq --inhex`.
const char* kSgInqStd =
    "00 00 06 02 1f 00 00 00 4c 41 42 43 54 4c 20 20 56 49 52 54 55 41 4c 2d 44 49 53 4b 20 20 "
    "20 20 31 2e 30 30";

TEST(Inquiry, ParsesStandardData) {
  auto q = parse_inquiry(hexbytes(kSgInqStd));
  ASSERT_TRUE(q.has_value()) << q.error().message();
  EXPECT_EQ(q->vendor, "LABCTL");
  EXPECT_EQ(q->product, "VIRTUAL-DISK");
  EXPECT_EQ(q->revision, "1.00");
  EXPECT_EQ(q->device_type, 0);
  EXPECT_EQ(q->qualifier, 0);
  EXPECT_FALSE(q->removable);
  EXPECT_EQ(q->version, 6);
  EXPECT_EQ(q->response_format, 2);
  EXPECT_EQ(q->additional_length, 0x1f);
}

TEST(Inquiry, OpticalDriveRoundTrip) {
  InquiryData in;
  in.device_type = kTypeOptical;
  in.removable = true;
  in.version = 5;
  in.response_format = 2;
  in.vendor = "MATSHITA";
  in.product = "BD-MLT UJ240AS";
  in.revision = "1.04";
  const Bytes b = build_inquiry(in, 60);
  ASSERT_EQ(b.size(), 96u);
  EXPECT_EQ(b[0], 0x05);
  EXPECT_EQ(b[1], 0x80);
  EXPECT_EQ(b[4], 91);
  EXPECT_EQ(std::string(b.begin() + 8, b.begin() + 16), "MATSHITA");
  EXPECT_EQ(std::string(b.begin() + 16, b.begin() + 32), "BD-MLT UJ240AS  ");
  EXPECT_EQ(std::string(b.begin() + 32, b.begin() + 36), "1.04");
  auto q = parse_inquiry(b);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->vendor, "MATSHITA");
  EXPECT_EQ(q->product, "BD-MLT UJ240AS");
  EXPECT_EQ(q->revision, "1.04");
  EXPECT_EQ(q->device_type, kTypeOptical);
  EXPECT_TRUE(q->removable);
  // Fields longer than their space are cut, not spilled into the next one.
  in.vendor = "VERYLONGVENDOR";
  auto cut = parse_inquiry(build_inquiry(in));
  ASSERT_TRUE(cut.has_value());
  EXPECT_EQ(cut->vendor, "VERYLONG");
  EXPECT_EQ(cut->product, "BD-MLT UJ240AS");
}

TEST(Inquiry, BadData) {
  struct Case {
    const char* name;
    Bytes data;
    const char* error;
  };
  Bytes nul = hexbytes(kSgInqStd);
  nul[10] = 0x00;  // inside the vendor field, before its padding
  Bytes ctl = hexbytes(kSgInqStd);
  ctl[33] = 0x07;
  Bytes short35 = hexbytes(kSgInqStd);
  short35.pop_back();
  const Case cases[] = {
      {"empty", {}, "0 bytes, the identification fields need 36"},
      {"35 bytes", short35, "35 bytes"},
      {"NUL in vendor", nul, "INQUIRY vendor: byte 10 is 0x00"},
      {"control in revision", ctl, "INQUIRY revision: byte 33 is 0x07"},
  };
  for (const auto& c : cases) {
    auto q = parse_inquiry(c.data);
    ASSERT_FALSE(q.has_value()) << c.name;
    EXPECT_THAT(q.error().message(), HasSubstr(c.error)) << c.name;
    EXPECT_EQ(q.error().code(), Errc::InvalidInput);
  }
  // NUL padding after the text (against the standard, seen in the field) is accepted.
  Bytes padded = hexbytes(kSgInqStd);
  padded[34] = padded[35] = 0;
  auto q = parse_inquiry(padded);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->revision, "1.");
}

TEST(Inquiry, UnitSerialPage) {
  auto s = parse_unit_serial(build_unit_serial(kTypeOptical, "HM12345678"));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(*s, "HM12345678");
  // Left-padded serial, length field shorter than the buffer.
  auto left = parse_unit_serial(hexbytes("05 80 00 06 20 20 41 42 43 20 58 58"));
  ASSERT_TRUE(left.has_value());
  EXPECT_EQ(*left, "ABC");
  // Length field longer than the buffer: the buffer wins.
  auto longer = parse_unit_serial(hexbytes("05 80 00 40 41 42"));
  ASSERT_TRUE(longer.has_value());
  EXPECT_EQ(*longer, "AB");
  EXPECT_FALSE(parse_unit_serial(hexbytes("05 80 00")).has_value());
  auto wrong = parse_unit_serial(hexbytes("05 83 00 00"));
  ASSERT_FALSE(wrong.has_value());
  EXPECT_THAT(wrong.error().message(), HasSubstr("page code 0x83, expected 0x80"));
  EXPECT_FALSE(parse_unit_serial(hexbytes("05 80 00 02 41 01")).has_value());
}

TEST(Inquiry, DeviceTypeNames) {
  EXPECT_EQ(device_type_name(5), "CD/DVD/BD drive");
  EXPECT_EQ(device_type_name(0), "disk");
  EXPECT_EQ(device_type_name(0x11), "device type 0x11");
}

// ---- GET CONFIGURATION ----

TEST(Configuration, HeaderAndProfileList) {
  // A BD-ROM disc in a drive that knows BD-RE, BD-ROM and DVD-ROM, then the Core feature.
  const Bytes d = hexbytes(
      "00 00 00 1c 00 00 00 40"  // data length 28, current profile 0x0040
      "00 00 03 0c"              // feature 0: persistent, current, 12 bytes
      "00 43 00 00 00 40 01 00 00 10 00 00"
      "00 01 0b 04 00 00 00 02");  // feature 1 (Core), version 2, 4 bytes
  auto c = parse_configuration(d);
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->data_length, 28u);
  EXPECT_EQ(c->current_profile, 0x0040);
  EXPECT_FALSE(c->truncated);
  ASSERT_EQ(c->features.size(), 2u);
  EXPECT_EQ(c->features[0].code, 0);
  EXPECT_TRUE(c->features[0].current);
  EXPECT_TRUE(c->features[0].persistent);
  EXPECT_EQ(c->features[1].code, 1);
  EXPECT_EQ(c->features[1].version, 2);
  EXPECT_THAT(c->profiles(), ElementsAre(0x0043, 0x0040, 0x0010));
}

TEST(Configuration, TruncatedAndHostile) {
  // The header claims 1000 bytes, the allocation length gave 16: the descriptors that fit.
  auto t = parse_configuration(hexbytes("00 00 03 e8 00 00 00 00 00 00 03 08 00 43 00 00"));
  ASSERT_TRUE(t.has_value());
  EXPECT_TRUE(t->truncated);
  EXPECT_TRUE(t->features.empty());  // the profile list needs 12 bytes, 4 are there
  // A descriptor whose length runs past the data length ends the list.
  auto past = parse_configuration(hexbytes("00 00 00 08 00 00 00 08 00 00 03 ff"));
  ASSERT_TRUE(past.has_value());
  EXPECT_TRUE(past->truncated);
  EXPECT_EQ(past->current_profile, 8);
  // Shorter than the header.
  auto short_ = parse_configuration(hexbytes("00 00 00 04 00 00 00"));
  ASSERT_FALSE(short_.has_value());
  EXPECT_THAT(short_.error().message(), HasSubstr("the feature header needs 8"));
  // A data length below the header's own size.
  auto tiny = parse_configuration(hexbytes("00 00 00 02 00 00 00 00"));
  ASSERT_FALSE(tiny.has_value());
  EXPECT_THAT(tiny.error().message(), HasSubstr("shorter than the feature header"));
  // Data after the claimed length is ignored.
  auto extra = parse_configuration(hexbytes("00 00 00 04 00 00 00 10 00 00 03 00"));
  ASSERT_TRUE(extra.has_value());
  EXPECT_TRUE(extra->features.empty());
  EXPECT_FALSE(extra->truncated);
}

TEST(Configuration, BuilderRoundTripAndAllocation) {
  const Bytes full = build_configuration(0x0010, {0x0043, 0x0010, 0x0008}, 1000);
  auto c = parse_configuration(full);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->current_profile, 0x0010);
  EXPECT_THAT(c->profiles(), ElementsAre(0x0043, 0x0010, 0x0008));
  ASSERT_EQ(c->features.size(), 1u);
  EXPECT_EQ(c->features[0].data[4 + 2], 0x01);  // CurrentP on DVD-ROM
  EXPECT_EQ(c->features[0].data[2], 0x00);
  const Bytes cut = build_configuration(0, {0x0043, 0x0010}, 8);
  ASSERT_EQ(cut.size(), 8u);
  auto h = parse_configuration(cut);
  ASSERT_TRUE(h.has_value());
  EXPECT_TRUE(h->truncated);
  EXPECT_EQ(h->current_profile, 0);
}

TEST(Configuration, ProfileNamesAndClasses) {
  struct Case {
    std::uint16_t p;
    const char* name;
    const char* cls;
  };
  const Case cases[] = {{0x0000, "none", "none"},
                        {0x0008, "CD-ROM", "CD"},
                        {0x000A, "CD-RW", "CD"},
                        {0x0010, "DVD-ROM", "DVD"},
                        {0x001B, "DVD+R", "DVD"},
                        {0x002B, "DVD+R DL", "DVD"},
                        {0x0040, "BD-ROM", "BD"},
                        {0x0043, "BD-RE", "BD"},
                        {0x0050, "profile 0x0050", "other"},
                        {0xFFFF, "non-conforming", "other"}};
  for (const auto& c : cases) {
    EXPECT_EQ(profile_name(c.p), c.name);
    EXPECT_EQ(profile_class(c.p), c.cls) << c.name;
  }
}

// ---- Sense data ----

struct SenseCase {
  const char* name;
  Bytes data;
  std::uint8_t key, asc, ascq;
  bool descriptor;
  const char* text;
};

TEST(Sense, FixedAndDescriptorTable) {
  const SenseCase cases[] = {
      {"no medium, tray closed", build_fixed_sense(kNotReady, 0x3A, 0x01), kNotReady, 0x3A, 1,
       false, "NOT READY: MEDIUM NOT PRESENT - TRAY CLOSED (3A/01)"},
      {"becoming ready 50%", build_fixed_sense(kNotReady, 0x04, 0x01, 32768), kNotReady, 4, 1,
       false, "NOT READY: LOGICAL UNIT IS IN PROCESS OF BECOMING READY (04/01), 50% done"},
      {"microcode changed", build_fixed_sense(kUnitAttention, 0x3F, 0x01), kUnitAttention, 0x3F, 1,
       false, "UNIT ATTENTION: MICROCODE HAS BEEN CHANGED (3F/01)"},
      {"bad image (descriptor)", build_descriptor_sense(kIllegalRequest, 0x26, 0x00),
       kIllegalRequest, 0x26, 0, true, "ILLEGAL REQUEST: INVALID FIELD IN PARAMETER LIST (26/00)"},
      {"sequence error", build_descriptor_sense(kIllegalRequest, 0x2C, 0x00, 7), kIllegalRequest,
       0x2C, 0, true, "ILLEGAL REQUEST: COMMAND SEQUENCE ERROR (2C/00)"},
      {"power on", hexbytes("f0 00 06 00 00 00 00 0a 00 00 00 00 29 01 00 00 00 00"),
       kUnitAttention, 0x29, 1, false, "UNIT ATTENTION: POWER ON OCCURRED (29/01)"},
      {"unknown code", hexbytes("70 00 04 00 00 00 00 0a 00 00 00 00 99 42"), kHardwareError, 0x99,
       0x42, false, "HARDWARE ERROR: ASC 0x99 ASCQ 0x42 (99/42)"},
      {"deferred", hexbytes("71 00 03 00 00 00 00 06 00 00 00 00 0c 00"), kMediumError, 0x0C, 0,
       false, "MEDIUM ERROR: WRITE ERROR (0C/00) [deferred error]"},
  };
  for (const auto& c : cases) {
    auto s = parse_sense(c.data);
    ASSERT_TRUE(s.has_value()) << c.name << ": " << s.error().message();
    EXPECT_EQ(s->key, c.key) << c.name;
    EXPECT_EQ(s->asc, c.asc) << c.name;
    EXPECT_EQ(s->ascq, c.ascq) << c.name;
    EXPECT_EQ(s->descriptor_format, c.descriptor) << c.name;
    EXPECT_EQ(describe(*s), c.text) << c.name;
  }
}

TEST(Sense, InformationAndProgress) {
  // Fixed with VALID: the information field.
  auto fixed = parse_sense(hexbytes("f0 00 03 00 01 02 03 0a 00 00 00 00 11 00 00 00 00 00"));
  ASSERT_TRUE(fixed.has_value());
  EXPECT_EQ(fixed->information, 0x00010203u);
  EXPECT_FALSE(fixed->progress.has_value());  // not NOT READY
  // Descriptor: information descriptor (VALID) and a progress in the sense-key specific one.
  auto desc =
      parse_sense(hexbytes("72 02 04 01 00 00 00 14"
                           "00 0a 80 00 00 00 00 00 00 00 12 34"
                           "02 06 00 00 80 40 00 00"));
  ASSERT_TRUE(desc.has_value());
  EXPECT_EQ(desc->information, 0x1234u);
  EXPECT_EQ(desc->progress, 0x4000);
  // The additional length bounds the fields: ASC/ASCQ beyond it read as 0.
  auto bounded = parse_sense(hexbytes("70 00 02 00 00 00 00 04 00 00 00 00 3a 01"));
  ASSERT_TRUE(bounded.has_value());
  EXPECT_EQ(bounded->asc, 0);
  // A descriptor that runs past the buffer is ignored, not read.
  auto cut = parse_sense(hexbytes("72 05 24 00 00 00 00 20 00 0a 80 00"));
  ASSERT_TRUE(cut.has_value());
  EXPECT_FALSE(cut->information.has_value());
  EXPECT_EQ(cut->asc, 0x24);
}

TEST(Sense, BadBuffers) {
  struct Case {
    Bytes data;
    const char* error;
  };
  const Case cases[] = {
      {{}, "empty"},
      {hexbytes("70 00 02 00 00 00 00 0a 00 00 00 00 3a"), "ASC and ASCQ need 14"},
      {hexbytes("72 02 3a 00 00 00 00"), "the header needs 8"},
      {hexbytes("7f 00 00 00 00 00 00 00"), "response code 0x7F"},
      {hexbytes("00 00 00 00 00 00 00 00 00 00 00 00 00 00"), "response code 0x00"},
  };
  for (const auto& c : cases) {
    auto s = parse_sense(c.data);
    ASSERT_FALSE(s.has_value()) << c.error;
    EXPECT_THAT(s.error().message(), HasSubstr(c.error));
  }
}

TEST(Sense, NamesAndStatus) {
  EXPECT_EQ(sense_key_name(kNotReady), "NOT READY");
  EXPECT_EQ(sense_key_name(0x1F), "COMPLETED");  // masked to 4 bits
  EXPECT_EQ(asc_name(0x3A, 0x02), "MEDIUM NOT PRESENT - TRAY OPEN");
  EXPECT_EQ(asc_name(0x04, 0x07), "LOGICAL UNIT NOT READY, OPERATION IN PROGRESS");
  EXPECT_EQ(status_name(kGood), "GOOD");
  EXPECT_EQ(status_name(kCheckCondition), "CHECK CONDITION");
  EXPECT_EQ(status_name(kBusy), "BUSY");
  EXPECT_EQ(status_name(0x22), "status 0x22");
  const auto j = to_json(*parse_sense(build_fixed_sense(kNotReady, 0x3A, 0x02)));
  EXPECT_EQ(j["key_name"], "NOT READY");
  EXPECT_EQ(j["asc_name"], "MEDIUM NOT PRESENT - TRAY OPEN");
  EXPECT_EQ(j["format"], "fixed");
}

}  // namespace
}  // namespace labctl::optical_drive::scsi
