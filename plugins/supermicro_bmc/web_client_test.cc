#include "plugins/supermicro_bmc/web_client.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace labctl::supermicro_bmc {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// A small HTTP server on a loopback port (cpp-httplib), standing in for a BMC's web server.
class Server {
 public:
  Server() {
    srv_.Post("/cgi/login.cgi", [](const httplib::Request& req, httplib::Response& res) {
      if (req.body == "name=u&pwd=p%26w")
        res.set_header("Set-Cookie", "SID=cookie-value-1234; path=/");
      res.set_content("<html>url_redirect.cgi?url_name=mainmenu</html>", "text/html");
    });
    srv_.Get("/cookie", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.get_header_value("Cookie") + "|" + req.get_header_value("Referer"),
                      "text/plain");
    });
    srv_.Post("/upload", [this](const httplib::Request& req, httplib::Response& res) {
      expect_ = req.get_header_value("Expect");
      for (const auto& [name, f] : req.files)
        parts_.push_back(name + ":" + f.filename + ":" + f.content_type + ":" +
                         std::to_string(f.content.size()));
      body_ = req.has_file("fw_image") ? req.get_file_value("fw_image").content : "";
      res.set_content("done", "text/plain");
    });
    srv_.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(1500ms);
      res.set_content("late", "text/plain");
    });
    port_ = srv_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { srv_.listen_after_bind(); });
    // stop() before the accept loop runs would be missed, and join() would wait for ever.
    for (int i = 0; i < 500 && !srv_.is_running(); ++i)
      std::this_thread::sleep_for(10ms);
  }
  ~Server() {
    srv_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  WebEndpoint endpoint() const {
    WebEndpoint e;
    e.scheme = "http";
    e.host = "127.0.0.1";
    e.port = port_;
    return e;
  }

  std::string expect_, body_;
  std::vector<std::string> parts_;

 private:
  httplib::Server srv_;
  int port_ = 0;
  std::thread thread_;
};

TEST(WebSession, KeepsTheSessionCookieInMemoryAndNeverPrintsIt) {
  Server s;
  WebSession w(s.endpoint());
  w.add_secret("p&w");
  auto a = w.post_form("/cgi/login.cgi", "name=u&pwd=p%26w", 5s);
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->status, 200);
  EXPECT_TRUE(w.has_cookie("SID"));
  EXPECT_FALSE(w.has_cookie("other"));
  auto c = w.get("/cookie", 5s);
  ASSERT_TRUE(c);
  EXPECT_THAT(c->body, HasSubstr("SID=cookie-value-1234"));
  EXPECT_THAT(c->body, HasSubstr("|http://127.0.0.1:" + std::to_string(s.port()) + "/"));
  EXPECT_EQ(w.redact("sid cookie-value-1234 and p&w"), "sid *** and ***");
  w.forget_cookies();
  EXPECT_FALSE(w.has_cookie("SID"));
  c = w.get("/cookie", 5s);
  ASSERT_TRUE(c);
  EXPECT_THAT(c->body, ::testing::Not(HasSubstr("SID")));
}

TEST(WebSession, MultipartUploadWithoutExpect) {
  Server s;
  WebSession w(s.endpoint());
  std::vector<std::uint8_t> image(200000);
  for (std::size_t i = 0; i < image.size(); ++i)
    image[i] = static_cast<std::uint8_t>(i * 7);
  std::uint64_t last_sent = 0, total = 0;
  auto a = w.post_multipart("/upload", {{"CSRF_TOKEN", "tok"}},
                            {"fw_image", "SMT_X8_260.bin", "application/octet-stream", image}, 5s,
                            {}, [&](std::uint64_t sent, std::uint64_t t) {
                              last_sent = sent;
                              total = t;
                            });
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->body, "done");
  EXPECT_EQ(s.expect_, "");
  EXPECT_THAT(s.parts_,
              ::testing::UnorderedElementsAre(
                  "CSRF_TOKEN:::3", "fw_image:SMT_X8_260.bin:application/octet-stream:200000"));
  EXPECT_EQ(s.body_, std::string(image.begin(), image.end()));
  EXPECT_GT(total, image.size());
  EXPECT_EQ(last_sent, total);
}

TEST(WebSession, ErrorsAreClassified) {
  Server s;
  WebSession w(s.endpoint());
  const auto t0 = std::chrono::steady_clock::now();
  auto slow = w.get("/slow", 300ms);
  ASSERT_FALSE(slow);
  EXPECT_EQ(slow.error().code(), Errc::Timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1400ms);
  // Nothing listens on the port of a server that is gone.
  int gone = 0;
  {
    Server other;
    gone = other.port();
  }
  WebEndpoint e = s.endpoint();
  e.port = gone;
  WebSession refused(e);
  auto r = refused.get("/", 2s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Unreachable);
  EXPECT_THAT(r.error().message(), HasSubstr("GET / (http://127.0.0.1:" + std::to_string(gone)));
  // TLS to a server that does not speak it is not a BMC to send a password to.
  e = s.endpoint();
  e.scheme = "https";
  WebSession tls(e);
  auto t = tls.post_form("/cgi/login.cgi", "x", 2s);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().code(), Errc::Internal);
  EXPECT_EQ(t.error().code(), Errc::PreconditionFailed);
  EXPECT_THAT(t.error().message(), HasSubstr("accept-self-signed"));
  // Cancellation abandons a request.
  WebSession cancelled(s.endpoint());
  cancelled.set_cancel([] { return true; });
  auto c = cancelled.get("/slow", 5s);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), Errc::Cancelled);
}

// A BMC restarting mid-handshake: it reads the ClientHello and resets the connection (SO_LINGER
// 0). That is the BMC going away (what wait-offline waits for), not a certificate problem.
TEST(WebSession, AResetDuringTheHandshakeIsUnreachableNotACertificateProblem) {
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  ASSERT_EQ(::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  std::thread bmc([lfd] {
    const int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    timeval tv{2, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char hello[512];
    (void)::recv(c, hello, sizeof hello, 0);
    linger l{1, 0};
    ::setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(c);
  });
  WebEndpoint e;
  e.scheme = "https";
  e.host = "127.0.0.1";
  e.port = ntohs(a.sin_port);
  WebSession w(e);
  auto r = w.post_form("/cgi/upgrade_process.cgi", "fwtype=0", 3s);
  bmc.join();
  ::close(lfd);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Unreachable) << r.error().message();
  EXPECT_THAT(r.error().message(), HasSubstr("closed during the TLS handshake"));
  EXPECT_THAT(r.error().message(), ::testing::Not(HasSubstr("accept-self-signed")));
}

}  // namespace
}  // namespace labctl::supermicro_bmc
