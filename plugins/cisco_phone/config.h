// Configuration files for Cisco 7906G / 7911G phones on SIP loads: `SEP<MAC>.cnf.xml` per phone and
// `XMLDefault.cnf.xml`, written with pugixml, and the checks that must pass before any of them is
// published (the seed's phones would not register with FreePBX's 32-character passwords).
//
// Pure: no files, no network. The phone plugin fills a PhoneConfig from the inventory (the
// password from its secret) and publishes the text through the TFTP service's virtual files.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common/error.h"

namespace labctl::cisco_phone {

// Per-model limits, from the catalog family's quirks (catalog/catalog.yaml).
struct Limits {
  // Unconfirmed: the real limit is not known; 15 is the catalog's conservative default.
  std::size_t sip_password_max = 15;
  std::size_t phone_label_max = 12;  // <phoneLabel>, and no spaces, on the 79xx
};

struct Line {
  std::string extension;     // SIP user name, e.g. "1001"
  std::string display_name;  // caller id shown to others
  std::string auth_name;     // defaults to the extension (always written: see DESIGN.md)
  std::string password;      // the SIP secret; never logged
  std::string label;         // the line button's text; defaults to the extension
};

struct PhoneConfig {
  std::string device;  // inventory name, for messages
  std::string mac;     // "00:0b:82:01:fc:42" (any common spelling is accepted)
  std::string model;   // "CP-7911G"
  std::string sip_server;
  int sip_port = 5060;
  std::string phone_label;       // top of the screen; "" = none
  std::string load_information;  // the load id to run, e.g. "SIP11.9-4-2SR1-1S"; "" = keep
  std::string ntp_server;        // "" = none
  std::string time_zone = "UTC";
  std::vector<Line> lines;
};

// One reason a configuration cannot be published: which phone, which field, why.
struct Problem {
  std::string device;
  std::string field;  // "sip.password", "label", "mac", "extension", ...
  std::string message;
};
std::string describe(const Problem& p);  // "phone1: sip.password: 32 characters; ..."

// Checks one phone. Every problem, not just the first. Never includes a password's value.
std::vector<Problem> validate(const PhoneConfig& c, const Limits& limits);
// Checks a set of phones together: duplicate MACs and duplicate extensions.
std::vector<Problem> validate_all(const std::vector<PhoneConfig>& phones, const Limits& limits);

// "SEP000B8201FC42.cnf.xml" (upper-case hex, no separators), or InvalidInput for a bad MAC.
Result<std::string> sep_file_name(const std::string& mac);

// The phone's own configuration. InvalidInput when validate() finds a problem.
Result<std::string> render_sep_config(const PhoneConfig& c, const Limits& limits);
// What a phone without its own file gets: the SIP server and the load to run, no lines.
std::string render_xml_default(const std::string& sip_server, int sip_port,
                               const std::string& load_information);

}  // namespace labctl::cisco_phone
