#include "plugins/esxi/vsphere.h"

#include <curl/curl.h>

#include <algorithm>
#include <memory>
#include <pugixml.hpp>

#include "common/text.h"

namespace labctl::esxi {

namespace {

constexpr std::size_t kMaxResponse = 1u << 20;  // a ServiceContent is a few KiB

// "soapenv:Body" -> "Body": the vSphere API's prefixes vary between hosts.
std::string_view local_name(const char* name) {
  std::string_view n(name);
  auto colon = n.rfind(':');
  return colon == std::string_view::npos ? n : n.substr(colon + 1);
}

pugi::xml_node child(pugi::xml_node parent, std::string_view name) {
  for (auto c = parent.first_child(); c; c = c.next_sibling())
    if (c.type() == pugi::node_element && local_name(c.name()) == name) return c;
  return {};
}

std::string child_text(pugi::xml_node parent, std::string_view name) {
  return valid_utf8(text::trim(child(parent, name).child_value()));
}

bool all_of(std::string_view s, std::string_view allowed) {
  return std::all_of(s.begin(), s.end(),
                     [&](char c) { return allowed.find(c) != std::string_view::npos; });
}

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
  auto* s = static_cast<std::string*>(out);
  if (s->size() + size * n > kMaxResponse) return 0;  // abort: not a ServiceContent
  s->append(data, size * n);
  return size * n;
}

struct CurlFree {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct SlistFree {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct UrlFree {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};

// One part of a parsed URL; "" when absent.
std::string url_part(CURLU* u, CURLUPart part) {
  char* v = nullptr;
  if (curl_url_get(u, part, &v, 0) != CURLUE_OK || v == nullptr) return "";
  std::string out(v);
  curl_free(v);
  return out;
}

const char* kRequest =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
    "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">"
    "<soapenv:Body><RetrieveServiceContent xmlns=\"urn:vim25\">"
    "<_this type=\"ServiceInstance\">ServiceInstance</_this>"
    "</RetrieveServiceContent></soapenv:Body></soapenv:Envelope>";

}  // namespace

std::string valid_utf8(std::string_view text) {
  // nlohmann's serializer already knows UTF-8: let it replace what is not, and read it back.
  const nlohmann::json j = std::string(text);
  return nlohmann::json::parse(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
      .get<std::string>();
}

std::string About::version_text() const {
  return build.empty() ? version : version + " build " + build;
}

nlohmann::json About::to_json() const {
  return {{"name", name},
          {"full_name", full_name},
          {"vendor", vendor},
          {"version", version},
          {"build", build},
          {"api_type", api_type},
          {"api_version", api_version},
          {"product_line", product_line}};
}

Result<About> parse_about(std::string_view in) {
  if (in.size() > kMaxResponse)
    return fail(Errc::InvalidInput, "vSphere answer over 1 MiB: not a ServiceContent");
  pugi::xml_document doc;
  const auto parsed = doc.load_buffer(in.data(), in.size(), pugi::parse_default);
  if (!parsed)
    return fail(Errc::InvalidInput, std::string("vSphere answer is not XML: ") +
                                        parsed.description() + " at byte " +
                                        std::to_string(parsed.offset));
  const auto envelope = doc.document_element();
  if (local_name(envelope.name()) != "Envelope")
    return fail(Errc::InvalidInput, "vSphere answer is not a SOAP envelope");
  const auto body = child(envelope, "Body");
  if (!body) return fail(Errc::InvalidInput, "vSphere answer has no SOAP Body");
  if (const auto fault = child(body, "Fault")) {
    std::string why = child_text(fault, "faultstring");
    return fail(Errc::NotSupported,
                "vSphere API fault: " + (why.empty() ? std::string("(no faultstring)") : why));
  }
  const auto about =
      child(child(child(body, "RetrieveServiceContentResponse"), "returnval"), "about");
  if (!about) return fail(Errc::InvalidInput, "vSphere answer has no ServiceContent.about");
  About a;
  a.name = child_text(about, "name");
  a.full_name = child_text(about, "fullName");
  a.vendor = child_text(about, "vendor");
  a.version = child_text(about, "version");
  a.build = child_text(about, "build");
  a.api_type = child_text(about, "apiType");
  a.api_version = child_text(about, "apiVersion");
  a.product_line = child_text(about, "productLineId");
  // The version and build become a firmware version text: only what the esxi scheme reads, one
  // to three dotted numbers.
  const auto parts = text::split(a.version, '.');
  if (a.version.empty() || parts.size() > 3 ||
      !std::all_of(parts.begin(), parts.end(), [](const std::string& p) {
        return !p.empty() && p.size() <= 9 && all_of(p, "0123456789");
      }))
    return fail(Errc::InvalidInput, "vSphere about.version '" + a.version.substr(0, 40) +
                                        "' is not a dotted version (at most three numbers)");
  if (a.build.size() > 12 || !all_of(a.build, "0123456789"))
    return fail(Errc::InvalidInput,
                "vSphere about.build '" + a.build.substr(0, 40) + "' is not a build number");
  return a;
}

std::string uri_scheme(std::string_view uri) {
  auto end = uri.find("://");
  if (end == std::string_view::npos || end == 0) return "";
  return text::lower(uri.substr(0, end));
}

bool is_vsphere_scheme(std::string_view scheme) {
  return scheme == "esx" || scheme == "vpx" || scheme == "gsx";
}

Result<Endpoint> vsphere_endpoint(const std::string& libvirt_uri) {
  const std::string scheme = uri_scheme(libvirt_uri);
  if (!is_vsphere_scheme(scheme))
    return fail(Errc::NotSupported, libvirt_uri + ": not a vSphere URI (esx://, vpx://, gsx://)");
  std::unique_ptr<CURLU, UrlFree> u(curl_url());
  if (!u) return fail(Errc::Internal, "curl_url failed");
  if (auto rc = curl_url_set(u.get(), CURLUPART_URL, libvirt_uri.c_str(), CURLU_NON_SUPPORT_SCHEME);
      rc != CURLUE_OK)
    return fail(Errc::InvalidInput, libvirt_uri + ": " + curl_url_strerror(rc));
  const std::string host = url_part(u.get(), CURLUPART_HOST);
  if (host.empty()) return fail(Errc::InvalidInput, libvirt_uri + ": no host");
  Endpoint e;
  std::string transport = scheme == "gsx" ? "http" : "https";
  for (const auto& kv : text::split(url_part(u.get(), CURLUPART_QUERY), '&')) {
    const auto eq = kv.find('=');
    const std::string k = kv.substr(0, eq), v = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (k == "no_verify") e.verify = v != "1";
    if (k == "transport" && (v == "http" || v == "https")) transport = v;
  }
  const std::string port = url_part(u.get(), CURLUPART_PORT);
  e.url = transport + "://" + host + (port.empty() ? "" : ":" + port) + "/sdk";
  return e;
}

Result<About> fetch_about(const Endpoint& endpoint, std::chrono::milliseconds timeout) {
  std::unique_ptr<CURL, CurlFree> h(curl_easy_init());
  if (!h) return fail(Errc::Internal, "curl_easy_init failed");
  std::unique_ptr<curl_slist, SlistFree> headers(
      curl_slist_append(nullptr, "Content-Type: text/xml; charset=utf-8"));
  // vim25/4.0: every ESX(i) from 4.0 on answers it (the seed's hosts run 4.1).
  headers.reset(curl_slist_append(headers.release(), "SOAPAction: \"urn:vim25/4.0\""));
  std::string body;
  CURL* c = h.get();
  curl_easy_setopt(c, CURLOPT_URL, endpoint.url.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, kRequest);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min<std::int64_t>(timeout.count(), 5000)));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, endpoint.verify ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, endpoint.verify ? 2L : 0L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  const std::string where = endpoint.url + ": RetrieveServiceContent: ";
  if (rc == CURLE_OPERATION_TIMEDOUT) return fail(Errc::Timeout, where + "no answer in time");
  if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
    return fail(Errc::PreconditionFailed,
                where + curl_easy_strerror(rc) +
                    " (trust the host's CA, or set no-verify: true, which is a finding)");
  if (rc != CURLE_OK) return fail(Errc::Unreachable, where + curl_easy_strerror(rc));
  // A SOAP fault comes with HTTP 500; its faultstring says more than the status.
  auto about = parse_about(body);
  if (!about && status != 200 && status != 500)
    return fail(Errc::NotSupported, where + "HTTP " + std::to_string(status));
  if (!about) return fail(std::move(about.error()).context(endpoint.url));
  return about;
}

}  // namespace labctl::esxi
