#include "agents/net/tftp/paths.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace labctl::tftp {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

void write(const fs::path& p, const std::string& content) {
  std::ofstream(p, std::ios::binary) << content;
}

std::string read_fd(int fd, std::uint64_t size) {
  std::string out(size, '\0');
  EXPECT_EQ(::pread(fd, out.data(), size, 0), static_cast<ssize_t>(size));
  return out;
}

// A temporary tree:  base/root (served) and base/outside/secret (must never be readable).
class TftpPaths : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/labctl-tftp-paths-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ / "root";
    fs::create_directories(root_ / "sub");
    fs::create_directories(root_ / "upload");
    fs::create_directories(base_ / "outside");
    write(base_ / "outside" / "secret", "SECRET");
    write(root_ / "file.txt", "hello");
    write(root_ / "sub" / "inner.bin", "inner");
    write(root_ / "jar11sip.9-4-2ES9.sbn", "jar");
    write(root_ / "CaseDup.txt", "upper");
    write(root_ / "casedup.txt", "lower");
    write(root_ / "cASEDUP.TXT", "mixed");
    fs::create_symlink("file.txt", root_ / "link_inside");
    fs::create_symlink("../outside/secret", root_ / "link_out");
    fs::create_symlink(base_ / "outside" / "secret", root_ / "link_abs");
    fs::create_symlink("../outside", root_ / "dirlink_out");
    fs::create_symlink("/proc/self/root" + (base_ / "outside" / "secret").string(),
                       root_ / "link_proc");
    fs::create_symlink("link_loop", root_ / "link_loop");
    fs::create_symlink("sub/../../outside/secret", root_ / "link_via_sub");
    ASSERT_EQ(::mkfifo((root_ / "fifo").c_str(), 0644), 0);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  Root open_root() {
    ResolveOptions o;
    o.force_component_walk = GetParam();
    auto r = Root::open(root_, o);
    EXPECT_TRUE(r) << r.error().message();
    return std::move(*r);
  }

  // Resolves a raw name the way the server does: normalise, then open.
  Result<ResolvedFile> resolve(const Root& root, std::string_view raw) {
    auto n = normalise_name(raw);
    if (!n) return fail(n.error());
    return root.open_read(*n);
  }

  fs::path base_, root_;
};

TEST(TftpNames, Normalise) {
  EXPECT_EQ(*normalise_name("file"), "file");
  EXPECT_EQ(*normalise_name("/file"), "file");
  EXPECT_EQ(*normalise_name("///a//b/./c/"), "a/b/c");
  EXPECT_EQ(*normalise_name("\\a\\b"), "a/b");
  EXPECT_EQ(*normalise_name("./a"), "a");
  EXPECT_EQ(*normalise_name("%2e%2e/x"), "%2e%2e/x");  // nothing is decoded
  EXPECT_EQ(*normalise_name("...."), "....");
  for (std::string bad :
       {""s, "."s, "/"s, "\\"s, "./"s, ".."s, "a/../b"s, "..\\x"s, "a\0b"s, std::string(256, 'a')})
    EXPECT_FALSE(normalise_name(bad)) << bad;
  EXPECT_NE(normalise_name("a/../b").error().message().find("'..'"), std::string::npos);
  EXPECT_NE(normalise_name("a\0b"s).error().message().find("NUL"), std::string::npos);
}

TEST_P(TftpPaths, OpensRegularFilesBelowTheRoot) {
  Root root = open_root();
  auto f = resolve(root, "file.txt");
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(f->size, 5u);
  EXPECT_EQ(read_fd(f->fd.get(), f->size), "hello");
  EXPECT_FALSE(f->case_fallback);
  auto inner = resolve(root, "/sub\\inner.bin");
  ASSERT_TRUE(inner);
  EXPECT_EQ(read_fd(inner->fd.get(), inner->size), "inner");
}

TEST_P(TftpPaths, SymlinkInsideTheRoot) {
  Root root = open_root();
  auto f = resolve(root, "link_inside");
  if (GetParam()) {
    // Without openat2 no symlink is followed at all.
    ASSERT_FALSE(f);
    EXPECT_EQ(tftp_error_for(f.error()), 2);
  } else {
    ASSERT_TRUE(f) << f.error().message();
    EXPECT_EQ(read_fd(f->fd.get(), f->size), "hello");
  }
}

TEST_P(TftpPaths, CaseInsensitiveFallbackIsDeterministic) {
  Root root = open_root();
  auto jar = resolve(root, "Jar11sip.9-4-2ES9.sbn");
  ASSERT_TRUE(jar) << jar.error().message();
  EXPECT_TRUE(jar->case_fallback);
  EXPECT_EQ(jar->name, "jar11sip.9-4-2ES9.sbn");
  EXPECT_EQ(read_fd(jar->fd.get(), jar->size), "jar");
  // Three names differ only in case: the byte-wise smallest wins ("CaseDup.txt" < "cASEDUP.TXT" <
  // "casedup.txt"), every time.
  for (int i = 0; i < 3; ++i) {
    auto d = resolve(root, "CASEDUP.txt");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->name, "CaseDup.txt");
    EXPECT_EQ(read_fd(d->fd.get(), d->size), "upper");
  }
  auto exact = resolve(root, "casedup.txt");
  ASSERT_TRUE(exact);
  EXPECT_FALSE(exact->case_fallback);
  EXPECT_EQ(read_fd(exact->fd.get(), exact->size), "lower");
  auto nested = resolve(root, "SUB/INNER.BIN");
  ASSERT_TRUE(nested);
  EXPECT_EQ(nested->name, "sub/inner.bin");
  EXPECT_TRUE(nested->case_fallback);
  auto missing = resolve(root, "nothing-like-it");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::NotFound);
  EXPECT_EQ(tftp_error_for(missing.error()), 1);
}

// Every one of these must be refused, and nothing outside the root may ever be read.
const std::vector<std::string>& hostile_names() {
  static const std::vector<std::string> names = {
      "../outside/secret",
      "../../etc/passwd",
      "../../../../../../../../etc/passwd",
      "/etc/passwd",
      "//etc/passwd",
      "/../outside/secret",
      "..\\..\\etc\\passwd",
      "..\\outside\\secret",
      "sub/../../outside/secret",
      "sub\\..\\..\\outside\\secret",
      "sub/../file.txt",
      "./../outside/secret",
      "..",
      "../",
      "%2e%2e/outside/secret",
      "%2e%2e%2foutside%2fsecret",
      "..%2f..%2fetc%2fpasswd",
      "%252e%252e/etc/passwd",
      "\xc0\xae\xc0\xae/outside/secret",
      "....//....//outside/secret",
      "..;/outside/secret",
      "file.txt/../../outside/secret",
      "link_out",
      "link_abs",
      "dirlink_out/secret",
      "DIRLINK_OUT/secret",
      "link_proc",
      "link_loop",
      "link_via_sub",
      "dirlink_out/../file.txt",
      "",
      "file.txt\0../outside/secret"s,
      "\0"s,
      std::string(256, 'a'),
      std::string(4096, '/') + "etc/passwd",
      [] {
        std::string s;
        for (int i = 0; i < 130; ++i)
          s += "a/";
        return s;
      }(),
      "/",
      ".",
      "./",
      "\\",
      "fifo",
      "sub",
      "/proc/self/environ",
      "C:\\Windows\\win.ini",
      "~/.ssh/id_rsa",
      "$HOME/.profile",
      "outside/secret",
  };
  return names;
}

TEST_P(TftpPaths, HostileNamesAreRefused) {
  Root root = open_root();
  ASSERT_GE(hostile_names().size(), 30u);
  for (const auto& name : hostile_names()) {
    auto r = resolve(root, name);
    ASSERT_FALSE(r) << "'" << name << "' opened " << r->name;
    const auto code = tftp_error_for(r.error());
    EXPECT_TRUE(code == 1 || code == 2) << name;
    EXPECT_FALSE(r.error().message().empty());
  }
  // Escapes are access violations, not "not found" (they are logged as refusals).
  for (const char* escape : {"link_out", "link_abs", "dirlink_out/secret", "link_proc",
                             "link_via_sub", "../outside/secret", "fifo", "sub"}) {
    auto r = resolve(root, escape);
    ASSERT_FALSE(r);
    EXPECT_EQ(tftp_error_for(r.error()), 2) << escape << ": " << r.error().message();
  }
  // The literal "%2e%2e" is a plain, absent name.
  auto literal = resolve(root, "%2e%2e/outside/secret");
  ASSERT_FALSE(literal);
  EXPECT_EQ(literal.error().code(), Errc::NotFound);
}

TEST_P(TftpPaths, WriteAreaCreatesWithoutOverwriting) {
  Root root = open_root();
  auto up = root.subroot("upload");
  ASSERT_TRUE(up) << up.error().message();
  auto t = create_for_write(*up, "new.bin", false);
  ASSERT_TRUE(t) << t.error().message();
  ASSERT_EQ(::write(t->fd.get(), "data", 4), 4);
  EXPECT_FALSE(fs::exists(root_ / "upload" / "new.bin"));  // not visible before commit
  ASSERT_TRUE(commit_write(*t, false));
  std::ifstream in(root_ / "upload" / "new.bin");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "data");

  auto again = create_for_write(*up, "new.bin", false);
  ASSERT_FALSE(again);
  EXPECT_TRUE(is_file_exists(again.error()));
  auto over = create_for_write(*up, "new.bin", true);
  ASSERT_TRUE(over);
  ASSERT_TRUE(commit_write(*over, true));

  auto dropped = create_for_write(*up, "dropped.bin", false);
  ASSERT_TRUE(dropped);
  abandon_write(*dropped);
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(root_ / "upload")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);  // only new.bin: no temporary left behind

  EXPECT_EQ(create_for_write(*up, "nodir/x", false).error().code(), Errc::NotFound);
  // The write area's own root is the boundary.
  EXPECT_FALSE(root.subroot("../outside"));
  EXPECT_FALSE(root.subroot("dirlink_out"));
}

INSTANTIATE_TEST_SUITE_P(Resolution, TftpPaths, ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "component_walk" : "openat2";
                         });

}  // namespace
}  // namespace labctl::tftp
