// The agent API codec: every decoder refuses what it should, naming the field, and accepts what
// the encoders produce.
#include "agents/rpc/protocol.h"

#include <gtest/gtest.h>

namespace labctl::agents::rpc {
namespace {

TEST(RpcCodec, StepCallRoundTrip) {
  StepCall c;
  c.config = std::string(64, 'a');
  c.device = "phone1";
  c.step.key = "publish@SIP11.9-4-2SR1-1S";
  c.step.action = "publish";
  c.step.title = "publish the load (hop 2/2)";
  c.step.args = {{"load", "SIP11.9-4-2SR1-1S"}};
  c.step.weight = 3;
  c.step.hop = 2;
  c.step.hops = 2;
  c.step.timeout = std::chrono::milliseconds(1500);
  c.timeout_ms = 60'000;
  auto d = decode_step_call(encode(c).dump());
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d->device, "phone1");
  EXPECT_EQ(d->config, c.config);
  EXPECT_EQ(d->timeout_ms, 60'000);
  EXPECT_EQ(d->step.key, c.step.key);
  EXPECT_EQ(d->step.args, c.step.args);
  EXPECT_EQ(d->step.weight, 3);
  EXPECT_EQ(d->step.hop, 2);
  EXPECT_EQ(d->step.timeout.count(), 1500);
}

TEST(RpcCodec, RefusesWhatIsWrongNamingTheField) {
  const std::string cfg = std::string(64, 'a');
  struct Case {
    std::string body, why;
  };
  const std::vector<Case> cases = {
      {"", "not valid JSON"},
      {"[1,2]", "must be a JSON object"},
      {R"({"device":"x"})", "'config' is missing"},
      {R"({"config":"c","device":7})", "'device' must be a string"},
      {R"({"config":"c","device":"a\u0001b"})", "'device' contains a control character"},
      {R"({"config":"c","device":"d","step":{"key":"k","action":"a","weight":1.5}})",
       "'weight' must be a whole number"},
      {R"({"config":"c","device":"d","step":{"key":"k","action":"a","weight":1e300}})",
       "'weight' must be a whole number"},
      {R"({"config":"c","device":"d","step":{"key":"k","action":"a","hop":-1}})",
       "'hop' must be between 0 and 1000"},
      {R"({"config":"c","device":"d","step":{"action":"a"}})", "'key' is missing"},
      {R"({"config":"c","device":"d","step":[]})", "'step' must be an object"},
      {R"({"config":"c","device":"d","timeout-ms":-5,"step":{"key":"k","action":"a"}})",
       "'timeout-ms' must be between"},
      {R"({"config":"c","device":"d","step":{"key":"k","action":"a","writes":"yes"}})",
       "'writes' must be true or false"},
  };
  for (const auto& c : cases) {
    auto r = decode_step_call(c.body);
    ASSERT_FALSE(r) << c.body;
    EXPECT_EQ(r.error().code(), Errc::InvalidInput);
    EXPECT_NE(r.error().message().find(c.why), std::string::npos)
        << c.body << " -> " << r.error().message();
  }
  (void)cfg;
  auto big = decode_device_call(std::string(kMaxJsonBody + 1, ' '));
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message().find("over the limit"), std::string::npos);
}

TEST(RpcCodec, FirmwareManifestChecksNamesAndDigests) {
  FirmwareManifest m{"cisco-7906-7911", "SIP11.9-4-2SR1-1S", {}};
  m.files.push_back({"jar11sip.9-4-2ES9.sbn", std::string(64, 'f'), 123});
  auto ok = decode_firmware_manifest(encode(m).dump());
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->files.at(0).size, 123u);
  for (auto [name, sha, why] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"../x", std::string(64, 'f'), "plain file name"},
           {"a/b", std::string(64, 'f'), "plain file name"},
           {"x", std::string(64, 'F'), "lower-case hex"},
           {"x", "abc", "lower-case hex"},
           {"x", std::string(65, 'f'), "longer than 64"}}) {
    FirmwareManifest bad = m;
    bad.files.at(0).name = name;
    bad.files.at(0).sha256 = sha;
    auto r = decode_firmware_manifest(encode(bad).dump());
    ASSERT_FALSE(r) << name;
    EXPECT_NE(r.error().message().find(why), std::string::npos) << r.error().message();
  }
}

TEST(RpcCodec, StreamLines) {
  StreamLine p;
  p.kind = StreamLine::Kind::Progress;
  p.done = 5;
  p.total = 10;
  p.text = "files 1/6";
  auto d = decode_line(encode_line(p));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, StreamLine::Kind::Progress);
  EXPECT_EQ(d->done, 5u);
  EXPECT_EQ(d->text, "files 1/6");

  StreamLine f;
  f.kind = StreamLine::Kind::Failed;
  f.error = Error(Errc::AuthFailed, "login refused");
  f.need_firmware = FirmwareManifest{"fam", "1.04", {}};
  auto e = decode_line(encode_line(f));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, StreamLine::Kind::Failed);
  EXPECT_EQ(e->error->code(), Errc::AuthFailed);
  EXPECT_EQ(e->error->message(), "login refused");
  ASSERT_TRUE(e->need_firmware);
  EXPECT_EQ(e->need_firmware->release, "1.04");

  EXPECT_EQ(decode_line(encode_line(StreamLine{}))->kind, StreamLine::Kind::Keepalive);
  EXPECT_FALSE(decode_line(R"({"ok":false})"));
  EXPECT_FALSE(decode_line(R"({"what":1})"));
  EXPECT_FALSE(decode_line(R"({"progress":{"done":-1}})"));
}

TEST(RpcCodec, ErrorsMapToStatusesAndBack) {
  EXPECT_EQ(http_status(Errc::InvalidInput), 400);
  EXPECT_EQ(http_status(Errc::NotFound), 404);
  EXPECT_EQ(http_status(Errc::Unreachable), 502);
  std::optional<NeedFirmware> need;
  Error e = decode_error(encode_error(Error(Errc::Timeout, "slow")).dump(), 504, &need);
  EXPECT_EQ(e.code(), Errc::Timeout);
  EXPECT_FALSE(need);
  Error junk = decode_error("<html>bad gateway</html>", 502, &need);
  EXPECT_EQ(junk.code(), Errc::Internal);
  EXPECT_NE(junk.message().find("HTTP 502"), std::string::npos);
}

TEST(RpcCodec, PathVersionAndConfigId) {
  EXPECT_EQ(path_version("/v1/status"), 1);
  EXPECT_EQ(path_version("/v2/probe"), 2);
  EXPECT_EQ(path_version("/v12"), 12);
  EXPECT_FALSE(path_version("/status"));
  EXPECT_FALSE(path_version("/v0/x"));
  EXPECT_FALSE(path_version("/vx/x"));
  EXPECT_FALSE(path_version("/v-1/x"));
  ConfigPush a{"lab.yaml", "abc", "cat"};
  ConfigPush b{"lab.yaml", "ab", "ccat"};  // the same bytes, split elsewhere
  EXPECT_TRUE(is_sha256_hex(config_id(a)));
  EXPECT_NE(config_id(a), config_id(b));
  EXPECT_EQ(config_id(a), config_id(ConfigPush{"lab.yaml", "abc", "cat"}));
}

TEST(RpcCodec, ConfigPushNeedsAPlainName) {
  ConfigPush p{"../lab.yaml", "x", "y"};
  auto r = decode_config_push(encode(p).dump());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("plain file name"), std::string::npos);
  p.inventory_name = "lab.yaml";
  EXPECT_TRUE(decode_config_push(encode(p).dump()));
}

}  // namespace
}  // namespace labctl::agents::rpc
