// dhcp_snippet_tool FORMAT IP[,IP...] [NAME]: prints dhcp_snippet() to standard output, for
// tests/dhcp/test_snippets.py. Exit 1 with the error on standard error, 2 on bad usage.
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "agents/net/dhcp/codec.h"
#include "agents/net/dhcp/snippets.h"
#include "common/text.h"

int main(int argc, char** argv) {
  using namespace labctl;
  if (argc < 3 || argc > 4) {
    std::cerr << "usage: " << argv[0] << " FORMAT IP[,IP...] [NAME]\n";
    return 2;
  }
  auto format = dhcp::parse_format(argv[1]);
  if (!format) {
    std::cerr << format.error().message() << "\n";
    return 1;
  }
  std::vector<std::uint32_t> ips;
  for (const auto& part : text::split(argv[2], ',')) {
    auto ip = dhcp::parse_ipv4(text::trim(part));
    if (!ip) {
      std::cerr << "not an IPv4 address: '" << part << "'\n";
      return 1;
    }
    ips.push_back(*ip);
  }
  std::optional<std::string> name;
  if (argc == 4) name = argv[3];
  auto snippet = dhcp::dhcp_snippet(*format, ips, name);
  if (!snippet) {
    std::cerr << snippet.error().message() << "\n";
    return 1;
  }
  std::cout << *snippet;
  return 0;
}
