// Reading secrets (env, file, command, literal) and the findings about how they are kept.
#include "inventory/secrets.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace labctl::inventory {
namespace {

namespace fs = std::filesystem;

SecretRef env_ref(std::string name) {
  SecretRef r;
  r.source = SecretRef::Source::Env;
  r.ref = std::move(name);
  return r;
}
SecretRef file_ref(const fs::path& p) {
  SecretRef r;
  r.source = SecretRef::Source::File;
  r.ref = p.string();
  return r;
}
SecretRef command_ref(std::vector<std::string> argv) {
  SecretRef r;
  r.source = SecretRef::Source::Command;
  r.argv = std::move(argv);
  return r;
}

// A private directory under /tmp, removed after each test.
class SecretsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/labctl-secrets-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path write(const std::string& name, const std::string& content, mode_t mode = 0600) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    ::chmod(p.c_str(), mode);
    return p;
  }
  fs::path dir_;
};

TEST_F(SecretsTest, EnvSetAndUnset) {
  const std::string name = "LABCTL_TEST_SECRET_" + std::to_string(::getpid());
  ASSERT_EQ(::setenv(name.c_str(), "s3cret value", 1), 0);
  auto v = resolve_secret(env_ref(name));
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(*v, "s3cret value");

  ASSERT_EQ(::unsetenv(name.c_str()), 0);
  auto missing = resolve_secret(env_ref(name));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::PreconditionFailed);
  EXPECT_NE(missing.error().message().find(name), std::string::npos);
  EXPECT_NE(missing.error().message().find("not set"), std::string::npos);
}

TEST_F(SecretsTest, FileStripsOneTrailingNewline) {
  EXPECT_EQ(resolve_secret(file_ref(write("a", "pw\n"))).value(), "pw");
  EXPECT_EQ(resolve_secret(file_ref(write("b", "pw"))).value(), "pw");
  EXPECT_EQ(resolve_secret(file_ref(write("c", "pw\n\n"))).value(), "pw\n");
  EXPECT_EQ(resolve_secret(file_ref(write("d", "pw\r\n"))).value(), "pw");
  EXPECT_EQ(resolve_secret(file_ref(write("e", " spaced pw \n"))).value(), " spaced pw ");
}

TEST_F(SecretsTest, MissingFileNamesThePath) {
  const fs::path p = dir_ / "no-such-secret";
  auto v = resolve_secret(file_ref(p));
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code(), Errc::PreconditionFailed);
  EXPECT_NE(v.error().message().find(p.string()), std::string::npos) << v.error().message();
}

TEST_F(SecretsTest, FileErrorsNeverContainTheValue) {
  SecretOptions o;
  o.max_bytes = 16;
  const fs::path p = write("big", "TOPSECRETVALUE-TOPSECRETVALUE-TOPSECRETVALUE\n");
  auto v = resolve_secret(file_ref(p), o);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code(), Errc::InvalidInput);
  EXPECT_NE(v.error().message().find(p.string()), std::string::npos);
  EXPECT_EQ(v.error().message().find("TOPSECRET"), std::string::npos) << v.error().message();
}

TEST_F(SecretsTest, CommandRunsWithoutAShell) {
  // With a shell, ';' would end the command and $HOME would expand.
  auto v = resolve_secret(command_ref({"printf", "%s\n", "a b; echo $HOME"}));
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(*v, "a b; echo $HOME");
}

TEST_F(SecretsTest, CommandOutputIsCapturedWithOneNewlineStripped) {
  const fs::path p = write("out", "line1\nline2\n\n");
  auto v = resolve_secret(command_ref({"cat", p.string()}));
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(*v, "line1\nline2\n");
}

TEST_F(SecretsTest, CommandStdinIsEmpty) {
  auto v = resolve_secret(command_ref({"cat"}));
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(*v, "");
}

TEST_F(SecretsTest, CommandFailureIsAnError) {
  // The output of a failed command may be a secret: it is not in the message.
  const fs::path out = write("out", "LEAKEDVALUE\n");
  auto v = resolve_secret(command_ref({"sh", "-c", "cat \"$0\"; exit 3", out.string()}));
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code(), Errc::PreconditionFailed);
  EXPECT_NE(v.error().message().find("status 3"), std::string::npos) << v.error().message();
  EXPECT_EQ(v.error().message().find("LEAKEDVALUE"), std::string::npos) << v.error().message();

  auto f = resolve_secret(command_ref({"false"}));
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message().find("status 1"), std::string::npos) << f.error().message();
}

TEST_F(SecretsTest, CommandThatCannotRunIsAnError) {
  auto v = resolve_secret(command_ref({(dir_ / "no-such-program").string()}));
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code(), Errc::PreconditionFailed);
}

TEST_F(SecretsTest, CommandTimeoutIsEnforced) {
  SecretOptions o;
  o.command_timeout = std::chrono::milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  auto v = resolve_secret(command_ref({"sleep", "5"}), o);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code(), Errc::Timeout);
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_GE(took, std::chrono::milliseconds(150));
}

TEST_F(SecretsTest, CommandOutputOverMaxBytesIsRefused) {
  SecretOptions o;
  o.max_bytes = 1024;
  auto v = resolve_secret(command_ref({"head", "-c", "100000", "/dev/zero"}), o);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code(), Errc::InvalidInput);
  EXPECT_NE(v.error().message().find("1024"), std::string::npos) << v.error().message();
  // Exactly at the limit is fine.
  auto at_limit = resolve_secret(command_ref({"head", "-c", "1024", "/dev/zero"}), o);
  ASSERT_TRUE(at_limit) << at_limit.error().message();
  EXPECT_EQ(at_limit->size(), 1024u);
}

TEST_F(SecretsTest, LiteralIsReturnedAsIs) {
  SecretRef r;
  r.source = SecretRef::Source::Literal;
  r.literal = "hunter2\n";
  EXPECT_EQ(resolve_secret(r).value(), "hunter2\n");
  EXPECT_EQ(r.describe(), "literal (hidden)");
}

TEST_F(SecretsTest, FindingsForLiteral) {
  SecretRef r;
  r.source = SecretRef::Source::Literal;
  r.literal = "hunter2";
  auto f = secret_findings(r);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_NE(f[0].find("literal"), std::string::npos);
  EXPECT_EQ(f[0].find("hunter2"), std::string::npos);
}

TEST_F(SecretsTest, FindingsForFileModes) {
  const fs::path open = write("open", "pw\n", 0644);
  auto f = secret_findings(file_ref(open));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_NE(f[0].find("0644"), std::string::npos) << f[0];
  EXPECT_NE(f[0].find(open.string()), std::string::npos) << f[0];

  EXPECT_TRUE(secret_findings(file_ref(write("closed", "pw\n", 0600))).empty());
  EXPECT_EQ(secret_findings(file_ref(write("group", "pw\n", 0640))).size(), 1u);
}

TEST_F(SecretsTest, FindingsForMissingFile) {
  const fs::path p = dir_ / "gone";
  auto f = secret_findings(file_ref(p));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_NE(f[0].find(p.string()), std::string::npos) << f[0];
}

TEST_F(SecretsTest, NoFindingsForEnvOrCommand) {
  EXPECT_TRUE(secret_findings(env_ref("WHATEVER")).empty());
  EXPECT_TRUE(secret_findings(command_ref({"pass", "show", "x"})).empty());
}

}  // namespace
}  // namespace labctl::inventory
