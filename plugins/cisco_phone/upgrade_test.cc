// Publications (JSON, atomic files, lookups), follow_hop over hand-made TFTP event sequences, and
// EventLogTail over a log file the test writes piece by piece.
#include "plugins/cisco_phone/upgrade.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace labctl::cisco_phone {
namespace {

namespace fs = std::filesystem;
using tftp::Event;
using tftp::EventKind;

const std::string kPhone = "10.99.1.10";
const std::string kOther = "10.99.1.11";
const std::string kSep = "SEP000B8201FC42.cnf.xml";
constexpr std::int64_t kPublished = 1'764'000'000'000;  // ms

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "labctl-upgrade-XXXXXX").string();
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void append(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::app);
  out << data;
}

// A SIP 9.4(2) hop for a 7906 that runs SCCP 8.5(2): three .sbn files of distinct sizes.
Publication publication() {
  Publication p;
  p.device = "reception";
  p.mac = "000B8201FC42";
  p.load = "SIP11.9-4-2SR1-1S";
  p.hop = 2;
  p.hops = 2;
  p.term = "term06.default.loads";
  const fs::path store = "/var/lib/labctl/firmware/sha256";
  p.files = {{"SIP11.9-4-2SR1-1S.loads", std::string(64, '1'), 600, store / "1"},
             {"term06.default.loads", std::string(64, '2'), 610, store / "2"},
             {"jar11sip.9-4-2ES9.sbn", std::string(64, '3'), 2'000'000, store / "3"},
             {"cnu11.9-4-2ES9.SBN", std::string(64, '4'), 1'000'000, store / "4"},
             {"apps11.9-4-2ES9.sbn", std::string(64, '5'), 500'000, store / "5"}};
  p.keep = {{"SCCP11.8-5-2S.loads", std::string(64, '6'), 590, store / "6"},
            {"jar11sccp.8-5-2TH1-9.sbn", std::string(64, '7'), 1'900'000, store / "7"}};
  p.published_ms = kPublished;
  p.log_offset = 12345;
  p.triggered_ms = kPublished + 700;
  p.trigger = "check-sync";
  return p;
}

Event ev(EventKind kind, const std::string& name, std::int64_t after_ms, std::uint64_t bytes = 0,
         const std::string& client = kPhone) {
  Event e;
  e.kind = kind;
  e.time_ms = kPublished + after_ms;
  e.client = client;
  e.client_port = 50000;
  e.op = "RRQ";
  e.name = name;
  e.bytes = bytes;
  return e;
}

Event request(const std::string& name, std::int64_t after_ms, const std::string& client = kPhone) {
  return ev(EventKind::Request, name, after_ms, 0, client);
}

Event complete(const std::string& name, std::int64_t after_ms, std::uint64_t bytes,
               const std::string& client = kPhone) {
  return ev(EventKind::Complete, name, after_ms, bytes, client);
}

// Every .sbn of publication() requested and transferred completely, from `t` on.
std::vector<Event> all_sbn(std::int64_t t) {
  return {
      request("jar11sip.9-4-2ES9.sbn", t),   complete("jar11sip.9-4-2ES9.sbn", t + 1, 2'000'000),
      request("cnu11.9-4-2ES9.sbn", t + 2),  complete("cnu11.9-4-2ES9.sbn", t + 3, 1'000'000),
      request("apps11.9-4-2ES9.sbn", t + 4), complete("apps11.9-4-2ES9.sbn", t + 5, 500'000)};
}

std::vector<Event> concat(std::vector<Event> a, const std::vector<Event>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// ---- Publication ------------------------------------------------------------------------------

TEST(Publication, JsonRoundTripKeepsEveryField) {
  const Publication p = publication();
  const nlohmann::json j = p.to_json();
  auto back = Publication::from_json(nlohmann::json::parse(j.dump()));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->device, "reception");
  EXPECT_EQ(back->mac, "000B8201FC42");
  EXPECT_EQ(back->load, "SIP11.9-4-2SR1-1S");
  EXPECT_EQ(back->hop, 2);
  EXPECT_EQ(back->hops, 2);
  EXPECT_EQ(back->term, "term06.default.loads");
  ASSERT_EQ(back->files.size(), p.files.size());
  for (std::size_t i = 0; i < p.files.size(); ++i) {
    EXPECT_EQ(back->files[i].name, p.files[i].name);
    EXPECT_EQ(back->files[i].sha256, p.files[i].sha256);
    EXPECT_EQ(back->files[i].size, p.files[i].size);
    EXPECT_EQ(back->files[i].path, p.files[i].path);
  }
  ASSERT_EQ(back->keep.size(), 2u);
  EXPECT_EQ(back->keep[1].name, "jar11sccp.8-5-2TH1-9.sbn");
  EXPECT_EQ(back->keep[1].size, 1'900'000u);
  EXPECT_EQ(back->published_ms, kPublished);
  EXPECT_EQ(back->log_offset, 12345u);
  EXPECT_EQ(back->triggered_ms, kPublished + 700);
  EXPECT_EQ(back->trigger, "check-sync");
  EXPECT_EQ(back->to_json(), j);
}

TEST(Publication, OptionalFieldsDefault) {
  nlohmann::json j = publication().to_json();
  for (const char* k : {"hop", "hops", "keep", "log_offset", "triggered_ms", "trigger"})
    j.erase(k);
  auto p = Publication::from_json(j);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->hop, 0);
  EXPECT_TRUE(p->keep.empty());
  EXPECT_EQ(p->log_offset, 0u);
  EXPECT_EQ(p->triggered_ms, 0);
  EXPECT_EQ(p->trigger, "");
  EXPECT_EQ(p->files.size(), 5u);
}

TEST(Publication, DamagedJsonIsInvalidInput) {
  const nlohmann::json good = publication().to_json();
  std::vector<nlohmann::json> bad;
  for (const char* k : {"device", "mac", "load", "term", "files", "published_ms"}) {
    auto j = good;
    j.erase(k);
    bad.push_back(j);
  }
  auto j = good;
  j["files"][2]["size"] = "big";
  bad.push_back(j);
  j = good;
  j["files"][0].erase("sha256");
  bad.push_back(j);
  j = good;
  j["files"] = "jar11sip.9-4-2ES9.sbn";
  bad.push_back(j);
  j = good;
  j["published_ms"] = "yesterday";
  bad.push_back(j);
  j = good;
  j["hop"] = "two";
  bad.push_back(j);
  // Numbers that do not fit are refused, not converted (a float too large for int, or a negative
  // size, would be undefined behaviour or wrap around).
  j = good;
  j["hop"] = 1e30;
  bad.push_back(j);
  j = good;
  j["files"][1]["size"] = -1;
  bad.push_back(j);
  j = good;
  j["files"][1]["size"] = 2.5;
  bad.push_back(j);
  j = good;
  j["published_ms"] = nlohmann::json::parse("9223372036854775808");
  bad.push_back(j);
  j = good;
  j["log_offset"] = -5;
  bad.push_back(j);
  bad.push_back(nlohmann::json::array({good}));
  bad.push_back(nlohmann::json("publication"));
  bad.push_back(nlohmann::json());
  for (const auto& b : bad) {
    auto p = Publication::from_json(b);
    ASSERT_FALSE(p) << b.dump();
    EXPECT_EQ(p.error().code(), Errc::InvalidInput) << b.dump();
    EXPECT_EQ(p.error().message().rfind("publication: ", 0), 0u) << p.error().message();
  }
}

TEST(Publication, SbnListsTheLoadsSbnFilesInCatalogOrder) {
  const Publication p = publication();
  std::vector<std::string> names;
  for (const auto* f : p.sbn())
    names.push_back(f->name);
  // Case-insensitive suffix; the .loads files and the kept release are not part of it.
  EXPECT_EQ(names, (std::vector<std::string>{"jar11sip.9-4-2ES9.sbn", "cnu11.9-4-2ES9.SBN",
                                             "apps11.9-4-2ES9.sbn"}));
  Publication none = p;
  none.files.resize(2);
  EXPECT_TRUE(none.sbn().empty());
}

TEST(Publication, FindIsCaseInsensitiveOverFilesAndKeep) {
  const Publication p = publication();
  const auto* jar = p.find("JAR11SIP.9-4-2ES9.SBN");
  ASSERT_NE(jar, nullptr);
  EXPECT_EQ(jar->name, "jar11sip.9-4-2ES9.sbn");
  EXPECT_EQ(jar->sha256, std::string(64, '3'));
  const auto* cnu = p.find("cnu11.9-4-2es9.sbn");
  ASSERT_NE(cnu, nullptr);
  EXPECT_EQ(cnu->size, 1'000'000u);
  const auto* term = p.find("Term06.Default.Loads");
  ASSERT_NE(term, nullptr);
  EXPECT_EQ(term->path, fs::path("/var/lib/labctl/firmware/sha256/2"));
  const auto* kept = p.find("jar11sccp.8-5-2th1-9.sbn");
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(kept->sha256, std::string(64, '7'));
  EXPECT_EQ(p.find("SCCP11.8-5-2S.LOADS"), &p.keep[0]);
  EXPECT_EQ(p.find("term11.default.loads"), nullptr);
  EXPECT_EQ(p.find("jar11sip.9-4-2ES9"), nullptr);
  EXPECT_EQ(p.find("jar11sip.9-4-2ES9.sbn.bak"), nullptr);
  EXPECT_EQ(p.find(""), nullptr);
}

// ---- Publication files ------------------------------------------------------------------------

TEST(PublicationFile, PathIsTheMacDotJson) {
  EXPECT_EQ(publication_path("/s/published", "000B8201FC42"),
            fs::path("/s/published/000B8201FC42.json"));
}

TEST(PublicationFile, MissingIsNulloptAndWrittenIsReadBack) {
  TempDir d;
  const fs::path path = publication_path(d.path() / "new" / "published", "000B8201FC42");
  auto none = read_publication(path);
  ASSERT_TRUE(none) << none.error().message();
  EXPECT_FALSE(*none);

  // The directory is made when missing.
  ASSERT_TRUE(write_publication(path, publication()));
  auto back = read_publication(path);
  ASSERT_TRUE(back) << back.error().message();
  ASSERT_TRUE(*back);
  EXPECT_EQ((*back)->to_json(), publication().to_json());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST(PublicationFile, DamagedFileIsInvalidInputNamingThePath) {
  TempDir d;
  const fs::path path = d.path() / "000B8201FC42.json";
  const std::string text = publication().to_json().dump(2);
  for (const std::string& bad :
       {text.substr(0, text.size() / 2), std::string(""), std::string("{}"),
        std::string("\x00\x01garbage", 9), std::string("[1, 2, 3]")}) {
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << bad;
    }
    auto p = read_publication(path);
    ASSERT_FALSE(p) << "accepted: " << bad;
    EXPECT_EQ(p.error().code(), Errc::InvalidInput) << p.error().message();
    EXPECT_NE(p.error().message().find(path.string()), std::string::npos) << p.error().message();
  }
}

TEST(PublicationFile, WriteReplacesAtomicallyAndLeavesNoTemporary) {
  TempDir d;
  const fs::path path = d.path() / "000B8201FC42.json";
  Publication first = publication();
  first.load = "SCCP11.8-5-2S";
  ASSERT_TRUE(write_publication(path, first));
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  // A reader that opened the old file keeps reading the old file, whole.
  std::ifstream reader(path, std::ios::binary);
  ASSERT_TRUE(reader);
  // A temporary left by a writer that crashed is overwritten, not appended to.
  append(path.string() + ".tmp", "half a publication {\"device\": ");

  Publication second = publication();
  second.triggered_ms = 0;
  second.trigger = "";
  ASSERT_TRUE(write_publication(path, second));
  struct stat after {};
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino) << "rewritten in place, not renamed into place";

  const std::string old_text((std::istreambuf_iterator<char>(reader)),
                             std::istreambuf_iterator<char>());
  auto old_json = nlohmann::json::parse(old_text, nullptr, false);
  ASSERT_FALSE(old_json.is_discarded()) << old_text;
  EXPECT_EQ(old_json["load"], "SCCP11.8-5-2S");

  auto now = read_publication(path);
  ASSERT_TRUE(now && *now);
  EXPECT_EQ((*now)->load, "SIP11.9-4-2SR1-1S");
  EXPECT_EQ((*now)->trigger, "");

  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(d.path()))
    names.push_back(e.path().filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"000B8201FC42.json"}));
}

TEST(PublicationFile, WriteFailureIsReportedAndLeavesNoTemporary) {
  TempDir d;
  // The parent "directory" is a file.
  append(d.path() / "published", "not a directory");
  auto s = write_publication(d.path() / "published" / "000B8201FC42.json", publication());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::Internal);
  // The target is a directory: the rename fails, the temporary is removed.
  fs::create_directories(d.path() / "dir" / "000B8201FC42.json" / "x");
  s = write_publication(d.path() / "dir" / "000B8201FC42.json", publication());
  ASSERT_FALSE(s);
  EXPECT_FALSE(fs::exists(d.path() / "dir" / "000B8201FC42.json.tmp"));
}

// ---- follow_hop -------------------------------------------------------------------------------

TEST(FollowHop, NothingYet) {
  const auto p = follow_hop({}, kPhone, publication(), kSep);
  EXPECT_EQ(p.files_total, 3u);
  EXPECT_EQ(p.files_done, 0u);
  EXPECT_EQ(p.bytes_total, 3'500'000u);
  EXPECT_EQ(p.bytes_done, 0u);
  EXPECT_EQ(p.missing, (std::vector<std::string>{"jar11sip.9-4-2ES9.sbn", "cnu11.9-4-2ES9.SBN",
                                                 "apps11.9-4-2ES9.sbn"}));
  EXPECT_FALSE(p.done);
  EXPECT_FALSE(p.config_asked);
  EXPECT_FALSE(p.any_sbn);
  EXPECT_FALSE(p.looping());
  EXPECT_EQ(p.last_ms, 0);
  EXPECT_EQ(p.summary(), "0/3 files, 0.0 of 3.5 MB");
}

TEST(FollowHop, TheWholeHopIsDone) {
  auto events =
      concat({request("term06.default.loads", 10), complete("term06.default.loads", 11, 610),
              request("SIP11.9-4-2SR1-1S.loads", 12)},
             all_sbn(20));
  events.push_back(request(kSep, 40));
  const auto p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_EQ(p.files_done, 3u);
  EXPECT_EQ(p.bytes_done, 3'500'000u);
  EXPECT_TRUE(p.missing.empty());
  EXPECT_TRUE(p.config_asked);
  EXPECT_TRUE(p.done);
  EXPECT_EQ(p.term_requests, 1);
  EXPECT_EQ(p.last_ms, kPublished + 40);
  EXPECT_TRUE(p.refused.empty());
  EXPECT_EQ(p.summary(), "3/3 files, 3.5 of 3.5 MB, configuration asked");
}

TEST(FollowHop, OtherClientsAndEventsBeforeThePublicationDoNotCount) {
  std::vector<Event> events;
  // Another phone does the whole hop.
  for (auto e : all_sbn(10)) {
    e.client = kOther;
    events.push_back(e);
  }
  events.push_back(request(kSep, 20, kOther));
  // This phone did it all before the publication (an earlier run).
  for (auto e : all_sbn(-5000))
    events.push_back(e);
  events.push_back(request(kSep, -4000));
  for (int i = 0; i < 5; ++i)
    events.push_back(request("term06.default.loads", -3000 + i));
  const auto p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_EQ(p.files_done, 0u);
  EXPECT_EQ(p.bytes_done, 0u);
  EXPECT_FALSE(p.any_sbn);
  EXPECT_FALSE(p.config_asked);
  EXPECT_FALSE(p.done);
  EXPECT_EQ(p.term_requests, 0);
  EXPECT_EQ(p.last_ms, 0);
  // The other phone's own progress is complete.
  const auto other = follow_hop(events, kOther, publication(), kSep);
  EXPECT_TRUE(other.done);
}

TEST(FollowHop, AShortCompleteDoesNotCount) {
  auto events = all_sbn(10);
  // The service says "complete" with fewer bytes than the published file (another file under the
  // same name, or a truncated blob): the phone does not have the load.
  events[3].bytes = 999'999;
  events.push_back(request(kSep, 30));
  auto p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_EQ(p.files_done, 2u);
  EXPECT_EQ(p.missing, (std::vector<std::string>{"cnu11.9-4-2ES9.SBN"}));
  EXPECT_EQ(p.bytes_done, 2'500'000u);
  EXPECT_FALSE(p.config_asked);
  EXPECT_FALSE(p.done);
  // More bytes than the file is not it either.
  events[3].bytes = 1'000'001;
  p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_EQ(p.files_done, 2u);
  EXPECT_FALSE(p.done);
  // The right size is.
  events[3].bytes = 1'000'000;
  p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_EQ(p.files_done, 3u);
  EXPECT_TRUE(p.done);
}

TEST(FollowHop, ConfigurationAskedBeforeTheLastCompletionDoesNotCount) {
  auto events = all_sbn(10);
  // The phone asks its configuration between the second and the last .sbn (the SEP file is read
  // on the old load while it still fetches): that is not the new load booting.
  events.insert(events.begin() + 4, request(kSep, 13));
  events.insert(events.begin() + 5, request(kSep, 13));
  auto p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_EQ(p.files_done, 3u);
  EXPECT_FALSE(p.config_asked);
  EXPECT_FALSE(p.done);
  EXPECT_EQ(p.summary(), "3/3 files, 3.5 of 3.5 MB");
  // Other files after the last completion do not make it either.
  events.push_back(request("term06.default.loads", 40));
  events.push_back(request("SIP11.9-4-2SR1-1S.loads", 41));
  events.push_back(ev(EventKind::Refused, kSep, 42));  // not a request
  p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_FALSE(p.done);
  // Asked (in another case) after the last completion: done.
  events.push_back(request("sep000b8201fc42.CNF.XML", 50));
  p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_TRUE(p.config_asked);
  EXPECT_TRUE(p.done);
}

TEST(FollowHop, ConfigurationAlonePublishesNothingDone) {
  // Asked with no .sbn at all (the old load rebooting): never done.
  const auto p = follow_hop({request(kSep, 5), request(kSep, 6)}, kPhone, publication(), kSep);
  EXPECT_FALSE(p.config_asked);
  EXPECT_FALSE(p.done);
  // A publication without .sbn files is never done either.
  Publication empty = publication();
  empty.files.resize(2);
  const auto q = follow_hop({request(kSep, 5)}, kPhone, empty, kSep);
  EXPECT_EQ(q.files_total, 0u);
  EXPECT_FALSE(q.done);
}

TEST(FollowHop, WriteRequestsDoNotCount) {
  auto events = all_sbn(10);
  for (auto& e : events)
    e.op = "WRQ";
  auto p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_EQ(p.files_done, 0u);
  EXPECT_FALSE(p.any_sbn);
  EXPECT_EQ(p.last_ms, 0);
}

TEST(FollowHop, NamesMatchWhateverTheCase) {
  auto events = all_sbn(10);
  for (auto& e : events)
    for (auto& c : e.name)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  events.push_back(request("TERM06.DEFAULT.LOADS", 20));
  events.push_back(request(kSep, 30));
  auto p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_EQ(p.files_done, 3u);
  EXPECT_EQ(p.term_requests, 1);
  EXPECT_TRUE(p.done);
}

TEST(FollowHop, LoopingOnTheTermFile) {
  std::vector<Event> events;
  for (int i = 0; i < 2; ++i) {
    events.push_back(request("term06.default.loads", 10 * i));
    events.push_back(complete("term06.default.loads", 10 * i + 1, 610));
  }
  auto p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_EQ(p.term_requests, 2);  // completions are not requests
  EXPECT_EQ(p.term_since_sbn, 2);
  EXPECT_FALSE(p.looping());
  events.push_back(request("Term06.default.loads", 30));
  p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_EQ(p.term_requests, 3);
  EXPECT_TRUE(p.looping());
  EXPECT_FALSE(p.looping(4));

  // A phone that once asked for a .sbn is fetching, not looping: even after more term requests.
  auto fetching = concat({request("jar11sip.9-4-2ES9.sbn", 5)}, events);
  p = follow_hop(fetching, kPhone, publication(), kSep);
  EXPECT_TRUE(p.any_sbn);
  EXPECT_EQ(p.term_since_sbn, 3);
  EXPECT_FALSE(p.looping());
  // .sbn activity resets the count since it.
  fetching.push_back(ev(EventKind::Progress, "jar11sip.9-4-2ES9.sbn", 40, 100));
  fetching.push_back(request("term06.default.loads", 50));
  p = follow_hop(fetching, kPhone, publication(), kSep);
  EXPECT_EQ(p.term_requests, 4);
  EXPECT_EQ(p.term_since_sbn, 1);
}

TEST(FollowHop, RefusedRequestsOfTheLoadAreListed) {
  std::vector<Event> events = {request("jar11sip.9-4-2ES9.sbn", 10)};
  auto refused = ev(EventKind::Refused, "jar11sip.9-4-2ES9.sbn", 11);
  refused.reason = "file not found";
  events.push_back(refused);
  events.push_back(ev(EventKind::Refused, "APPS11.9-4-2ES9.sbn", 12));  // no reason given
  // Files that are not the load's are not its problem.
  auto other = ev(EventKind::Refused, "dialplan.xml", 13);
  other.reason = "file not found";
  events.push_back(other);
  auto foreign = ev(EventKind::Refused, "cnu11.9-4-2ES9.sbn", 14, 0, kOther);
  foreign.reason = "access violation";
  events.push_back(foreign);
  const auto p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_EQ(p.refused, (std::vector<std::string>{"jar11sip.9-4-2ES9.sbn: file not found",
                                                 "APPS11.9-4-2ES9.sbn: refused"}));
  EXPECT_EQ(p.files_done, 0u);
}

TEST(FollowHop, RefusedLoadsFileIsListed) {
  // The hop's .loads file is the first thing a phone on the old load asks for after reading its
  // configuration; when it is refused the phone never gets to any .sbn, so this is the refusal
  // the operator most needs to see (upgrade.h: "refused requests of the load's files").
  auto refused = ev(EventKind::Refused, "SIP11.9-4-2SR1-1S.loads", 11);
  refused.reason = "file not found";
  const auto p =
      follow_hop({request("SIP11.9-4-2SR1-1S.loads", 10), refused}, kPhone, publication(), kSep);
  EXPECT_EQ(p.refused, (std::vector<std::string>{"SIP11.9-4-2SR1-1S.loads: file not found"}));
}

TEST(FollowHop, BytesDoneCountsPartialProgress) {
  std::vector<Event> events = {
      request("jar11sip.9-4-2ES9.sbn", 10),
      ev(EventKind::Progress, "jar11sip.9-4-2ES9.sbn", 11, 400'000),
      ev(EventKind::Progress, "jar11sip.9-4-2ES9.sbn", 12, 800'000),
      request("cnu11.9-4-2ES9.sbn", 13),
      complete("cnu11.9-4-2ES9.sbn", 14, 1'000'000),
      // A progress report after the completion (a second transfer) does not lower it.
      ev(EventKind::Progress, "cnu11.9-4-2ES9.sbn", 15, 100'000),
  };
  auto p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_EQ(p.files_done, 1u);
  EXPECT_EQ(p.bytes_done, 1'800'000u);
  EXPECT_EQ(p.missing, (std::vector<std::string>{"jar11sip.9-4-2ES9.sbn", "apps11.9-4-2ES9.sbn"}));
  EXPECT_TRUE(p.any_sbn);
  EXPECT_EQ(p.last_ms, kPublished + 15);
  EXPECT_EQ(p.summary(), "1/3 files, 1.8 of 3.5 MB");
  // Completing the partial file replaces its partial count by its size.
  events.push_back(complete("jar11sip.9-4-2ES9.sbn", 20, 2'000'000));
  p = follow_hop(events, kPhone, publication(), kSep);
  EXPECT_EQ(p.files_done, 2u);
  EXPECT_EQ(p.bytes_done, 3'000'000u);
}

// ---- EventLogTail -----------------------------------------------------------------------------

std::string line(const Event& e) {
  return tftp::event_to_json(e).dump() + "\n";
}

TEST(EventLogTail, MissingFileReturnsNothing) {
  TempDir d;
  EventLogTail tail(d.path() / "events.jsonl", 0);
  EXPECT_TRUE(tail.poll().empty());
  EXPECT_EQ(tail.offset(), 0u);
  EXPECT_EQ(tail.bad_lines(), 0u);
  EXPECT_EQ(file_size_or_zero(d.path() / "events.jsonl"), 0u);
}

TEST(EventLogTail, ReadsCompleteLinesAsTheyArrive) {
  TempDir d;
  const fs::path log = d.path() / "events.jsonl";
  const std::string a = line(request("jar11sip.9-4-2ES9.sbn", 1));
  const std::string b = line(complete("jar11sip.9-4-2ES9.sbn", 2, 2'000'000));
  append(log, a);
  EventLogTail tail(log, 0);
  auto got = tail.poll();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].kind, EventKind::Request);
  EXPECT_EQ(got[0].name, "jar11sip.9-4-2ES9.sbn");
  EXPECT_EQ(got[0].client, kPhone);
  EXPECT_EQ(got[0].time_ms, kPublished + 1);
  EXPECT_EQ(tail.offset(), a.size());
  EXPECT_TRUE(tail.poll().empty());

  // Half a line: the writer is in the middle of it. Nothing is consumed.
  append(log, b.substr(0, 20));
  EXPECT_TRUE(tail.poll().empty());
  EXPECT_EQ(tail.offset(), a.size());
  EXPECT_EQ(tail.bad_lines(), 0u);
  // All of it but the newline: still not a line.
  append(log, b.substr(20, b.size() - 21));
  EXPECT_TRUE(tail.poll().empty());
  EXPECT_EQ(tail.offset(), a.size());
  // The newline arrives, then the next line too.
  append(log, "\n" + a);
  got = tail.poll();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].kind, EventKind::Complete);
  EXPECT_EQ(got[0].bytes, 2'000'000u);
  EXPECT_EQ(got[1].kind, EventKind::Request);
  EXPECT_EQ(tail.offset(), file_size_or_zero(log));
  EXPECT_EQ(tail.bad_lines(), 0u);
}

TEST(EventLogTail, StartsAtTheGivenOffset) {
  TempDir d;
  const fs::path log = d.path() / "events.jsonl";
  const std::string before = line(request("old.sbn", -10));
  append(log, before);
  append(log, line(request("new.sbn", 10)));
  EventLogTail tail(log, before.size());
  auto got = tail.poll();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].name, "new.sbn");
}

TEST(EventLogTail, BadLinesAreCountedAndSkipped) {
  TempDir d;
  const fs::path log = d.path() / "events.jsonl";
  append(log, "not json at all\n");
  append(log, line(request("a.sbn", 1)));
  append(log, "\n");  // empty: not an event, not bad
  append(log,
         "{\"event\": \"teleport\", \"time\": \"2025-01-01T00:00:00.000Z\"}\n");  // unknown kind
  append(log, "{\"event\": \"request\", \"time\": \"yesterday\"}\n");             // bad time
  append(log, "[1, 2]\n");                                                        // not an object
  append(log,
         "{\"event\": \"request\", \"time\": \"2025-01-01T00:00:00.000Z\"}\r\n");  // CRLF: fine
  append(log, line(request("b.sbn", 2)));
  EventLogTail tail(log, 0);
  auto got = tail.poll();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].name, "a.sbn");
  EXPECT_EQ(got[1].time_ms, 1'735'689'600'000);
  EXPECT_EQ(got[2].name, "b.sbn");
  EXPECT_EQ(tail.bad_lines(), 4u);
  EXPECT_EQ(tail.offset(), file_size_or_zero(log));
  // Counted once, not again on the next poll.
  EXPECT_TRUE(tail.poll().empty());
  EXPECT_EQ(tail.bad_lines(), 4u);
}

TEST(EventLogTail, AFileThatShrankIsReadAgainFromItsStart) {
  TempDir d;
  const fs::path log = d.path() / "events.jsonl";
  for (int i = 0; i < 3; ++i)
    append(log, line(request("before" + std::to_string(i) + ".sbn", i)));
  EventLogTail tail(log, 0);
  ASSERT_EQ(tail.poll().size(), 3u);
  // Rotated: a new, shorter file under the same name.
  fs::remove(log);
  append(log, line(request("after.sbn", 100)));
  auto got = tail.poll();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].name, "after.sbn");
  EXPECT_EQ(tail.offset(), file_size_or_zero(log));
  // Truncated in place to nothing, then written again.
  { std::ofstream truncate(log, std::ios::trunc); }
  EXPECT_TRUE(tail.poll().empty());
  append(log, line(request("again.sbn", 200)));
  got = tail.poll();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].name, "again.sbn");
}

TEST(FileSizeOrZero, SizeOfAFile) {
  TempDir d;
  append(d.path() / "f", "12345");
  EXPECT_EQ(file_size_or_zero(d.path() / "f"), 5u);
  EXPECT_EQ(file_size_or_zero(d.path() / "missing"), 0u);
}

// ---- Operator instructions --------------------------------------------------------------------

TEST(OperatorInstructions, NameThePhoneTheLoadAndTheRecovery) {
  const std::string t =
      operator_instructions("reception", "CP-7906G", "10.99.1.10", "SCCP11.8-5-2S");
  EXPECT_EQ(t.rfind("reception (CP-7906G, 10.99.1.10) runs an SCCP load", 0), 0u) << t;
  EXPECT_NE(t.find("fetches SCCP11.8-5-2S when it restarts"), std::string::npos) << t;
  EXPECT_NE(t.find("123456789*0#"), std::string::npos) << t;
  EXPECT_NE(t.find("3491672850*#"), std::string::npos) << t;
  const std::string no_ip = operator_instructions("desk", "CP-7911G", "", "SIP11.9-4-2SR1-1S");
  EXPECT_EQ(no_ip.rfind("desk (CP-7911G) runs", 0), 0u) << no_ip;
}

}  // namespace
}  // namespace labctl::cisco_phone
