// bench/tftp/floor: the cheapest lock-step TFTP read server this machine can run, as a reference
// row in bench/tftp, not a product. It answers what issue 4's CPU target asks of any server: how
// much CPU per GiB does serving curl's lock-step clients over loopback cost when the server does
// nothing but the unavoidable (one datagram out per block, one in per ACK)?
//
// Everything a real server needs and this one leaves out makes it cheaper than a real server can
// be: one thread, one socket for every transfer (its port is every transfer's TID), recvmmsg of
// every waiting datagram and one sendmmsg of every reply, the file mapped and sent from the
// mapping with no copy, no retransmission timer (a duplicate ACK resends the block; loopback does
// not lose), no events, no logging, no path checks beyond refusing "..". Octet mode, the blksize
// and tsize options, block-number rollover.
//
//   floor --root DIR --port N [--bind ADDR]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

constexpr int kBatch = 64;

struct Transfer {
  const unsigned char* data = nullptr;
  std::size_t size = 0;
  std::size_t blksize = 512;
  std::uint64_t block = 0;  // last block sent (0: the OACK)
  bool last_sent = false;   // the short (final) block went out
  std::array<unsigned char, 4> header{};
  std::string oack;
};

using Key = std::pair<std::uint32_t, std::uint16_t>;

struct Out {
  sockaddr_in to;
  std::array<iovec, 2> iov;
  int iovcnt;
};

std::string root_dir;
std::map<Key, Transfer> transfers;
std::vector<Out> out;

void unmap(Transfer& t) {
  if (t.data && t.size) munmap(const_cast<unsigned char*>(t.data), t.size);
  t.data = nullptr;
}

void queue_block(const sockaddr_in& to, Transfer& t) {
  const std::uint64_t offset = (t.block - 1) * t.blksize;
  const std::size_t len = offset >= t.size ? 0 : std::min(t.blksize, t.size - offset);
  t.header = {0, 3, static_cast<unsigned char>((t.block >> 8) & 0xff),
              static_cast<unsigned char>(t.block & 0xff)};
  t.last_sent = len < t.blksize;
  Out o{to, {}, len ? 2 : 1};
  o.iov[0] = {t.header.data(), 4};
  o.iov[1] = {const_cast<unsigned char*>(t.data) + offset, len};
  out.push_back(o);
}

void queue_error(const sockaddr_in& to, const char* text) {
  static std::string buf;
  buf.assign("\0\5\0\2", 4);
  buf += text;
  buf.push_back('\0');
  Out o{to, {}, 1};
  o.iov[0] = {buf.data(), buf.size()};
  out.push_back(o);
}

void on_rrq(const sockaddr_in& from, const Key& key, std::string_view p) {
  if (transfers.count(key)) return;  // a repeated request
  std::vector<std::string_view> fields;
  while (!p.empty()) {
    const auto nul = p.find('\0');
    if (nul == std::string_view::npos) return;
    fields.push_back(p.substr(0, nul));
    p.remove_prefix(nul + 1);
  }
  if (fields.size() < 2 || fields[0].find("..") != std::string_view::npos) {
    queue_error(from, "refused");
    return;
  }
  std::string path = root_dir + "/" + std::string(fields[0]);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0) {
    if (fd >= 0) close(fd);
    queue_error(from, "not found");
    return;
  }
  Transfer t;
  t.size = static_cast<std::size_t>(st.st_size);
  if (t.size) {
    void* m = mmap(nullptr, t.size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (m == MAP_FAILED) {
      close(fd);
      queue_error(from, "mmap");
      return;
    }
    t.data = static_cast<const unsigned char*>(m);
  }
  close(fd);
  for (std::size_t i = 2; i + 1 < fields.size(); i += 2) {
    std::string name(fields[i]);
    for (auto& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "blksize") {
      const long v = std::strtol(std::string(fields[i + 1]).c_str(), nullptr, 10);
      t.blksize = static_cast<std::size_t>(std::clamp(v, 8L, 1468L));
      t.oack += "blksize";
      t.oack.push_back('\0');
      t.oack += std::to_string(t.blksize);
      t.oack.push_back('\0');
    } else if (name == "tsize") {
      t.oack += "tsize";
      t.oack.push_back('\0');
      t.oack += std::to_string(t.size);
      t.oack.push_back('\0');
    }
  }
  auto& slot = transfers[key] = std::move(t);
  if (!slot.oack.empty()) {
    slot.oack.insert(0, std::string("\0\6", 2));
    Out o{from, {}, 1};
    o.iov[0] = {slot.oack.data(), slot.oack.size()};
    out.push_back(o);
  } else {
    slot.block = 1;
    queue_block(from, slot);
  }
}

void on_ack(const sockaddr_in& from, const Key& key, std::uint16_t acked) {
  auto it = transfers.find(key);
  if (it == transfers.end()) return;
  Transfer& t = it->second;
  if (acked == static_cast<std::uint16_t>(t.block)) {
    if (t.block > 0 && t.last_sent) {
      unmap(t);
      transfers.erase(it);
      return;
    }
    ++t.block;
    queue_block(from, t);
  } else if (acked == static_cast<std::uint16_t>(t.block - 1) && t.block > 1) {
    queue_block(from, t);  // the client timed out waiting: the current block again
  }
}

void flush(int fd) {
  std::array<mmsghdr, kBatch> msgs{};
  std::size_t done = 0;
  while (done < out.size()) {
    const std::size_t n = std::min<std::size_t>(kBatch, out.size() - done);
    for (std::size_t i = 0; i < n; ++i) {
      Out& o = out[done + i];
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = &o.to;
      msgs[i].msg_hdr.msg_namelen = sizeof o.to;
      msgs[i].msg_hdr.msg_iov = o.iov.data();
      msgs[i].msg_hdr.msg_iovlen = static_cast<std::size_t>(o.iovcnt);
    }
    const int sent = sendmmsg(fd, msgs.data(), static_cast<unsigned>(n), 0);
    if (sent <= 0) {
      if (sent < 0 && errno == EINTR) continue;
      ++done;  // drop the one that failed; the client will ask again
      continue;
    }
    done += static_cast<std::size_t>(sent);
  }
  out.clear();
}

}  // namespace

int main(int argc, char** argv) {
  std::string bind_addr = "127.0.0.1";
  int port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view a = argv[i];
    if (a == "--root")
      root_dir = argv[i + 1];
    else if (a == "--port")
      port = std::atoi(argv[i + 1]);
    else if (a == "--bind")
      bind_addr = argv[i + 1];
  }
  if (root_dir.empty() || port <= 0 || port > 65535) {
    std::fprintf(stderr, "usage: floor --root DIR --port N [--bind ADDR]\n");
    return 2;
  }
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  if (fd < 0 || inet_pton(AF_INET, bind_addr.c_str(), &sa.sin_addr) != 1 ||
      bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    std::perror("floor: bind");
    return 1;
  }
  const int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);

  std::array<std::array<unsigned char, 1600>, kBatch> bufs{};
  std::array<sockaddr_in, kBatch> from{};
  std::array<iovec, kBatch> iov{};
  std::array<mmsghdr, kBatch> msgs{};
  for (;;) {
    for (int i = 0; i < kBatch; ++i) {
      iov[i] = {bufs[i].data(), bufs[i].size()};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int n = recvmmsg(fd, msgs.data(), kBatch, MSG_WAITFORONE, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("floor: recvmmsg");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      const unsigned char* p = bufs[i].data();
      const std::size_t len = msgs[i].msg_len;
      if (len < 4) continue;
      const Key key{from[i].sin_addr.s_addr, from[i].sin_port};
      const int op = p[0] << 8 | p[1];
      if (op == 1)
        on_rrq(from[i], key, std::string_view(reinterpret_cast<const char*>(p) + 2, len - 2));
      else if (op == 4)
        on_ack(from[i], key, static_cast<std::uint16_t>(p[2] << 8 | p[3]));
      else if (op == 5) {
        auto it = transfers.find(key);
        if (it != transfers.end()) {
          unmap(it->second);
          transfers.erase(it);
        }
      }
    }
    flush(fd);
  }
}
