#include "common/error.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace labctl {
namespace {

const std::vector<Errc> kAll = {
    Errc::NotSupported,       Errc::Unreachable,    Errc::Timeout,      Errc::AuthFailed,
    Errc::PreconditionFailed, Errc::VerifyMismatch, Errc::InvalidInput, Errc::NotFound,
    Errc::Cancelled,          Errc::Internal,
};

TEST(Errc, NamesRoundTripAndAreDistinct) {
  std::set<std::string> names;
  for (Errc c : kAll) {
    const std::string name(errc_name(c));
    EXPECT_EQ(errc_from_name(name), c) << name;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), kAll.size());
}

TEST(Errc, NamesAreTheStableOnes) {
  EXPECT_EQ(errc_name(Errc::AuthFailed), "auth-failed");
  EXPECT_EQ(errc_name(Errc::PreconditionFailed), "precondition-failed");
  EXPECT_EQ(errc_name(Errc::Timeout), "timeout");
  EXPECT_EQ(errc_name(Errc::NotSupported), "not-supported");
}

TEST(Errc, UnknownNameIsInternal) {
  EXPECT_EQ(errc_from_name("no-such-error"), Errc::Internal);
  EXPECT_EQ(errc_from_name(""), Errc::Internal);
  EXPECT_EQ(errc_from_name("Timeout"), Errc::Internal);  // names are exact
}

TEST(Errc, OnlyUnreachableAndTimeoutAreRetryable) {
  for (Errc c : kAll)
    EXPECT_EQ(errc_retryable(c), c == Errc::Unreachable || c == Errc::Timeout) << errc_name(c);
}

TEST(Error, ContextChainsOutermostFirst) {
  Error e(Errc::Unreachable, "connection refused");
  e.context("upload").context("flash bmc server1");
  EXPECT_EQ(e.message(), "flash bmc server1: upload: connection refused");
  EXPECT_EQ(e.code(), Errc::Unreachable);
}

TEST(Error, ContextOnTemporaries) {
  Error e = Error(Errc::Timeout, "no answer").context("probe").context("phone1");
  EXPECT_EQ(e.message(), "phone1: probe: no answer");
  EXPECT_EQ(e.code(), Errc::Timeout);
}

TEST(Error, FailMakesUnexpectedResults) {
  Result<int> r = fail(Errc::NotFound, "no device 'x'");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::NotFound);
  EXPECT_EQ(r.error().message(), "no device 'x'");

  Status s = fail(Error(Errc::AuthFailed, "refused").context("login"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message(), "login: refused");
  EXPECT_EQ(s.error().code(), Errc::AuthFailed);
}

}  // namespace
}  // namespace labctl
