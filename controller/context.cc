#include "controller/context.h"

#include "common/digest.h"
#include "controller/firmware_store.h"

#include "agents/rpc/remote_agent.h"

#include <openssl/evp.h>

#include <fstream>
#include <iostream>
#include <sstream>

namespace labctl::controller {

Context::Context(GlobalOptions options) : options_(std::move(options)) {
  plugins::register_builtin_plugins(registry_);
}

std::filesystem::path Context::state_dir() const {
  if (!options_.state_dir.empty()) return options_.state_dir;
  return default_state_dir();
}

std::optional<inventory::Inventory> Context::load_inventory(const std::string& path,
                                                            std::ostream& err,
                                                            inventory::Diagnostics* diags_out) {
  inventory::LoadOptions lo;
  if (!options_.catalog.empty()) lo.catalog = options_.catalog;
  auto result = inventory::load_inventory(path, registry_, lo);
  for (const auto& d : result.diags.sorted())
    if (d.severity == inventory::Severity::Error || !options_.quiet) err << d.format() << "\n";
  if (diags_out) *diags_out = result.diags;
  return std::move(result.inventory);
}

Result<StateStore*> Context::store() {
  if (!store_) {
    auto s = StateStore::open(state_dir());
    if (!s) return std::unexpected(std::move(s.error()).context("state store"));
    store_ = std::move(*s);
  }
  return store_.get();
}

agents::AgentSet& Context::agents(const inventory::Inventory& inv) {
  if (!agents_) {
    auto firmware =
        [dir = state_dir()](
            const inventory::Family& family,
            const inventory::Release& release) -> Result<std::vector<sdk::FirmwareImage>> {
      auto store = firmware::FirmwareStore::open(dir);
      if (!store) return fail(std::move(store.error()));
      auto files = (*store)->verified_release(family, release);
      if (!files) return fail(std::move(files.error()));
      std::vector<sdk::FirmwareImage> out;
      for (auto& f : *files)
        out.push_back({f.name, f.sha256, f.size, f.path});
      return out;
    };
    agents::LocalAgentOptions lo;
    lo.state_dir = state_dir();
    lo.catalog = inv.catalog.get();
    lo.cancel = &cancel_;
    lo.firmware = firmware;
    agents_ =
        std::make_unique<agents::AgentSet>(std::make_unique<agents::LocalAgent>(registry_, lo));
    if (!inv.agents.empty()) {
      // What every agent is sent: the inventory and catalog as this process loaded them.
      agents::rpc::ConfigPush push;
      push.inventory_name = std::filesystem::path(inv.file).filename().string();
      push.inventory = read_text(inv.file);
      push.catalog = inv.catalog ? read_text(inv.catalog->file) : std::string();
      for (const auto& a : inv.agents) {
        agents::rpc::RemoteAgentOptions ro;
        ro.name = a.name;
        ro.url = a.url;
        const auto pki = agent_pki_dir(a);
        ro.ca = pki / "ca.pem";
        ro.cert = pki / "controller.pem";
        ro.key = pki / "controller.key";
        ro.config = push;
        ro.catalog = inv.catalog.get();
        ro.firmware = firmware;
        ro.cancel = &cancel_;
        agents_->add(std::make_unique<agents::rpc::RemoteAgent>(std::move(ro)));
      }
    }
  }
  return *agents_;
}

std::filesystem::path Context::agent_pki_dir(const inventory::AgentDef& a) const {
  if (!a.pki.empty()) return a.pki;
  if (const char* e = std::getenv("LABCTL_AGENT_PKI"); e != nullptr && *e != '\0') return e;
  return state_dir() / "agent-pki";
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string file_sha256(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0)
    EVP_DigestUpdate(ctx, buf, static_cast<std::size_t>(in.gcount()));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  return hex({md, len});
}

}  // namespace labctl::controller
