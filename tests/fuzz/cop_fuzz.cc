// libFuzzer target: arbitrary bytes as a firmware bundle (.cop.sgn signing header, then gzip'd
// tar / tar / zip, nested archives) walked from memory with small limits, and the pieces the
// walk uses: the TLV header parser, the member-name policy, the name classifier. It must never
// crash, leak or hang, and whatever it accepts must keep the invariants checked below.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "controller/firmware_store.h"

namespace fw = labctl::controller::firmware;

namespace {

class CheckingSink : public fw::MemberSink {
 public:
  explicit CheckingSink(const fw::WalkLimits& limits) : limits_(limits) {}
  labctl::Result<bool> begin(const fw::MemberInfo& m) override {
    // A name that reaches the sink has passed the policy: a plain base name.
    if (m.name.empty() || m.name == "." || m.name == ".." ||
        m.name.find_first_of(std::string("/\\\0", 3)) != std::string::npos)
      __builtin_trap();
    auto again = fw::member_basename(m.name);
    if (!again || *again != m.name) __builtin_trap();
    (void)fw::classify_name(m.name);
    member_ = 0;
    return true;
  }
  labctl::Status write(std::span<const std::uint8_t> d) override {
    member_ += d.size();
    total_ += d.size();
    if (member_ > limits_.max_member || total_ > limits_.max_total) __builtin_trap();
    return {};
  }
  labctl::Status end() override { return {}; }

 private:
  fw::WalkLimits limits_;
  std::uint64_t member_ = 0, total_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);

  // The header parser alone: whatever it accepts is consistent with the input.
  auto h = fw::parse_signed_header(bytes, size);
  if (h) {
    if (h->header_length == 0 || h->header_length >= size) __builtin_trap();
    if (h->records.empty() || h->records.front().tag != 1 || h->records.front().offset != 0)
      __builtin_trap();
    std::size_t next = 0;
    for (const auto& r : h->records) {
      if (r.offset != next) __builtin_trap();
      next = r.offset + 3 + r.length;
    }
    if (next != h->header_length) __builtin_trap();
  }

  // The whole walk, as a signed bundle and as a plain one, with small limits.
  fw::WalkLimits limits;
  limits.max_member = 256 * 1024;
  limits.max_total = 1024 * 1024;
  limits.max_depth = 3;
  limits.max_members = 256;
  for (const char* name : {"fuzz.cop.sgn", "fuzz.zip"}) {
    CheckingSink sink(limits);
    auto r = fw::walk_bundle_memory(bytes, name, limits, sink);
    if (r && r->expanded > limits.max_total) __builtin_trap();
    if (!r && r.error().message().empty()) __builtin_trap();
  }

  // Names: the input as one member name.
  const std::string raw(reinterpret_cast<const char*>(data), size < 512 ? size : 512);
  auto base = fw::member_basename(raw);
  if (base && (base->empty() || *base == ".." || base->find('/') != std::string::npos))
    __builtin_trap();
  (void)fw::printable(raw);
  (void)fw::classify_name(raw);
  return 0;
}
