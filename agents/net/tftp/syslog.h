// Reads the syslog lines of tftpd-hpa (in.tftpd) into the same events labctl's server emits, so
// `doctor` commands can follow phones served by a TFTP server labctl does not run.
//
// Lines understood (with a BSD "Dec 30 10:15:32" or an ISO 8601 timestamp, any host, program
// "in.tftpd" or "tftpd" with or without "[PID]"):
//   in.tftpd[24929]: RRQ from 192.168.0.224 filename term06.default.loads      -> Request
//   in.tftpd[24929]: WRQ from ::ffff:1.2.3.4 filename up.bin                   -> Request
//   in.tftpd[24929]: RRQ from 1.2.3.4 filename a remapped to b                 -> Request, file b
//   in.tftpd[24929]: sending NAK (1, File not found) to 192.168.0.224          -> Refused
// A NAK carries no file name; the parser takes it from the same process's last request (tftpd-hpa
// forks one process per request). Other lines are skipped.
#pragma once

#include <istream>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

#include "agents/net/tftp/server.h"

namespace labctl::tftp {

class SyslogParser {
 public:
  // `year` for BSD timestamps, which have none (0: the current year). BSD timestamps are read as
  // local time, as syslog writes them; ISO timestamps carry their offset (none: UTC).
  explicit SyslogParser(int year = 0);

  // The event of one line, or nullopt when the line is not a tftpd request or NAK.
  std::optional<Event> parse_line(std::string_view line);

 private:
  int year_;
  struct Last {
    std::string op, name, file, client;
  };
  std::map<std::string, Last> last_;  // by host + pid
};

// Every event in a log (one line at a time; bounded memory per line).
std::vector<Event> parse_syslog(std::istream& in, int year = 0);

}  // namespace labctl::tftp
