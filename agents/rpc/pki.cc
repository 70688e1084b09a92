#include "agents/rpc/pki.h"

#include "common/digest.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace labctl::agents::rpc {

namespace fs = std::filesystem;

namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

std::string ssl_error(const std::string& what) {
  const unsigned long e = ERR_get_error();
  char buf[256] = "unknown OpenSSL error";
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return what + ": " + buf;
}

Result<KeyPtr> new_key() {
  KeyPtr k(EVP_EC_gen("P-256"));
  if (!k) return fail(Errc::Internal, ssl_error("generating an EC P-256 key"));
  return k;
}

// Writes through a temporary file renamed into place, with `mode` from the start (a key is never
// readable by others, not even for a moment).
Status write_file(const fs::path& path, const std::string& data, mode_t mode) {
  const fs::path tmp = path.string() + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return fail(Errc::Internal, tmp.string() + ": " + std::strerror(errno));
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return fail(Errc::Internal, tmp.string() + ": " + std::strerror(e));
    }
    off += static_cast<std::size_t>(n);
  }
  ::fchmod(fd, mode);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return fail(Errc::Internal, tmp.string() + ": " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return fail(Errc::Internal, path.string() + ": " + std::strerror(e));
  }
  return {};
}

Result<std::string> pem_of_key(EVP_PKEY* k) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return fail(Errc::Internal, ssl_error("writing a key"));
  char* p = nullptr;
  const long n = BIO_get_mem_data(b.get(), &p);
  return std::string(p, static_cast<std::size_t>(n));
}

Result<std::string> pem_of_cert(X509* c) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_X509(b.get(), c) != 1)
    return fail(Errc::Internal, ssl_error("writing a certificate"));
  char* p = nullptr;
  const long n = BIO_get_mem_data(b.get(), &p);
  return std::string(p, static_cast<std::size_t>(n));
}

Result<KeyPtr> read_key(const fs::path& path) {
  BioPtr b(BIO_new_file(path.c_str(), "r"));
  if (!b) return fail(Errc::NotFound, ssl_error(path.string()));
  KeyPtr k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!k) return fail(Errc::InvalidInput, ssl_error(path.string() + ": not a PEM private key"));
  return k;
}

Result<CertPtr> read_cert(const fs::path& path) {
  BioPtr b(BIO_new_file(path.c_str(), "r"));
  if (!b) return fail(Errc::NotFound, ssl_error(path.string()));
  CertPtr c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c) return fail(Errc::InvalidInput, ssl_error(path.string() + ": not a PEM certificate"));
  return c;
}

Status add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return fail(Errc::Internal, ssl_error("extension " + value));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return fail(Errc::Internal, ssl_error("adding extension " + value));
  return {};
}

struct CertSpec {
  std::string common_name;
  bool ca = false;
  std::string eku;  // "clientAuth" / "serverAuth"
  std::vector<std::string> san;
  long days = 825;
};

Result<CertPtr> issue(const CertSpec& spec, EVP_PKEY* subject_key, X509* issuer_cert,
                      EVP_PKEY* issuer_key) {
  CertPtr c(X509_new());
  if (!c) return fail(Errc::Internal, ssl_error("X509_new"));
  X509_set_version(c.get(), 2);  // v3
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return fail(Errc::Internal, ssl_error("serial"));
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  ASN1_INTEGER* sn = bn ? BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.get())) : nullptr;
  BN_free(bn);
  if (sn == nullptr) return fail(Errc::Internal, ssl_error("serial"));
  // A minute back, so a clock slightly behind on the other side still accepts it.
  X509_gmtime_adj(X509_getm_notBefore(c.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), spec.days * 24L * 3600L);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("labctl"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1,
                             -1, 0);
  X509* issuer = issuer_cert ? issuer_cert : c.get();
  X509_set_issuer_name(c.get(), X509_get_subject_name(issuer));
  if (X509_set_pubkey(c.get(), subject_key) != 1)
    return fail(Errc::Internal, ssl_error("public key"));
  auto add = [&](int nid, const std::string& v) { return add_ext(c.get(), issuer, nid, v); };
  Status s;
  if (spec.ca) {
    if (s = add(NID_basic_constraints, "critical,CA:TRUE,pathlen:0"); !s) return fail(s.error());
    if (s = add(NID_key_usage, "critical,keyCertSign,cRLSign"); !s) return fail(s.error());
  } else {
    if (s = add(NID_basic_constraints, "critical,CA:FALSE"); !s) return fail(s.error());
    if (s = add(NID_key_usage, "critical,digitalSignature"); !s) return fail(s.error());
    if (s = add(NID_ext_key_usage, spec.eku); !s) return fail(s.error());
  }
  if (s = add(NID_subject_key_identifier, "hash"); !s) return fail(s.error());
  if (!spec.ca)
    if (s = add(NID_authority_key_identifier, "keyid:always"); !s) return fail(s.error());
  if (!spec.san.empty()) {
    std::string v;
    for (const auto& h : spec.san) {
      if (!v.empty()) v += ",";
      const bool ip = h.find_first_not_of("0123456789.") == std::string::npos ||
                      h.find(':') != std::string::npos;
      v += (ip ? "IP:" : "DNS:") + h;
    }
    if (s = add(NID_subject_alt_name, v); !s) return fail(s.error());
  }
  if (X509_sign(c.get(), issuer_key, EVP_sha256()) == 0)
    return fail(Errc::Internal, ssl_error("signing " + spec.common_name));
  return c;
}

Status write_pair(const fs::path& dir, const std::string& base, X509* cert, EVP_PKEY* key,
                  PkiReport& report) {
  auto kp = pem_of_key(key);
  if (!kp) return fail(kp.error());
  auto cp = pem_of_cert(cert);
  if (!cp) return fail(cp.error());
  if (auto s = write_file(dir / (base + ".key"), *kp, 0600); !s) return s;
  if (auto s = write_file(dir / (base + ".pem"), *cp, 0644); !s) return s;
  report.written.push_back(dir / (base + ".key"));
  report.written.push_back(dir / (base + ".pem"));
  return {};
}

bool valid_agent_name(std::string_view s) {
  if (s.empty() || s.size() > 63 || s == "local" || s == "ca" || s == "controller") return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return false;
  return std::isalnum(static_cast<unsigned char>(s[0])) != 0;
}

}  // namespace

Result<PkiReport> init_pki(const PkiOptions& o) {
  PkiReport report;
  for (const auto& a : o.agents)
    if (!valid_agent_name(a))
      return fail(
          Errc::InvalidInput,
          "agent name '" + a +
              "' must be 1-63 letters, digits, '.', '-' or '_' (not local, ca, controller)");
  std::error_code ec;
  fs::create_directories(o.dir, ec);
  if (ec) return fail(Errc::Internal, o.dir.string() + ": " + ec.message());
  ::chmod(o.dir.c_str(), 0700);

  KeyPtr ca_key;
  CertPtr ca_cert;
  const fs::path ca_pem = o.dir / "ca.pem", ca_keyp = o.dir / "ca.key";
  if (fs::exists(ca_pem)) {
    if (!fs::exists(ca_keyp))
      return fail(Errc::PreconditionFailed,
                  ca_pem.string() +
                      " exists without ca.key: nothing can be signed with it "
                      "(move the directory away to start a new CA)");
    auto k = read_key(ca_keyp);
    if (!k) return fail(k.error());
    auto c = read_cert(ca_pem);
    if (!c) return fail(c.error());
    if (X509_check_private_key(c->get(), k->get()) != 1)
      return fail(Errc::VerifyMismatch, "ca.key is not the key of ca.pem");
    ca_key = std::move(*k);
    ca_cert = std::move(*c);
  } else {
    auto k = new_key();
    if (!k) return fail(k.error());
    CertSpec spec{"labctl agents CA", true, "", {}, 3650};
    auto c = issue(spec, k->get(), nullptr, k->get());
    if (!c) return fail(c.error());
    if (auto s = write_pair(o.dir, "ca", c->get(), k->get(), report); !s) return fail(s.error());
    ca_key = std::move(*k);
    ca_cert = std::move(*c);
    report.ca_created = true;
  }

  if (o.renew_controller || report.ca_created || !fs::exists(o.dir / "controller.pem") ||
      !fs::exists(o.dir / "controller.key")) {
    auto k = new_key();
    if (!k) return fail(k.error());
    CertSpec spec{"labctl-controller", false, "clientAuth", {"labctl-controller"}, o.days};
    auto c = issue(spec, k->get(), ca_cert.get(), ca_key.get());
    if (!c) return fail(c.error());
    if (auto s = write_pair(o.dir, "controller", c->get(), k->get(), report); !s)
      return fail(s.error());
    report.controller_issued = true;
  }

  for (const auto& name : o.agents) {
    auto k = new_key();
    if (!k) return fail(k.error());
    CertSpec spec{name, false, "serverAuth", {name, "localhost", "127.0.0.1", "::1"}, o.days};
    if (auto it = o.hosts.find(name); it != o.hosts.end())
      for (const auto& h : it->second)
        if (std::find(spec.san.begin(), spec.san.end(), h) == spec.san.end()) spec.san.push_back(h);
    auto c = issue(spec, k->get(), ca_cert.get(), ca_key.get());
    if (!c) return fail(c.error());
    if (auto s = write_pair(o.dir, name, c->get(), k->get(), report); !s) return fail(s.error());
    const std::string yaml =
        "# labctl-agent configuration, made by `labctl agent init`. Paths are relative to this\n"
        "# file. Start it with: labctl-agent --config " +
        fs::absolute(o.dir / (name + ".yaml")).string() +
        "\n"
        "name: " +
        name + "\nlisten: \"" + o.listen +
        "\"\n"
        "cert: " +
        name + ".pem\nkey: " + name +
        ".key\n"
        "# Client certificates must chain to this CA ...\n"
        "ca: ca.pem\n"
        "# ... and be exactly this one (pinned by its SHA-256). Without this line any client\n"
        "# certificate of the CA with extended key usage clientAuth is accepted.\n"
        "controller: controller.pem\n"
        "state-dir: /var/lib/labctl-agent/" +
        name +
        "\n"
        "# limits (defaults shown)\n"
        "# max-body: 1MiB\n"
        "# rate: 2000       # requests per second per client address, with a burst of twice that\n";
    if (auto s = write_file(o.dir / (name + ".yaml"), yaml, 0644); !s) return fail(s.error());
    report.written.push_back(o.dir / (name + ".yaml"));
  }
  return report;
}

Result<std::string> certificate_fingerprint(const fs::path& pem) {
  auto c = read_cert(pem);
  if (!c) return fail(c.error());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(c->get(), EVP_sha256(), md, &n) != 1)
    return fail(Errc::Internal, ssl_error("fingerprint of " + pem.string()));
  return hex_lower(std::span<const unsigned char>(md, n));
}

}  // namespace labctl::agents::rpc
