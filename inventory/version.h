// Firmware versions, compared per device family.
//
// Each family names a scheme in the catalog; the scheme decides how text parses and how two
// versions order. Comparison never looks at the protocol of a Cisco load: SCCP 8.5(2) is older
// than SIP 9.4(2) because 8.5.2 < 9.4.2; the protocol is a separate attribute that rules can test.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace labctl::inventory {

enum class VersionScheme {
  CiscoLoad,   // "SCCP11.8-5-2S", "SIP11.9-4-2SR1-1S", "8-5-2TH1-9", "8.5(2)", "9.4(2)SR1"
  MajorMinor,  // BMC "2.50": major, then a two-digit (BCD, as ipmitool prints it) minor
  Dotted,      // drive "1.04", or any dotted numeric version: numeric per component
  Esxi,        // "6.5.0", "6.5.0 build 4564106", "4.1.0-260247"
};

std::string_view scheme_name(VersionScheme s);  // "cisco-load", "major-minor", "dotted", "esxi"
Result<VersionScheme> scheme_from_name(std::string_view name);

struct Version {
  VersionScheme scheme = VersionScheme::Dotted;
  std::string text;               // as written (normalised whitespace only)
  std::vector<std::int64_t> key;  // what ordering compares, lexicographically
  std::string protocol;           // CiscoLoad: "sccp", "sip" or "" when the text does not say

  // Human form: "SCCP 8.5(2)", "SIP 9.4(2)SR1", "2.50", "1.04", "6.5.0 build 4564106".
  std::string display() const;
};

// Parses `text` under `scheme`; InvalidInput with a message that says what form was expected.
Result<Version> parse_version(VersionScheme scheme, std::string_view text);

// Orders by key only (protocol ignored). Both must be of the same scheme.
std::strong_ordering compare(const Version& a, const Version& b);
inline bool operator<(const Version& a, const Version& b) {
  return compare(a, b) < 0;
}
inline bool same_version(const Version& a, const Version& b) {
  return compare(a, b) == 0;
}

}  // namespace labctl::inventory
