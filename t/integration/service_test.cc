// The service files of contrib/ run for real: the LSB init script (start, reload of a valid and
// of an invalid file, status, stop) and the commands of the systemd unit (ExecStartPre,
// ExecStart, ExecReload), with the installed paths replaced by this build's.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness.h"

namespace speedmimi::test {
namespace {

namespace fs = std::filesystem;

// A file of the source tree (tests run in the build directory; see config_test.cc).
std::string sourcePath(const std::string& relative) {
  const std::string self = __FILE__;
  return self.substr(0, self.rfind("t/integration/service_test.cc")) + relative;
}

int freePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Runs a shell command (killed after 60 s: a daemon that keeps our pipe open must not hang the
// test); returns its exit status and sets *output to stdout and stderr.
int run(const std::string& command, std::string* output) {
  std::string wrapped = "timeout 60 sh -c \"" + command + "\" 2>&1";
  FILE* p = popen(wrapped.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  output->clear();
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class ServiceFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/speedmimi-service-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    one_ = std::make_unique<FakeBackend>(FakeBackend::fixed(200, "one"));
    two_ = std::make_unique<FakeBackend>(FakeBackend::fixed(200, "two"));
    port_ = freePort();
    writeConfig(one_->port(), "");
  }
  void TearDown() override {
    std::string pid = readAll(dir_ + "/logs/speedmimi.pid");
    if (!pid.empty()) kill(std::atoi(pid.c_str()), SIGTERM);
    waitFor([&] { return !fs::exists(dir_ + "/logs/speedmimi.pid"); }, Millis(5000));
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void writeConfig(int backend_port, const std::string& extra) {
    ProxyOptions o = ProxyOptions::forBackends({backend_port});
    o.port = port_;
    o.workers = 2;
    std::ofstream(dir_ + "/speedmimi.yaml") << o.toYaml() << extra;
  }

  // GET / through the proxy: the backend's body, or "" when it fails.
  std::string get() {
    Client c(port_);
    if (!c.sendRaw("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) return "";
    auto r = c.readResponse();
    return r && r->status == 200 ? r->body : "";
  }

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<FakeBackend> one_, two_;
};

TEST_F(ServiceFiles, InitScriptStartsReloadsRefusesABadFileAndStops) {
  std::ofstream(dir_ + "/defaults") << "DAEMON=" << Proxy::binaryPath() << "\nCONFIG=" << dir_
                                    << "/speedmimi.yaml\nPREFIX=" << dir_ << "\nSTOP_TIMEOUT=10\n";
  std::string script = "SPEEDMIMI_DEFAULTS=" + dir_ + "/defaults sh " +
                       sourcePath("contrib/speedmimi.init");
  std::string out;
  ASSERT_EQ(run(script + " start", &out), 0) << out;
  EXPECT_TRUE(waitFor([&] { return get() == "one"; }, Millis(5000)));

  writeConfig(two_->port(), "");
  ASSERT_EQ(run(script + " reload", &out), 0) << out;
  EXPECT_NE(out.find("reload done: generation 2"), std::string::npos) << out;
  EXPECT_EQ(get(), "two");  // answered when reload returns

  // An invalid file: reload fails with its place, and the running configuration stays.
  writeConfig(one_->port(), "bogus: 1\n");
  EXPECT_EQ(run(script + " reload", &out), 1) << out;
  EXPECT_NE(out.find("speedmimi.yaml:"), std::string::npos) << out;
  EXPECT_NE(out.find("bogus"), std::string::npos) << out;
  EXPECT_EQ(get(), "two");

  EXPECT_EQ(run(script + " status", &out), 0) << out;
  EXPECT_NE(out.find("is running"), std::string::npos) << out;
  EXPECT_EQ(run(script + " stop", &out), 0) << out;
  EXPECT_EQ(run(script + " status", &out), 3) << out;
  EXPECT_EQ(count(readAll(dir_ + "/logs/error.log"), "reload done: generation 2"), 1u);
}

// The unit's commands, as systemd would run them for start and reload (Type=forking: ExecStart
// daemonizes and the master writes PIDFile=).
TEST_F(ServiceFiles, SystemdUnitCommandsStartAndReload) {
  std::string unit = readAll(sourcePath("contrib/speedmimi.service"));
  auto command = [&](const std::string& key) {
    size_t at = unit.find("\n" + key + "=");
    if (at == std::string::npos) return std::string();
    size_t start = at + key.size() + 2;
    std::string line = unit.substr(start, unit.find('\n', start) - start);
    auto replace = [&](const std::string& from, const std::string& to) {
      for (size_t p = line.find(from); p != std::string::npos; p = line.find(from, p + to.size())) {
        line.replace(p, from.size(), to);
      }
    };
    replace("/usr/local/etc/speedmimi/speedmimi.yaml", dir_ + "/speedmimi.yaml");
    replace("/usr/local/bin/speedmimi", Proxy::binaryPath());
    replace("/var/lib/speedmimi", dir_);
    return line;
  };
  ASSERT_NE(unit.find("\nType=forking\n"), std::string::npos);
  EXPECT_NE(unit.find("\nPIDFile=/var/lib/speedmimi/logs/speedmimi.pid\n"), std::string::npos);
  std::string out;
  ASSERT_EQ(run(command("ExecStartPre"), &out), 0) << out;
  ASSERT_EQ(run(command("ExecStart"), &out), 0) << out;  // returns once daemonized
  ASSERT_TRUE(waitFor([&] { return fs::exists(dir_ + "/logs/speedmimi.pid"); }, Millis(5000)));
  EXPECT_TRUE(waitFor([&] { return get() == "one"; }, Millis(5000)));

  writeConfig(two_->port(), "");
  std::string reload = command("ExecReload");
  ASSERT_FALSE(reload.empty());
  ASSERT_EQ(run(reload, &out), 0) << out;
  EXPECT_EQ(get(), "two");

  writeConfig(one_->port(), "server: {nope: 1}\n");
  EXPECT_NE(run(reload, &out), 0) << out;  // systemctl reload reports the failure
  EXPECT_EQ(get(), "two");
}

}  // namespace
}  // namespace speedmimi::test
