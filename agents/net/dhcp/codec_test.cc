#include "agents/net/dhcp/codec.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace labctl::dhcp {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes bytes(std::string_view s) {
  return {s.begin(), s.end()};
}

// A raw packet: 236-byte header (op, xid, chaddr 00:0b:82:01:fc:42 and the given fields), the
// magic cookie, then `options` as given (no end option added).
Bytes raw_packet(const Bytes& options, std::uint8_t op = kBootRequest, std::string_view sname = "",
                 std::string_view file = "") {
  Bytes p(kOptionsOffset, 0);
  p[0] = op;
  p[1] = 1;
  p[2] = 6;
  p[4] = 0x39;
  p[5] = 0x03;
  p[6] = 0xf3;
  p[7] = 0x26;
  const std::uint8_t mac[] = {0x00, 0x0b, 0x82, 0x01, 0xfc, 0x42};
  std::copy(std::begin(mac), std::end(mac), p.begin() + 28);
  std::copy(sname.begin(), sname.end(), p.begin() + kSnameOffset);
  std::copy(file.begin(), file.end(), p.begin() + kFileOffset);
  p[236] = 0x63;
  p[237] = 0x82;
  p[238] = 0x53;
  p[239] = 0x63;
  p.insert(p.end(), options.begin(), options.end());
  return p;
}

std::string parse_error(const Bytes& p) {
  auto r = parse(p);
  EXPECT_FALSE(r.has_value());
  if (r) return "";
  EXPECT_EQ(r.error().code(), Errc::InvalidInput);
  return r.error().message();
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

// A Cisco CP-7911G's DHCPDISCOVER as seen in the field.
Bytes phone_discover() {
  Bytes o = {53, 1, 1, 61, 7, 1, 0x00, 0x0b, 0x82, 0x01, 0xfc, 0x42, 57, 2, 0x05, 0xdc};
  const Bytes prl = {55, 9, 1, 3, 6, 15, 42, 66, 150, 151, 152};
  o.insert(o.end(), prl.begin(), prl.end());
  const std::string vendor = "Cisco Systems, Inc. IP Phone CP-7911G";
  o.push_back(60);
  o.push_back(static_cast<std::uint8_t>(vendor.size()));
  o.insert(o.end(), vendor.begin(), vendor.end());
  const std::string host = "SEP000B8201FC42";
  o.push_back(12);
  o.push_back(static_cast<std::uint8_t>(host.size()));
  o.insert(o.end(), host.begin(), host.end());
  o.push_back(255);
  Bytes p = raw_packet(o);
  p[10] = 0x80;  // broadcast
  p.resize(std::max<std::size_t>(p.size(), 300), 0);
  return p;
}

TEST(DhcpCodec, ParsesPhoneDiscover) {
  auto r = parse(phone_discover());
  ASSERT_TRUE(r) << r.error().message();
  const Message& m = *r;
  EXPECT_EQ(m.op, kBootRequest);
  EXPECT_EQ(m.htype, 1);
  EXPECT_EQ(m.hlen, 6);
  EXPECT_EQ(m.xid, 0x3903f326u);
  EXPECT_TRUE(m.broadcast());
  EXPECT_EQ(mac_string(m), "00:0b:82:01:fc:42");
  EXPECT_EQ(m.sname, "");
  EXPECT_EQ(m.file, "");
  EXPECT_EQ(m.overload, 0);
  EXPECT_EQ(message_type(m), MessageType::Discover);
  EXPECT_EQ(max_message_size(m), 1500);
  EXPECT_EQ(client_id(m), (Bytes{1, 0x00, 0x0b, 0x82, 0x01, 0xfc, 0x42}));
  EXPECT_EQ(parameter_request_list(m), (Bytes{1, 3, 6, 15, 42, 66, 150, 151, 152}));
  EXPECT_EQ(vendor_class(m), "Cisco Systems, Inc. IP Phone CP-7911G");
  EXPECT_EQ(hostname(m), "SEP000B8201FC42");
  EXPECT_FALSE(requested_ip(m));
  EXPECT_FALSE(server_id(m));
  EXPECT_FALSE(lease_time(m));
  ASSERT_EQ(m.options.size(), 6u);
  EXPECT_EQ(m.options.items()[0].code, opt::kMessageType);
  EXPECT_EQ(m.options.items()[5].code, opt::kHostname);
  EXPECT_TRUE(check_known_options(m));
}

TEST(DhcpCodec, ParsesRequestAccessors) {
  auto r = parse(raw_packet(
      {53, 1, 3, 50, 4, 10, 99, 1, 5, 54, 4, 10, 99, 0, 1, 51, 4, 0, 0, 0x0e, 0x10, 255}));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(message_type(*r), MessageType::Request);
  EXPECT_EQ(requested_ip(*r), 0x0a630105u);
  EXPECT_EQ(server_id(*r), 0x0a630001u);
  EXPECT_EQ(lease_time(*r), 3600u);
  EXPECT_EQ(describe(*r),
            "DHCPREQUEST xid=0x3903f326 chaddr=00:0b:82:01:fc:42 requested=10.99.1.5 "
            "server=10.99.0.1 lease=3600s options=53,50,54,51");
}

TEST(DhcpCodec, RoundTripsEveryField) {
  Message m;
  m.op = kBootReply;
  m.htype = 1;
  m.hlen = 6;
  m.hops = 2;
  m.xid = 0xdeadbeef;
  m.secs = 7;
  m.flags = kFlagBroadcast;
  m.ciaddr = 0x0a000001;
  m.yiaddr = 0x0a630105;
  m.siaddr = 0x0a630001;
  m.giaddr = 0x0a010101;
  for (std::size_t i = 0; i < kChaddrSize; ++i)
    m.chaddr[i] = static_cast<std::uint8_t>(i * 17);
  m.sname = "tftp.lab";
  m.file = std::string(kFileSize, 'f');  // a full field has no NUL
  m.options.set(opt::kMessageType, {5});
  m.options.set(opt::kServerId, encode_u32(0x0a630001));
  m.options.set(opt::kCiscoTftpServers, encode_ipv4_list(std::vector<std::uint32_t>{1, 2, 3}));
  m.options.set(80, {});                // zero-length (rapid commit)
  m.options.set(43, Bytes(700, 0xab));  // longer than one instance
  m.options.set(opt::kTftpServerName, encode_text("10.99.0.1"));
  auto b = build(m);
  ASSERT_TRUE(b) << b.error().message();
  auto back = parse(*b);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, m);
  EXPECT_EQ(describe(*back).substr(0, 7), "DHCPACK");
}

TEST(DhcpCodec, ConcatenatesRepeatedOptions) {
  auto r = parse(raw_packet({150, 4, 10, 99, 0, 1, 53, 1, 1, 150, 4, 10, 99, 0, 2, 255}));
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->options.size(), 2u);
  EXPECT_EQ(r->options.items()[0].code, 150);
  EXPECT_EQ(ipv4_list_option(*r, 150), (std::vector<std::uint32_t>{0x0a630001, 0x0a630002}));
}

TEST(DhcpCodec, MissingEndAndTrailingBytes) {
  auto r = parse(raw_packet({53, 1, 1, 0, 0}));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(message_type(*r), MessageType::Discover);
  // After the end option anything goes, even what would be a broken option.
  auto t = parse(raw_packet({53, 1, 2, 255, 150, 200, 1}));
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->options.size(), 1u);
}

TEST(DhcpCodec, OverloadReadsFileThenSname) {
  Bytes p = raw_packet({53, 1, 5, 52, 1, 3, 150, 4, 10, 99, 0, 1, 255});
  const Bytes in_file = {150, 4, 10, 99, 0, 2, 66, 4, 't', 'f', 't', 'p', 255};
  const Bytes in_sname = {0, 0, 150, 4, 10, 99, 0, 3, 12, 2, 'h', 'i', 255};
  std::copy(in_file.begin(), in_file.end(), p.begin() + kFileOffset);
  std::copy(in_sname.begin(), in_sname.end(), p.begin() + kSnameOffset);
  auto r = parse(p);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->overload, 3);
  EXPECT_EQ(r->file, "");
  EXPECT_EQ(r->sname, "");
  EXPECT_FALSE(r->options.has(opt::kOverload));
  EXPECT_EQ(ipv4_list_option(*r, 150),
            (std::vector<std::uint32_t>{0x0a630001, 0x0a630002, 0x0a630003}));
  EXPECT_EQ(text_option(*r, 66), "tftp");
  EXPECT_EQ(hostname(*r), "hi");
  // Order of first appearance: options field, file, sname.
  ASSERT_EQ(r->options.size(), 4u);
  EXPECT_EQ(r->options.items()[2].code, 66);
  EXPECT_EQ(r->options.items()[3].code, 12);

  // Overload 1: only file; sname stays a name.
  Bytes q = raw_packet({52, 1, 1, 255}, kBootRequest, "server1");
  std::copy(in_file.begin(), in_file.end(), q.begin() + kFileOffset);
  auto s = parse(q);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->sname, "server1");
  EXPECT_EQ(s->overload, 1);
  EXPECT_EQ(text_option(*s, 66), "tftp");
}

TEST(DhcpCodec, MalformedPacketsNameReasonAndOffset) {
  EXPECT_CONTAINS(parse_error({}), "empty packet");
  EXPECT_CONTAINS(parse_error(Bytes(100, 0)),
                  "truncated: 100 bytes, the BOOTP header ends at offset 236");
  EXPECT_CONTAINS(parse_error(Bytes(238, 0)), "no room for the magic cookie at offset 236");
  Bytes bad = raw_packet({53, 1, 1, 255});
  bad[239] = 0x64;
  EXPECT_CONTAINS(parse_error(bad), "bad magic cookie 0x63825364 at offset 236");
  // Option 150 at offset 243 claims 8 bytes but only 2 follow.
  EXPECT_CONTAINS(
      parse_error(raw_packet({53, 1, 1, 150, 8, 10, 99})),
      "option 150 at offset 243: length 8 runs past the end of the options field at 247");
  EXPECT_CONTAINS(parse_error(raw_packet({53, 1, 1, 150})),
                  "option 150 at offset 243: no length byte");
  EXPECT_CONTAINS(parse_error(raw_packet({52, 2, 1, 1, 255})), "overload has length 2");
  EXPECT_CONTAINS(parse_error(raw_packet({52, 1, 4, 255})), "overload value 4");
  EXPECT_CONTAINS(parse_error(raw_packet({52, 1, 1, 52, 1, 1, 255})), "appears twice");
  EXPECT_CONTAINS(parse_error(Bytes(kMaxPacket + 1, 0)), "larger than 65535");
}

TEST(DhcpCodec, OverloadInsideFileIsRefusedNotFollowed) {
  // The file field claims overload again: parsing it must not loop back or recurse.
  Bytes p = raw_packet({53, 1, 1, 52, 1, 1, 255});
  const Bytes in_file = {52, 1, 3, 255};
  std::copy(in_file.begin(), in_file.end(), p.begin() + kFileOffset);
  EXPECT_CONTAINS(parse_error(p),
                  "option 52 at offset 108: option overload inside the file field (overload)");
  // And an option in the sname field that runs past that field's end (offset 44 + 60).
  Bytes q = raw_packet({52, 1, 2, 255});
  q[kSnameOffset + 60] = 150;
  q[kSnameOffset + 61] = 8;
  EXPECT_CONTAINS(parse_error(q),
                  "option 150 at offset 104: length 8 runs past the end of the sname field "
                  "(overload) at 108");
}

TEST(DhcpCodec, LargestPacket) {
  Bytes p = raw_packet({53, 1, 1});
  p.resize(kMaxPacket, 0);  // pads up to 65535 bytes, no end option
  auto r = parse(p);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(message_type(*r), MessageType::Discover);
  // The same size, filled with 255-byte options of one code: concatenated.
  Bytes q = raw_packet({});
  while (q.size() + 257 <= kMaxPacket) {
    q.push_back(43);
    q.push_back(255);
    q.resize(q.size() + 255, 0x5a);
  }
  q.resize(kMaxPacket, 0);
  auto s = parse(q);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->options.find(43)->size(), (kMaxPacket - 240) / 257 * 255);
}

TEST(DhcpCodec, AccessorsRefuseWrongLengths) {
  auto r = parse(raw_packet({53, 2, 1, 1, 50, 3, 1, 2, 3, 57, 1, 9, 61, 1, 1, 55, 0, 12, 0, 255}));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(message_type(*r));
  EXPECT_FALSE(requested_ip(*r));
  EXPECT_FALSE(max_message_size(*r));
  EXPECT_FALSE(client_id(*r));
  EXPECT_FALSE(parameter_request_list(*r));
  EXPECT_FALSE(hostname(*r));
  auto s = check_known_options(*r);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message(), "option 53 (message type) has length 2, expected 1");
  EXPECT_CONTAINS(describe(*r), "DHCP (malformed type)");
}

TEST(DhcpCodec, TextOptionDropsTrailingNul) {
  auto r = parse(raw_packet({66, 10, '1', '0', '.', '9', '9', '.', '0', '.', '1', 0, 255}));
  ASSERT_TRUE(r);
  EXPECT_EQ(text_option(*r, 66), "10.99.0.1");
}

TEST(DhcpCodec, Encoders) {
  const std::vector<std::uint32_t> ips = {0x0a630001, 0x0a630002};
  EXPECT_EQ(encode_tlv(opt::kCiscoTftpServers, encode_ipv4_list(ips)),
            (Bytes{0x96, 0x08, 0x0a, 0x63, 0x00, 0x01, 0x0a, 0x63, 0x00, 0x02}));
  EXPECT_EQ(hex_string(encode_tlv(150, encode_ipv4_list(ips))), "96080a6300010a630002");
  EXPECT_EQ(encode_text("10.99.0.1"), bytes("10.99.0.1"));  // no trailing NUL
  EXPECT_EQ(encode_u32(3600), (Bytes{0, 0, 0x0e, 0x10}));
  EXPECT_EQ(encode_u16(1500), (Bytes{0x05, 0xdc}));
  EXPECT_EQ(encode_tlv(80, {}), (Bytes{80, 0}));
  const Bytes big(300, 1);
  const Bytes tlv = encode_tlv(43, big);
  ASSERT_EQ(tlv.size(), 304u);
  EXPECT_EQ(tlv[1], 255);
  EXPECT_EQ(tlv[257], 43);
  EXPECT_EQ(tlv[258], 45);
}

TEST(DhcpCodec, TextForms) {
  const std::uint8_t mac[] = {0x00, 0x0B, 0x82, 0xAB, 0xFC, 0x42};
  EXPECT_EQ(mac_string(mac), "00:0b:82:ab:fc:42");
  EXPECT_EQ(mac_string(std::span<const std::uint8_t>()), "");
  Message m;
  m.hlen = 200;  // clamped to chaddr's 16 bytes
  EXPECT_EQ(mac_string(m).size(), 16u * 3 - 1);
  EXPECT_EQ(ipv4_string(0x0a630001), "10.99.0.1");
  EXPECT_EQ(parse_ipv4("10.99.0.1"), 0x0a630001u);
  EXPECT_EQ(parse_ipv4("255.255.255.255"), 0xffffffffu);
  EXPECT_EQ(parse_ipv4("0.0.0.0"), 0u);
  for (const char* bad : {"", "10.99.0", "10.99.0.1.", "10.99.0.256", "010.1.1.1", "1..1.1",
                          "a.b.c.d", " 10.0.0.1", "10.0.0.1 ", "1000.1.1.1", "-1.0.0.0"})
    EXPECT_FALSE(parse_ipv4(bad)) << bad;
  EXPECT_EQ(message_type_name(MessageType::Inform), "DHCPINFORM");
  EXPECT_EQ(message_type_name(static_cast<MessageType>(99)), "DHCP type 99");
  // Untrusted text is escaped in log lines.
  Message h;
  h.options.set(opt::kHostname, bytes("evil\n\"name\x01"));
  EXPECT_CONTAINS(describe(h), "hostname=\"evil\\x0a\\x22name\\x01\"");
  EXPECT_CONTAINS(describe(h), "BOOTREQUEST");
}

TEST(DhcpCodec, BuildRefusesWhatCannotBeEncoded) {
  Message m;
  m.sname = std::string(65, 'a');
  EXPECT_FALSE(build(m));
  m.sname = std::string("a\0b", 3);
  EXPECT_FALSE(build(m));
  m.sname = "";
  m.options.set(opt::kOverload, {1});
  auto r = build(m);
  ASSERT_FALSE(r);
  EXPECT_CONTAINS(r.error().message(), "option 52 cannot be sent");
  Message big;
  big.options.set(43, Bytes(kMaxPacket, 0));
  auto b = build(big);
  ASSERT_FALSE(b);
  EXPECT_CONTAINS(b.error().message(), "larger than 65535");
}

// ---- build_reply
// ---------------------------------------------------------------------------------

ReplyPlan ack_plan() {
  ReplyPlan plan;
  plan.skeleton.op = kBootReply;
  plan.skeleton.xid = 0x3903f326;
  plan.skeleton.yiaddr = 0x0a630105;
  plan.skeleton.chaddr = {0x00, 0x0b, 0x82, 0x01, 0xfc, 0x42};
  plan.options.set(opt::kSubnetMask, encode_u32(0xffff0000));
  plan.options.set(opt::kRouter, encode_ipv4_list(std::vector<std::uint32_t>{0x0a630001}));
  plan.options.set(opt::kDnsServers, encode_ipv4_list(std::vector<std::uint32_t>{0x0a630001}));
  plan.options.set(opt::kCiscoTftpServers,
                   encode_ipv4_list(std::vector<std::uint32_t>{0x0a630001, 0x0a630002}));
  plan.options.set(opt::kTftpServerName, encode_text("10.99.0.1"));
  plan.options.set(opt::kDomainName, encode_text("lab"));
  plan.options.set(opt::kRelayAgentInfo, {1, 3, 'e', 't', '0'});
  plan.options.set(opt::kLeaseTime, encode_u32(3600));
  plan.options.set(opt::kServerId, encode_u32(0x0a630001));
  plan.options.set(opt::kMessageType, {5});
  return plan;
}

std::vector<std::uint8_t> codes_of(const Message& m) {
  std::vector<std::uint8_t> out;
  for (const auto& o : m.options.items())
    out.push_back(o.code);
  return out;
}

TEST(DhcpBuildReply, FollowsParameterRequestListOrder) {
  ReplyPlan plan = ack_plan();
  plan.parameter_request_list = {150, 1, 66, 3, 150, 200, 53};  // dup, unknown, protocol
  plan.always_send = {6, 66};
  auto r = build_reply(plan);
  ASSERT_TRUE(r) << r.error().message();
  // Protocol options first (53 first), then PRL order, then always-send, then 82; 15 was not
  // asked for and is not always-send: not sent, not "dropped".
  const Bytes want = {53, 54, 51, 150, 1, 66, 3, 6, 82};
  EXPECT_EQ(r->sent, want);
  EXPECT_TRUE(r->dropped.empty());
  EXPECT_EQ(r->overload, 0);
  EXPECT_LE(r->bytes.size(), 548u);
  auto back = parse(r->bytes);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(codes_of(*back), want);
  EXPECT_EQ(back->xid, 0x3903f326u);
  EXPECT_EQ(back->yiaddr, 0x0a630105u);
  EXPECT_EQ(*back->options.find(150), *plan.options.find(150));
  // Byte-exact option 150 in the reply.
  const Bytes tlv150 = {0x96, 0x08, 0x0a, 0x63, 0x00, 0x01, 0x0a, 0x63, 0x00, 0x02};
  EXPECT_NE(std::search(r->bytes.begin(), r->bytes.end(), tlv150.begin(), tlv150.end()),
            r->bytes.end());
}

TEST(DhcpBuildReply, UsesOverloadWhenOptionsDoNotFit) {
  ReplyPlan plan = ack_plan();
  plan.options.set(43, Bytes(200, 0x43));  // vendor-specific, large
  plan.options.set(125, Bytes(120, 0x7d));
  plan.parameter_request_list = {1, 3, 6, 15, 43, 66, 150, 125};
  auto r = build_reply(plan);  // default 576: 548 bytes of DHCP message, 307 for options + end
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->dropped.empty());
  EXPECT_NE(r->overload, 0);
  EXPECT_LE(r->bytes.size(), 576u - 28);
  auto back = parse(r->bytes);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->overload, r->overload);
  for (std::uint8_t code : r->sent) {
    ASSERT_NE(back->options.find(code), nullptr) << int(code);
    EXPECT_EQ(*back->options.find(code), *plan.options.find(code)) << int(code);
  }
  EXPECT_EQ(back->options.size(), r->sent.size());

  // With a boot file name set, only sname may carry options.
  plan.skeleton.file = "SEP000B8201FC42.cnf.xml";
  plan.options.set(125, Bytes(40, 0x7d));
  auto s = build_reply(plan);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->overload, 2);
  auto sback = parse(s->bytes);
  ASSERT_TRUE(sback) << sback.error().message();
  EXPECT_EQ(sback->file, "SEP000B8201FC42.cnf.xml");
  EXPECT_EQ(sback->sname, "");
}

TEST(DhcpBuildReply, DropsLeastRequestedAndHonoursMaxSize) {
  ReplyPlan plan = ack_plan();
  plan.options.set(43, Bytes(255, 0x43));
  plan.options.set(125, Bytes(255, 0x7d));
  plan.options.set(120, Bytes(20, 0x78));
  plan.parameter_request_list = {1, 3, 150, 66, 43, 125, 120};
  auto r = build_reply(plan);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_LE(r->bytes.size(), 548u);
  // 43 fits (into the options field), 125 does not fit anywhere; 120, less wanted than 125 and
  // dropped first, is put back.
  EXPECT_EQ(r->dropped, (Bytes{125}));
  auto back = parse(r->bytes);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_FALSE(back->options.has(125));
  EXPECT_TRUE(back->options.has(120));
  EXPECT_TRUE(back->options.has(150));

  // A client that accepts 1500 bytes gets everything without overload.
  plan.max_message_size = 1500;
  auto big = build_reply(plan);
  ASSERT_TRUE(big);
  EXPECT_TRUE(big->dropped.empty());
  EXPECT_EQ(big->overload, 0);
  EXPECT_LE(big->bytes.size(), 1500u - 28);

  // Values below 576 are treated as 576, never less.
  plan.max_message_size = 100;
  auto small = build_reply(plan);
  ASSERT_TRUE(small);
  EXPECT_EQ(small->bytes.size(), r->bytes.size());
  EXPECT_EQ(small->dropped, r->dropped);
}

TEST(DhcpBuildReply, NeverExceedsMaxSize) {
  std::mt19937 rng(1234);
  for (int round = 0; round < 300; ++round) {
    ReplyPlan plan = ack_plan();
    const int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      const auto code = static_cast<std::uint8_t>(100 + rng() % 100);
      plan.options.set(code, Bytes(rng() % 400, static_cast<std::uint8_t>(code)));
      if (rng() % 2) plan.parameter_request_list.push_back(code);
      if (rng() % 4 == 0) plan.always_send.push_back(code);
    }
    if (rng() % 3 == 0) plan.skeleton.file = "boot.bin";
    if (rng() % 3 == 0) plan.skeleton.sname = "server";
    plan.max_message_size = static_cast<std::uint16_t>(rng() % 3000);
    auto r = build_reply(plan);
    ASSERT_TRUE(r) << r.error().message();
    const std::size_t limit = std::max<std::size_t>(plan.max_message_size, 576) - 28;
    EXPECT_LE(r->bytes.size(), limit);
    auto back = parse(r->bytes);
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(back->file, plan.skeleton.file);
    EXPECT_EQ(back->sname, plan.skeleton.sname);
    EXPECT_EQ(codes_of(*back).size(), r->sent.size());
    for (std::uint8_t code : r->sent)
      EXPECT_EQ(*back->options.find(code), *plan.options.find(code));
    for (std::uint8_t code : {53, 54, 51, 82})
      EXPECT_NE(std::find(r->sent.begin(), r->sent.end(), code), r->sent.end());
  }
}

TEST(DhcpBuildReply, PadsShortRepliesTo300Bytes) {
  ReplyPlan plan;
  plan.skeleton.op = kBootReply;
  plan.options.set(opt::kMessageType, {6});  // a NAK
  auto r = build_reply(plan);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->bytes.size(), kMinReplySize);
  EXPECT_EQ(r->bytes[240], 53);
  EXPECT_EQ(r->bytes[243], 255);
  auto back = parse(r->bytes);
  ASSERT_TRUE(back);
  EXPECT_EQ(message_type(*back), MessageType::Nak);
}

TEST(DhcpBuildReply, RefusesImpossibleReplies) {
  ReplyPlan plan = ack_plan();
  plan.options.set(opt::kMessage, Bytes(600, 'x'));  // a protocol option that cannot fit
  auto r = build_reply(plan);
  ASSERT_FALSE(r);
  EXPECT_CONTAINS(r.error().message(), "do not fit in 548 bytes");
  ReplyPlan pad = ack_plan();
  pad.options.set(opt::kEnd, {});
  EXPECT_FALSE(build_reply(pad));
}

TEST(DhcpCodec, RandomMutationsNeverCrash) {
  const Bytes seed = phone_discover();
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    Bytes p = seed;
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int f = 0; f < flips; ++f)
      p[240 + rng() % (p.size() - 240)] = static_cast<std::uint8_t>(rng());
    if (rng() % 4 == 0) p.resize(rng() % p.size());
    auto r = parse(p);
    if (!r) {
      EXPECT_FALSE(r.error().message().empty());
      continue;
    }
    (void)describe(*r);
    auto b = build(*r);
    ASSERT_TRUE(b);
    auto back = parse(*b);
    ASSERT_TRUE(back);
    back->overload = r->overload;
    EXPECT_EQ(*back, *r);
  }
}

}  // namespace
}  // namespace labctl::dhcp
