#include "plugins/esxi/domain_xml.h"

#include <fstream>
#include <pugixml.hpp>

#include "common/text.h"

namespace labctl::esxi {

namespace {
constexpr std::size_t kMaxTemplate = 1u << 20;
}  // namespace

Result<DomainXmlFacts> inspect_domain_xml(std::string_view xml) {
  if (xml.size() > kMaxTemplate)
    return fail(Errc::InvalidInput, "over 1 MiB: not a domain definition");
  pugi::xml_document doc;
  const auto parsed = doc.load_buffer(xml.data(), xml.size(), pugi::parse_default);
  if (!parsed)
    return fail(Errc::InvalidInput, std::string("not well-formed XML: ") + parsed.description() +
                                        " at byte " + std::to_string(parsed.offset));
  const auto root = doc.document_element();
  if (std::string_view(root.name()) != "domain")
    return fail(Errc::InvalidInput,
                std::string("the root element is <") + root.name() + ">, not <domain>");
  DomainXmlFacts f;
  f.type = text::trim(root.attribute("type").value());
  if (f.type.empty())
    return fail(Errc::InvalidInput, "<domain> has no type attribute (vmware, kvm, test, ...)");
  const auto names = root.children("name");
  auto it = names.begin();
  if (it == names.end()) return fail(Errc::InvalidInput, "<domain> has no <name>");
  f.name = text::trim(it->child_value());
  if (++it != names.end()) return fail(Errc::InvalidInput, "<domain> has more than one <name>");
  if (f.name.empty()) return fail(Errc::InvalidInput, "<domain><name> is empty");
  return f;
}

Result<std::string> read_template(const std::filesystem::path& file, const std::string& vm) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(Errc::NotFound, file.string() + ": cannot read it");
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxTemplate)
      return fail(Errc::InvalidInput, file.string() + ": over 1 MiB, not a domain definition");
  }
  auto facts = inspect_domain_xml(text);
  if (!facts) return fail(std::move(facts.error()).context(file.string()));
  if (facts->name != vm)
    return fail(Errc::InvalidInput, file.string() + ": defines the domain '" + facts->name +
                                        "', but the VM is '" + vm + "'");
  return text;
}

}  // namespace labctl::esxi
