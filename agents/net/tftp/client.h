// A small TFTP client (read requests only) for diagnostics and tests: `labctl tftp get`.
//
// Negotiates blksize, tsize and RFC 7440 windowsize (it acknowledges the last block of each
// window, and the last in-order block when it sees a gap), retransmits with backoff, follows block
// numbers past 65535 (wrapping to 0), answers strangers with ERROR 5, and reports server errors
// with their code and message.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "agents/net/tftp/codec.h"
#include "common/error.h"

namespace labctl::tftp {

struct ClientOptions {
  std::string host = "127.0.0.1";  // address or name
  std::uint16_t port = 69;
  std::string name;                         // the file to fetch
  Mode mode = Mode::Octet;                  // Netascii: received text is decoded (CR LF -> LF)
  std::uint16_t blksize = 512;              // asked for when not 512; 0: never ask
  std::uint16_t windowsize = 1;             // asked for when above 1
  bool tsize = true;                        // ask for the size (tsize=0)
  std::uint8_t timeout_option = 0;          // RFC 2349 timeout to ask for, seconds; 0: none
  std::chrono::milliseconds timeout{1000};  // first retransmission timeout (doubles, max 8 s)
  int retries = 5;                          // retransmissions of one packet before giving up
  std::chrono::milliseconds transfer_timeout{std::chrono::minutes(10)};
  std::string local_address;  // bind the client socket here (e.g. "127.0.0.2"); empty: any
};

struct ClientResult {
  std::uint64_t bytes = 0;
  std::optional<std::uint64_t> tsize;  // as the server announced it
  std::uint16_t blksize = kDefaultBlksize;
  std::uint16_t windowsize = 1;
  bool oack = false;  // the server acknowledged options
  std::uint64_t retransmits = 0;
  std::chrono::milliseconds duration{0};
};

// Receives the file's bytes in order; an error aborts the transfer (the server gets ERROR 0).
using ClientSink = std::function<Status(std::span<const std::uint8_t> bytes)>;

// Errors: NotFound (server error 1), PreconditionFailed (access violation and other refusals),
// Timeout, Unreachable (no answer at all, or ICMP port unreachable), InvalidInput (bad options or
// a malformed answer), and whatever the sink returned.
Result<ClientResult> get(const ClientOptions& options, const ClientSink& sink);
// The whole file in memory (tests, small files).
Result<std::string> get_string(const ClientOptions& options, ClientResult* result = nullptr);
// To a file: written to a temporary name beside it and renamed when complete.
Result<ClientResult> get_file(const ClientOptions& options, const std::filesystem::path& out);

struct TftpUrl {
  std::string host;
  std::uint16_t port = 69;
  std::string name;
};
// "tftp://HOST[:PORT]/NAME", HOST an IPv6 address in brackets if need be. The name is taken as is
// (no percent-decoding: TFTP names are bytes, and "%2e%2e" stays literal).
Result<TftpUrl> parse_url(std::string_view url);

}  // namespace labctl::tftp
