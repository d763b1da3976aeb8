// The state file seen from outside (DESIGN §9, issue 9 "Persistence"): the runtime changes it
// holds are replayed onto the YAML when the server starts, on HUP and by the new binary of an
// upgrade; a file that cannot be parsed stops a start with its path and line:column (and is left
// as it was), leaves a reload's old generation serving, and is reported by -t; -T prints the
// configuration with its changes.
//
// The harness makes a proxy's prefix when it first starts it, so a test that needs the file
// before a start stops that first instance, writes the file, and starts the binary again in the
// same prefix (as a daemon, so that the harness's runCommand returns; the harness then tracks
// the new master).
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <string>

#include "harness.h"

namespace speedmimi::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// 200 with the backend's name as body.
Handler identify(const std::string& name) {
  return [name](const Request&, Responder& out) {
    out.send(buildResponse(200, {{"Content-Type", "text/plain"}}, name));
  };
}

// `count` GETs, each on its own connection: how many answers each body had ("error: ..." for
// those that failed, "status N: ..." for other statuses).
std::map<std::string, int> fetchMany(int port, int count) {
  std::map<std::string, int> bodies;
  for (int i = 0; i < count; ++i) {
    std::string error;
    auto r = fetch(port,
                   buildRequest("GET", "/r/" + std::to_string(i), {{"Host", "state.test"}}, "",
                                Framing::kNone),
                   &error);
    if (!r) {
      ++bodies["error: " + error];
    } else if (r->status != 200) {
      ++bodies["status " + std::to_string(r->status) + ": " + r->body];
    } else {
      ++bodies[r->body];
    }
  }
  return bodies;
}

size_t countLines(const std::string& log, const std::string& needle) {
  return linesContaining(log, {needle}).size();
}

bool waitForLogLine(const Proxy& proxy, const std::string& needle, size_t count = 1) {
  return waitFor([&] { return countLines(proxy.errorLog(), needle) >= count; }, Millis(10'000),
                 Millis(20));
}

std::string statePath(const Proxy& proxy) {
  return proxy.prefix() + "/logs/speedmimi.state.json";
}

// Replaces the state file by rename, as the control process does, so that a reload never reads
// half of it.
void writeState(const Proxy& proxy, const std::string& text) {
  const std::string tmp = statePath(proxy) + ".test-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    ASSERT_TRUE(out.flush()) << tmp;
  }
  ASSERT_EQ(rename(tmp.c_str(), statePath(proxy).c_str()), 0) << statePath(proxy);
}

std::string stateAdding(const std::string& id, int port) {
  return "{\n  \"version\": 1,\n  \"backends\": [\n    {\"upstream\": \"app\", \"id\": \"" + id +
         "\", \"added\": {\"id\": \"" + id +
         "\", \"host\": \"127.0.0.1\", \"port\": " + std::to_string(port) + "}}\n  ]\n}\n";
}

std::string stateRemoving(const std::string& id) {
  return "{\"version\": 1, \"backends\": [{\"upstream\": \"app\", \"id\": \"" + id +
         "\", \"removed\": true}]}\n";
}

// Valid JSON up to line 4, column 24 (the second comma).
constexpr char kCorrupt[] =
    "{\n  \"version\": 1,\n  \"backends\": [\n    {\"upstream\": \"app\",, \"id\": \"b\"}\n"
    "  ]\n}\n";
constexpr char kCorruptError[] = ":4:24: string or '}' expected near ','";

class StateFileTest : public ProxyTest {
 protected:
  // Starts the binary again in the prefix of `proxy`, which was stopped, and tracks the new
  // master; true once its worker and control process run.
  ::testing::AssertionResult startAgain(Proxy& proxy) {
    Proxy::CommandResult r = proxy.runCommand({"-d"});
    if (r.exit_code != 0) {
      return ::testing::AssertionFailure()
             << "speedmimi -d exited with " << r.exit_code << ": " << r.err << "\nerror log:\n"
             << proxy.errorLog();
    }
    pid_t master = 0;
    if (!waitFor(
            [&] {
              master = proxy.pidFromFile();
              return master != 0;
            },
            Millis(10'000))) {
      return ::testing::AssertionFailure() << "no pid file\n" << proxy.errorLog();
    }
    proxy.adoptMaster(master);
    if (!waitFor([&] { return proxy.childPids().size() == 2; }, Millis(10'000))) {
      return ::testing::AssertionFailure() << "no worker and control process\n" << proxy.errorLog();
    }
    return ::testing::AssertionSuccess();
  }
};

TEST_F(StateFileTest, ABackendAddedInTheStateFileServesFromTheStart) {
  FakeBackend yaml_backend(identify("yaml")), added(identify("added"));
  ASSERT_TRUE(yaml_backend.ok() && added.ok());
  Proxy* proxy = startProxy(ProxyOptions::forBackends({yaml_backend.port()}));
  ASSERT_NE(proxy, nullptr);
  EXPECT_EQ(fetchMany(proxy->port(), 4), (std::map<std::string, int>{{"yaml", 4}}));
  ASSERT_TRUE(proxy->stop());

  writeState(*proxy, stateAdding("added1", added.port()));
  ASSERT_TRUE(startAgain(*proxy));
  // Weights 1 and 1: smooth weighted round robin alternates.
  EXPECT_EQ(fetchMany(proxy->port(), 10), (std::map<std::string, int>{{"added", 5}, {"yaml", 5}}));
  EXPECT_EQ(added.requestCount(), 5u);
}

TEST_F(StateFileTest, ABackendRemovedInTheStateFileGetsNoRequestAfterAStart) {
  FakeBackend kept(identify("kept")), removed(identify("removed"));
  ASSERT_TRUE(kept.ok() && removed.ok());
  Proxy* proxy = startProxy(ProxyOptions::forBackends({kept.port(), removed.port()}));
  ASSERT_NE(proxy, nullptr);
  EXPECT_EQ(fetchMany(proxy->port(), 4), (std::map<std::string, int>{{"kept", 2}, {"removed", 2}}));
  ASSERT_TRUE(proxy->stop());

  writeState(*proxy, stateRemoving("b2"));
  ASSERT_TRUE(startAgain(*proxy));
  EXPECT_EQ(fetchMany(proxy->port(), 10), (std::map<std::string, int>{{"kept", 10}}));
  EXPECT_EQ(removed.requestCount(), 2u) << "the removed backend got requests after the start";
}

TEST_F(StateFileTest, ACorruptStateFileStopsTheStartAndIsLeftAsItWas) {
  FakeBackend backend(identify("yaml"));
  ASSERT_TRUE(backend.ok());
  Proxy* proxy = startProxy(ProxyOptions::forBackends({backend.port()}));
  ASSERT_NE(proxy, nullptr);
  ASSERT_TRUE(proxy->stop());
  const size_t starts = countLines(proxy->errorLog(), "speedmimi started on");

  // Bad JSON: the parser's line and column.
  writeState(*proxy, kCorrupt);
  Proxy::CommandResult r = proxy->runCommand({}, Millis(10'000));
  EXPECT_FALSE(r.timed_out) << "the server started";
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "speedmimi: " + statePath(*proxy) + kCorruptError + "\n");
  EXPECT_EQ(readFile(statePath(*proxy)), kCorrupt) << "the state file was changed";
  EXPECT_EQ(proxy->pidFromFile(), 0);

  // Valid JSON, a bad entry: located at the entry, with the field's path.
  const std::string bad_entry =
      "{\"version\": 1, \"backends\": [\n  {\"upstream\": \"app\", \"id\": \"x\", "
      "\"added\": {\"host\": \"127.0.0.1\", \"port\": 70000}}]}\n";
  writeState(*proxy, bad_entry);
  r = proxy->runCommand({}, Millis(10'000));
  EXPECT_FALSE(r.timed_out) << "the server started";
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "speedmimi: " + statePath(*proxy) +
                       ":2:3: backends[0].added.port: must be an integer 1..65535\n");
  EXPECT_EQ(readFile(statePath(*proxy)), bad_entry);
  EXPECT_EQ(countLines(proxy->errorLog(), "speedmimi started on"), starts);
}

TEST_F(StateFileTest, AChangedStateFileAppliesOnHup) {
  FakeBackend yaml_backend(identify("yaml")), added(identify("added"));
  ASSERT_TRUE(yaml_backend.ok() && added.ok());
  Proxy* proxy = startProxy(ProxyOptions::forBackends({yaml_backend.port()}));
  ASSERT_NE(proxy, nullptr);
  EXPECT_EQ(fetchMany(proxy->port(), 2), (std::map<std::string, int>{{"yaml", 2}}));

  writeState(*proxy, stateAdding("added1", added.port()));
  ASSERT_TRUE(proxy->signal(SIGHUP));
  ASSERT_TRUE(waitForLogLine(*proxy, "reload done: generation 2")) << proxy->errorLog();
  EXPECT_EQ(fetchMany(proxy->port(), 10), (std::map<std::string, int>{{"added", 5}, {"yaml", 5}}));

  // A file replaced whole: what the new one says, nothing more.
  writeState(*proxy,
             "{\"version\": 1, \"backends\": [\n"
             "  {\"upstream\": \"app\", \"id\": \"b1\", \"removed\": true},\n"
             "  {\"upstream\": \"app\", \"id\": \"added1\", \"added\": {\"host\": "
             "\"127.0.0.1\", \"port\": " +
                 std::to_string(added.port()) + ", \"weight\": 3}}]}\n");
  ASSERT_TRUE(proxy->signal(SIGHUP));
  ASSERT_TRUE(waitForLogLine(*proxy, "reload done: generation 3")) << proxy->errorLog();
  EXPECT_EQ(fetchMany(proxy->port(), 6), (std::map<std::string, int>{{"added", 6}}));
  EXPECT_EQ(yaml_backend.requestCount(), 7u) << "the removed YAML backend got requests";
}

TEST_F(StateFileTest, ACorruptStateFileAtHupKeepsTheOldGenerationServing) {
  FakeBackend kept(identify("kept")), removed(identify("removed"));
  ASSERT_TRUE(kept.ok() && removed.ok());
  Proxy* proxy = startProxy(ProxyOptions::forBackends({kept.port(), removed.port()}));
  ASSERT_NE(proxy, nullptr);
  writeState(*proxy, stateRemoving("b2"));
  ASSERT_TRUE(proxy->signal(SIGHUP));
  ASSERT_TRUE(waitForLogLine(*proxy, "reload done: generation 2")) << proxy->errorLog();
  EXPECT_EQ(fetchMany(proxy->port(), 4), (std::map<std::string, int>{{"kept", 4}}));

  writeState(*proxy, kCorrupt);
  ASSERT_TRUE(proxy->signal(SIGHUP));
  const std::string failed =
      "reload failed: " + statePath(*proxy) + kCorruptError + "; still serving generation 2";
  ASSERT_TRUE(waitForLogLine(*proxy, failed)) << proxy->errorLog();
  // Generation 2 serves on, with the removal it was started with (a reload that dropped the
  // overlay would bring the removed backend back).
  EXPECT_EQ(fetchMany(proxy->port(), 6), (std::map<std::string, int>{{"kept", 6}}));
  EXPECT_EQ(removed.requestCount(), 0u);
  EXPECT_EQ(countLines(proxy->errorLog(), "reload done: generation"), 1u) << proxy->errorLog();
  EXPECT_EQ(readFile(statePath(*proxy)), kCorrupt) << "the state file was changed";
  EXPECT_TRUE(proxy->running());
}

TEST_F(StateFileTest, TestAndDumpReplayTheStateFile) {
  FakeBackend backend(identify("yaml"));
  ASSERT_TRUE(backend.ok());
  Proxy* proxy = startProxy(ProxyOptions::forBackends({backend.port()}));
  ASSERT_NE(proxy, nullptr);
  const int added_port = pickFreePort();
  writeState(*proxy, stateAdding("from-state", added_port));

  Proxy::CommandResult dump = proxy->runCommand({"-T"});
  EXPECT_EQ(dump.exit_code, 0) << dump.err;
  EXPECT_THAT(dump.out, HasSubstr("  - id: b1\n"));
  EXPECT_THAT(dump.out, HasSubstr("  - id: from-state\n    name: \"\"\n    host: 127.0.0.1\n"
                                  "    port: " +
                                  std::to_string(added_port) + "\n"));
  EXPECT_THAT(dump.out, HasSubstr("speedmimi: configuration file " + proxy->configPath() +
                                  " test is successful\n"));

  // A slow_start set over the API is in the effective configuration.
  writeState(*proxy, R"({"version": 1, "backends": [{"upstream": "app", "id": "b1",)"
                     R"( "updated": {"slow_start": "20s"}}]})");
  dump = proxy->runCommand({"-T"});
  EXPECT_EQ(dump.exit_code, 0) << dump.err;
  EXPECT_THAT(dump.out, HasSubstr("    fail_timeout: 10s\n    slow_start: 20s\n"));

  writeState(*proxy, stateRemoving("b1"));
  dump = proxy->runCommand({"-T"});
  EXPECT_EQ(dump.exit_code, 0) << dump.err;
  EXPECT_THAT(dump.out, Not(HasSubstr("id: b1")));
  EXPECT_THAT(dump.out, HasSubstr("backends:\n  app: []\n"));

  writeState(*proxy, kCorrupt);
  for (const char* option : {"-t", "-T"}) {
    Proxy::CommandResult test = proxy->runCommand({option});
    EXPECT_EQ(test.exit_code, 1) << option;
    EXPECT_EQ(test.err, "speedmimi: " + statePath(*proxy) + kCorruptError +
                            "\nspeedmimi: configuration file " + proxy->configPath() +
                            " test failed\n")
        << option;
    EXPECT_EQ(test.out, "") << option;
  }
  EXPECT_EQ(readFile(statePath(*proxy)), kCorrupt);
}

TEST_F(StateFileTest, ANewBinaryReplaysTheStateFile) {
  FakeBackend yaml_backend(identify("yaml")), added(identify("added"));
  ASSERT_TRUE(yaml_backend.ok() && added.ok());
  ProxyOptions options = ProxyOptions::forBackends({yaml_backend.port()});
  options.private_binary = true;
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  const pid_t old_master = proxy->pid();

  // Written after the old master read it: only the new binary can know of it.
  writeState(*proxy, stateAdding("added1", added.port()));
  ASSERT_TRUE(proxy->signal(SIGUSR2));
  pid_t new_master = 0;
  ASSERT_TRUE(waitFor(
      [&] {
        new_master = proxy->pidFromFile();
        return new_master != 0 && new_master != old_master;
      },
      Millis(10'000)))
      << proxy->errorLog();
  proxy->adoptMaster(new_master);
  ASSERT_TRUE(waitFor([&] { return processGone(old_master); }, Millis(10'000)))
      << "the old master did not exit\n"
      << proxy->errorLog();
  EXPECT_EQ(fetchMany(proxy->port(), 10), (std::map<std::string, int>{{"added", 5}, {"yaml", 5}}));
}

}  // namespace
}  // namespace speedmimi::test
