// Domain XML templates from the inventory (`vms: - template: FILE`): what labctl checks before it
// hands one to virDomainDefineXML. libvirt validates the rest when it defines the VM; these checks
// exist so `labctl validate` names the file and the problem long before an apply.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/error.h"

namespace labctl::esxi {

struct DomainXmlFacts {
  std::string name;  // <domain><name>
  std::string type;  // <domain type="...">: vmware, kvm, qemu, test, ...
};

// The name and type of a domain XML document; InvalidInput, saying where and why, for anything
// that is not one well-formed <domain> with a type and a non-empty name.
Result<DomainXmlFacts> inspect_domain_xml(std::string_view xml);

// A template file's text (at most 1 MiB), with its facts checked against the VM it defines.
Result<std::string> read_template(const std::filesystem::path& file, const std::string& vm);

}  // namespace labctl::esxi
