// The libvirt connection wrapper against libvirt's test driver (a real in-process hypervisor,
// fed the seed's host from tests/data/esxi/seed-node.xml) and against the ESX driver where no
// host answers: what each call returns, how it is counted, how failures read.
#include "plugins/esxi/libvirt_conn.h"

#include <libvirt/virterror.h>

#include <gtest/gtest.h>

#include "plugins/esxi/testing.h"

namespace labctl::esxi {
namespace {

std::unique_ptr<Connection> open_seed() {
  auto c = Connection::open({testing::seed_uri(), "", std::nullopt});
  EXPECT_TRUE(c) << c.error().message();
  return c ? std::move(*c) : nullptr;
}

TEST(Connection, ReadsTheHost) {
  auto c = open_seed();
  ASSERT_TRUE(c);
  auto h = c->host();
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_EQ(h->driver, "TEST");
  EXPECT_EQ(h->hv_version, "0.0.2");
  EXPECT_EQ(h->node.cpus, 8u);
  EXPECT_EQ(h->node.sockets, 1u);
  EXPECT_EQ(h->node.cores, 4u);
  EXPECT_EQ(h->node.threads, 2u);
  EXPECT_EQ(h->node.mhz, 2400u);
  EXPECT_EQ(h->node.memory_kib, 33554432u);
  EXPECT_FALSE(h->about);  // only vSphere hosts have one
  // Open, type, hostname, version, node: five reads and nothing written.
  EXPECT_EQ(c->stats().reads, 5u);
  EXPECT_EQ(c->stats().writes, 0u);
  EXPECT_EQ(c->stats().by_call.at("virNodeGetInfo"), 1u);
}

TEST(Connection, ListsEveryVmWithStateVcpusMemoryAndAutostart) {
  auto c = open_seed();
  ASSERT_TRUE(c);
  auto vms = c->vms();
  ASSERT_TRUE(vms) << vms.error().message();
  ASSERT_EQ(vms->size(), 9u);
  std::vector<std::string> names;
  for (const auto& v : *vms)
    names.push_back(v.name);
  EXPECT_EQ(names, (std::vector<std::string>{"dns", "iis", "old-test", "pfsense", "scratch", "sql1",
                                             "trixbox", "vcenter", "whs2011"}));
  const VmInfo& dns = vms->front();
  EXPECT_EQ(dns.state, PowerState::Stopped);
  EXPECT_EQ(dns.libvirt_state, "shutoff");
  EXPECT_EQ(dns.vcpus, 1u);
  EXPECT_EQ(dns.max_memory_kib, 1048576u);
  EXPECT_FALSE(dns.autostart);
  EXPECT_EQ(dns.uuid, "5eed0000-0000-4000-8000-000000000001");
  EXPECT_EQ((*vms)[2].state, PowerState::Running);  // old-test
  EXPECT_EQ((*vms)[7].vcpus, 4u);                   // vcenter
  // One list, then state and autostart per VM: reads grow with the VM count, no faster.
  EXPECT_EQ(c->stats().reads, 1u + 1u + 2u * 9u);
}

TEST(Connection, LifecycleCallsAreCountedInOrder) {
  auto c = open_seed();
  ASSERT_TRUE(c);
  auto found = c->find("dns");
  ASSERT_TRUE(found && *found);
  Domain& dns = **found;
  ASSERT_TRUE(dns.create());
  EXPECT_EQ(*dns.state(), PowerState::Running);
  ASSERT_TRUE(dns.set_autostart(true));
  EXPECT_TRUE(*dns.autostart());
  ASSERT_TRUE(dns.snapshot("before", "a <test> & \"quote\""));
  EXPECT_TRUE(*dns.has_snapshot("before"));
  EXPECT_FALSE(*dns.has_snapshot("after"));
  ASSERT_TRUE(dns.shutdown());
  EXPECT_EQ(*dns.state(), PowerState::Stopped);
  ASSERT_TRUE(dns.undefine());  // with its snapshot: the test driver needs the metadata flag
  auto gone = c->find("dns");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(*gone);
  const auto& s = c->stats();
  EXPECT_EQ(s.writes, 5u);
  ASSERT_EQ(s.write_log.size(), 5u);
  const std::vector<std::string> calls = {"virDomainCreate", "virDomainSetAutostart",
                                          "virDomainSnapshotCreateXML", "virDomainShutdown",
                                          "virDomainUndefineFlags"};
  for (std::size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(s.write_log[i].call, calls[i]);
    EXPECT_EQ(s.write_log[i].vm, "dns");
  }
}

TEST(Connection, DestroyStopsHardAndASecondOneIsAPreconditionFailure) {
  auto c = open_seed();
  ASSERT_TRUE(c);
  auto vm = c->find("old-test");
  ASSERT_TRUE(vm && *vm);
  ASSERT_TRUE((*vm)->destroy());
  EXPECT_EQ(*(*vm)->state(), PowerState::Stopped);
  auto again = (*vm)->destroy();  // not running any more: libvirt says so, labctl classifies it
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Errc::PreconditionFailed);
}

TEST(Connection, DefinesFromXml) {
  auto c = open_seed();
  ASSERT_TRUE(c);
  auto d = c->define("lab-new",
                     "<domain type='test'><name>lab-new</name><memory>524288</memory>"
                     "<vcpu>2</vcpu><os><type>hvm</type></os></domain>");
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d->name(), "lab-new");
  auto info = d->info();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->vcpus, 2u);
  EXPECT_EQ(info->state, PowerState::Stopped);
  auto bad = c->define("broken", "<domain type='test'><memory>1</memory></domain>");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("virDomainDefineXML broken"), std::string::npos);
  EXPECT_EQ(c->stats().writes, 2u);  // the failed attempt counts too
}

TEST(Connection, ErrorsNameTheUriTheOperationAndTheVm) {
  auto c = open_seed();
  ASSERT_TRUE(c);
  auto vm = c->find("old-test");
  ASSERT_TRUE(vm && *vm);
  auto r = (*vm)->create();  // already running
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::PreconditionFailed);
  EXPECT_EQ(r.error().message().rfind(testing::seed_uri() + ": virDomainCreate old-test: ", 0), 0u)
      << r.error().message();
  EXPECT_FALSE(c->broken());
  auto none = c->find("nope");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
}

TEST(Connection, OpenFailuresSayWhereAndWhy) {
  auto missing = Connection::open({"test:///nonexistent/node.xml", "", std::nullopt});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::InvalidInput);
  EXPECT_EQ(missing.error().message().rfind("test:///nonexistent/node.xml: open: ", 0), 0u);

  testing::ClosedPort port;
  ASSERT_NE(port.port(), 0);
  const std::string esx = "esx://127.0.0.1:" + std::to_string(port.port()) + "/?no_verify=1";
  auto refused = Connection::open({esx, "root", "secret"});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Errc::Unreachable) << refused.error().message();
  EXPECT_EQ(refused.error().message().rfind(esx + ": open: ", 0), 0u);

  auto no_password = Connection::open({esx, "root", std::nullopt});
  ASSERT_FALSE(no_password);
  EXPECT_EQ(no_password.error().code(), Errc::AuthFailed);
  EXPECT_NE(no_password.error().message().find("asks for a password and none is configured"),
            std::string::npos)
      << no_password.error().message();
}

TEST(ClassifyLibvirtError, CodesAndTheEsxDriversTexts) {
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_AUTH_FAILED, ""), Errc::AuthFailed);
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_NO_DOMAIN, ""), Errc::NotFound);
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_OPERATION_INVALID, ""), Errc::PreconditionFailed);
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_NO_SUPPORT, ""), Errc::NotSupported);
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_XML_ERROR, ""), Errc::InvalidInput);
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_SYSTEM_ERROR,
                                   "Failed to connect socket to '/var/run/libvirt/libvirt-sock'"),
            Errc::Unreachable);
  // What libvirt 9.0's ESX driver says (VIR_ERR_INTERNAL_ERROR), as seen against vcsim.
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_INTERNAL_ERROR,
                                   "internal error: HTTP response code 500 for call to 'Login'. "
                                   "Fault: ServerFaultCode - Login failure"),
            Errc::AuthFailed);
  EXPECT_EQ(classify_libvirt_error(
                VIR_ERR_INTERNAL_ERROR,
                "internal error: curl_easy_perform() returned an error: Couldn't connect to "
                "server (7) : Failed to connect to 127.0.0.1 port 18988 after 0 ms"),
            Errc::Unreachable);
  EXPECT_EQ(classify_libvirt_error(
                VIR_ERR_INTERNAL_ERROR,
                "internal error: curl_easy_perform() returned an error: SSL peer certificate or "
                "SSH remote key was not OK (60) : server certificate verification failed"),
            Errc::PreconditionFailed);
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_INTERNAL_ERROR,
                                   "curl_easy_perform() returned an error: Timeout was reached"),
            Errc::Timeout);
  // The test driver's (and others') state conflicts.
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_INTERNAL_ERROR,
                                   "internal error: Domain 'old-test' is already running"),
            Errc::PreconditionFailed);
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_INTERNAL_ERROR, "something else"), Errc::Internal);
}

TEST(PowerState, ClassesOfLibvirtStates) {
  EXPECT_EQ(power_state_of(VIR_DOMAIN_RUNNING), PowerState::Running);
  EXPECT_EQ(power_state_of(VIR_DOMAIN_BLOCKED), PowerState::Running);
  EXPECT_EQ(power_state_of(VIR_DOMAIN_SHUTDOWN), PowerState::Running);
  EXPECT_EQ(power_state_of(VIR_DOMAIN_PAUSED), PowerState::Paused);
  EXPECT_EQ(power_state_of(VIR_DOMAIN_PMSUSPENDED), PowerState::Paused);
  EXPECT_EQ(power_state_of(VIR_DOMAIN_SHUTOFF), PowerState::Stopped);
  EXPECT_EQ(power_state_of(VIR_DOMAIN_CRASHED), PowerState::Stopped);
  EXPECT_EQ(power_state_of(VIR_DOMAIN_NOSTATE), PowerState::Unknown);
  EXPECT_EQ(libvirt_state_name(VIR_DOMAIN_CRASHED), "crashed");
}

}  // namespace
}  // namespace labctl::esxi
