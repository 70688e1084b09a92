// labctl::Error and Result<T>: how every layer reports failure.
//
// No exception crosses a plugin, agent or network boundary. A failure is a value: an error class
// (which decides retry behaviour in the engine), a human message, and context that each layer adds
// on the way up ("flash bmc server1: upload: connection refused").
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace labctl {

enum class Errc {
  NotSupported,        // the device, driver or build cannot do this
  Unreachable,         // no answer from the device or agent (retry with backoff)
  Timeout,             // the operation started but did not finish in time (retry with backoff)
  AuthFailed,          // credentials refused (never retried)
  PreconditionFailed,  // the device or image is not in the state the step needs
  VerifyMismatch,      // a read-back or checksum differs from what was written (never retried)
  InvalidInput,        // bad inventory, catalog, packet, file or argument
  NotFound,            // a named thing does not exist
  Cancelled,           // the operator interrupted the run
  Internal,            // a bug or an unexpected environment failure
};

// Stable lower-case name, used in JSON output and the state store.
std::string_view errc_name(Errc c);
// Inverse of errc_name; Internal for an unknown name.
Errc errc_from_name(std::string_view name);
// Whether the engine may retry a step that failed with this class.
bool errc_retryable(Errc c);

class Error {
 public:
  Error(Errc code, std::string message) : code_(code), message_(std::move(message)) {}

  Errc code() const { return code_; }
  // The message with every context prefix: "flash bmc server1: upload: refused".
  const std::string& message() const { return message_; }

  // Prefixes context, outermost last: err.context("upload").context("flash bmc server1").
  Error& context(std::string_view what) & {
    message_.insert(0, std::string(what) + ": ");
    return *this;
  }
  Error&& context(std::string_view what) && { return std::move(context(what)); }

 private:
  Errc code_;
  std::string message_;
};

template <typename T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

inline std::unexpected<Error> fail(Errc code, std::string message) {
  return std::unexpected<Error>(Error(code, std::move(message)));
}
inline std::unexpected<Error> fail(Error e) {
  return std::unexpected<Error>(std::move(e));
}

}  // namespace labctl
