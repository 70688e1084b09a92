// What a TFTP log says about the phones it served: `labctl phone doctor --log FILE` (an in.tftpd
// syslog like the seed's, or labctl's own JSON event log). Works from requests alone, so it also
// explains servers labctl did not run.
//
// Per client address, in time order:
//  - term-file loop: the phone asks termNN.default.loads again and again and never a .sbn. It reads
//    the load named there and refuses it -- in the seed, SIP 9.x offered to phones whose
//    bootloader predates 8.3(3). The diagnosis names the catalog's bootloader hop.
//  - missing file: a request answered "File not found" (or refused otherwise): which file, and
//    for a load file, that the load is incomplete in the TFTP root.
//  - incomplete load: the phone fetched some of a catalog load's .sbn files and then stopped.
//  - load fetched: every .sbn of a catalog load was requested (the phone is installing it).
//  - configuration: SEP<MAC>.cnf.xml asked (the phone's MAC), or only XMLDefault.cnf.xml.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/net/tftp/server.h"
#include "inventory/catalog.h"

namespace labctl::cisco_phone {

struct Diagnosis {
  std::string client;    // IP address
  std::string severity;  // "critical", "warning", "info"
  std::string code;      // "term-file-loop", "missing-file", "incomplete-load", "load-fetched", ...
  std::string message;
  std::int64_t first_ms = 0, last_ms = 0;  // the events it rests on
  std::vector<std::string> evidence;       // the requests, abridged
};

// Events of any source (labctl's server or parse_syslog) for any clients; `catalog` may be null
// (then loads are named from file names only).
std::vector<Diagnosis> diagnose(const std::vector<tftp::Event>& events,
                                const inventory::Catalog* catalog);

nlohmann::json to_json(const Diagnosis& d);
std::string to_text(const Diagnosis& d);

}  // namespace labctl::cisco_phone
