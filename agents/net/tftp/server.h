// The TFTP server: RFC 1350 with option negotiation (RFC 2347-2349) and windowsize (RFC 7440).
//
// One UDP listening socket (IPv4 or IPv6, by the bind address; "::" is dual-stack), a fixed number
// of event-loop threads (epoll), and per thread one ephemeral UDP socket per local address, shared
// by that thread's transfers (the server's TID for each; the client's address and port tell them
// apart), so one recvmmsg reads many transfers' ACKs and one sendmmsg sends their blocks. Each
// transfer buffers at most one window of blocks, read with pread(2) from the open file. Names
// resolve below the root only (paths.h); virtual files (plugins' generated content) are consulted
// first. Every request, OACK, progress step, completion and failure is an Event, delivered to an
// observer and, optionally, written as a JSON line to a log file. See README.md for the behaviour
// in full.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/net/tftp/codec.h"
#include "agents/net/tftp/paths.h"
#include "common/error.h"
#include "plugins/sdk/net_hooks.h"

namespace labctl::tftp {

enum class EventKind {
  Request,    // a read or write request arrived (before any check)
  Refused,    // the request was answered with an ERROR (name refused, not found, ...)
  Oack,       // options were acknowledged
  Progress,   // every ServerConfig::progress_bytes acknowledged (read) or received (write)
  Complete,   // the transfer finished
  Failed,     // the transfer started but did not finish (timeout, client error, stop)
  BadPacket,  // a malformed or unexpected datagram (bad opcode, unknown TID, ...)
};
std::string_view event_kind_name(EventKind k);  // "request", "refused", ...

// One event. Fields that do not apply to a kind keep their defaults and are left out of JSON.
struct Event {
  EventKind kind = EventKind::Request;
  std::int64_t time_ms = 0;       // Unix time in milliseconds
  std::uint64_t transfer = 0;     // transfer id, unique per server run; 0 when none
  std::string client;             // client address ("192.0.2.7", "::1"; IPv4-mapped shown as IPv4)
  std::uint16_t client_port = 0;  // client's port (its TID)
  std::string op;                 // "RRQ" or "WRQ"
  std::string name;               // as requested (raw bytes)
  std::string file;               // what was opened, relative to the root or write area
  std::string mode;               // "octet" or "netascii"
  std::vector<Option> options;    // Request: as requested; Oack: as acknowledged
  bool virtual_file = false;      // served from a virtual-file provider
  bool case_fallback = false;     // file's name differs from the request's only in case
  std::uint64_t bytes = 0;        // payload bytes acknowledged (read) or received (write)
  std::optional<std::uint64_t> size;  // total size when known
  std::uint16_t blksize = 0;
  std::uint16_t windowsize = 0;
  std::int64_t duration_ms = -1;            // Complete / Failed: time since the request
  std::uint64_t retransmits = 0;            // packets sent again after a timeout
  std::optional<std::uint16_t> error_code;  // Refused / Failed: TFTP code sent or received
  std::string reason;                       // Refused / Failed / BadPacket: why
  std::string source = "labctl";            // "labctl", or "syslog" for parsed log lines
  std::string host;                         // syslog: the host field
  std::optional<int> pid;                   // syslog: the server's process id
};

// The event as one JSON object (the log format; README.md documents every field). Invalid UTF-8
// in names is replaced, never an exception.
nlohmann::json event_to_json(const Event& e);
// The inverse of event_to_json, for reading a log back (doctor commands, plugins following a
// device's requests). InvalidInput, saying which field, for a line that is not an event.
Result<Event> event_from_json(const nlohmann::json& j);
// One line of text for a terminal: "complete 192.0.2.7 RRQ jar11sip.sbn 1234567 bytes in 812 ms".
std::string event_to_line(const Event& e);

using VirtualFileProvider =
    std::function<std::optional<std::string>(const sdk::TftpRequestInfo& request)>;
using EventObserver = std::function<void(const Event& event)>;

struct WriteArea {
  std::string dir;                        // below the root; must exist
  std::uint64_t max_bytes = 64ull << 20;  // a file larger than this is cut off with ERROR 3
  bool overwrite = false;                 // replace existing files (off: ERROR 6)
};

struct ServerConfig {
  std::filesystem::path root;
  std::string bind_address = "0.0.0.0";  // "::" for IPv6 (and IPv4-mapped) clients too
  std::uint16_t port = 69;               // 0: any free port (see Server::port())
  std::uint16_t max_blksize = kMaxBlksize;
  std::uint16_t max_windowsize = 64;
  std::size_t max_window_bytes = 1u << 20;  // per-transfer buffer bound (windowsize x blksize)
  bool clamp_to_path_mtu = true;            // lower blksize so DATA fits the route's MTU
  std::chrono::milliseconds retransmit_timeout{1000};  // first timeout; a client's "timeout" wins
  // Once round trips have been measured the timeout adapts to them (RFC 6298), between this floor
  // and the first timeout above.
  std::chrono::milliseconds min_retransmit_timeout{20};
  double backoff = 2.0;  // timeout multiplier per retransmission
  std::chrono::milliseconds max_retransmit_timeout{8000};
  int max_retries = 6;  // retransmissions of one packet or window before giving up
  std::chrono::milliseconds transfer_timeout{std::chrono::minutes(30)};  // whole transfer
  int threads = 2;                                                       // event-loop threads, 1-16
  std::size_t max_transfers = 4096;     // concurrent; more are refused with ERROR 0 "server busy"
  std::optional<WriteArea> write_area;  // unset: every WRQ is refused with ERROR 2
  std::filesystem::path log_path;       // JSON-lines event log, appended; empty: none
  std::uint64_t progress_bytes = 8ull << 20;  // Progress event interval; 0: none
  // Consulted in order before the static tree (RRQ only); the first non-nullopt wins. Called on an
  // event-loop thread: must be quick and must not block.
  std::vector<VirtualFileProvider> virtual_files;
  std::vector<sdk::NetHooks*> hooks;  // also consulted (after virtual_files); not owned
  EventObserver on_event;             // called serially (never concurrently), on loop threads
  ResolveOptions resolve;
};

class Server {
 public:
  struct Stats {
    std::uint64_t requests = 0, refused = 0, completed = 0, failed = 0, bad_packets = 0;
    std::uint64_t active = 0, bytes_sent = 0, bytes_received = 0, packets_sent = 0;
    std::uint64_t retransmits = 0;
  };

  // Validates the configuration, opens the root and the log, binds the socket and starts the
  // threads. Errors: InvalidInput (bad configuration), NotFound (root), Internal (socket).
  static Result<std::unique_ptr<Server>> start(ServerConfig config);
  ~Server();  // stop()s
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Stops the threads, ends every transfer (clients get ERROR 0 "server shutting down", observers
  // a Failed event) and closes the log. Idempotent; safe from any thread but a loop thread (not
  // from a signal handler: block signals and sigwait instead).
  void stop();

  std::uint16_t port() const;          // the bound port (useful with port 0)
  const std::string& address() const;  // the bound address
  Stats stats() const;

  class Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace labctl::tftp
