#include "agents/net/tftp/codec.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace labctl::tftp {
namespace {

std::vector<std::uint8_t> bytes(std::string_view s) {
  return {s.begin(), s.end()};
}

std::string str(const std::vector<std::uint8_t>& v) {
  return {v.begin(), v.end()};
}

// A packet from text, with the opcode in front; "\0" inside string literals via std::string.
std::vector<std::uint8_t> packet(std::uint16_t op, std::string_view body) {
  std::vector<std::uint8_t> p{static_cast<std::uint8_t>(op >> 8),
                              static_cast<std::uint8_t>(op & 0xff)};
  p.insert(p.end(), body.begin(), body.end());
  return p;
}

using namespace std::string_literals;

std::string parse_error(const std::vector<std::uint8_t>& p) {
  auto r = parse(p);
  EXPECT_FALSE(r.has_value());
  if (r) return "";
  EXPECT_EQ(r.error().code(), Errc::InvalidInput);
  return r.error().message();
}

TEST(TftpCodec, ParsesReadRequestWithOptionsInOrder) {
  auto r = parse(packet(1,
                        "term06.default.loads\0OcTeT\0BLKSIZE\0"
                        "1468\0tsize\0"
                        "0\0WindowSize\0"
                        "16\0"s));
  ASSERT_TRUE(r) << r.error().message();
  const auto& req = std::get<Request>(*r);
  EXPECT_EQ(req.op, Opcode::Rrq);
  EXPECT_EQ(req.filename, "term06.default.loads");
  EXPECT_EQ(req.mode, Mode::Octet);
  ASSERT_EQ(req.options.size(), 3u);
  EXPECT_EQ(req.options[0], (Option{"blksize", "1468"}));
  EXPECT_EQ(req.options[1], (Option{"tsize", "0"}));
  EXPECT_EQ(req.options[2], (Option{"windowsize", "16"}));
}

TEST(TftpCodec, ParsesWriteRequestAndModes) {
  auto w = parse(packet(2, "up.bin\0netascii\0"s));
  ASSERT_TRUE(w);
  EXPECT_EQ(std::get<Request>(*w).op, Opcode::Wrq);
  EXPECT_EQ(std::get<Request>(*w).mode, Mode::Netascii);
  auto m = parse(packet(1, "x\0MAIL\0"s));
  ASSERT_TRUE(m);
  EXPECT_EQ(std::get<Request>(*m).mode, Mode::Mail);
}

TEST(TftpCodec, MalformedRequestsNameTheReason) {
  EXPECT_NE(parse_error(packet(1, "")).find("no filename"), std::string::npos);
  EXPECT_NE(parse_error(packet(1, "abc")).find("filename is not terminated"), std::string::npos);
  // An empty name is a well-formed request; the path policy refuses it (paths_test).
  EXPECT_TRUE(parse(packet(1, "\0octet\0"s)).has_value());
  EXPECT_NE(parse_error(packet(1, "f\0"s)).find("no transfer mode"), std::string::npos);
  EXPECT_NE(parse_error(packet(1, "f\0oct"s)).find("transfer mode is not terminated"),
            std::string::npos);
  EXPECT_NE(parse_error(packet(1, "f\0binary\0"s)).find("unknown transfer mode 'binary'"),
            std::string::npos);
  EXPECT_NE(parse_error(packet(1, "f\0\0"s)).find("unknown transfer mode ''"), std::string::npos);
  EXPECT_NE(parse_error(packet(1, "f\0octet\0blksize\0"s)).find("option 'blksize' has no value"),
            std::string::npos);
  EXPECT_NE(parse_error(packet(1,
                               "f\0octet\0blksize\0"
                               "1468"s))
                .find("value of option 'blksize' is not terminated"),
            std::string::npos);
  EXPECT_NE(parse_error(packet(1, "f\0octet\0junk"s)).find("trailing bytes 'junk'"),
            std::string::npos);
  EXPECT_NE(parse_error(packet(1,
                               "f\0octet\0\0"
                               "1\0"s))
                .find("empty option name"),
            std::string::npos);
  // Over-long names parse too: paths.cc refuses them with an access violation.
  EXPECT_TRUE(parse(packet(1, std::string(256, 'a') + "\0octet\0"s)));
  EXPECT_TRUE(parse(packet(1, std::string(255, 'a') + "\0octet\0"s)));
  std::string many = "f\0octet\0"s;
  for (int i = 0; i < 33; ++i)
    many += "o" + std::to_string(i) + "\0v\0"s;
  EXPECT_NE(parse_error(packet(1, many)).find("more than 32 options"), std::string::npos);
  // Non-printable bytes are escaped in messages.
  EXPECT_NE(parse_error(packet(1, "f\0\x01\xff\0"s)).find("\\x01\\xff"), std::string::npos);
}

TEST(TftpCodec, ShortOversizedAndUnknownPackets) {
  EXPECT_NE(parse_error({}).find("shorter than an opcode"), std::string::npos);
  EXPECT_NE(parse_error({0}).find("shorter than an opcode"), std::string::npos);
  EXPECT_NE(parse_error(packet(0, "x")).find("unknown opcode 0"), std::string::npos);
  EXPECT_NE(parse_error(packet(7, "x")).find("unknown opcode 7"), std::string::npos);
  EXPECT_NE(parse_error(packet(0xffff, "")).find("unknown opcode 65535"), std::string::npos);
  std::vector<std::uint8_t> huge(kMaxPacket + 1, 'a');
  huge[0] = 0;
  huge[1] = 3;
  EXPECT_NE(parse_error(huge).find("too large"), std::string::npos);
  EXPECT_FALSE(peek_opcode(std::vector<std::uint8_t>{0}));
  EXPECT_EQ(peek_opcode(packet(6, "")), Opcode::Oack);
}

TEST(TftpCodec, DataAckError) {
  auto d = parse(packet(3,
                        "\xff\xfe"
                        "abc"s));
  ASSERT_TRUE(d);
  EXPECT_EQ(std::get<DataPacket>(*d).block, 0xfffe);
  EXPECT_EQ(std::get<DataPacket>(*d).payload.size(), 3u);
  auto empty = parse(packet(3, "\0\1"s));
  ASSERT_TRUE(empty);
  EXPECT_TRUE(std::get<DataPacket>(*empty).payload.empty());
  EXPECT_NE(parse_error(packet(3, "\0"s)).find("DATA: no block number"), std::string::npos);
  auto big = parse(packet(3, "\0\1"s + std::string(513, 'x')), 512);
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message().find("exceeds the block size 512"), std::string::npos);

  auto a = parse(packet(4, "\x12\x34"s));
  ASSERT_TRUE(a);
  EXPECT_EQ(std::get<AckPacket>(*a).block, 0x1234);
  EXPECT_TRUE(parse(packet(4, "\0\1\0\0"s)));  // padded ACK accepted
  EXPECT_NE(parse_error(packet(4, "\0"s)).find("ACK: no block number"), std::string::npos);

  auto e = parse(packet(5, "\0\1File not found\0"s));
  ASSERT_TRUE(e);
  EXPECT_EQ(std::get<ErrorPacket>(*e).code, 1);
  EXPECT_EQ(std::get<ErrorPacket>(*e).message, "File not found");
  auto unterminated = parse(packet(5, "\0\2oops"s));
  ASSERT_TRUE(unterminated);
  EXPECT_EQ(std::get<ErrorPacket>(*unterminated).message, "oops");
  EXPECT_NE(parse_error(packet(5, "\0"s)).find("no error code"), std::string::npos);
}

TEST(TftpCodec, OackRoundTripAndRefusals) {
  auto built = build_oack({{"blksize", "1468"}, {"tsize", "1234"}});
  ASSERT_TRUE(built);
  auto o = parse(*built);
  ASSERT_TRUE(o);
  const auto& oack = std::get<OackPacket>(*o);
  ASSERT_EQ(oack.options.size(), 2u);
  EXPECT_EQ(oack.options[1], (Option{"tsize", "1234"}));
  EXPECT_NE(parse_error(packet(6, "")).find("OACK: no options"), std::string::npos);
  EXPECT_NE(parse_error(packet(6, "blksize\0"s)).find("has no value"), std::string::npos);
  EXPECT_FALSE(build_oack({}));
  EXPECT_FALSE(build_oack({{"a\0b"s, "1"}}));
  EXPECT_FALSE(build_oack({{"", "1"}}));
}

TEST(TftpCodec, BuildersRoundTrip) {
  Request r{Opcode::Rrq, "SEP001122334455.cnf.xml", Mode::Netascii, {{"tsize", "0"}}};
  auto b = build_request(r);
  ASSERT_TRUE(b);
  EXPECT_EQ(str(*b),
            "\0\1SEP001122334455.cnf.xml\0netascii\0tsize\0"
            "0\0"s);
  auto p = parse(*b);
  ASSERT_TRUE(p);
  EXPECT_EQ(std::get<Request>(*p).filename, r.filename);
  EXPECT_FALSE(build_request({Opcode::Rrq, "a\0b"s, Mode::Octet, {}}));
  EXPECT_FALSE(build_request({Opcode::Rrq, "", Mode::Octet, {}}));
  EXPECT_FALSE(build_request({Opcode::Ack, "a", Mode::Octet, {}}));
  EXPECT_FALSE(build_request({Opcode::Rrq, std::string(256, 'a'), Mode::Octet, {}}));

  EXPECT_EQ(str(build_ack(0xabcd)), "\0\4\xab\xcd"s);
  EXPECT_EQ(str(build_data(7, bytes("xy"))), "\0\3\0\7xy"s);
  EXPECT_EQ(str(build_error(ErrorCode::FileNotFound, "no\0pe"s)), "\0\5\0\1nope\0"s);
  EXPECT_LT(build_error(0, std::string(100000, 'x')).size(), 512u);
  std::uint8_t hdr[4];
  write_data_header(hdr, 0x0102);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(hdr), 4), "\0\3\1\2"s);
  for (std::uint16_t c = 0; c <= 8; ++c)
    EXPECT_NE(error_code_text(c), "Undefined error");
  EXPECT_EQ(error_code_text(9), "Undefined error");
}

TEST(TftpCodec, StrictDecimal) {
  EXPECT_EQ(parse_decimal("0", 10), 0u);
  EXPECT_EQ(parse_decimal("0010", 10), 10u);
  EXPECT_FALSE(parse_decimal("11", 10));
  EXPECT_FALSE(parse_decimal("", 10));
  EXPECT_FALSE(parse_decimal("-1", 10));
  EXPECT_FALSE(parse_decimal("+1", 10));
  EXPECT_FALSE(parse_decimal(" 1", 10));
  EXPECT_FALSE(parse_decimal("1x", 10));
  EXPECT_EQ(parse_decimal("18446744073709551615", ~0ull), ~0ull);
  EXPECT_FALSE(parse_decimal("18446744073709551616", ~0ull));
  EXPECT_FALSE(parse_decimal("999999999999999999999", ~0ull));
}

Request req(std::vector<Option> options, Opcode op = Opcode::Rrq) {
  return Request{op, "f", Mode::Octet, std::move(options)};
}

TEST(TftpNegotiation, AcceptsClampsAndIgnores) {
  NegotiationPolicy p;
  auto n = negotiate(req({{"blksize", "1468"}, {"tsize", "0"}, {"timeout", "6"}}), p, 5000);
  EXPECT_EQ(n.blksize, 1468);
  EXPECT_EQ(n.tsize, 5000u);
  EXPECT_EQ(n.timeout_s, 6);
  ASSERT_EQ(n.accepted.size(), 3u);
  EXPECT_EQ(n.accepted[0], (Option{"blksize", "1468"}));
  EXPECT_EQ(n.accepted[1], (Option{"tsize", "5000"}));
  EXPECT_EQ(n.accepted[2], (Option{"timeout", "6"}));

  // Huge blksize is lowered, not refused; below 8 and malformed are ignored.
  EXPECT_EQ(negotiate(req({{"blksize", "99999999"}}), p, {}).blksize, kMaxBlksize);
  EXPECT_EQ(negotiate(req({{"blksize", "99999999999999999999999"}}), p, {}).accepted.size(), 0u);
  EXPECT_TRUE(negotiate(req({{"blksize", "7"}}), p, {}).accepted.empty());
  EXPECT_EQ(negotiate(req({{"blksize", "7"}}), p, {}).blksize, 512);
  EXPECT_EQ(negotiate(req({{"blksize", "8"}}), p, {}).blksize, 8);
  EXPECT_TRUE(negotiate(req({{"blksize", "abc"}}), p, {}).accepted.empty());
  EXPECT_TRUE(negotiate(req({{"blksize", ""}}), p, {}).accepted.empty());

  NegotiationPolicy small;
  small.max_blksize = 1024;
  EXPECT_EQ(negotiate(req({{"blksize", "1468"}}), small, {}).blksize, 1024);
  NegotiationPolicy mtu;
  mtu.path_mtu = 1500;
  EXPECT_EQ(negotiate(req({{"blksize", "65464"}}), mtu, {}).blksize, 1468);
  mtu.ipv6 = true;
  EXPECT_EQ(negotiate(req({{"blksize", "65464"}}), mtu, {}).blksize, 1448);

  // timeout 1-255, windowsize 1-65535 clamped to the maximum.
  EXPECT_TRUE(negotiate(req({{"timeout", "0"}}), p, {}).accepted.empty());
  EXPECT_TRUE(negotiate(req({{"timeout", "256"}}), p, {}).accepted.empty());
  EXPECT_EQ(negotiate(req({{"timeout", "255"}}), p, {}).timeout_s, 255);
  EXPECT_TRUE(negotiate(req({{"windowsize", "0"}}), p, {}).accepted.empty());
  EXPECT_TRUE(negotiate(req({{"windowsize", "65536"}}), p, {}).accepted.empty());
  EXPECT_EQ(negotiate(req({{"windowsize", "16"}}), p, {}).windowsize, 16);
  EXPECT_EQ(negotiate(req({{"windowsize", "1000"}}), p, {}).windowsize, 64);
  NegotiationPolicy nowin;
  nowin.allow_windowsize = false;
  EXPECT_EQ(negotiate(req({{"windowsize", "8"}}), nowin, {}).windowsize, 1);

  // The window's byte bound applies with the final blksize, whatever the option order.
  NegotiationPolicy bytes;
  bytes.max_window_bytes = 65536;
  auto w = negotiate(req({{"windowsize", "64"}, {"blksize", "8192"}}), bytes, {});
  EXPECT_EQ(w.windowsize, 8);
  EXPECT_EQ(w.accepted[0], (Option{"windowsize", "8"}));

  // tsize: the real size for an RRQ, nothing when unknown (netascii); a WRQ's is echoed.
  EXPECT_TRUE(negotiate(req({{"tsize", "0"}}), p, std::nullopt).accepted.empty());
  auto wr = negotiate(req({{"tsize", "777"}}, Opcode::Wrq), p, std::nullopt);
  EXPECT_EQ(wr.tsize, 777u);
  EXPECT_EQ(wr.accepted[0], (Option{"tsize", "777"}));
  EXPECT_TRUE(negotiate(req({{"tsize", "x"}}), p, 5).accepted.empty());

  // Unknown and duplicate options are ignored, and say why.
  auto u = negotiate(req({{"multicast", ""}, {"blksize", "1024"}, {"blksize", "2048"}}), p, {});
  EXPECT_EQ(u.blksize, 1024);
  ASSERT_EQ(u.ignored.size(), 2u);
  EXPECT_NE(u.ignored[0].find("unknown option"), std::string::npos);
  EXPECT_NE(u.ignored[1].find("duplicate"), std::string::npos);
}

std::string encode(std::string_view s) {
  std::vector<std::uint8_t> out;
  NetasciiEncoder().feed(bytes(s), out);
  return str(out);
}

std::string decode_in_pieces(std::string_view s, std::vector<std::size_t> cuts) {
  NetasciiDecoder d;
  std::vector<std::uint8_t> out;
  std::size_t pos = 0;
  for (std::size_t c : cuts) {
    d.feed(bytes(s.substr(pos, c - pos)), out);
    pos = c;
  }
  d.feed(bytes(s.substr(pos)), out);
  d.finish(out);
  return str(out);
}

TEST(TftpNetascii, EncodesLineEndsAndBareCarriageReturns) {
  EXPECT_EQ(encode("a\nb\rc"), "a\r\nb\r\0c"s);
  EXPECT_EQ(encode("\r\n"), "\r\0\r\n"s);
  EXPECT_EQ(encode(""), "");
  EXPECT_EQ(NetasciiEncoder::encoded_size(bytes("a\nb\rc")), 7u);
}

TEST(TftpNetascii, DecodesAcrossEveryBlockBoundary) {
  const std::string local = "line one\nline two\r\nbare\rcr\n\n\r\rend\r";
  const std::string wire = encode(local);
  for (std::size_t cut = 0; cut <= wire.size(); ++cut)
    EXPECT_EQ(decode_in_pieces(wire, {cut}), local) << "cut at " << cut;
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < wire.size(); ++i)
    every.push_back(i);
  EXPECT_EQ(decode_in_pieces(wire, every), local);
}

TEST(TftpNetascii, LenientWithBareCr) {
  EXPECT_EQ(decode_in_pieces("a\rb", {}), "a\rb");
  EXPECT_EQ(decode_in_pieces("a\r", {}), "a\r");
  EXPECT_EQ(decode_in_pieces("a\r\r\n", {2}), "a\r\n");
}

TEST(TftpNetascii, RandomRoundTrip) {
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    std::string local(rng() % 300, '\0');
    for (auto& c : local) {
      const auto r = rng() % 6;
      c = r == 0 ? '\r' : r == 1 ? '\n' : r == 2 ? '\0' : static_cast<char>(rng());
    }
    const std::string wire = encode(local);
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < wire.size(); i += 1 + rng() % 7)
      cuts.push_back(i);
    ASSERT_EQ(decode_in_pieces(wire, cuts), local) << "round " << round;
  }
}

}  // namespace
}  // namespace labctl::tftp
