// `labctl dhcp options`: the configuration lines that make another DHCP server hand Cisco phones
// their TFTP servers. Option 150 is a list of IPv4 addresses in binary (4 bytes each); option 66
// is the server name as text. Entering 150 as text is the classic mistake these snippets prevent.
//
// Pure: builds text, touches nothing. tests/dhcp/test_snippets.py feeds every format a real
// server can read (ISC dhcpd, Kea, dnsmasq) to that server and checks the bytes a client gets.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace labctl::dhcp {

enum class Format { Isc, Kea, Dnsmasq, CiscoIos, Mikrotik, Hex };

// "isc", "kea", "dnsmasq", "cisco-ios", "mikrotik", "hex"
std::string_view format_name(Format f);
// Every format, in the order above.
const std::vector<Format>& all_formats();
// The inverse of format_name (case-insensitive); InvalidInput naming the valid formats otherwise.
Result<Format> parse_format(std::string_view name);

// The snippet for `f`: its first line is a comment (in the format's own syntax) saying what it is
// and that option 150 is binary, then option 150 with every address of `tftp_servers` (host byte
// order, in order) and option 66 with `tftp_name`, or the first server's address as text when it
// is not given. InvalidInput for an empty list, more than 63 addresses (option 150 holds 255
// bytes), a duplicate, an address no phone can use (0.0.0.0, loopback, multicast, broadcast), or
// a name that is empty, longer than 255 bytes or not made of letters, digits, '.', '-' and '_'.
// Ends with a newline.
Result<std::string> dhcp_snippet(Format f, const std::vector<std::uint32_t>& tftp_servers,
                                 std::optional<std::string> tftp_name);

}  // namespace labctl::dhcp
