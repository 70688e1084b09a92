#include "controller/firmware_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <utility>

#include "common/sqlite.h"
#include "common/text.h"

namespace labctl::controller::firmware {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kChunk = 64 * 1024;
constexpr int kBusyTimeoutMs = 5000;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && text::iequals(s.substr(s.size() - suffix.size()), suffix);
}

std::string hex_bytes(std::span<const std::uint8_t> b) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (auto c : b) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// "512 MiB", "2 GiB", "1.5 KiB", "37 bytes".
std::string human_size(std::uint64_t n) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  if (n < 1024) return std::to_string(n) + " bytes";
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (v == static_cast<double>(static_cast<std::uint64_t>(v)))
    std::snprintf(buf, sizeof buf, "%.0f %s", v, units[u]);
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

std::string errno_text(int err) {
  return std::strerror(err);
}

// Incremental SHA-256 (OpenSSL EVP).
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ != nullptr && EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
      EVP_MD_CTX_free(ctx_);
      ctx_ = nullptr;
    }
  }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* p, std::size_t n) {
    if (ctx_ != nullptr && n > 0) EVP_DigestUpdate(ctx_, p, n);
  }
  // Lower-case hex; "" when OpenSSL failed.
  std::string hex() {
    if (ctx_ == nullptr) return "";
    std::array<std::uint8_t, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_, md.data(), &len) != 1) return "";
    return hex_bytes(std::span<const std::uint8_t>(md.data(), len));
  }

 private:
  EVP_MD_CTX* ctx_;
};

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

Status write_all(int fd, const std::uint8_t* p, std::size_t n, const fs::path& what) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return fail(Errc::Internal, "cannot write " + what.string() + ": " + errno_text(errno));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return {};
}

Status fsync_dir(const fs::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || ::fsync(fd.get()) != 0)
    return fail(Errc::Internal, "cannot sync directory " + dir.string() + ": " + errno_text(errno));
  return {};
}

// ---- Byte sources -------------------------------------------------------------------------------

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Up to `n` bytes into `buf`; 0 at the end.
  virtual Result<std::size_t> read(std::uint8_t* buf, std::size_t n) = 0;
};

class MemorySource : public ByteSource {
 public:
  explicit MemorySource(std::span<const std::uint8_t> data) : data_(data) {}
  Result<std::size_t> read(std::uint8_t* buf, std::size_t n) override {
    const std::size_t k = std::min(n, data_.size() - pos_);
    if (k > 0) std::memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
};

// A byte range [begin, end) of an open file, read with pread.
class FileRangeSource : public ByteSource {
 public:
  FileRangeSource(int fd, std::uint64_t begin, std::uint64_t end, std::string name)
      : fd_(fd), begin_(begin), pos_(begin), end_(end), name_(std::move(name)) {}
  Result<std::size_t> read(std::uint8_t* buf, std::size_t n) override {
    const std::uint64_t left = end_ - pos_;
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n, left));
    if (want == 0) return std::size_t{0};
    for (;;) {
      const ssize_t r = ::pread(fd_, buf, want, static_cast<off_t>(pos_));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0)
        return fail(Errc::InvalidInput, name_ + ": read error at byte " + std::to_string(pos_) +
                                            ": " + errno_text(errno));
      if (r == 0)
        return fail(Errc::InvalidInput,
                    name_ + " shrank while it was read (at byte " + std::to_string(pos_) + ")");
      pos_ += static_cast<std::uint64_t>(r);
      return static_cast<std::size_t>(r);
    }
  }
  // libarchive's skip and seek, relative to `begin`.
  std::int64_t skip(std::int64_t request) {
    if (request <= 0) return 0;
    const std::uint64_t k =
        std::min<std::uint64_t>(static_cast<std::uint64_t>(request), end_ - pos_);
    pos_ += k;
    return static_cast<std::int64_t>(k);
  }
  std::int64_t seek(std::int64_t offset, int whence) {
    std::int64_t base = 0;
    if (whence == SEEK_CUR) base = static_cast<std::int64_t>(pos_ - begin_);
    if (whence == SEEK_END) base = static_cast<std::int64_t>(end_ - begin_);
    const std::int64_t target = base + offset;
    if (target < 0 || static_cast<std::uint64_t>(target) > end_ - begin_) return ARCHIVE_FATAL;
    pos_ = begin_ + static_cast<std::uint64_t>(target);
    return target;
  }

 private:
  int fd_;
  std::uint64_t begin_, pos_, end_;
  std::string name_;
};

// The data of the current entry of a libarchive reader (a nested archive).
class MemberSource : public ByteSource {
 public:
  MemberSource(archive* a, std::string where, std::uint64_t limit)
      : a_(a), where_(std::move(where)), limit_(limit) {}
  Result<std::size_t> read(std::uint8_t* buf, std::size_t n) override {
    const la_ssize_t r = archive_read_data(a_, buf, n);
    if (r < 0) {
      const char* msg = archive_error_string(a_);
      return fail(Errc::InvalidInput, where_ + ": " + (msg ? msg : "corrupt or truncated data"));
    }
    total_ += static_cast<std::uint64_t>(r);
    if (total_ > limit_)
      return fail(Errc::InvalidInput, where_ + ": more than " + human_size(limit_) +
                                          " (the expansion limit; a zip bomb?)");
    return static_cast<std::size_t>(r);
  }

 private:
  archive* a_;
  std::string where_;
  std::uint64_t limit_;
  std::uint64_t total_ = 0;
};

// `prefix` first, then the rest of `inner` (after sniffing a stream's first bytes).
class PrefixedSource : public ByteSource {
 public:
  PrefixedSource(std::vector<std::uint8_t> prefix, ByteSource& inner)
      : prefix_(std::move(prefix)), inner_(inner) {}
  Result<std::size_t> read(std::uint8_t* buf, std::size_t n) override {
    if (pos_ < prefix_.size()) {
      const std::size_t k = std::min(n, prefix_.size() - pos_);
      std::memcpy(buf, prefix_.data() + pos_, k);
      pos_ += k;
      return k;
    }
    return inner_.read(buf, n);
  }

 private:
  std::vector<std::uint8_t> prefix_;
  std::size_t pos_ = 0;
  ByteSource& inner_;
};

// gzip through zlib, which checks every member's CRC-32 and length (libarchive's gzip filter does
// not). Concatenated members are read on; trailing zero bytes are allowed, other trailing bytes
// are an error. `base` is where the compressed data starts in the bundle (for messages).
class GzipSource : public ByteSource {
 public:
  GzipSource(ByteSource& in, std::uint64_t base, std::uint64_t limit, std::string where)
      : in_(in), base_(base), limit_(limit), where_(std::move(where)), in_buf_(kChunk) {
    zs_ = z_stream{};
    ok_ = inflateInit2(&zs_, 15 + 16) == Z_OK;
  }
  ~GzipSource() override {
    if (ok_) inflateEnd(&zs_);
  }
  GzipSource(const GzipSource&) = delete;
  GzipSource& operator=(const GzipSource&) = delete;

  Result<std::size_t> read(std::uint8_t* buf, std::size_t n) override {
    if (!ok_) return fail(Errc::Internal, where_ + ": zlib failed to initialise");
    if (finished_ || n == 0) return std::size_t{0};
    n = std::min<std::size_t>(n, 1u << 30);
    zs_.next_out = buf;
    zs_.avail_out = static_cast<uInt>(n);
    while (zs_.avail_out == n) {
      if (zs_.avail_in == 0 && !in_eof_) {
        auto s = fill();
        if (!s) return fail(std::move(s.error()));
      }
      if (between_members_) {
        if (zs_.avail_in == 0) {
          if (in_eof_) {
            finished_ = true;
            break;
          }
          continue;
        }
        if (*zs_.next_in == 0) {  // trailing zeros (padding) are fine
          zeros_ = true;
          ++zs_.next_in;
          --zs_.avail_in;
          ++consumed_;
          continue;
        }
        if (zeros_ || *zs_.next_in != 0x1f)
          return fail(Errc::InvalidInput, where_ +
                                              ": unexpected bytes after the gzip data at byte " +
                                              std::to_string(base_ + consumed_));
        inflateReset(&zs_);  // another gzip member follows
        between_members_ = false;
      }
      const uInt before = zs_.avail_in;
      const int r = inflate(&zs_, Z_NO_FLUSH);
      consumed_ += before - zs_.avail_in;
      if (r == Z_STREAM_END) {
        between_members_ = true;
        continue;
      }
      if (r == Z_OK) continue;
      if (r == Z_BUF_ERROR && zs_.avail_in == 0) {
        if (in_eof_)
          return fail(Errc::InvalidInput, where_ + ": truncated: the input ends at byte " +
                                              std::to_string(base_ + consumed_) +
                                              " inside the gzip stream");
        continue;
      }
      return fail(Errc::InvalidInput,
                  where_ + ": corrupt gzip data near byte " + std::to_string(base_ + consumed_) +
                      ": " + (zs_.msg ? zs_.msg : "inflate error " + std::to_string(r)));
    }
    const std::size_t got = n - zs_.avail_out;
    produced_ += got;
    if (produced_ > limit_)
      return fail(Errc::InvalidInput, where_ + ": the gzip data expands past " +
                                          human_size(limit_) +
                                          " (the expansion limit; a zip bomb?)");
    return got;
  }

  // Reads to the end, so every member's checksum and the trailing bytes are checked even when
  // the archive inside ended first.
  Status drain() {
    std::vector<std::uint8_t> buf(kChunk);
    for (;;) {
      auto r = read(buf.data(), buf.size());
      if (!r) return fail(std::move(r.error()));
      if (*r == 0) return {};
    }
  }

 private:
  Status fill() {
    auto r = in_.read(in_buf_.data(), in_buf_.size());
    if (!r) return fail(std::move(r.error()));
    if (*r == 0) in_eof_ = true;
    zs_.next_in = in_buf_.data();
    zs_.avail_in = static_cast<uInt>(*r);
    return {};
  }

  ByteSource& in_;
  std::uint64_t base_, limit_;
  std::string where_;
  std::vector<std::uint8_t> in_buf_;
  z_stream zs_;
  bool ok_ = false, in_eof_ = false, between_members_ = false, zeros_ = false, finished_ = false;
  std::uint64_t consumed_ = 0, produced_ = 0;
};

// ---- libarchive glue ----------------------------------------------------------------------------

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveFree>;

// tar (ustar, pax, gnu) and zip. No libarchive filters: gzip goes through GzipSource, and nothing
// here may ever start an external decompression program.
Result<ArchivePtr> new_reader() {
  ArchivePtr a(archive_read_new());
  if (!a) return fail(Errc::Internal, "libarchive: out of memory");
  if (archive_read_support_format_tar(a.get()) != ARCHIVE_OK ||
      archive_read_support_format_zip(a.get()) != ARCHIVE_OK)
    return fail(Errc::Internal, std::string("libarchive: ") + (archive_error_string(a.get())
                                                                   ? archive_error_string(a.get())
                                                                   : "cannot enable tar and zip"));
  return a;
}

// A streamed source for libarchive; remembers the source's own error, which says more than
// libarchive's.
struct StreamCtx {
  ByteSource* src = nullptr;
  std::vector<std::uint8_t> buf = std::vector<std::uint8_t>(kChunk);
  std::optional<Error> error;
};

la_ssize_t stream_read(archive* a, void* client, const void** out) {
  auto* c = static_cast<StreamCtx*>(client);
  auto r = c->src->read(c->buf.data(), c->buf.size());
  if (!r) {
    archive_set_error(a, EIO, "%s", r.error().message().c_str());
    c->error = std::move(r.error());
    return ARCHIVE_FATAL;
  }
  *out = c->buf.data();
  return static_cast<la_ssize_t>(*r);
}

struct FileCtx {
  FileRangeSource* src = nullptr;
  std::vector<std::uint8_t> buf = std::vector<std::uint8_t>(kChunk);
  std::optional<Error> error;
};

la_ssize_t file_read(archive* a, void* client, const void** out) {
  auto* c = static_cast<FileCtx*>(client);
  auto r = c->src->read(c->buf.data(), c->buf.size());
  if (!r) {
    archive_set_error(a, EIO, "%s", r.error().message().c_str());
    c->error = std::move(r.error());
    return ARCHIVE_FATAL;
  }
  *out = c->buf.data();
  return static_cast<la_ssize_t>(*r);
}
la_int64_t file_skip(archive*, void* client, la_int64_t request) {
  return static_cast<FileCtx*>(client)->src->skip(request);
}
la_int64_t file_seek(archive*, void* client, la_int64_t offset, int whence) {
  return static_cast<FileCtx*>(client)->src->seek(offset, whence);
}

std::string archive_message(archive* a, const std::optional<Error>& source_error) {
  if (source_error) return source_error->message();
  const char* m = archive_error_string(a);
  return m != nullptr && *m != '\0' ? std::string(m) : std::string("corrupt or truncated data");
}

bool is_nested_archive_name(std::string_view name) {
  return ends_with_ci(name, ".tar") || ends_with_ci(name, ".tar.gz") || ends_with_ci(name, ".tgz");
}

std::string_view type_name(mode_t type) {
  switch (type) {
    case AE_IFCHR:
      return "character device";
    case AE_IFBLK:
      return "block device";
    case AE_IFIFO:
      return "fifo";
    case AE_IFSOCK:
      return "socket";
    default:
      return "entry of unknown type";
  }
}

// Checks a raw member path; see member_basename.
Status check_member_path(std::string_view raw) {
  if (raw.empty()) return fail(Errc::InvalidInput, "empty member name");
  for (unsigned char c : raw)
    if (c < 0x20 || c == 0x7f)
      return fail(Errc::InvalidInput, c == 0 ? std::string("member name contains a NUL byte")
                                             : "member name contains a control character (\\x" +
                                                   hex_bytes(std::span<const std::uint8_t>(&c, 1)) +
                                                   ")");
  if (raw.front() == '/' || raw.front() == '\\')
    return fail(Errc::InvalidInput, "absolute member path");
  // A drive letter anywhere, not only in front: "dir/C:x" is a drive-relative path on Windows (or
  // an alternate data stream), and its base name alone would be refused as absolute.
  auto drive = [](std::string_view c) {
    return c.size() >= 2 && c[1] == ':' &&
           ((c[0] >= 'A' && c[0] <= 'Z') || (c[0] >= 'a' && c[0] <= 'z'));
  };
  std::size_t start = 0;
  while (start <= raw.size()) {
    std::size_t end = raw.find_first_of("/\\", start);
    if (end == std::string_view::npos) end = raw.size();
    const std::string_view component = raw.substr(start, end - start);
    if (component == "..") return fail(Errc::InvalidInput, "member path contains '..'");
    if (drive(component))
      return fail(Errc::InvalidInput, start == 0 ? "absolute member path (drive letter)"
                                                 : "member path names a drive letter ('" +
                                                       std::string(component.substr(0, 2)) + "')");
    start = end + 1;
  }
  if (raw.size() > 4096) return fail(Errc::InvalidInput, "member path longer than 4096 bytes");
  return {};
}

// ---- The walk -----------------------------------------------------------------------------------

class Walker {
 public:
  Walker(const WalkLimits& limits, MemberSink& sink, WalkInfo& info)
      : limits_(limits), sink_(sink), info_(info) {}

  // Every entry of `a`; `prefix` is the path of the archive holding them ("" or "inner.tar/").
  Status walk(archive* a, const std::string& prefix, int depth,
              const std::optional<Error>* source_error) {
    for (std::size_t index = 1;; ++index) {
      archive_entry* e = nullptr;
      const int r = archive_read_next_header(a, &e);
      if (r == ARCHIVE_EOF) return {};
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        return fail(Errc::InvalidInput,
                    (prefix.empty() ? std::string() : prefix.substr(0, prefix.size() - 1) + ": ") +
                        "entry " + std::to_string(index) + ": " +
                        archive_message(a, source_error ? *source_error : std::nullopt));
      if (++info_.entries > limits_.max_members)
        return fail(Errc::InvalidInput,
                    "more than " + std::to_string(limits_.max_members) + " entries (the limit)");
      const char* raw_c = archive_entry_pathname(e);
      if (raw_c == nullptr) raw_c = archive_entry_pathname_utf8(e);
      if (raw_c == nullptr)
        return fail(Errc::InvalidInput, prefix + "entry " + std::to_string(index) +
                                            ": a member without a readable name");
      const std::string raw(raw_c);
      const std::string shown = prefix + printable(raw);
      auto refuse = [&](const std::string& why) {
        return fail(Errc::InvalidInput, shown + ": " + why + "; refusing the bundle");
      };
      if (auto s = check_member_path(raw); !s) return refuse(s.error().message());
      const mode_t type = archive_entry_filetype(e);
      if (const char* target = archive_entry_hardlink(e); target != nullptr)
        return refuse("a hard link (to " + printable(target) + ")");
      if (type == AE_IFLNK || archive_entry_symlink(e) != nullptr) {
        const char* target = archive_entry_symlink(e);
        return refuse("a symbolic link (to " + printable(target ? target : "?") + ")");
      }
      if (type == AE_IFDIR) continue;
      if (type != AE_IFREG) return refuse("a " + std::string(type_name(type)));
      auto base = member_basename(raw);
      if (!base) return refuse(base.error().message());
      MemberInfo m{*base, shown, std::nullopt};
      if (archive_entry_size_is_set(e)) {
        const la_int64_t sz = archive_entry_size(e);
        if (sz < 0) return refuse("negative size");
        m.declared_size = static_cast<std::uint64_t>(sz);
      }
      if (is_nested_archive_name(m.name)) {
        if (auto s = nested(a, m, depth); !s) return s;
        continue;
      }
      if (m.declared_size && *m.declared_size > limits_.max_member)
        return refuse(std::to_string(*m.declared_size) + " bytes, over the " +
                      human_size(limits_.max_member) + " limit for one member");
      if (auto s = leaf(a, m, source_error); !s) return s;
    }
  }

 private:
  Status leaf(archive* a, const MemberInfo& m, const std::optional<Error>* source_error) {
    auto keep = sink_.begin(m);
    if (!keep) return fail(std::move(keep.error()).context(m.path));
    std::vector<std::uint8_t> buf(kChunk);
    std::uint64_t got = 0;
    for (;;) {
      const la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
      if (n == 0) break;
      if (n < 0)
        return fail(
            Errc::InvalidInput,
            m.path + ": " + archive_message(a, source_error ? *source_error : std::nullopt));
      got += static_cast<std::uint64_t>(n);
      info_.expanded += static_cast<std::uint64_t>(n);
      if (got > limits_.max_member)
        return fail(Errc::InvalidInput, m.path + ": more than " + human_size(limits_.max_member) +
                                            " (the limit for one member; a zip bomb?)");
      if (info_.expanded > limits_.max_total)
        return fail(Errc::InvalidInput, m.path + ": the bundle expands past " +
                                            human_size(limits_.max_total) +
                                            " (the limit for all members; a zip bomb?)");
      if (*keep) {
        auto s =
            sink_.write(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
        if (!s) return fail(std::move(s.error()).context(m.path));
      }
    }
    if (auto s = sink_.end(); !s) return fail(std::move(s.error()).context(m.path));
    return {};
  }

  Status nested(archive* outer, const MemberInfo& m, int depth) {
    if (depth + 1 > limits_.max_depth)
      return fail(Errc::InvalidInput, m.path + ": archives nested deeper than " +
                                          std::to_string(limits_.max_depth) + " levels; refusing");
    info_.nested.push_back(m.path);
    MemberSource member(outer, m.path, limits_.max_total);
    // Sniff the first bytes: gzip or not.
    std::vector<std::uint8_t> head(2);
    std::size_t have = 0;
    while (have < head.size()) {
      auto r = member.read(head.data() + have, head.size() - have);
      if (!r) return fail(std::move(r.error()));
      if (*r == 0) break;
      have += *r;
    }
    head.resize(have);
    const bool gz = have == 2 && head[0] == 0x1f && head[1] == 0x8b;
    PrefixedSource prefixed(head, member);
    std::optional<GzipSource> gzs;
    StreamCtx ctx;
    ctx.src = &prefixed;
    if (gz) {
      gzs.emplace(prefixed, 0, limits_.max_total, m.path);
      ctx.src = &*gzs;
    }
    auto inner = new_reader();
    if (!inner) return fail(std::move(inner.error()));
    if (archive_read_open(inner->get(), &ctx, nullptr, stream_read, nullptr) != ARCHIVE_OK) {
      // The outer data failed (truncated, corrupt, too big): that is the error to report.
      if (ctx.error) return fail(*ctx.error);
      return fail(Errc::InvalidInput, m.path + ": named like an archive but is not a readable " +
                                          (gz ? std::string("gzip'd tar") : std::string("tar")) +
                                          ": " + archive_message(inner->get(), ctx.error));
    }
    if (auto s = walk(inner->get(), m.path + "/", depth + 1, &ctx.error); !s) return s;
    if (gzs)
      if (auto s = gzs->drain(); !s) return s;
    return {};
  }

  const WalkLimits& limits_;
  MemberSink& sink_;
  WalkInfo& info_;
};

// What a bundle is read from: a file or memory.
class Region {
 public:
  virtual ~Region() = default;
  virtual std::uint64_t size() const = 0;
  // Up to `n` bytes at `offset`.
  virtual Result<std::vector<std::uint8_t>> peek(std::uint64_t offset, std::size_t n) = 0;
  virtual std::unique_ptr<ByteSource> stream(std::uint64_t offset) = 0;
  // Opens `a` over [offset, size) with seeking (zip reads its central directory).
  virtual Status open(archive* a, std::uint64_t offset, std::optional<Error>** source_error) = 0;
};

class MemoryRegion : public Region {
 public:
  explicit MemoryRegion(std::span<const std::uint8_t> d) : d_(d) {}
  std::uint64_t size() const override { return d_.size(); }
  Result<std::vector<std::uint8_t>> peek(std::uint64_t offset, std::size_t n) override {
    if (offset >= d_.size()) return std::vector<std::uint8_t>{};
    const std::size_t k = std::min<std::size_t>(n, d_.size() - offset);
    return std::vector<std::uint8_t>(d_.begin() + static_cast<std::ptrdiff_t>(offset),
                                     d_.begin() + static_cast<std::ptrdiff_t>(offset + k));
  }
  std::unique_ptr<ByteSource> stream(std::uint64_t offset) override {
    return std::make_unique<MemorySource>(d_.subspan(std::min<std::size_t>(offset, d_.size())));
  }
  Status open(archive* a, std::uint64_t offset, std::optional<Error>** source_error) override {
    *source_error = nullptr;
    const auto sub = d_.subspan(std::min<std::size_t>(offset, d_.size()));
    if (archive_read_open_memory(a, sub.data(), sub.size()) != ARCHIVE_OK)
      return fail(Errc::InvalidInput, archive_message(a, std::nullopt));
    return {};
  }

 private:
  std::span<const std::uint8_t> d_;
};

class FileRegion : public Region {
 public:
  FileRegion(int fd, std::uint64_t size, std::string name)
      : fd_(fd), size_(size), name_(std::move(name)) {}
  std::uint64_t size() const override { return size_; }
  Result<std::vector<std::uint8_t>> peek(std::uint64_t offset, std::size_t n) override {
    std::vector<std::uint8_t> out(
        static_cast<std::size_t>(std::min<std::uint64_t>(n, offset < size_ ? size_ - offset : 0)));
    FileRangeSource src(fd_, offset, offset + out.size(), name_);
    std::size_t have = 0;
    while (have < out.size()) {
      auto r = src.read(out.data() + have, out.size() - have);
      if (!r) return fail(std::move(r.error()));
      if (*r == 0) break;
      have += *r;
    }
    out.resize(have);
    return out;
  }
  std::unique_ptr<ByteSource> stream(std::uint64_t offset) override {
    return std::make_unique<FileRangeSource>(fd_, std::min(offset, size_), size_, name_);
  }
  Status open(archive* a, std::uint64_t offset, std::optional<Error>** source_error) override {
    src_ = std::make_unique<FileRangeSource>(fd_, std::min(offset, size_), size_, name_);
    ctx_.src = src_.get();
    *source_error = &ctx_.error;
    archive_read_set_callback_data(a, &ctx_);
    archive_read_set_read_callback(a, file_read);
    archive_read_set_skip_callback(a, file_skip);
    archive_read_set_seek_callback(a, file_seek);
    if (archive_read_open1(a) != ARCHIVE_OK)
      return fail(Errc::InvalidInput, archive_message(a, ctx_.error));
    return {};
  }

 private:
  int fd_;
  std::uint64_t size_;
  std::string name_;
  std::unique_ptr<FileRangeSource> src_;
  FileCtx ctx_;
};

std::string format_of(archive* a, bool gz, bool cop_name) {
  const int f = archive_format(a) & ARCHIVE_FORMAT_BASE_MASK;
  if (f == ARCHIVE_FORMAT_ZIP) return gz ? "zip.gz" : "zip";
  if (gz) return cop_name ? "cop" : "tar.gz";
  return "tar";
}

Result<WalkInfo> walk_region(Region& region, const std::string& name, const WalkLimits& limits,
                             MemberSink& sink) {
  WalkInfo info;
  auto head = region.peek(0, 65536);
  if (!head) return fail(std::move(head.error()));
  if (region.size() == 0) return fail(Errc::InvalidInput, "empty file");
  std::uint64_t payload = 0;
  if (looks_signed(*head) || ends_with_ci(name, ".sgn")) {
    auto h = parse_signed_header(*head, region.size());
    if (!h) return fail(std::move(h.error()));
    payload = h->header_length;
    info.header = std::move(*h);
  }
  auto magic = region.peek(payload, 4);
  if (!magic) return fail(std::move(magic.error()));
  const bool gz = magic->size() >= 2 && (*magic)[0] == 0x1f && (*magic)[1] == 0x8b;
  const std::string where_payload =
      info.header ? "the payload at byte " + std::to_string(payload) : std::string("the file");
  auto a = new_reader();
  if (!a) return fail(std::move(a.error()));
  Walker walker(limits, sink, info);
  const bool cop_name = ends_with_ci(name, ".cop") || ends_with_ci(name, ".cop.sgn");
  if (gz) {
    auto src = region.stream(payload);
    GzipSource gzs(*src, payload, limits.max_total, "gzip data");
    StreamCtx ctx;
    ctx.src = &gzs;
    if (archive_read_open(a->get(), &ctx, nullptr, stream_read, nullptr) != ARCHIVE_OK)
      return fail(Errc::InvalidInput, where_payload + " is gzip data but not a tar: " +
                                          archive_message(a->get(), ctx.error));
    if (auto s = walker.walk(a->get(), "", 0, &ctx.error); !s) return fail(std::move(s.error()));
    if (auto s = gzs.drain(); !s) return fail(std::move(s.error()));
  } else {
    std::optional<Error>* source_error = nullptr;
    if (auto s = region.open(a->get(), payload, &source_error); !s)
      return fail(Errc::InvalidInput,
                  where_payload + " is not a gzip'd tar, tar or zip archive (it starts with " +
                      hex_bytes(*magic) + "): " + s.error().message());
    if (auto s = walker.walk(a->get(), "", 0, source_error); !s) return fail(std::move(s.error()));
  }
  info.format = info.header ? "cop.sgn" : format_of(a->get(), gz, cop_name);
  return info;
}

}  // namespace

// ---- Signed header ------------------------------------------------------------------------------

bool looks_signed(std::span<const std::uint8_t> p) {
  return p.size() >= 3 && p[0] == 1 && p[1] == 0 && p[2] == 2;
}

Result<SignedHeader> parse_signed_header(std::span<const std::uint8_t> prefix,
                                         std::uint64_t file_size) {
  auto bad = [](const std::string& m) { return fail(Errc::InvalidInput, "signed header: " + m); };
  const std::uint64_t avail = std::min<std::uint64_t>(prefix.size(), file_size);
  SignedHeader h;
  bool have_version = false, have_length = false;
  std::uint64_t off = 0;
  for (;;) {
    if (have_length && off == h.header_length) break;
    // Before the header length is known, records may run to the end of the file, but never past
    // the 65535 bytes a 16-bit header length can cover.
    const std::uint64_t limit =
        have_length ? h.header_length : std::min<std::uint64_t>(file_size, 65535);
    if (!have_length && off > 0 && off == file_size)
      return bad("the file ends at byte " + std::to_string(file_size) +
                 " before a header-length record (tag 2)");
    if (!have_length && off + 3 > limit && file_size > limit)
      return bad("no header-length record (tag 2) in the first 65535 bytes");
    const std::string at = "record at offset " + std::to_string(off);
    if (off + 3 > limit) {
      if (have_length)
        return bad(at + ": needs 3 bytes for its tag and length, but the header (length " +
                   std::to_string(h.header_length) + ") ends at byte " +
                   std::to_string(h.header_length));
      return bad("truncated: " + at + " needs 3 bytes for its tag and length, the file has " +
                 std::to_string(file_size) + " bytes");
    }
    if (off + 3 > avail) return bad(at + ": beyond the " + std::to_string(avail) + " bytes read");
    const std::uint8_t tag = prefix[off];
    const std::uint16_t len =
        static_cast<std::uint16_t>((static_cast<unsigned>(prefix[off + 1]) << 8) | prefix[off + 2]);
    if (off == 0 && tag != 1)
      return bad("the first record (offset 0) has tag " + std::to_string(tag) +
                 ", expected 1 (header version)");
    const std::uint64_t end = off + 3 + len;
    const std::string what =
        at + " (tag " + std::to_string(tag) + ", length " + std::to_string(len) + ")";
    if (end > limit || end > avail) {
      if (have_length && end > h.header_length)
        return bad(what + " ends at byte " + std::to_string(end) + ", past the header length " +
                   std::to_string(h.header_length));
      if (end > file_size)
        return bad(what + " ends at byte " + std::to_string(end) + ", past the end of the file (" +
                   std::to_string(file_size) + " bytes)");
      return bad(what + " ends at byte " + std::to_string(end) +
                 ", past the 65535 bytes a header can span");
    }
    h.records.push_back(TlvRecord{tag, static_cast<std::size_t>(off), len});
    if (tag == 1) {
      if (have_version)
        return bad("a second header-version record (tag 1) at offset " + std::to_string(off));
      if (len != 2)
        return bad("the header-version record (tag 1) at offset " + std::to_string(off) +
                   " has length " + std::to_string(len) + ", expected 2");
      h.version_major = prefix[off + 3];
      h.version_minor = prefix[off + 4];
      have_version = true;
    } else if (tag == 2) {
      if (have_length)
        return bad("a second header-length record (tag 2) at offset " + std::to_string(off));
      if (len != 2)
        return bad("the header-length record (tag 2) at offset " + std::to_string(off) +
                   " has length " + std::to_string(len) + ", expected 2");
      const std::uint16_t hl = static_cast<std::uint16_t>(
          (static_cast<unsigned>(prefix[off + 3]) << 8) | prefix[off + 4]);
      if (hl < end)
        return bad("header length " + std::to_string(hl) + " (record at offset " +
                   std::to_string(off) + ") ends inside the records read so far (they reach byte " +
                   std::to_string(end) + ")");
      if (hl > file_size)
        return bad("header length " + std::to_string(hl) + " (record at offset " +
                   std::to_string(off) + ") is past the end of the file (" +
                   std::to_string(file_size) + " bytes)");
      if (hl == file_size)
        return bad("no payload: the header length " + std::to_string(hl) + " is the whole file");
      h.header_length = hl;
      have_length = true;
    }
    off = end;
  }
  return h;
}

// ---- Names --------------------------------------------------------------------------------------

std::string printable(std::string_view raw) {
  std::string out;
  for (unsigned char c : raw) {
    if (out.size() >= 200) {
      out += "...";
      break;
    }
    if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += hex_bytes(std::span<const std::uint8_t>(&c, 1));
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

Result<std::string> member_basename(std::string_view raw) {
  if (auto s = check_member_path(raw); !s) return fail(std::move(s.error()));
  const std::size_t slash = raw.find_last_of("/\\");
  const std::string_view base = slash == std::string_view::npos ? raw : raw.substr(slash + 1);
  if (base.empty() || base == ".") return fail(Errc::InvalidInput, "member path has no file name");
  if (base.size() > 255) return fail(Errc::InvalidInput, "file name longer than 255 bytes");
  return std::string(base);
}

std::string_view kind_name(NameInfo::Kind k) {
  switch (k) {
    case NameInfo::Kind::Loads:
      return "loads";
    case NameInfo::Kind::TermLoads:
      return "term-loads";
    case NameInfo::Kind::Sbn:
      return "sbn";
    case NameInfo::Kind::Other:
      break;
  }
  return "other";
}

std::string model_for_code(std::string_view code) {
  if (code == "06") return "CP-7906G";
  if (code == "11") return "CP-7911G";
  return "";
}

namespace {

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

}  // namespace

NameInfo classify_name(std::string_view name) {
  NameInfo n;
  const std::string low = text::lower(name);
  if (ends_with_ci(name, ".loads")) {
    const std::string_view stem = name.substr(0, name.size() - 6);
    const std::string_view lstem = std::string_view(low).substr(0, stem.size());
    // termNN.default.loads
    if (lstem.size() == 14 && lstem.starts_with("term") && lstem.ends_with(".default") &&
        is_digits(lstem.substr(4, 2))) {
      n.kind = NameInfo::Kind::TermLoads;
      n.model_code = std::string(lstem.substr(4, 2));
      return n;
    }
    n.kind = NameInfo::Kind::Loads;
    n.load_id = std::string(stem);
    // SIPnn.version / SCCPnn.version
    for (std::string_view proto : {"sccp", "sip"}) {
      if (!lstem.starts_with(proto)) continue;
      const std::string_view rest = stem.substr(proto.size());
      const std::size_t dot = rest.find('.');
      if (dot == std::string_view::npos || !is_digits(rest.substr(0, dot)) ||
          dot + 1 >= rest.size())
        break;
      n.protocol = std::string(proto);
      n.model_code = std::string(rest.substr(0, dot));
      n.version = std::string(rest.substr(dot + 1));
      break;
    }
    return n;
  }
  if (ends_with_ci(name, ".sbn")) {
    n.kind = NameInfo::Kind::Sbn;
    const std::string_view stem = name.substr(0, name.size() - 4);
    const std::size_t dot = stem.find('.');
    const std::string_view head = stem.substr(0, dot);
    if (dot != std::string_view::npos) n.version = std::string(stem.substr(dot + 1));
    std::size_t i = 0;
    while (i < head.size() && is_alpha(head[i]))
      ++i;
    n.component = text::lower(head.substr(0, i));
    std::size_t j = i;
    while (j < head.size() && head[j] >= '0' && head[j] <= '9')
      ++j;
    n.model_code = std::string(head.substr(i, j - i));
    const std::string tail = text::lower(head.substr(j));
    if (tail == "sip" || tail == "sccp") n.protocol = tail;
    return n;
  }
  return n;
}

// ---- Identification -----------------------------------------------------------------------------

Identification identify(const std::vector<std::string>& names, const inventory::Catalog* catalog) {
  Identification id;
  std::set<std::string> lower_names;
  std::set<std::string> protocols, sbn_versions, codes;
  for (const auto& name : names) {
    lower_names.insert(text::lower(name));
    const NameInfo n = classify_name(name);
    switch (n.kind) {
      case NameInfo::Kind::Loads:
        id.load_ids.push_back(n.load_id);
        if (!n.protocol.empty()) protocols.insert(n.protocol);
        if (!n.model_code.empty()) codes.insert(n.model_code);
        break;
      case NameInfo::Kind::TermLoads: {
        std::string model;
        // The catalog's quirks say which model asks for which term file.
        if (catalog)
          for (const auto& fam : catalog->families) {
            if (!fam.quirks.is_object()) continue;
            const auto tf = fam.quirks.find("term-files");
            if (tf == fam.quirks.end() || !tf->is_object()) continue;
            for (const auto& [m, file] : tf->items())
              if (file.is_string() && text::iequals(file.get<std::string>(), name)) model = m;
          }
        if (model.empty()) model = model_for_code(n.model_code);
        if (model.empty()) model = "model code " + n.model_code;
        if (std::find(id.models.begin(), id.models.end(), model) == id.models.end())
          id.models.push_back(model);
        break;
      }
      case NameInfo::Kind::Sbn:
        if (!n.protocol.empty()) protocols.insert(n.protocol);
        if (!n.version.empty()) sbn_versions.insert(n.version);
        if (!n.model_code.empty()) codes.insert(n.model_code);
        break;
      case NameInfo::Kind::Other:
        break;
    }
  }
  std::sort(id.load_ids.begin(), id.load_ids.end());
  std::sort(id.models.begin(), id.models.end());
  if (id.load_ids.size() == 1) {
    id.load_id = id.load_ids.front();
    const NameInfo n = classify_name(id.load_id + ".loads");
    id.protocol = n.protocol;
    id.model_code = n.model_code;
    auto v = inventory::parse_version(inventory::VersionScheme::CiscoLoad, id.load_id);
    if (v) id.version = v->display();
  } else if (id.load_ids.size() > 1) {
    id.warnings.push_back("several load files (" + text::join_list(id.load_ids, ", ") +
                          "): no single load id");
  }
  if (id.protocol.empty() && protocols.size() == 1) id.protocol = *protocols.begin();
  if (id.model_code.empty() && codes.size() == 1) id.model_code = *codes.begin();
  if (protocols.size() > 1)
    id.warnings.push_back(
        "files of more than one protocol (" +
        text::join_list(std::vector<std::string>(protocols.begin(), protocols.end()), ", ") + ")");
  if (sbn_versions.size() > 1)
    id.warnings.push_back(
        ".sbn files of more than one version (" +
        text::join_list(std::vector<std::string>(sbn_versions.begin(), sbn_versions.end()), ", ") +
        ")");

  if (catalog) {
    for (const auto& fam : catalog->families)
      for (const auto& rel : fam.releases) {
        if (rel.files.empty()) continue;
        ReleaseMatch m;
        m.family = fam.name;
        m.release = rel.version.text;
        for (const auto& f : rel.files)
          (lower_names.count(text::lower(f.name)) ? m.present : m.missing).push_back(f.name);
        if (m.present.empty()) continue;
        m.complete = m.missing.empty();
        m.identified = m.complete || (!id.load_id.empty() && text::iequals(id.load_id, m.release));
        id.releases.push_back(std::move(m));
      }
    std::stable_sort(id.releases.begin(), id.releases.end(),
                     [](const ReleaseMatch& a, const ReleaseMatch& b) {
                       if (a.identified != b.identified) return a.identified;
                       if (a.complete != b.complete) return a.complete;
                       return a.present.size() > b.present.size();
                     });
    for (const auto& m : id.releases)
      if (m.identified && !m.complete)
        id.warnings.push_back(m.family + " " + m.release + " is incomplete: missing " +
                              text::join_list(m.missing, ", "));
  }
  return id;
}

nlohmann::json to_json(const Identification& id) {
  nlohmann::json rel = nlohmann::json::array();
  for (const auto& m : id.releases)
    rel.push_back({{"family", m.family},
                   {"release", m.release},
                   {"complete", m.complete},
                   {"identified", m.identified},
                   {"present", m.present},
                   {"missing", m.missing}});
  return {{"load_id", id.load_id}, {"load_ids", id.load_ids},     {"protocol", id.protocol},
          {"version", id.version}, {"model_code", id.model_code}, {"models", id.models},
          {"releases", rel},       {"warnings", id.warnings}};
}

// ---- Walk entry points --------------------------------------------------------------------------

Result<WalkInfo> walk_bundle_memory(std::span<const std::uint8_t> data, const std::string& name,
                                    const WalkLimits& limits, MemberSink& sink) {
  MemoryRegion region(data);
  auto r = walk_region(region, name, limits, sink);
  if (!r) return fail(std::move(r.error()).context(name));
  return r;
}

Result<WalkInfo> walk_bundle_file(const fs::path& path, const WalkLimits& limits,
                                  MemberSink& sink) {
  const std::string name = path.filename().string();
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0)
    return fail(Errc::NotFound, path.string() + ": cannot open: " + errno_text(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return fail(Errc::InvalidInput, path.string() + ": not a regular file");
  FileRegion region(fd.get(), static_cast<std::uint64_t>(st.st_size), name);
  auto r = walk_region(region, name, limits, sink);
  if (!r) return fail(std::move(r.error()).context(name));
  return r;
}

Result<std::string> sha256_file(const fs::path& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0)
    return fail(Errc::NotFound, "cannot open " + path.string() + ": " + errno_text(errno));
  Sha256 h;
  std::vector<std::uint8_t> buf(kChunk);
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return fail(Errc::Internal, "cannot read " + path.string() + ": " + errno_text(errno));
    if (n == 0) break;
    h.update(buf.data(), static_cast<std::size_t>(n));
  }
  auto hex = h.hex();
  if (hex.empty()) return fail(Errc::Internal, "sha256 of " + path.string() + ": OpenSSL failed");
  return hex;
}

std::size_t VerifyReport::problems() const {
  std::size_t n = 0;
  for (const auto& b : blobs)
    if (b.status != "ok") ++n;
  return n;
}

// ---- Index (SQLite) -----------------------------------------------------------------------------

namespace {

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS firmware_bundles (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  sha256 TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  format TEXT NOT NULL,
  load_id TEXT NOT NULL DEFAULT '',
  protocol TEXT NOT NULL DEFAULT '',
  identification TEXT NOT NULL DEFAULT '{}',
  imported_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS firmware_files (
  bundle_id INTEGER NOT NULL REFERENCES firmware_bundles(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  member TEXT NOT NULL,
  PRIMARY KEY (bundle_id, name)
);
CREATE INDEX IF NOT EXISTS firmware_files_name ON firmware_files(name COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS firmware_files_sha256 ON firmware_files(sha256);
CREATE TABLE IF NOT EXISTS firmware_pins (
  family TEXT NOT NULL,
  version TEXT NOT NULL,
  name TEXT NOT NULL COLLATE NOCASE,
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  source TEXT NOT NULL,
  bundle_id INTEGER REFERENCES firmware_bundles(id) ON DELETE SET NULL,
  pinned_at INTEGER NOT NULL,
  PRIMARY KEY (family, version, name)
);
)sql";

constexpr char kWhat[] = "firmware index";
using sqlite::DbLock;
using Stmt = sqlite::Stmt<kWhat>;

Status exec_sql(sqlite3* db, std::string_view sql, std::string_view op) {
  return sqlite::exec(kWhat, db, sql, op);
}
using Txn = sqlite::Txn<kWhat>;

Status pragma(sqlite3* db, std::string_view sql) {
  auto st = Stmt::prepare(db, sql, sql);
  if (!st) return fail(std::move(st.error()));
  auto r = st->step();
  if (!r) return fail(std::move(r.error()));
  return {};
}

// ---- Import scratch -----------------------------------------------------------------------------

// `<store>/.import-XXXXXX`, removed with everything in it when it goes out of scope.
class Scratch {
 public:
  static Result<Scratch> create(const fs::path& root) {
    std::string tmpl = (root / ".import-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      return fail(Errc::Internal, "cannot create a scratch directory in " + root.string() + ": " +
                                      errno_text(errno));
    return Scratch(tmpl);
  }
  Scratch(Scratch&& o) noexcept : dir_(std::exchange(o.dir_, fs::path())) {}
  Scratch& operator=(Scratch&&) = delete;
  Scratch(const Scratch&) = delete;
  ~Scratch() {
    if (dir_.empty()) return;
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const fs::path& dir() const { return dir_; }

 private:
  explicit Scratch(fs::path d) : dir_(std::move(d)) {}
  fs::path dir_;
};

// Writes the kept members to numbered files in the scratch directory, hashing as they come.
class StoreSink : public MemberSink {
 public:
  struct File {
    std::string name, member, sha256;
    std::uint64_t size = 0;
    fs::path temp;
  };

  StoreSink(fs::path dir, const std::set<std::string>* catalog_names)
      : dir_(std::move(dir)), catalog_names_(catalog_names) {}

  Result<bool> begin(const MemberInfo& m) override {
    const NameInfo n = classify_name(m.name);
    const bool keep = n.kind != NameInfo::Kind::Other ||
                      (catalog_names_ != nullptr && catalog_names_->count(text::lower(m.name)) > 0);
    if (!keep) {
      ignored_.push_back(m.path);
      return false;
    }
    cur_ = File{m.name, m.path, "", 0, dir_ / ("m" + std::to_string(files_.size() + dups_))};
    fd_.reset(
        ::open(cur_.temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (fd_.get() < 0)
      return fail(Errc::Internal, "cannot create " + cur_.temp.string() + ": " + errno_text(errno));
    hash_.emplace();
    return true;
  }
  Status write(std::span<const std::uint8_t> d) override {
    hash_->update(d.data(), d.size());
    cur_.size += d.size();
    return write_all(fd_.get(), d.data(), d.size(), cur_.temp);
  }
  Status end() override {
    if (fd_.get() < 0) return {};  // an ignored member
    if (::fchmod(fd_.get(), 0644) != 0 || ::fsync(fd_.get()) != 0 || ::close(fd_.release()) != 0)
      return fail(Errc::Internal, "cannot write " + cur_.temp.string() + ": " + errno_text(errno));
    cur_.sha256 = hash_->hex();
    if (cur_.sha256.empty()) return fail(Errc::Internal, "sha256: OpenSSL failed");
    for (const auto& f : files_) {
      if (!text::iequals(f.name, cur_.name)) continue;
      if (f.sha256 != cur_.sha256)
        return fail(Errc::InvalidInput, "two members named " + cur_.name + " (" + f.member +
                                            " and " + cur_.member +
                                            ") with different contents; refusing the bundle");
      warnings_.push_back(cur_.member + " repeats " + f.member + " (same contents)");
      std::error_code ec;
      fs::remove(cur_.temp, ec);
      ++dups_;
      return {};
    }
    files_.push_back(std::move(cur_));
    return {};
  }

  std::vector<File>& files() { return files_; }
  const std::vector<std::string>& ignored() const { return ignored_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  fs::path dir_;
  const std::set<std::string>* catalog_names_;
  std::vector<File> files_;
  std::vector<std::string> ignored_, warnings_;
  std::size_t dups_ = 0;
  File cur_;
  Fd fd_;
  std::optional<Sha256> hash_;
};

bool archive_extension(std::string_view name) {
  for (std::string_view ext : {".sgn", ".cop", ".zip", ".tar", ".tgz", ".gz"})
    if (ends_with_ci(name, ext)) return true;
  return false;
}

// Removes blobs this import put in place, unless the import committed.
class BlobRollback {
 public:
  ~BlobRollback() {
    if (committed_) return;
    std::error_code ec;
    for (const auto& p : added_)
      fs::remove(p, ec);
  }
  void add(fs::path p) { added_.push_back(std::move(p)); }
  void commit() { committed_ = true; }

 private:
  std::vector<fs::path> added_;
  bool committed_ = false;
};

Result<std::optional<BundleRecord>> bundle_by_sha(sqlite3* db, const std::string& sha) {
  auto st = Stmt::prepare(db,
                          "SELECT id, name, sha256, size, format, load_id, protocol, "
                          "identification, imported_at FROM firmware_bundles WHERE sha256 = ?",
                          "find bundle");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, sha);
  auto row = st->step();
  if (!row) return fail(std::move(row.error()));
  if (!*row) return std::optional<BundleRecord>();
  BundleRecord b;
  b.id = st->i64(0);
  b.name = st->text(1);
  b.sha256 = st->text(2);
  b.size = static_cast<std::uint64_t>(st->i64(3));
  b.format = st->text(4);
  b.load_id = st->text(5);
  b.protocol = st->text(6);
  b.identification = nlohmann::json::parse(st->text(7), nullptr, false);
  if (b.identification.is_discarded()) b.identification = nlohmann::json::object();
  b.imported_at = st->i64(8);
  return std::optional<BundleRecord>(std::move(b));
}

Result<std::vector<StoredFile>> files_of_bundle(sqlite3* db, std::int64_t bundle_id,
                                                const std::string& bundle_name,
                                                const FirmwareStore& store) {
  auto st = Stmt::prepare(db,
                          "SELECT name, sha256, size FROM firmware_files WHERE bundle_id = ? "
                          "ORDER BY name",
                          "list bundle files");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, bundle_id);
  std::vector<StoredFile> out;
  for (;;) {
    auto row = st->step();
    if (!row) return fail(std::move(row.error()));
    if (!*row) return out;
    StoredFile f;
    f.name = st->text(0);
    f.sha256 = st->text(1);
    f.size = static_cast<std::uint64_t>(st->i64(2));
    f.path = store.blob_path(f.sha256);
    f.bundle = bundle_name;
    out.push_back(std::move(f));
  }
}

bool valid_sha(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

// ---- FirmwareStore ------------------------------------------------------------------------------

Result<std::unique_ptr<FirmwareStore>> FirmwareStore::open(const fs::path& state_dir) {
  std::error_code ec;
  auto make_dir = [&](const fs::path& d) -> Status {
    if (fs::exists(d, ec)) {
      if (!fs::is_directory(d, ec))
        return fail(Errc::PreconditionFailed,
                    "firmware store: " + d.string() + " exists and is not a directory");
      return {};
    }
    fs::create_directories(d, ec);
    if (!ec) fs::permissions(d, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (ec)
      return fail(Errc::PreconditionFailed,
                  "firmware store: cannot create " + d.string() + ": " + ec.message());
    return {};
  };
  const fs::path root = state_dir / "firmware";
  for (const auto& d : {state_dir, root, root / "sha256"})
    if (auto s = make_dir(d); !s) return fail(std::move(s.error()));

  const fs::path file = state_dir / "state.db";
  // Created here (0600) when labctl has not made it yet, as the StateStore does.
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    const bool ok = ::fchmod(fd, 0600) == 0;
    ::close(fd);
    if (!ok) return fail(Errc::PreconditionFailed, "firmware store: cannot chmod " + file.string());
  } else if (errno != EEXIST) {
    return fail(Errc::PreconditionFailed,
                "firmware store: cannot create " + file.string() + ": " + errno_text(errno));
  }
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(file.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = "firmware store: cannot open " + file.string() + ": " +
                      (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close_v2(db);
    return fail(Errc::PreconditionFailed, std::move(msg));
  }
  std::unique_ptr<FirmwareStore> store(new FirmwareStore(db, root));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  for (auto sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"})
    if (auto s = pragma(db, sql); !s) return fail(std::move(s.error()).context(file.string()));
  if (auto s = exec_sql(db, std::string(kSchema), "create tables"); !s)
    return fail(std::move(s.error()).context(file.string()));
  return store;
}

FirmwareStore::~FirmwareStore() {
  sqlite3_close_v2(db_);
}

fs::path FirmwareStore::blob_path(std::string_view sha256) const {
  return root_ / "sha256" / std::string(sha256);
}

Result<ImportReport> FirmwareStore::import(const fs::path& bundle,
                                           const inventory::Catalog* catalog) {
  ImportReport rep;
  rep.path = bundle.string();
  rep.name = bundle.filename().string();
  auto failed = [&](Error e) { return fail(std::move(e).context(rep.name)); };

  struct stat st {};
  if (::stat(bundle.c_str(), &st) != 0)
    return failed(
        Error(Errc::NotFound, "cannot read " + bundle.string() + ": " + errno_text(errno)));
  if (!S_ISREG(st.st_mode)) return failed(Error(Errc::InvalidInput, "not a regular file"));
  auto sha = sha256_file(bundle);
  if (!sha) return failed(std::move(sha.error()));
  rep.sha256 = *sha;
  rep.size = static_cast<std::uint64_t>(st.st_size);

  auto fill_present = [&](const BundleRecord& b) -> Status {
    rep.already_present = true;
    rep.previous_name = b.name;
    rep.imported_at = b.imported_at;
    rep.format = b.format;
    auto files = files_of_bundle(db_, b.id, b.name, *this);
    if (!files) return fail(std::move(files.error()));
    for (const auto& f : *files)
      rep.files.push_back(ImportedFile{f.name, f.sha256, "", f.size, classify_name(f.name), false});
    // The identification as the catalog sees it now.
    std::vector<std::string> names;
    for (const auto& f : rep.files)
      names.push_back(f.name);
    rep.id = identify(names, catalog);
    return {};
  };

  {
    DbLock lock(db_);
    auto prev = bundle_by_sha(db_, rep.sha256);
    if (!prev) return failed(std::move(prev.error()));
    if (*prev) {
      if (auto s = fill_present(**prev); !s) return failed(std::move(s.error()));
      bool intact = true;
      for (const auto& f : rep.files)
        if (check_blob(f.sha256, f.size).status != "ok") intact = false;
      if (intact) return rep;
      // Some blob is damaged: unpack again (below) and put those back.
      rep.files.clear();
      rep.already_present = false;
    }
  }

  // Catalog file names, for what to keep of a bundle and what a plain image is.
  std::set<std::string> catalog_names;
  if (catalog)
    for (const auto& fam : catalog->families)
      for (const auto& rel : fam.releases)
        for (const auto& f : rel.files)
          catalog_names.insert(text::lower(f.name));

  auto scratch = Scratch::create(root_);
  if (!scratch) return failed(std::move(scratch.error()));
  StoreSink sink(scratch->dir(), catalog ? &catalog_names : nullptr);

  const bool plain =
      !archive_extension(rep.name) && (catalog_names.count(text::lower(rep.name)) > 0 ||
                                       classify_name(rep.name).kind != NameInfo::Kind::Other);
  if (plain) {
    // An image the catalog names (or a phone file): stored as it is.
    rep.format = "file";
    if (rep.size > limits_.max_member)
      return failed(Error(Errc::InvalidInput, std::to_string(rep.size) + " bytes, over the " +
                                                  human_size(limits_.max_member) + " limit"));
    Fd fd(::open(bundle.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return failed(Error(Errc::NotFound, "cannot open: " + errno_text(errno)));
    FileRangeSource src(fd.get(), 0, rep.size, rep.name);
    MemberInfo m{rep.name, rep.name, rep.size};
    auto keep = sink.begin(m);
    if (!keep) return failed(std::move(keep.error()));
    std::vector<std::uint8_t> buf(kChunk);
    for (;;) {
      auto n = src.read(buf.data(), buf.size());
      if (!n) return failed(std::move(n.error()));
      if (*n == 0) break;
      if (auto s = sink.write(std::span<const std::uint8_t>(buf.data(), *n)); !s)
        return failed(std::move(s.error()));
    }
    if (auto s = sink.end(); !s) return failed(std::move(s.error()));
  } else {
    auto info = walk_bundle_file(bundle, limits_, sink);
    if (!info) return fail(std::move(info.error()));  // already names the bundle
    rep.format = info->format;
    rep.nested = info->nested;
  }
  rep.ignored = sink.ignored();
  rep.warnings = sink.warnings();
  auto& files = sink.files();
  if (files.empty()) {
    std::string held;
    for (std::size_t i = 0; i < rep.ignored.size() && i < 10; ++i)
      held += (i ? ", " : "") + rep.ignored[i];
    if (rep.ignored.size() > 10) held += ", ...";
    return failed(Error(Errc::InvalidInput,
                        "no firmware files in it (.loads, .sbn, or a file the catalog names)" +
                            (held.empty() ? std::string("; it is empty") : "; it holds " + held)));
  }
  std::vector<std::string> names;
  for (const auto& f : files)
    names.push_back(f.name);
  rep.id = identify(names, catalog);
  for (const auto& w : rep.id.warnings)
    rep.warnings.push_back(w);
  for (const auto& f : files)
    rep.files.push_back(
        ImportedFile{f.name, f.sha256, f.member, f.size, classify_name(f.name), false});

  // The catalog's own checksums and sizes, for the releases this bundle is.
  struct Pin {
    std::string family, release, name, sha256, source;
    std::uint64_t size;
  };
  std::vector<Pin> pins;
  if (catalog)
    for (const auto& m : rep.id.releases) {
      if (!m.identified) continue;
      const auto* fam = catalog->family(m.family);
      const inventory::Release* rel = nullptr;
      if (fam)
        for (const auto& r : fam->releases)
          if (r.version.text == m.release) rel = &r;
      if (rel == nullptr) continue;
      for (const auto& cf : rel->files) {
        auto it = std::find_if(files.begin(), files.end(), [&](const StoreSink::File& f) {
          return text::iequals(f.name, cf.name);
        });
        if (it == files.end()) continue;
        if (cf.sha256 && *cf.sha256 != it->sha256)
          return failed(Error(Errc::VerifyMismatch,
                              it->member + ": the catalog gives sha256 " + *cf.sha256 + " for " +
                                  cf.name + " (" + m.family + " " + m.release +
                                  "), this bundle has " + it->sha256 + "; refusing"));
        if (cf.size && *cf.size != it->size)
          return failed(Error(Errc::VerifyMismatch,
                              it->member + ": the catalog gives " + std::to_string(*cf.size) +
                                  " bytes for " + cf.name + " (" + m.family + " " + m.release +
                                  "), this bundle has " + std::to_string(it->size) + "; refusing"));
        pins.push_back(
            Pin{m.family, m.release, cf.name, it->sha256, cf.sha256 ? "catalog" : "pin", it->size});
      }
    }

  DbLock lock(db_);
  auto txn = Txn::begin(db_);
  if (!txn) return failed(std::move(txn.error()));
  // Again inside the write lock: another labctl may have imported it meanwhile.
  auto prev = bundle_by_sha(db_, rep.sha256);
  if (!prev) return failed(std::move(prev.error()));
  if (*prev) {
    // Imported before (by us earlier, or by another labctl meanwhile): the index stays as it is;
    // only blobs that are damaged or missing are put back.
    rep.files.clear();
    rep.warnings.clear();
    if (auto s = fill_present(**prev); !s) return failed(std::move(s.error()));
    for (const auto& f : files) {
      if (check_blob(f.sha256, f.size).status == "ok") continue;
      if (::rename(f.temp.c_str(), blob_path(f.sha256).c_str()) != 0)
        return failed(Error(Errc::Internal,
                            "cannot put " + f.name + " back into the store: " + errno_text(errno)));
      ++rep.repaired;
    }
    if (rep.repaired > 0)
      if (auto s = fsync_dir(root_ / "sha256"); !s) return failed(std::move(s.error()));
    return rep;
  }
  // Pins recorded by earlier imports.
  std::vector<bool> pin_is_new(pins.size(), true);
  for (std::size_t i = 0; i < pins.size(); ++i) {
    const auto& p = pins[i];
    auto q =
        Stmt::prepare(db_,
                      "SELECT p.sha256, COALESCE(b.name, ''), p.pinned_at FROM firmware_pins p "
                      "LEFT JOIN firmware_bundles b ON b.id = p.bundle_id "
                      "WHERE p.family = ? AND p.version = ? AND p.name = ?",
                      "read pin");
    if (!q) return failed(std::move(q.error()));
    q->bind(1, p.family).bind(2, p.release).bind(3, p.name);
    auto row = q->step();
    if (!row) return failed(std::move(row.error()));
    if (!*row) continue;
    pin_is_new[i] = false;
    const std::string pinned = q->text(0);
    if (pinned != p.sha256) {
      const std::string from = q->text(1);
      const auto it = std::find_if(files.begin(), files.end(), [&](const StoreSink::File& f) {
        return text::iequals(f.name, p.name);
      });
      return failed(Error(
          Errc::VerifyMismatch,
          (it != files.end() ? it->member : p.name) + ": " + p.name + " of " + p.family + " " +
              p.release + " is pinned to sha256 " + pinned +
              (from.empty() ? std::string() : " (first imported from " + from + ")") +
              ", this bundle has sha256 " + p.sha256 + "; refusing: a pinned file never changes"));
    }
  }

  // Blobs into place.
  BlobRollback rollback;
  bool moved = false;
  const fs::path blobs = root_ / "sha256";
  for (std::size_t i = 0; i < files.size(); ++i) {
    const auto& f = files[i];
    if (!valid_sha(f.sha256)) return failed(Error(Errc::Internal, "bad sha256 for " + f.name));
    const fs::path dest = blob_path(f.sha256);
    struct stat bs {};
    const bool exists = ::lstat(dest.c_str(), &bs) == 0;
    if (exists && check_blob(f.sha256, f.size).status == "ok") continue;  // already stored
    // Missing, or damaged (then replaced by the good bytes).
    if (::rename(f.temp.c_str(), dest.c_str()) != 0)
      return failed(Error(Errc::Internal, "cannot move " + f.name + " into " + blobs.string() +
                                              ": " + errno_text(errno)));
    rollback.add(dest);
    rep.files[i].new_blob = !exists;
    if (exists) ++rep.repaired;
    moved = true;
  }
  if (moved)
    if (auto s = fsync_dir(blobs); !s) return failed(std::move(s.error()));

  // The index.
  rep.imported_at = now_ms();
  auto ins = Stmt::prepare(db_,
                           "INSERT INTO firmware_bundles (name, sha256, size, format, load_id, "
                           "protocol, identification, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           "record bundle");
  if (!ins) return failed(std::move(ins.error()));
  ins->bind(1, rep.name)
      .bind(2, rep.sha256)
      .bind(3, static_cast<std::int64_t>(rep.size))
      .bind(4, rep.format)
      .bind(5, rep.id.load_id)
      .bind(6, rep.id.protocol)
      .bind(7, to_json(rep.id).dump())
      .bind(8, rep.imported_at);
  if (auto s = ins->run(); !s) return failed(std::move(s.error()));
  const std::int64_t bundle_id = sqlite3_last_insert_rowid(db_);
  for (const auto& f : files) {
    auto fi = Stmt::prepare(db_,
                            "INSERT INTO firmware_files (bundle_id, name, sha256, size, member) "
                            "VALUES (?, ?, ?, ?, ?)",
                            "record file");
    if (!fi) return failed(std::move(fi.error()));
    fi->bind(1, bundle_id)
        .bind(2, f.name)
        .bind(3, f.sha256)
        .bind(4, static_cast<std::int64_t>(f.size))
        .bind(5, f.member);
    if (auto s = fi->run(); !s) return failed(std::move(s.error()));
  }
  for (std::size_t i = 0; i < pins.size(); ++i) {
    if (!pin_is_new[i]) continue;
    const auto& p = pins[i];
    auto pi =
        Stmt::prepare(db_,
                      "INSERT INTO firmware_pins (family, version, name, sha256, size, source, "
                      "bundle_id, pinned_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      "record pin");
    if (!pi) return failed(std::move(pi.error()));
    pi->bind(1, p.family)
        .bind(2, p.release)
        .bind(3, p.name)
        .bind(4, p.sha256)
        .bind(5, static_cast<std::int64_t>(p.size))
        .bind(6, p.source)
        .bind(7, bundle_id)
        .bind(8, rep.imported_at);
    if (auto s = pi->run(); !s) return failed(std::move(s.error()));
    ++rep.new_pins;
  }
  if (auto s = txn->commit(); !s) return failed(std::move(s.error()));
  rollback.commit();
  return rep;
}

Result<std::optional<StoredFile>> FirmwareStore::lookup(std::string_view name) {
  DbLock lock(db_);
  for (const char* cmp : {"f.name = ?", "f.name = ? COLLATE NOCASE"}) {
    auto st =
        Stmt::prepare(db_,
                      std::string("SELECT f.name, f.sha256, f.size, b.name FROM firmware_files "
                                  "f JOIN firmware_bundles b ON b.id = f.bundle_id WHERE ") +
                          cmp + " ORDER BY b.imported_at DESC, b.id DESC LIMIT 1",
                      "look up file");
    if (!st) return fail(std::move(st.error()));
    st->bind(1, name);
    auto row = st->step();
    if (!row) return fail(std::move(row.error()));
    if (!*row) continue;
    StoredFile f;
    f.name = st->text(0);
    f.sha256 = st->text(1);
    f.size = static_cast<std::uint64_t>(st->i64(2));
    f.path = blob_path(f.sha256);
    f.bundle = st->text(3);
    return std::optional<StoredFile>(std::move(f));
  }
  return std::optional<StoredFile>();
}

BlobCheck FirmwareStore::check_blob(const std::string& sha256, std::uint64_t size) const {
  BlobCheck b;
  b.sha256 = sha256;
  b.size = size;
  const fs::path p = blob_path(sha256);
  struct stat bs {};
  if (!valid_sha(sha256)) {
    b.status = "corrupt";
  } else if (::lstat(p.c_str(), &bs) != 0) {
    b.status = "missing";
  } else if (!S_ISREG(bs.st_mode)) {
    b.status = "not-a-file";
  } else {
    b.actual_size = static_cast<std::uint64_t>(bs.st_size);
    auto h = sha256_file(p);
    if (!h) {
      b.status = "missing";
    } else if (*h != sha256) {
      b.status = "corrupt";
      b.actual_sha256 = *h;
    } else if (b.actual_size != size) {
      b.status = "size-mismatch";
    } else {
      b.status = "ok";
    }
  }
  return b;
}

Result<std::vector<StoredFile>> FirmwareStore::lookup_all(std::string_view name) {
  DbLock lock(db_);
  auto st = Stmt::prepare(db_,
                          "SELECT f.name, f.sha256, f.size, b.name FROM firmware_files f JOIN "
                          "firmware_bundles b ON b.id = f.bundle_id WHERE f.name = ? COLLATE "
                          "NOCASE ORDER BY b.imported_at DESC, b.id DESC",
                          "look up file");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, name);
  std::vector<StoredFile> out;
  for (;;) {
    auto row = st->step();
    if (!row) return fail(std::move(row.error()));
    if (!*row) return out;
    StoredFile f;
    f.name = st->text(0);
    f.sha256 = st->text(1);
    if (std::any_of(out.begin(), out.end(),
                    [&](const StoredFile& o) { return o.sha256 == f.sha256; }))
      continue;
    f.size = static_cast<std::uint64_t>(st->i64(2));
    f.path = blob_path(f.sha256);
    f.bundle = st->text(3);
    out.push_back(std::move(f));
  }
}

Result<std::vector<StoredFile>> FirmwareStore::release_files(std::string_view family,
                                                             std::string_view release) {
  DbLock lock(db_);
  auto st =
      Stmt::prepare(db_,
                    "SELECT p.name, p.sha256, p.size, COALESCE(b.name, '') FROM firmware_pins "
                    "p LEFT JOIN firmware_bundles b ON b.id = p.bundle_id WHERE p.family = ? "
                    "AND p.version = ? ORDER BY p.name",
                    "release files");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, family).bind(2, release);
  std::vector<StoredFile> out;
  for (;;) {
    auto row = st->step();
    if (!row) return fail(std::move(row.error()));
    if (!*row) return out;
    StoredFile f;
    f.name = st->text(0);
    f.sha256 = st->text(1);
    f.size = static_cast<std::uint64_t>(st->i64(2));
    f.path = blob_path(f.sha256);
    f.bundle = st->text(3);
    out.push_back(std::move(f));
  }
}

Result<std::vector<StoredFile>> FirmwareStore::verified_release(const inventory::Family& family,
                                                                const inventory::Release& release) {
  auto pinned = release_files(family.name, release.version.text);
  if (!pinned) return fail(std::move(pinned.error()));
  std::vector<StoredFile> out;
  std::vector<std::string> missing;
  for (const auto& want : release.files) {
    auto it = std::find_if(pinned->begin(), pinned->end(),
                           [&](const StoredFile& f) { return f.name == want.name; });
    if (it == pinned->end()) {
      missing.push_back(want.name);
      continue;
    }
    if (want.sha256 && *want.sha256 != it->sha256)
      return fail(Errc::VerifyMismatch, release.version.text + ": " + want.name +
                                            ": the store pinned sha256 " + it->sha256 +
                                            ", the catalog says " + *want.sha256);
    const BlobCheck check = check_blob(it->sha256, it->size);
    if (check.status != "ok")
      return fail(Errc::VerifyMismatch,
                  release.version.text + ": " + want.name + ": blob " + it->sha256 + " is " +
                      check.status + " (run 'labctl firmware verify'; import " +
                      (it->bundle.empty() ? std::string("its bundle") : it->bundle) + " again)");
    out.push_back(*it);
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing)
      list += (list.empty() ? "" : ", ") + m;
    return fail(Errc::NotFound,
                release.version.text + ": not in the firmware store: " + list + "; import " +
                    (release.bundle.empty() ? std::string("its bundle") : release.bundle) +
                    " with 'labctl firmware import'");
  }
  return out;
}

Result<std::vector<BundleRecord>> FirmwareStore::bundles() {
  DbLock lock(db_);
  auto st = Stmt::prepare(db_, "SELECT sha256 FROM firmware_bundles ORDER BY imported_at, id",
                          "list bundles");
  if (!st) return fail(std::move(st.error()));
  std::vector<std::string> shas;
  for (;;) {
    auto row = st->step();
    if (!row) return fail(std::move(row.error()));
    if (!*row) break;
    shas.push_back(st->text(0));
  }
  std::vector<BundleRecord> out;
  for (const auto& sha : shas) {
    auto b = bundle_by_sha(db_, sha);
    if (!b) return fail(std::move(b.error()));
    if (!*b) continue;
    auto files = files_of_bundle(db_, (*b)->id, (*b)->name, *this);
    if (!files) return fail(std::move(files.error()));
    (*b)->files = std::move(*files);
    out.push_back(std::move(**b));
  }
  return out;
}

Result<std::vector<PinRecord>> FirmwareStore::pins() {
  DbLock lock(db_);
  auto st = Stmt::prepare(db_,
                          "SELECT family, version, name, sha256, size, source, pinned_at FROM "
                          "firmware_pins ORDER BY family, version, name",
                          "list pins");
  if (!st) return fail(std::move(st.error()));
  std::vector<PinRecord> out;
  for (;;) {
    auto row = st->step();
    if (!row) return fail(std::move(row.error()));
    if (!*row) return out;
    PinRecord p;
    p.family = st->text(0);
    p.release = st->text(1);
    p.name = st->text(2);
    p.sha256 = st->text(3);
    p.size = static_cast<std::uint64_t>(st->i64(4));
    p.source = st->text(5);
    p.pinned_at = st->i64(6);
    out.push_back(std::move(p));
  }
}

Result<VerifyReport> FirmwareStore::verify() {
  std::map<std::string, BlobCheck> want;
  {
    DbLock lock(db_);
    auto st = Stmt::prepare(db_,
                            "SELECT sha256, size, name FROM firmware_files UNION "
                            "SELECT sha256, size, name FROM firmware_pins ORDER BY 1, 3",
                            "list blobs");
    if (!st) return fail(std::move(st.error()));
    for (;;) {
      auto row = st->step();
      if (!row) return fail(std::move(row.error()));
      if (!*row) break;
      auto& b = want[st->text(0)];
      b.sha256 = st->text(0);
      b.size = static_cast<std::uint64_t>(st->i64(1));
      const std::string name = st->text(2);
      if (std::find(b.names.begin(), b.names.end(), name) == b.names.end()) b.names.push_back(name);
    }
  }
  VerifyReport rep;
  for (auto& [sha, b] : want) {
    BlobCheck c = check_blob(sha, b.size);
    c.names = std::move(b.names);
    rep.blobs.push_back(std::move(c));
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_ / "sha256", ec)) {
    const std::string n = e.path().filename().string();
    if (!want.count(n)) rep.orphans.push_back(n);
  }
  for (const auto& e : fs::directory_iterator(root_, ec)) {
    const std::string n = e.path().filename().string();
    if (n.starts_with(".import-")) rep.stale_temp.push_back(n);
  }
  std::sort(rep.orphans.begin(), rep.orphans.end());
  std::sort(rep.stale_temp.begin(), rep.stale_temp.end());
  return rep;
}

}  // namespace labctl::controller::firmware
