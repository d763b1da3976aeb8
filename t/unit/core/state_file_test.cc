#include "core/state_file.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/backend_json.h"

namespace speedmimi::core {
namespace {

using std::chrono::milliseconds;

const KnownNames kKnown{{"weight", "round_robin"}};

constexpr char kYaml[] =
    "backends:\n"
    "  app:\n"
    "    - {id: b1, host: 127.0.0.1, port: 8081, weight: 10}\n"
    "    - {id: b2, host: 127.0.0.1, port: 8082,\n"
    "       health_check: {path: /hc, interval: 2s}}\n"
    "routing:\n"
    "  r: {upstream: app}\n";

Config yaml() {
  return parseConfig(kYaml, "t.yaml", kKnown);
}

JsonPtr parse(const std::string& text) {
  json_error_t error;
  JsonPtr value(json_loads(text.c_str(), 0, &error));
  EXPECT_NE(value, nullptr) << text << ": " << error.text;
  return value;
}

BackendConfig backend(const std::string& id, int port) {
  BackendConfig b;
  b.id = id;
  b.host = "127.0.0.1";
  b.port = port;
  return b;
}

const BackendConfig* findBackend(const Config& c, const std::string& upstream,
                                 const std::string& id) {
  auto it = c.backends.find(upstream);
  if (it == c.backends.end()) return nullptr;
  for (const BackendConfig& b : it->second) {
    if (b.id == id) return &b;
  }
  return nullptr;
}

std::vector<std::string> ids(const Config& c, const std::string& upstream) {
  std::vector<std::string> out;
  for (const BackendConfig& b : c.backends.at(upstream)) out.push_back(b.id);
  return out;
}

// The backends of `c` as JSON text, to compare two configs' backends whole.
std::string backendsText(const Config& c) {
  std::string out;
  for (const auto& [upstream, list] : c.backends) {
    out += upstream + ":";
    for (const BackendConfig& b : list) out += jsonText(backendToJson(b).get()) + ";";
  }
  return out;
}

// what() of the ConfigError that `f` throws, or "(no error)".
std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(StateOverlay, AnUpdateAfterAnAddIsAppliedToTheAddedBackend) {
  StateOverlay o;
  o.added("app", backend("b3", 8083));
  o.updated("app", "b3", parse(R"({"weight": 50, "health_check": {"path": "/up"}})").get());
  o.updated("app", "b3", parse(R"({"id": "b3", "active": false})").get());
  EXPECT_EQ(
      o.toJson(),
      "{\n"
      "  \"version\": 1,\n"
      "  \"backends\": [\n"
      "    {\"upstream\": \"app\", \"id\": \"b3\", \"added\": {\"id\": \"b3\", \"name\": \"\", "
      "\"host\": \"127.0.0.1\", \"port\": 8083, \"weight\": 50, \"scheme\": \"http\", "
      "\"active\": false, \"max_conn\": 0, \"max_fails\": 1, \"fail_timeout\": \"10s\", "
      "\"slow_start\": \"0s\", \"tls_verify\": true, \"ca_file\": \"\", \"keepalive\": 0, \"health_check\": "
      "{\"path\": \"/up\", "
      "\"interval\": \"30s\", \"timeout\": \"5s\", \"failures\": 3, \"successes\": 1}}}\n"
      "  ]\n"
      "}\n");
  Config c = yaml();
  o.applyTo(c);
  EXPECT_EQ(ids(c, "app"), (std::vector<std::string>{"b1", "b2", "b3"}));
  const BackendConfig* b3 = findBackend(c, "app", "b3");
  ASSERT_NE(b3, nullptr);
  EXPECT_EQ(b3->weight, 50);
  EXPECT_FALSE(b3->active);
  EXPECT_TRUE(b3->health_check.enabled);
}

TEST(StateOverlay, UpdatesOfOneBackendMergeAndTheLaterValueWins) {
  StateOverlay o;
  o.updated("app", "b1", parse(R"({"weight": 200})").get());
  o.updated("app", "b1", parse(R"({"active": false})").get());
  o.updated("app", "b1", parse(R"({"weight": 300})").get());
  EXPECT_EQ(o.toJson(),
            "{\n  \"version\": 1,\n  \"backends\": [\n"
            "    {\"upstream\": \"app\", \"id\": \"b1\", \"updated\": {\"weight\": 300, "
            "\"active\": false}}\n"
            "  ]\n}\n");
  Config c = yaml();
  o.applyTo(c);
  EXPECT_EQ(c.backends.at("app")[0].weight, 300);
  EXPECT_FALSE(c.backends.at("app")[0].active);
  EXPECT_EQ(c.backends.at("app")[0].port, 8081);
}

// Whatever the sequence of updates, replaying the merged entry gives what applying them one
// after the other to the YAML's backend gives.
TEST(StateOverlay, MergedUpdatesReplayAsTheSequenceDid) {
  const std::vector<std::vector<std::string>> kSequences = {
      {R"({"health_check": {"interval": "5s"}})", R"({"health_check": {"path": "/x"}})"},
      {R"({"health_check": {"interval": "5s"}})", R"({"health_check": null})"},
      {R"({"health_check": null})", R"({"health_check": {"timeout": "1s"}})"},
      {R"({"health_check": {"path": "/a"}})", R"({"health_check": null})",
       R"({"health_check": {"timeout": "1s"}})"},
      {R"({"health_check": null})", R"({"weight": 3})", R"({"health_check": null})"},
      {R"({"health_check": {"failures": 9}})", R"({"health_check": {}})"},
      {R"({"weight": 2, "name": "two"})", R"({"name": "deux", "port": 9002})"},
  };
  for (const std::string id : {"b1", "b2"}) {  // without and with a health check in the YAML
    for (const auto& sequence : kSequences) {
      Config sequential = yaml();
      StateOverlay o;
      for (const std::string& update : sequence) {
        JsonPtr fields = parse(update);
        o.updated("app", id, fields.get());
        for (BackendConfig& b : sequential.backends.at("app")) {
          std::string error;
          if (b.id != id) continue;
          ASSERT_TRUE(backendFromJson(fields.get(), "backend", b, error)) << error;
        }
      }
      Config replayed = yaml();
      StateOverlay::fromJson(o.toJson(), "s.json").applyTo(replayed);
      EXPECT_EQ(backendsText(replayed), backendsText(sequential))
          << id << " after " << testing::PrintToString(sequence) << "\n"
          << o.toJson();
    }
  }
}

TEST(StateOverlay, RemovalReplacesEarlierChangesAndIsKeptForAnAddedBackend) {
  StateOverlay o;
  o.added("app", backend("b9", 8089));
  o.removed("app", "b9");
  o.updated("app", "b2", parse(R"({"weight": 5})").get());
  o.removed("app", "b2");
  o.updated("app", "b2", parse(R"({"weight": 6})").get());  // the API answers 404: dropped
  EXPECT_EQ(o.toJson(),
            "{\n  \"version\": 1,\n  \"backends\": [\n"
            "    {\"upstream\": \"app\", \"id\": \"b9\", \"removed\": true},\n"
            "    {\"upstream\": \"app\", \"id\": \"b2\", \"removed\": true}\n"
            "  ]\n}\n");
  Config c = yaml();
  o.applyTo(c);
  EXPECT_EQ(ids(c, "app"), (std::vector<std::string>{"b1"}));

  // A YAML that has b9 since: the removal still holds.
  Config with_b9 = yaml();
  with_b9.backends["app"].push_back(backend("b9", 8089));
  o.applyTo(with_b9);
  EXPECT_EQ(ids(with_b9, "app"), (std::vector<std::string>{"b1"}));
}

TEST(StateOverlay, AnAddReplacesTheEntryAndMovesItLast) {
  StateOverlay o;
  o.removed("app", "b1");
  o.updated("app", "b2", parse(R"({"weight": 5})").get());
  BackendConfig again = backend("b1", 9001);
  o.added("app", again);
  Config c = yaml();
  o.applyTo(c);
  EXPECT_EQ(ids(c, "app"), (std::vector<std::string>{"b1", "b2"}));  // in the YAML's place
  EXPECT_EQ(findBackend(c, "app", "b1")->port, 9001);
  EXPECT_EQ(findBackend(c, "app", "b2")->weight, 5);
  const std::string text = o.toJson();
  EXPECT_LT(text.find("\"id\": \"b2\""), text.find("\"id\": \"b1\"")) << text;
}

TEST(StateOverlay, RefusedFieldsAreDropped) {
  StateOverlay o;
  o.updated("app", "b1", parse(R"({"weight": 0})").get());
  o.updated("app", "b1", parse(R"({"colour": "red"})").get());
  o.updated("app", "b1", nullptr);
  EXPECT_TRUE(o.empty());
  o.added("app", backend("b3", 8083));
  o.updated("app", "b3", parse(R"({"weight": 5, "port": 0})").get());
  Config c = yaml();
  o.applyTo(c);
  EXPECT_EQ(findBackend(c, "app", "b3")->weight, 1);
  EXPECT_EQ(findBackend(c, "app", "b3")->port, 8083);
}

TEST(StateOverlay, AppliesOntoTheParsedYaml) {
  StateOverlay o;
  o.removed("app", "b2");
  o.updated("app", "b1", parse(R"({"weight": 99, "host": "localhost"})").get());
  o.added("app", backend("b3", 8083));
  o.added("other", backend("c1", 9091));  // a new upstream
  o.removed("gone", "x");                 // nothing to remove
  Config c = yaml();
  std::vector<std::string> notes;
  o.applyTo(c, &notes);
  EXPECT_TRUE(notes.empty());
  EXPECT_EQ(ids(c, "app"), (std::vector<std::string>{"b1", "b3"}));
  EXPECT_EQ(ids(c, "other"), (std::vector<std::string>{"c1"}));
  EXPECT_EQ(c.backends.count("gone"), 0u);
  const BackendConfig& b1 = c.backends.at("app")[0];
  EXPECT_EQ(b1.weight, 99);
  EXPECT_EQ(b1.host, "localhost");
  EXPECT_EQ(b1.port, 8081);
  EXPECT_EQ(b1.mark.line, 3);  // still the YAML's backend
  EXPECT_TRUE(c.marks.empty()) << "the lists changed: the marks' indexes would name others";
  EXPECT_NO_THROW(validateConfig(c, kKnown));
  EXPECT_EQ(c.file, "t.yaml");
}

TEST(StateOverlay, AnUpdateOnlyForgetsTheMarksOfTheValuesItReplaced) {
  StateOverlay o;
  o.updated("app", "b2", parse(R"({"weight": 4, "health_check": {"timeout": "1s"}})").get());
  Config c = yaml();
  ASSERT_EQ(c.marks.count("backends.app[1].health_check.interval"), 1u);
  o.applyTo(c);
  EXPECT_EQ(c.marks.count("backends.app[1].weight"), 0u);
  EXPECT_EQ(c.marks.count("backends.app[1].health_check"), 0u);
  EXPECT_EQ(c.marks.count("backends.app[1].health_check.interval"), 0u);
  EXPECT_EQ(c.marks.count("backends.app[1].port"), 1u);
  EXPECT_EQ(c.marks.count("backends.app[0].weight"), 1u);
  EXPECT_EQ(c.backends.at("app")[1].health_check.interval, milliseconds(2000));
  EXPECT_EQ(c.backends.at("app")[1].health_check.timeout, milliseconds(1000));
}

TEST(StateOverlay, AnUpdateOfABackendTheYamlLostIsSkippedWithANote) {
  const std::string text =
      "{\n  \"version\": 1,\n  \"backends\": [\n"
      "    {\"upstream\": \"app\", \"id\": \"b1\", \"updated\": {\"weight\": 2}},\n"
      "    {\"upstream\": \"app\", \"id\": \"old\", \"updated\": {\"weight\": 3}},\n"
      "    {\"upstream\": \"nowhere\", \"id\": \"b1\", \"updated\": {\"weight\": 4}}\n"
      "  ]\n}\n";
  Config c = yaml();
  std::vector<std::string> notes;
  StateOverlay::fromJson(text, "s.json").applyTo(c, &notes);
  EXPECT_EQ(c.backends.at("app")[0].weight, 2);
  EXPECT_EQ(notes, (std::vector<std::string>{
                       "s.json:5:5: backends[1]: upstream \"app\" has no backend \"old\" any "
                       "more; its update is skipped",
                       "s.json:6:5: backends[2]: upstream \"nowhere\" has no backend \"b1\" any "
                       "more; its update is skipped"}));
  EXPECT_EQ(c.backends.count("nowhere"), 0u);
}

TEST(StateOverlay, ReadsBackWhatItWrites) {
  StateOverlay o;
  BackendConfig b3 = backend("b3", 8083);
  b3.name = "Tiers \"3\" \xc3\xa9";
  b3.health_check.enabled = true;
  o.added("app", b3);
  o.updated("app", "b1", parse(R"({"weight": 7, "health_check": null})").get());
  o.removed("app", "b2");
  const std::string text = o.toJson();
  StateOverlay back = StateOverlay::fromJson(text, "s.json");
  EXPECT_EQ(back.toJson(), text);
  Config a = yaml(), b = yaml();
  o.applyTo(a);
  back.applyTo(b);
  EXPECT_EQ(backendsText(a), backendsText(b));
  EXPECT_EQ(findBackend(b, "app", "b3")->name, b3.name);
}

TEST(StateOverlay, AnEmptyOverlayIsAnEmptyList) {
  StateOverlay o;
  EXPECT_TRUE(o.empty());
  EXPECT_EQ(o.toJson(), "{\n  \"version\": 1,\n  \"backends\": []\n}\n");
  EXPECT_TRUE(StateOverlay::fromJson(o.toJson(), "s.json").empty());
  EXPECT_TRUE(StateOverlay::fromJson("", "s.json").empty());
  EXPECT_TRUE(StateOverlay::fromJson(" \n\t\r\n", "s.json").empty());
  Config c = yaml();
  o.applyTo(c);
  EXPECT_FALSE(c.marks.empty());
}

TEST(StateOverlay, BadJsonIsReportedAtJanssonsLineAndColumn) {
  const std::string text =
      "{\n  \"version\": 1,\n  \"backends\": [\n    {\"upstream\": \"app\",, \"id\": \"b\"}\n"
      "  ]\n}\n";
  try {
    StateOverlay::fromJson(text, "/var/lib/s.json");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "/var/lib/s.json");
    EXPECT_EQ(e.line(), 4);
    EXPECT_EQ(e.column(), 24);
    EXPECT_STREQ(e.what(), "/var/lib/s.json:4:24: string or '}' expected near ','");
  }
  const struct {
    const char* text;
    const char* error;
  } kCases[] = {
      {"{\"version\": 1, \"backends\": [", "s.json:1:28: ']' expected near end of file"},
      {"{\"version\": 1, \"version\": 1}", "s.json:1:24: duplicate object key near '\"version\"'"},
      {"{\"version\": 1}\n{}", "s.json:2:1: end of file expected near '{'"},
      {"nonsense", "s.json:1:8: '[' or '{' expected near 'nonsense'"},
      {"{\"version\": \"\xff\"}", "s.json:1:13: unable to decode byte 0xff near '\"'"},
  };
  for (const auto& c : kCases) {
    EXPECT_EQ(errorOf([&] { StateOverlay::fromJson(c.text, "s.json"); }), c.error) << c.text;
  }
}

// Valid JSON that is not a state file: each error is at the entry (or at the top) and names the
// field.
TEST(StateOverlay, BadEntriesAreLocatedAndNamed) {
  auto file = [](const std::string& entry) {
    return "{\n  \"version\": 1,\n  \"backends\": [\n    {\"upstream\": \"app\", \"id\": \"ok\", "
           "\"removed\": true},\n    " +
           entry + "\n  ]\n}\n";
  };
  const struct {
    std::string text;
    const char* error;
  } kCases[] = {
      {file(R"({"upstream": "app", "id": "b", "added": {"host": "h", "port": 0}})"),
       "s.json:5:5: backends[1].added.port: must be an integer 1..65535"},
      {file(R"({"upstream": "app", "id": "b", "added": {"host": "h"}})"),
       "s.json:5:5: backends[1].added.port: is required"},
      {file(R"({"upstream": "app", "id": "b", "added": {"port": 80}})"),
       "s.json:5:5: backends[1].added.host: is required"},
      {file(R"({"upstream": "app", "id": "b", "added": {"id": "c", "host": "h", "port": 80}})"),
       "s.json:5:5: backends[1].added.id: is \"c\" but the entry's id is \"b\""},
      {file(R"({"upstream": "app", "id": "b", "added": [1]})"),
       "s.json:5:5: backends[1].added: must be an object"},
      {file(R"({"upstream": "app", "id": "b", "updated": {"weight": "heavy"}})"),
       "s.json:5:5: backends[1].updated.weight: must be an integer 1..10000"},
      {file(R"({"upstream": "app", "id": "b", "updated": {"id": "b"}})"),
       "s.json:5:5: backends[1].updated.id: is not allowed: the entry's \"id\" names the backend"},
      {file(R"({"upstream": "app", "id": "b", "updated": 5})"),
       "s.json:5:5: backends[1].updated: must be an object"},
      {file(R"({"upstream": "app", "id": "b", "removed": false})"),
       "s.json:5:5: backends[1].removed: must be true"},
      {file(R"({"upstream": "app", "id": "b", "removed": true, "updated": {}})"),
       "s.json:5:5: backends[1]: must have exactly one of \"added\", \"updated\" and \"removed\""},
      {file(R"({"upstream": "app", "id": "b"})"),
       "s.json:5:5: backends[1]: must have exactly one of \"added\", \"updated\" and \"removed\""},
      {file(R"({"upstream": "app", "id": "b", "removed": true, "when": 1})"),
       "s.json:5:5: backends[1].when: is not a known key"},
      {file(R"({"upstream": "", "id": "b", "removed": true})"),
       "s.json:5:5: backends[1].upstream: must be a non-empty string"},
      {file(R"({"upstream": "app", "id": 3, "removed": true})"),
       "s.json:5:5: backends[1].id: must be a non-empty string"},
      {file(R"({"upstream": "app", "id": "ok", "updated": {"weight": 2}})"),
       "s.json:5:5: backends[1]: a second entry for backend \"ok\" of upstream \"app\" (the "
       "first is backends[0])"},
      {file(R"("b")"),
       "s.json:5:5: backends[1]: must be an object with \"upstream\", \"id\" and one of "
       "\"added\", \"updated\" and \"removed\""},
      // Brackets and quotes inside strings do not move the location.
      {"{\"backends\": [{\"upstream\": \"a[{\\\"\", \"id\": \"x\", \"removed\": true},\n"
       "  {\"upstream\": \"b\", \"id\": \"y\", \"removed\": 1}], \"version\": 1}",
       "s.json:2:3: backends[1].removed: must be true"},
      {"[]", "s.json:1:1: must be an object with \"version\" and \"backends\""},
      {"\n  {\"version\": 2, \"backends\": []}",
       "s.json:2:3: version: must be 1 (the only version this speedmimi reads)"},
      {"{\"backends\": []}", "s.json:1:1: version: is required"},
      {"{\"version\": 1}", "s.json:1:1: backends: must be an array"},
      {"{\"version\": 1, \"backends\": {}}", "s.json:1:1: backends: must be an array"},
      {"{\"version\": 1, \"backends\": [], \"extra\": 0}", "s.json:1:1: extra: is not a known key"},
  };
  for (const auto& c : kCases) {
    EXPECT_EQ(errorOf([&] { StateOverlay::fromJson(c.text, "s.json"); }), c.error) << c.text;
  }
}

class StateFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/speedmimi-state-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/state.json";
  }
  void TearDown() override {
    std::string cmd = "rm -rf " + dir_;
    ASSERT_EQ(system(cmd.c_str()), 0);
  }
  void write(const std::string& text) { std::ofstream(path_, std::ios::binary) << text; }
  std::string read() {
    std::string contents, error;
    EXPECT_TRUE(readWholeFile(path_, contents, error)) << error;
    return contents;
  }
  std::vector<std::string> files() {
    std::vector<std::string> names;
    DIR* d = opendir(dir_.c_str());
    while (dirent* e = d ? readdir(d) : nullptr) {
      if (e->d_name[0] != '.') names.push_back(e->d_name);
    }
    if (d) closedir(d);
    return names;
  }
  std::string dir_;
  std::string path_;
};

TEST_F(StateFileTest, SaveReplacesTheFileAtomicallyWithMode0600) {
  StateOverlay o;
  o.added("app", backend("b3", 8083));
  std::string error;
  ASSERT_TRUE(saveStateFile(path_, o, error)) << error;
  struct stat first;
  ASSERT_EQ(stat(path_.c_str(), &first), 0);
  EXPECT_EQ(first.st_mode & 07777, 0600u);
  EXPECT_EQ(read(), o.toJson());

  o.removed("app", "b1");
  ASSERT_TRUE(saveStateFile(path_, o, error)) << error;
  struct stat second;
  ASSERT_EQ(stat(path_.c_str(), &second), 0);
  EXPECT_NE(second.st_ino, first.st_ino) << "written in place, not renamed over";
  EXPECT_EQ(second.st_mode & 07777, 0600u);
  EXPECT_EQ(read(), o.toJson());
  EXPECT_EQ(files(), (std::vector<std::string>{"state.json"})) << "a temporary file is left";
  EXPECT_EQ(loadStateFile(path_).toJson(), o.toJson());
}

TEST_F(StateFileTest, AFailedSaveSaysWhyAndLeavesNothing) {
  std::string error;
  const std::string missing = dir_ + "/no/such/dir/state.json";
  EXPECT_FALSE(saveStateFile(missing, StateOverlay{}, error));
  EXPECT_EQ(error, missing + ".tmp." + std::to_string(getpid()) +
                       ": cannot create: No such file or directory");

  StateOverlay unwritable;
  BackendConfig b = backend("b3", 8083);
  b.name = "\xff";  // not UTF-8: JSON cannot hold it
  unwritable.added("app", b);
  write("previous");
  EXPECT_FALSE(saveStateFile(path_, unwritable, error));
  EXPECT_EQ(error, path_ +
                       ": cannot write the state as JSON (out of memory, or text that is not "
                       "UTF-8)");
  EXPECT_EQ(read(), "previous");
}

TEST_F(StateFileTest, AMissingOrEmptyFileIsAnEmptyOverlay) {
  EXPECT_TRUE(loadStateFile(path_).empty());
  EXPECT_TRUE(files().empty()) << "loading created the file";
  write("");
  EXPECT_TRUE(loadStateFile(path_).empty());
  write("\n\n");
  EXPECT_TRUE(loadStateFile(path_).empty());
}

TEST_F(StateFileTest, AnUnreadableFileIsAnErrorNamingIt) {
  EXPECT_EQ(errorOf([&] { loadStateFile(dir_); }), dir_ + ": cannot read: Is a directory");
  write("{\"version\": 1, \"backends\": [}");
  EXPECT_EQ(errorOf([&] { loadStateFile(path_); }), path_ + ":1:29: unexpected token near '}'");
  EXPECT_EQ(read(), "{\"version\": 1, \"backends\": [}") << "the file was changed";
}

TEST_F(StateFileTest, ApplyStateFileReplaysTheFileOntoTheYaml) {
  const Config y = yaml();
  // No file: the YAML, marks and all.
  Config same = applyStateFile(y, path_, kKnown);
  EXPECT_EQ(backendsText(same), backendsText(y));
  EXPECT_EQ(same.marks.size(), y.marks.size());

  StateOverlay o;
  o.added("app", backend("b3", 8083));
  o.removed("app", "b1");
  std::string error;
  ASSERT_TRUE(saveStateFile(path_, o, error)) << error;
  Config effective = applyStateFile(y, path_, kKnown);
  EXPECT_EQ(ids(effective, "app"), (std::vector<std::string>{"b2", "b3"}));
  EXPECT_EQ(effective.file, "t.yaml");
  EXPECT_EQ(ids(y, "app"), (std::vector<std::string>{"b1", "b2"})) << "the YAML was changed";

  std::vector<std::string> notes;
  write(R"({"version": 1, "backends": [{"upstream": "app", "id": "zz", "updated": {}}]})");
  applyStateFile(y, path_, kKnown, &notes);
  EXPECT_EQ(notes.size(), 1u);
}

// An update of slow_start over the API survives a restart: saved, read back and replayed onto
// the YAML; and an added backend keeps its own.
TEST_F(StateFileTest, AnUpdatedSlowStartSurvivesARestart) {
  StateOverlay o;
  o.updated("app", "b1", parse(R"({"slow_start": "20s"})").get());
  BackendConfig added = backend("b3", 8083);
  added.slow_start = std::chrono::milliseconds(1'500);
  o.added("app", added);
  std::string error;
  ASSERT_TRUE(saveStateFile(path_, o, error)) << error;
  const Config effective = applyStateFile(yaml(), path_, kKnown);
  ASSERT_NE(findBackend(effective, "app", "b1"), nullptr);
  EXPECT_EQ(findBackend(effective, "app", "b1")->slow_start, std::chrono::milliseconds(20'000));
  EXPECT_EQ(findBackend(effective, "app", "b2")->slow_start, std::chrono::milliseconds(0));
  ASSERT_NE(findBackend(effective, "app", "b3"), nullptr);
  EXPECT_EQ(findBackend(effective, "app", "b3")->slow_start, std::chrono::milliseconds(1'500));
  // Turned off again later: the merged entry says 0s.
  o.updated("app", "b1", parse(R"({"slow_start": 0})").get());
  ASSERT_TRUE(saveStateFile(path_, o, error)) << error;
  EXPECT_EQ(findBackend(applyStateFile(yaml(), path_, kKnown), "app", "b1")->slow_start,
            std::chrono::milliseconds(0));
}

TEST_F(StateFileTest, ApplyStateFileBlamesTheStateFileForWhatItBreaks) {
  const Config y = yaml();
  write("{\"version\": 1,\n \"backends\": [");
  EXPECT_EQ(errorOf([&] { applyStateFile(y, path_, kKnown); }),
            path_ + ":2:14: ']' expected near end of file");

}

}  // namespace
}  // namespace speedmimi::core
