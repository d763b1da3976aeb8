// The dashboard on the admin listener (DESIGN §9, issue 10) in a real browser: headless
// Chromium driven through chromedriver's WebDriver protocol (HTTP and JSON, spoken with the
// harness's client and Jansson). The browser loads the page from the proxy, finds every
// backend with its health, drains one (the API then reports it inactive and the page shows
// it), sets a weight and activates it again; with admin.auth_token set, the page asks for the
// token, refuses a wrong one, and shows the backends once it has the right one. A screenshot
// is kept in t/integration/artifacts/ of the build directory. A plain test checks that the
// page served loads nothing from elsewhere.
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "harness.h"

namespace speedmimi::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// ---------------------------------------------------------------------------------------------
// JSON

struct JsonDelete {
  void operator()(json_t* j) const { json_decref(j); }
};
using Json = std::unique_ptr<json_t, JsonDelete>;

Json parseJson(const std::string& text) {
  json_error_t e;
  return Json(json_loadb(text.data(), text.size(), 0, &e));
}

std::string dump(const json_t* j) {
  if (!j) return "(null)";
  char* s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  std::string out = s ? s : "(unprintable)";
  free(s);
  return out;
}

std::string text(const json_t* j) {
  return json_is_string(j) ? json_string_value(j) : "";
}

// The backend `id` of `upstream` in an answer of GET /api/v1/backends, or null.
json_t* backendIn(json_t* answer, const std::string& upstream, const std::string& id) {
  json_t* list = json_object_get(json_object_get(answer, "upstreams"), upstream.c_str());
  size_t i;
  json_t* b;
  json_array_foreach(list, i, b) {
    if (text(json_object_get(b, "id")) == id) return b;
  }
  return nullptr;
}

// GET /api/v1/backends, parsed (null when it did not answer 200 with JSON).
Json backends(const Proxy& proxy) {
  auto r = proxy.api("GET", "/api/v1/backends");
  if (!r || r->status != 200) return nullptr;
  return parseJson(r->body);
}

// What the API says of one field of a backend ("true", "7", ...), "" when unknown.
std::string backendField(const Proxy& proxy, const std::string& upstream, const std::string& id,
                         const char* name) {
  Json all = backends(proxy);
  json_t* b = backendIn(all.get(), upstream, id);
  return b ? dump(json_object_get(b, name)) : "";
}

// ---------------------------------------------------------------------------------------------
// Files

std::string base64Decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0) continue;  // padding, line breaks
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  return out;
}

// The build directory's t/integration/artifacts (created), where the screenshots are kept.
std::string artifactsDir() {
  std::string dir = std::string(SPEEDMIMI_BUILDDIR) + "/t/integration/artifacts";
  std::error_code ignored;
  std::filesystem::create_directories(dir, ignored);
  return dir;
}

bool writeFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

// ---------------------------------------------------------------------------------------------
// Browser: chromedriver (and the Chromium it starts) in a process group of its own, with a
// private HOME and profile in a temporary directory; one WebDriver session. Everything is
// stopped by the destructor, whatever the test did.

const char* envOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// The processes whose command line mentions `needle` (Chromium's crash handler leaves the
// process group, but its arguments name the private HOME).
std::vector<pid_t> processesMentioning(const std::string& needle) {
  std::vector<pid_t> out;
  DIR* proc = opendir("/proc");
  if (!proc) return out;
  while (dirent* e = readdir(proc)) {
    char* end = nullptr;
    long pid = strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == getpid()) continue;
    std::string cmdline = readFile("/proc/" + std::string(e->d_name) + "/cmdline");
    if (cmdline.find(needle) != std::string::npos) out.push_back(static_cast<pid_t>(pid));
  }
  closedir(proc);
  return out;
}

class Browser {
 public:
  struct Reply {
    int status = 0;  // 0: no answer
    Json value;      // the member "value" of the answer
    std::string raw;
    bool ok() const { return status == 200; }
  };

  Browser() = default;
  Browser(const Browser&) = delete;
  Browser& operator=(const Browser&) = delete;
  ~Browser() { stop(); }

  // Starts chromedriver on a picked loopback port and opens a session of headless Chromium
  // with a 1366x768 window.
  bool start(std::string* error) {
    char pattern[] = "/tmp/speedmimi-browser.XXXXXX";
    if (!mkdtemp(pattern)) return fail(error, std::string("mkdtemp: ") + strerror(errno));
    dir_ = pattern;
    port_ = pickFreePort();
    if (!spawnDriver(error)) return false;
    bool ready = waitFor(
        [this] {
          Reply r = request("GET", "/status", nullptr, Millis(2000));
          return r.ok() && json_is_true(json_object_get(r.value.get(), "ready"));
        },
        Millis(20'000), Millis(100));
    if (!ready) return fail(error, "chromedriver did not become ready; its log:\n" + driverLog());
    Json caps(json_pack("{s:{s:{s:s, s:b, s:{s:s, s:[s,s,s,s,s,s]}, s:{s:s}}}}", "capabilities",
                        "alwaysMatch", "browserName", "chrome", "acceptInsecureCerts", false,
                        "goog:chromeOptions", "binary", envOr("CHROMIUM", "/usr/bin/chromium"),
                        "args", "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--window-size=1366,768", ("--user-data-dir=" + dir_ + "/profile").c_str(),
                        "--no-first-run", "goog:loggingPrefs", "browser", "ALL"));
    Reply session = request("POST", "/session", caps.get(), Millis(60'000));
    const char* id = json_string_value(json_object_get(session.value.get(), "sessionId"));
    if (!session.ok() || !id) {
      return fail(error, "no WebDriver session (" + std::to_string(session.status) +
                             "): " + session.raw + "\nchromedriver's log:\n" + driverLog());
    }
    session_ = id;
    return true;
  }

  // Closes the session, then ends the process group (TERM, then KILL) and anything left that
  // was started with the private HOME, and removes the temporary directory.
  void stop() {
    if (!session_.empty()) request("DELETE", "/session/" + session_, nullptr, Millis(10'000));
    session_.clear();
    if (driver_ > 0) {
      kill(-driver_, SIGTERM);
      bool exited = waitFor([this] { return waitpid(driver_, nullptr, WNOHANG) == driver_; },
                            Millis(3000), Millis(20));
      kill(-driver_, SIGKILL);
      if (!exited) waitpid(driver_, nullptr, 0);
      waitFor([this] { return kill(-driver_, 0) != 0 && errno == ESRCH; }, Millis(5000),
              Millis(20));
      driver_ = -1;
    }
    if (!dir_.empty()) {
      for (pid_t pid : processesMentioning(dir_)) kill(pid, SIGKILL);
      waitFor([this] { return processesMentioning(dir_).empty(); }, Millis(5000), Millis(20));
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
      dir_.clear();
    }
  }

  // One command of the session: `path` is under /session/ID.
  Reply command(const std::string& method, const std::string& path, json_t* body = nullptr,
                Millis timeout = Millis(30'000)) {
    return request(method, "/session/" + session_ + path, body, timeout);
  }

  bool navigate(const std::string& url) {
    Json body(json_pack("{s:s}", "url", url.c_str()));
    return command("POST", "/url", body.get()).ok();
  }

  // The first element matching the CSS selector, "" when there is none.
  std::string find(const std::string& css) {
    Json body(json_pack("{s:s, s:s}", "using", "css selector", "value", css.c_str()));
    Reply r = command("POST", "/element", body.get());
    return r.ok() ? elementId(r.value.get()) : "";
  }

  size_t count(const std::string& css) {
    Json body(json_pack("{s:s, s:s}", "using", "css selector", "value", css.c_str()));
    Reply r = command("POST", "/elements", body.get());
    return r.ok() ? json_array_size(r.value.get()) : 0;
  }

  // The rendered text of the first element matching `css`; nullopt when there is none.
  std::optional<std::string> textOf(const std::string& css) {
    std::string element = find(css);
    if (element.empty()) return std::nullopt;
    Reply r = command("GET", "/element/" + element + "/text");
    if (!r.ok()) return std::nullopt;
    return text(r.value.get());
  }

  bool displayed(const std::string& css) {
    std::string element = find(css);
    if (element.empty()) return false;
    return json_is_true(command("GET", "/element/" + element + "/displayed").value.get());
  }

  ::testing::AssertionResult click(const std::string& css) {
    std::string element = find(css);
    if (element.empty()) return ::testing::AssertionFailure() << "no element " << css;
    Json empty(json_object());
    Reply r = command("POST", "/element/" + element + "/click", empty.get());
    if (!r.ok()) return ::testing::AssertionFailure() << "click " << css << ": " << r.raw;
    return ::testing::AssertionSuccess();
  }

  // Clears the input matching `css` and types `keys` into it, as a user would.
  ::testing::AssertionResult type(const std::string& css, const std::string& keys) {
    std::string element = find(css);
    if (element.empty()) return ::testing::AssertionFailure() << "no element " << css;
    Json empty(json_object());
    Reply cleared = command("POST", "/element/" + element + "/clear", empty.get());
    if (!cleared.ok())
      return ::testing::AssertionFailure() << "clear " << css << ": " << cleared.raw;
    Json body(json_pack("{s:s}", "text", keys.c_str()));
    Reply r = command("POST", "/element/" + element + "/value", body.get());
    if (!r.ok()) return ::testing::AssertionFailure() << "type into " << css << ": " << r.raw;
    return ::testing::AssertionSuccess();
  }

  // Runs `script` (a function body) in the page and returns its value.
  Json script(const std::string& source) {
    Json body(json_pack("{s:s, s:[]}", "script", source.c_str(), "args"));
    Reply r = command("POST", "/execute/sync", body.get());
    return r.ok() ? std::move(r.value) : nullptr;
  }

  // The page as a PNG.
  std::string screenshot() {
    Reply r = command("GET", "/screenshot");
    return r.ok() ? base64Decode(text(r.value.get())) : "";
  }

  // The browser console since the last call, one "LEVEL message" a line.
  std::vector<std::string> console() {
    Json body(json_pack("{s:s}", "type", "browser"));
    Reply r = command("POST", "/se/log", body.get());
    std::vector<std::string> lines;
    size_t i;
    json_t* entry;
    json_array_foreach(r.value.get(), i, entry) {
      lines.push_back(text(json_object_get(entry, "level")) + " " +
                      text(json_object_get(entry, "message")));
    }
    return lines;
  }

  std::string driverLog() const { return readFile(dir_ + "/chromedriver.log"); }

 private:
  static bool fail(std::string* error, std::string what) {
    if (error) *error = std::move(what);
    return false;
  }

  static std::string elementId(json_t* value) {
    return text(json_object_get(value, "element-6066-11e4-a52e-4f735466cecf"));
  }

  // chromedriver in a process group of its own, its output to /dev/null (it logs to a file).
  // Everything the child needs is prepared before fork(): the test has threads, so the child
  // makes only async-signal-safe calls until exec.
  bool spawnDriver(std::string* error) {
    std::string binary = envOr("CHROMEDRIVER", "/usr/bin/chromedriver");
    std::vector<std::string> args = {"chromedriver", "--port=" + std::to_string(port_),
                                     "--log-path=" + dir_ + "/chromedriver.log"};
    // Chromium keeps its crash reports and caches under HOME: a private one leaves nothing.
    std::string home = dir_ + "/home";
    if (mkdir(home.c_str(), 0700) != 0)
      return fail(error, "mkdir " + home + ": " + strerror(errno));
    std::vector<std::string> env = {"HOME=" + home, "XDG_CONFIG_HOME=" + home + "/.config",
                                    "XDG_CACHE_HOME=" + home + "/.cache"};
    for (char** e = environ; *e; ++e) {
      std::string_view entry(*e);
      if (!entry.starts_with("HOME=") && !entry.starts_with("XDG_CONFIG_HOME=") &&
          !entry.starts_with("XDG_CACHE_HOME=")) {
        env.emplace_back(entry);
      }
    }
    std::vector<char*> argv, envp;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0) return fail(error, std::string("open /dev/null: ") + strerror(errno));
    driver_ = fork();
    if (driver_ < 0) {
      close(null);
      return fail(error, std::string("fork: ") + strerror(errno));
    }
    if (driver_ == 0) {
      setpgid(0, 0);
      dup2(null, STDIN_FILENO);  // dup2 clears close-on-exec on the copies
      dup2(null, STDOUT_FILENO);
      dup2(null, STDERR_FILENO);
      execve(binary.c_str(), argv.data(), envp.data());
      _exit(127);
    }
    close(null);
    setpgid(driver_, driver_);  // as the child does: whichever runs first
    return true;
  }

  Reply request(const std::string& method, const std::string& path, json_t* body, Millis timeout) {
    Headers headers = {{"Host", "127.0.0.1:" + std::to_string(port_)}};
    std::string bytes;
    if (body) {
      headers.push_back({"Content-Type", "application/json; charset=utf-8"});
      bytes = buildRequest(method, path, headers, dump(body));
    } else {
      bytes = buildRequest(method, path, headers, "", Framing::kNone);
    }
    Reply reply;
    std::string error;
    auto response = fetch(port_, bytes, &error, timeout);
    if (!response) {
      reply.raw = "(no answer: " + error + ")";
      return reply;
    }
    reply.status = response->status;
    reply.raw = response->body;
    Json parsed = parseJson(response->body);
    json_t* value = json_object_get(parsed.get(), "value");
    if (value) reply.value.reset(json_incref(value));
    return reply;
  }

  std::string dir_;
  int port_ = 0;
  pid_t driver_ = -1;
  std::string session_;
};

// ---------------------------------------------------------------------------------------------
// The proxy: two backends with an active health check, two workers, the API on.

Handler identify(const std::string& id) {
  return [id](const Request&, Responder& out) {
    out.send(buildResponse(200, {{"Content-Type", "text/plain"}}, id));
  };
}

ProxyOptions dashboardProxy(const FakeBackend& b1, const FakeBackend& b2) {
  ProxyOptions options = ProxyOptions::forBackends({b1.port(), b2.port()});  // app: b1, b2
  options.workers = 2;
  options.api = true;
  for (BackendSpec& b : options.backends["app"]) b.health_check = HealthCheckSpec{};
  return options;
}

// Requests through the proxy, one every 50 ms, until destroyed: the page then has rates to
// show and the chart a line.
class Traffic {
 public:
  explicit Traffic(int port)
      : thread_([this, port] {
          while (!stop_) {
            fetch(port, buildRequest("GET", "/", {{"Host", "app.test"}}, "", Framing::kNone),
                  nullptr, Millis(2000));
            std::this_thread::sleep_for(Millis(50));
          }
        }) {}
  ~Traffic() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

const std::string kEnter = "\xee\x80\x87";  // U+E007, WebDriver's Enter key

std::string row(const std::string& key) {
  return "[data-backend=\"" + key + "\"]";
}

// Waits (bounded) until the text of `css` satisfies `ok`; the last text seen is in *seen.
bool waitForText(Browser& browser, const std::string& css,
                 const std::function<bool(const std::string&)>& ok, std::string* seen,
                 Millis timeout = Millis(15'000)) {
  return waitFor(
      [&] {
        auto t = browser.textOf(css);
        *seen = t ? *t : "(no such element)";
        return t && ok(*t);
      },
      timeout, Millis(100));
}

void keepScreenshot(Browser& browser, const std::string& name) {
  std::string png = browser.screenshot();
  ASSERT_THAT(png, StartsWith("\x89PNG\r\n\x1a\n")) << "the screenshot is not a PNG";
  std::string path = artifactsDir() + "/" + name;
  ASSERT_TRUE(writeFile(path, png)) << path;
  std::cout << "[ artefact ] " << path << " (" << png.size() << " bytes)" << std::endl;
}

// No script error in the page (the console is printed either way, for the record).
// No script error: none in the console (printed either way, for the record), and none that
// the page caught and showed.
void expectNoScriptErrors(Browser& browser) {
  for (const std::string& line : browser.console()) {
    std::cout << "[ console ] " << line << "\n";
    EXPECT_EQ(line.find("Uncaught"), std::string::npos) << line;
  }
  for (const char* css : {"#notice", "#state"}) {
    EXPECT_THAT(browser.textOf(css).value_or(""), Not(HasSubstr("page error"))) << css;
  }
}

class Dashboard : public ProxyTest {};

// ---------------------------------------------------------------------------------------------

TEST_F(Dashboard, PageIsSelfContained) {
  FakeBackend b1(identify("b1")), b2(identify("b2"));
  ProxyOptions options = dashboardProxy(b1, b2);
  options.auth_token = "page-needs-no-token";
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  // The page, without the token: it holds no data. The API still needs the token, and so does
  // any other path or method (401 rather than a 404 or 405 telling what exists).
  auto page = proxy->api("GET", "/", "", {}, /*no_token=*/true);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200) << page->body;
  EXPECT_EQ(page->header("Content-Type").value_or(""), "text/html; charset=utf-8");
  EXPECT_THAT(page->header("Content-Security-Policy").value_or(""),
              HasSubstr("default-src 'none'"));
  EXPECT_THAT(page->header("Content-Security-Policy").value_or(""),
              HasSubstr("connect-src 'self'"));
  EXPECT_THAT(page->body, StartsWith("<!DOCTYPE html>"));
  for (const char* target : {"/dashboard", "/dashboard/"}) {
    auto same = proxy->api("GET", target, "", {}, true);
    ASSERT_TRUE(same) << target;
    EXPECT_EQ(same->status, 200) << target;
    EXPECT_TRUE(same->body == page->body) << target << " serves another page";
  }
  for (const auto& [method, target] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/api/v1/stats/server"},
                                                        {"GET", "/api/v1/backends"},
                                                        {"GET", "/favicon.ico"},
                                                        {"POST", "/"},
                                                        {"PUT", "/dashboard"}}) {
    auto refused = proxy->api(method, target, "", {}, true);
    ASSERT_TRUE(refused) << method << " " << target;
    EXPECT_EQ(refused->status, 401) << method << " " << target << ": " << refused->body;
  }
  auto post = proxy->api("POST", "/");  // with the token: the page has GET only
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405) << post->body;
  EXPECT_EQ(post->header("Allow").value_or(""), "GET");

  // Nothing from elsewhere: no absolute URL anywhere, and every src/href is local (a fragment
  // or a data: URL).
  const std::string& html = page->body;
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  for (const char* attribute : {"src=\"", "href=\"", "src='", "href='"}) {
    for (size_t at = html.find(attribute); at != std::string::npos;
         at = html.find(attribute, at + 1)) {
      std::string value = html.substr(at + strlen(attribute), 12);
      EXPECT_TRUE(value.rfind("#", 0) == 0 || value.rfind("data:", 0) == 0)
          << attribute << value << "...";
    }
  }
  // The hooks the browser tests (and operators' scripts) rely on.
  for (const char* hook :
       {"'data-backend'", "'data-action'", "'data-field'", "'health'", "'drain'", "'activate'",
        "'weight'", "'Authorization'", "sessionStorage", "<canvas"}) {
    EXPECT_NE(html.find(hook), std::string::npos) << hook;  // not the whole page on failure
  }
}

TEST_F(Dashboard, ShowsBackendsAndDrainsOne) {
  FakeBackend b1(identify("b1")), b2(identify("b2"));
  Proxy* proxy = startProxy(dashboardProxy(b1, b2));
  ASSERT_NE(proxy, nullptr);
  Traffic traffic(proxy->port());

  Browser browser;
  std::string error;
  ASSERT_TRUE(browser.start(&error)) << error;
  std::string url = "http://127.0.0.1:" + std::to_string(proxy->apiPort()) + "/";
  ASSERT_TRUE(browser.navigate(url)) << url;

  // Every backend has its row, with its address, and its health once the checks passed.
  std::string seen;
  for (const auto& [id, backend] : {std::pair{"b1", &b1}, std::pair{"b2", &b2}}) {
    std::string r = row(std::string("app/") + id);
    EXPECT_TRUE(waitForText(
        browser, r + " [data-field=\"health\"]", [](const std::string& t) { return t == "up"; },
        &seen))
        << id << ": health shows \"" << seen << "\"";
    EXPECT_EQ(browser.textOf(r + " [data-field=\"address\"]").value_or(""),
              "127.0.0.1:" + std::to_string(backend->port()));
    EXPECT_EQ(browser.textOf(r + " [data-field=\"active\"]").value_or(""), "active");
    EXPECT_EQ(browser.textOf(r + " [data-field=\"weight\"]").value_or(""), "1");
  }
  EXPECT_EQ(browser.count("[data-backend]"), 2u);

  // A performance report of b2 shows with its age; a few seconds of traffic give the totals
  // and the chart something to show (the screenshot is for people to look at).
  auto report = proxy->api("POST", "/api/v1/report",
                           R"({"upstream": "app", "backend_id": "b2", "performance": )"
                           R"({"cpu_usage": 45.2, "memory_usage": 67.8, "load_avg_1": 2.1}})");
  ASSERT_TRUE(report && report->status == 200) << (report ? report->body : "(no answer)");
  EXPECT_TRUE(waitForText(
      browser, row("app/b2") + " [data-field=\"report\"]",
      [](const std::string& t) { return t.find("cpu 45.2 %") != t.npos; }, &seen))
      << "b2's report shows \"" << seen << "\"";
  EXPECT_THAT(browser.textOf(row("app/b2") + " [data-field=\"report-age\"]").value_or(""),
              ::testing::AnyOf(HasSubstr("ago"), HasSubstr("just now")));
  EXPECT_EQ(browser.textOf(row("app/b1") + " [data-field=\"report\"]").value_or(""), "\u2013");
  EXPECT_TRUE(waitForText(
      browser, "[data-field=\"requests\"]",
      [](const std::string& t) { return atoi(t.c_str()) >= 60; }, &seen))
      << "server requests: " << seen;

  // Drain b1: the API has it inactive, and the page shows it with the API's answer.
  ASSERT_TRUE(browser.click(row("app/b1") + " [data-action=\"drain\"]"));
  EXPECT_TRUE(waitFor([&] { return backendField(*proxy, "app", "b1", "active") == "false"; },
                      Millis(5000), Millis(50)))
      << "b1 is still active: " << dump(backends(*proxy).get());
  EXPECT_EQ(backendField(*proxy, "app", "b2", "active"), "true");
  EXPECT_TRUE(waitForText(
      browser, row("app/b1") + " [data-field=\"active\"]",
      [](const std::string& t) { return t == "inactive"; }, &seen))
      << "b1's state shows \"" << seen << "\"";
  EXPECT_TRUE(waitForText(
      browser, "#notice", [](const std::string& t) { return t.find("is inactive") != t.npos; },
      &seen))
      << "notice: " << seen;
  EXPECT_EQ(browser.textOf(row("app/b2") + " [data-field=\"active\"]").value_or(""), "active");
  keepScreenshot(browser, "dashboard.png");

  // A new weight for b2, typed and set; then b1 activated again.
  ASSERT_TRUE(browser.type(row("app/b2") + " [data-field=\"weight-input\"]", "7"));
  ASSERT_TRUE(browser.click(row("app/b2") + " [data-action=\"weight\"]"));
  EXPECT_TRUE(waitFor([&] { return backendField(*proxy, "app", "b2", "weight") == "7"; },
                      Millis(5000), Millis(50)))
      << dump(backends(*proxy).get());
  EXPECT_TRUE(waitForText(
      browser, row("app/b2") + " [data-field=\"weight\"]",
      [](const std::string& t) { return t == "7"; }, &seen))
      << "b2's weight shows \"" << seen << "\"";
  // From the keyboard, Enter in the field sets the weight too; one out of range is refused by
  // the page, with a message, and nothing is sent.
  ASSERT_TRUE(browser.type(row("app/b2") + " [data-field=\"weight-input\"]", "0" + kEnter));
  EXPECT_TRUE(waitForText(
      browser, "#notice", [](const std::string& t) { return t.find("1 to 10000") != t.npos; },
      &seen))
      << "notice: " << seen;
  EXPECT_EQ(backendField(*proxy, "app", "b2", "weight"), "7");

  ASSERT_TRUE(browser.click(row("app/b1") + " [data-action=\"activate\"]"));
  EXPECT_TRUE(waitFor([&] { return backendField(*proxy, "app", "b1", "active") == "true"; },
                      Millis(5000), Millis(50)))
      << dump(backends(*proxy).get());
  EXPECT_TRUE(waitForText(
      browser, row("app/b1") + " [data-field=\"active\"]",
      [](const std::string& t) { return t == "active"; }, &seen))
      << "b1's state shows \"" << seen << "\"";

  // A backend that stops answering goes down, and the page says why.
  b2.stop();
  EXPECT_TRUE(waitForText(
      browser, row("app/b2") + " [data-field=\"health\"]",
      [](const std::string& t) {
        return t.rfind("down\n", 0) == 0 && t.size() > 5;  // and a reason
      },
      &seen))
      << "b2's health shows \"" << seen << "\"";
  std::cout << "b2's health once stopped: " << seen << std::endl;
  expectNoScriptErrors(browser);
}

TEST_F(Dashboard, AsksForTheTokenOnce) {
  const std::string token = "dashboard-s3cret";
  FakeBackend b1(identify("b1")), b2(identify("b2"));
  ProxyOptions options = dashboardProxy(b1, b2);
  options.auth_token = token;
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  Browser browser;
  std::string error;
  ASSERT_TRUE(browser.start(&error)) << error;
  std::string url = "http://127.0.0.1:" + std::to_string(proxy->apiPort()) + "/";
  ASSERT_TRUE(browser.navigate(url)) << url;

  // The page loads without the token; its first data call answers 401, so it asks.
  EXPECT_TRUE(
      waitFor([&] { return browser.displayed("#token-form"); }, Millis(15'000), Millis(100)))
      << "the token form never showed";
  EXPECT_EQ(browser.count("[data-backend]"), 0u);
  keepScreenshot(browser, "dashboard-token.png");

  // A wrong token is refused, and the page asks again.
  ASSERT_TRUE(browser.type("#token", "not-the-token"));
  ASSERT_TRUE(browser.click("#token-submit"));
  std::string seen;
  EXPECT_TRUE(waitForText(
      browser, "#login-error", [](const std::string& t) { return t.find("refused") != t.npos; },
      &seen))
      << "login error: " << seen;
  EXPECT_TRUE(browser.displayed("#token-form"));

  // The right one, typed and sent with Enter: the table appears.
  ASSERT_TRUE(browser.type("#token", token + kEnter));
  for (const char* id : {"b1", "b2"}) {
    EXPECT_TRUE(waitForText(
        browser, row(std::string("app/") + id) + " [data-field=\"health\"]",
        [](const std::string& t) { return t == "up"; }, &seen))
        << id << ": health shows \"" << seen << "\"";
  }
  EXPECT_FALSE(browser.displayed("#token-form"));
  Json kept = browser.script("return sessionStorage.getItem('speedmimi.token');");
  EXPECT_EQ(text(kept.get()), token);

  // Asked once: a reload of the page uses the kept token.
  ASSERT_TRUE(browser.navigate(url));
  EXPECT_TRUE(waitForText(
      browser, row("app/b1") + " [data-field=\"health\"]",
      [](const std::string& t) { return t == "up"; }, &seen))
      << "after a reload, b1's health shows \"" << seen << "\"";
  EXPECT_FALSE(browser.displayed("#token-form"));

  // And the buttons' calls carry it.
  ASSERT_TRUE(browser.click(row("app/b2") + " [data-action=\"drain\"]"));
  EXPECT_TRUE(waitFor([&] { return backendField(*proxy, "app", "b2", "active") == "false"; },
                      Millis(5000), Millis(50)))
      << dump(backends(*proxy).get());
  EXPECT_TRUE(waitForText(
      browser, row("app/b2") + " [data-field=\"active\"]",
      [](const std::string& t) { return t == "inactive"; }, &seen))
      << "b2's state shows \"" << seen << "\"";
  expectNoScriptErrors(browser);
}

}  // namespace
}  // namespace speedmimi::test
