#include "plugins/supermicro_bmc/web_profile.h"

#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace labctl::supermicro_bmc {
namespace {

using ::testing::HasSubstr;

FlashProfile builtin(std::string_view name) {
  auto p = builtin_profile(name);
  EXPECT_TRUE(p) << (p ? "" : p.error().message());
  return p ? *p : FlashProfile{};
}

// Every diagnostic of a profile text, one per line.
std::string problems(const std::string& text) {
  inventory::Diagnostics diags;
  auto p = parse_flash_profile(text, "p.yaml", diags);
  std::string out;
  for (const auto& d : diags.sorted())
    out += d.format() + "\n";
  if (p && !out.empty()) ADD_FAILURE() << "parsed although it has errors: " << out;
  return out;
}

std::string source_text(const std::string& name) {
  std::ifstream in(std::string(LABCTL_SOURCE_DIR) + "/plugins/supermicro_bmc/profiles/" + name +
                   ".yaml");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(FlashProfile, BuiltInProfilesAreTheFilesAndParse) {
  auto names = builtin_profile_names();
  EXPECT_EQ(names, (std::vector<std::string>{"x10-x11", "x8-aten-web"}));
  for (const auto& n : names) {
    inventory::Diagnostics diags;
    auto from_file = parse_flash_profile(source_text(n), n, diags);
    ASSERT_TRUE(from_file) << n;
    auto p = builtin(n);
    EXPECT_EQ(p.name, n);
    EXPECT_EQ(p.origin, "built-in");
    EXPECT_EQ(p.start.path, from_file->start.path);
    EXPECT_FALSE(p.sources.empty());
  }
}

TEST(FlashProfile, X11IsThePublicSequence) {
  auto p = builtin("x10-x11");
  EXPECT_TRUE(p.confirmed);
  EXPECT_EQ(p.login.path, "/cgi/login.cgi");
  EXPECT_TRUE(p.login.base64_credentials);
  EXPECT_EQ(p.login.session_cookie, "SID");
  EXPECT_EQ(p.lock.path, "/cgi/ipmi.cgi");
  EXPECT_EQ(encode_form(p.lock.form, {}), "op=LOCK_UPLOAD_FW.XML&r=(0,0)&_=");
  EXPECT_EQ(p.upload.path, "/cgi/oem_firmware_upload.cgi");
  EXPECT_EQ(p.upload.file_field, "fw_image");
  EXPECT_EQ(encode_form(p.version_check.form, {}), "op=UPLOAD_FW_VERSION.XML&r=(0,0)&_=");
  // bmclib's start body, with the preserve-config choice in its field.
  EXPECT_EQ(encode_form(p.start.form, {{"preserve", p.start.preserve_value}}),
            "op=main_fwupdate&preserve_config=1&preserve_sdr=1&preserve_ssl=1");
  EXPECT_EQ(encode_form(p.start.form, {{"preserve", p.start.reset_value}}),
            "op=main_fwupdate&preserve_config=0&preserve_sdr=1&preserve_ssl=1");
  EXPECT_FALSE(p.start.answers);
  EXPECT_EQ(encode_form(p.progress.form, {}), "fwtype=0&_=");
  EXPECT_EQ(p.csrf.field, "CSRF_TOKEN");
}

TEST(FlashProfile, X8IsUnconfirmedAndSaysWhatIsGuessed) {
  auto p = builtin("x8-aten-web");
  EXPECT_FALSE(p.confirmed);
  EXPECT_FALSE(p.guesses.empty());
  EXPECT_FALSE(p.login.base64_credentials);
  EXPECT_EQ(p.version_check.format, "MMmm");
  EXPECT_THAT(describe(p), HasSubstr("UNCONFIRMED"));
  EXPECT_THAT(describe(builtin("x10-x11")), ::testing::Not(HasSubstr("UNCONFIRMED")));
}

TEST(FlashProfile, UnknownNameSuggestsOne) {
  auto p = builtin_profile("x8-aten-wbe");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code(), Errc::NotFound);
  EXPECT_THAT(p.error().message(), HasSubstr("did you mean 'x8-aten-web'"));
}

TEST(FlashProfile, FormEncodingKeepsSecretsIntact) {
  FormFields f{{"name", "{user}"}, {"pwd", "{password}"}, {"check", "00"}};
  EXPECT_EQ(encode_form(f, {{"user", "lab admin"}, {"password", "a&b=c+d/%"}}),
            "name=lab%20admin&pwd=a%26b%3Dc%2Bd%2F%25&check=00");
  // base64 padding and '+' are encoded too.
  EXPECT_EQ(encode_form({{"pwd", "{password}"}}, {{"password", "QUQ+/w=="}}),
            "pwd=QUQ%2B%2Fw%3D%3D");
}

TEST(FlashProfile, ErrorsNameTheLineAndTheKey) {
  std::string text = source_text("x10-x11");
  auto with = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    auto at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) t.replace(at, from.size(), to);
    return t;
  };
  EXPECT_THAT(problems(with("  file-field: fw_image", "  file-feild: fw_image")),
              HasSubstr("unknown key 'file-feild' in upload (did you mean 'file-field'?)"));
  EXPECT_THAT(problems(with("preserve_config: \"{preserve}\"", "preserve_config: \"1\"")),
              HasSubstr("start.form must carry the preserve-config choice"));
  EXPECT_THAT(problems(with("preserve_config: \"{preserve}\"", "preserve_config: \"{keep}\"")),
              HasSubstr("placeholder {keep} is not known here"));
  EXPECT_THAT(problems(with("pwd: \"{password}\"", "pwd: \"{user}\"")),
              HasSubstr("login.form must send {user} and {password}"));
  EXPECT_THAT(problems(with("  format: MMmmbb", "  format: hex")),
              HasSubstr("version-check.format must be MMmm, MMmmbb or dotted"));
  EXPECT_THAT(problems(with("  path: /cgi/op.cgi", "  path: cgi/op.cgi")),
              HasSubstr("start.path 'cgi/op.cgi' must start with '/'"));
  EXPECT_THAT(problems(with("  poll-interval: 2s", "  poll-interval: soon")),
              HasSubstr("timings.poll-interval 'soon' must be a duration"));
  EXPECT_THAT(problems(with("element: LOCK_FW_UPLOAD", "element: \"LOCK FW\"")),
              HasSubstr("is not an XML element name"));
  EXPECT_THAT(problems(with("confirmed: true", "confirmed: yes")),
              HasSubstr("confirmed must be true or false"));
  const std::string msg = problems(with("  file-field: fw_image", "  file-feild: fw_image"));
  EXPECT_THAT(msg, ::testing::StartsWith("p.yaml:"));
  EXPECT_THAT(problems("name: x\n"), HasSubstr("missing required key"));
  EXPECT_THAT(problems("- a\n- b\n"), HasSubstr("the profile must be a mapping"));
  EXPECT_THAT(problems("name: [unclosed\n"), HasSubstr("YAML syntax"));
}

TEST(FlashProfile, LockAnswers) {
  auto p = builtin("x10-x11");
  auto a = parse_lock_answer(
      p, "<?xml version=\"1.0\"?>\n<IPMI>\n  <LOCK_FW_UPLOAD RES=\"1\"/>\n</IPMI>");
  EXPECT_EQ(a.kind, AnswerKind::Xml);
  EXPECT_EQ(a.state, LockState::Granted);
  a = parse_lock_answer(p, "<?xml version=\"1.0\"?><IPMI><LOCK_FW_UPLOAD RES=\"0\"/></IPMI>");
  EXPECT_EQ(a.state, LockState::Held);
  a = parse_lock_answer(p, "<IPMI><LOCK_FW_UPLOAD RES=\"7\"/></IPMI>");
  EXPECT_EQ(a.state, LockState::Unknown);
  EXPECT_EQ(a.value, "7");
  a = parse_lock_answer(p, "<html><body><form action=\"/cgi/login.cgi\"></form></body></html>");
  EXPECT_EQ(a.kind, AnswerKind::SessionExpired);
  EXPECT_EQ(parse_lock_answer(p, "garbage").kind, AnswerKind::Unexpected);
}

TEST(FlashProfile, VersionAnswers) {
  auto x11 = builtin("x10-x11");
  // bmclib's test answer.
  auto v = parse_version_answer(
      x11, "<?xml version=\"1.0\"?>  <IPMI>  <FW_VERSION NEW=\"017409\" OLD=\"017409\"/>  </IPMI>");
  EXPECT_EQ(v.kind, AnswerKind::Xml);
  EXPECT_EQ(v.raw, "017409");
  EXPECT_EQ(v.version, "1.74");
  auto x8 = builtin("x8-aten-web");
  v = parse_version_answer(x8, "<IPMI><FW_VERSION NEW=\"0260\" OLD=\"0250\"/></IPMI>");
  EXPECT_EQ(v.version, "2.60");
  v = parse_version_answer(x8, "<IPMI><FW_VERSION NEW=\"\" OLD=\"0250\"/></IPMI>");
  EXPECT_EQ(v.kind, AnswerKind::Xml);
  EXPECT_EQ(v.raw, "");
  EXPECT_EQ(v.version, "");
  EXPECT_EQ(version_from("MMmm", "02x0"), std::nullopt);
  EXPECT_EQ(version_from("MMmm", "0050"), std::nullopt);  // major 0 is no firmware
  EXPECT_EQ(version_from("MMmm", "12850"), std::nullopt);
  EXPECT_EQ(version_from("dotted", "3.13"), "3.13");
  EXPECT_EQ(version_from("dotted", "3.1"), std::nullopt);
  EXPECT_EQ(version_from("MMmmbb", " 031300 "), "3.13");
}

TEST(FlashProfile, ProgressAnswers) {
  auto p = builtin("x10-x11");
  // bmclib's test answer, leading blanks and all.
  auto a = parse_progress_answer(p,
                                 "  <?xml version=\"1.0\"?>\n\t\t\t\t<IPMI>\n\t\t\t\t  "
                                 "<percent>95</percent>\n\t\t\t\t</IPMI>");
  EXPECT_EQ(a.kind, AnswerKind::Xml);
  EXPECT_EQ(a.percent, 95);
  EXPECT_EQ(parse_progress_answer(p, "<IPMI><percent>100%</percent></IPMI>").percent, 100);
  EXPECT_EQ(parse_progress_answer(p, "<IPMI><percent>101</percent></IPMI>").percent, std::nullopt);
  EXPECT_EQ(parse_progress_answer(p, "<IPMI><percent>-1</percent></IPMI>").percent, std::nullopt);
  EXPECT_EQ(parse_progress_answer(p, "<IPMI><percent>ten</percent></IPMI>").percent, std::nullopt);
  a = parse_progress_answer(p, "<html> <head>uh what</head> </html>");
  EXPECT_EQ(a.kind, AnswerKind::SessionExpired);
  EXPECT_EQ(a.percent, std::nullopt);
}

TEST(FlashProfile, LoginAndCsrf) {
  auto p = builtin("x10-x11");
  EXPECT_TRUE(login_succeeded(
      p, "<script>self.location='../cgi/url_redirect.cgi?url_name=mainmenu';</script>"));
  EXPECT_FALSE(login_succeeded(p, "<html>Invalid Username or Password</html>"));
  EXPECT_EQ(find_csrf_token(p,
                            "<script>SmcCsrfInsert (\"CSRF_TOKEN\", "
                            "\"JhVe1BUiWzOVQdvXUKn7ClsQ5xffq8StMOxG7ZNlpKs\");"),
            "JhVe1BUiWzOVQdvXUKn7ClsQ5xffq8StMOxG7ZNlpKs");
  EXPECT_EQ(find_csrf_token(p, "no token here"), "");
  // A token that would break a header line is refused.
  EXPECT_EQ(find_csrf_token(p, "\"CSRF_TOKEN\", \"abc\r\nX-Evil: 1\""), "");
}

}  // namespace
}  // namespace labctl::supermicro_bmc
