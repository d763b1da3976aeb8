// The certificates a configuration names, loaded before anything changes: each failure is one
// error at the config key naming the file, with the file and OpenSSL's reason. Certificates are
// made at test time (t/helpers/test_certs.h) into a temporary directory, never checked in.
#include "process/tls_check.h"

#include <gtest/gtest.h>

#include <ctime>
#include <string>

#include "admin/stats.h"
#include "core/config.h"
#include "t/helpers/test_certs.h"

namespace speedmimi::process {
namespace {

const core::KnownNames kKnown{{"weight"}};

class TlsCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    makePair("a", "a.test", 90);
    makePair("b", "b.test", 90);
    makePair("soon", "soon.test", 5);
  }

  // NAME.crt and NAME.key: a self-signed P-256 certificate for `host`, valid from now for `days`.
  void makePair(const std::string& name, const std::string& host, int days) {
    testing::KeyPtr key = testing::makeKey(testing::KeyType::kEc);
    testing::CertPtr cert = testing::makeCert(
        {.cn = host, .dns = {host}, .not_before = 0, .not_after = days * 86400L}, key.get());
    scratch_.writeCerts(name + ".crt", {cert.get()});
    scratch_.writeKey(name + ".key", key.get());
  }

  core::Config parse(const std::string& yaml) { return core::parseConfig(yaml, "t.yaml", kKnown); }

  // what() of checkTls's error, or "(no error)"; the directory is spelled DIR.
  std::string errorOf(const core::Config& config, int64_t now = 0) {
    try {
      checkTls(config, dir_, now);
    } catch (const core::ConfigError& e) {
      std::string what = e.what();
      for (size_t at; (at = what.find(dir_)) != std::string::npos;)
        what.replace(at, dir_.size(), "DIR");
      return what;
    }
    return "(no error)";
  }

  testing::ScratchDir scratch_;
  const std::string& dir_ = scratch_.path();
};

constexpr char kRoute[] =
    "backends: {u: [{id: a, host: 127.0.0.1, port: 1}]}\n"
    "routing: {r: {path: /, upstream: u}}\n";

// TLS with a.crt as the default certificate and NAME.crt beside it.
std::string withSecond(const std::string& name) {
  return "ssl:\n  enabled: true\n  cert_file: a.crt\n  key_file: a.key\n  certificates:\n"
         "    - {cert_file: " +
         name + ".crt, key_file: " + name + ".key}\n" + kRoute;
}

TEST_F(TlsCheckTest, LoadsTheCertificatesUnderThePrefix) {
  const core::Config c = parse(withSecond("b"));
  std::unique_ptr<event::ServerTls> tls = checkTls(c, dir_);
  ASSERT_NE(tls, nullptr);
  ASSERT_EQ(tls->certificates().size(), 2u);
  EXPECT_EQ(tls->certificates()[0].cert_file, dir_ + "/a.crt");
  EXPECT_EQ(tls->certificates()[1].names, std::vector<std::string>{"b.test"});
  // TLS off: nothing is loaded, whatever the files.
  core::Config off = c;
  off.ssl.enabled = false;
  off.ssl.cert_file = "missing.crt";
  EXPECT_EQ(checkTls(off, dir_), nullptr);
}

TEST_F(TlsCheckTest, EachBadFileIsAnErrorAtItsKey) {
  const std::string ssl = "ssl:\n  enabled: true\n  cert_file: a.crt\n  key_file: a.key\n";
  EXPECT_EQ(errorOf(parse(ssl + kRoute)), "(no error)");
  EXPECT_EQ(errorOf(parse("ssl:\n  enabled: true\n  cert_file: nope.crt\n  key_file: a.key\n" +
                          std::string(kRoute))),
            "t.yaml:3:14: 'ssl.cert_file': DIR/nope.crt: cannot read: No such file or directory");
  // The default cert_file, not written: at the ssl mapping.
  EXPECT_EQ(errorOf(parse("ssl: {enabled: true}\n" + std::string(kRoute))),
            "t.yaml:1:6: 'ssl.cert_file': DIR/certs/server.crt: cannot read: No such file or "
            "directory");
  const std::string mismatch =
      ssl + "  certificates:\n    - cert_file: a.crt\n      key_file: b.key\n";
  EXPECT_EQ(errorOf(parse(mismatch + kRoute)),
            "t.yaml:7:17: 'ssl.certificates[0].key_file': DIR/b.key: the private key does not "
            "match the certificate in DIR/a.crt: key values mismatch");
  // a.crt is also ssl.cert_file, which loads: the key at fault is the one that fails.
  const std::string not_a_key =
      ssl + "  certificates:\n    - {cert_file: b.crt, key_file: a.crt}\n";
  EXPECT_EQ(
      errorOf(parse(not_a_key + kRoute))
          .rfind("t.yaml:6:36: 'ssl.certificates[0].key_file': DIR/a.crt: no PEM private key", 0),
      0u)
      << errorOf(parse(not_a_key + kRoute));
  // 100 days on, a.crt (90 days) has expired.
  EXPECT_NE(errorOf(parse(ssl + kRoute), time(nullptr) + 100 * 86400)
                .find("t.yaml:3:14: 'ssl.cert_file': DIR/a.crt: certificate has expired"),
            std::string::npos);
}

TEST_F(TlsCheckTest, AnHttpsBackendsCaFileMustLoad) {
  const std::string routing = "routing: {r: {path: /, upstream: u}}\n";
  EXPECT_EQ(errorOf(parse("backends:\n  u:\n    - {id: a, host: h, port: 1, scheme: https, "
                          "ca_file: a.crt}\n" +
                          routing)),
            "(no error)");
  const std::string bad =
      "backends:\n  u:\n    - {id: a, host: h, port: 1}\n"
      "    - {id: b, host: h, port: 2, scheme: https, ca_file: missing.pem}\n";
  const std::string error = errorOf(parse(bad + routing));
  EXPECT_EQ(error.rfind("t.yaml:4:57: 'backends.u[1].ca_file': DIR/missing.pem: ", 0), 0u) << error;
  // Not verified, or plain http: the bundle is not used, so not loaded.
  EXPECT_EQ(errorOf(parse("backends:\n  u:\n    - {id: b, host: h, port: 2, scheme: https, "
                          "tls_verify: false, ca_file: missing.pem}\n" +
                          routing)),
            "(no error)");
  EXPECT_EQ(errorOf(parse("backends:\n  u:\n    - {id: b, host: h, port: 2, "
                          "ca_file: missing.pem}\n" +
                          routing)),
            "(no error)");
  core::BackendConfig b;
  b.scheme = "https";
  b.ca_file = "missing.pem";
  std::string why;
  EXPECT_FALSE(checkBackendTls(b, dir_, why));
  EXPECT_EQ(why.rfind("backend.ca_file: " + dir_ + "/missing.pem: ", 0), 0u) << why;
  b.ca_file = "a.crt";
  EXPECT_TRUE(checkBackendTls(b, dir_, why)) << why;
}

TEST_F(TlsCheckTest, CertificatesExpiringWithinTwoWeeksAreWarnedAbout) {
  const core::Config c = parse(withSecond("soon"));
  std::unique_ptr<event::ServerTls> tls = checkTls(c, dir_);
  ASSERT_NE(tls, nullptr);
  // 5 days and 1 second before soon.crt's end: 4 whole days are left.
  const int64_t now = tls->certificates()[1].not_after - 5 * 86400 + 1;
  const std::vector<std::string> warnings = expiryWarnings(tls->certificates(), now);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(
      warnings[0].rfind("certificate " + dir_ + "/soon.crt (soon.test) expires in 4 days, on ", 0),
      0u)
      << warnings[0];
  // The same in /api/v1/stats/server.
  const std::string json = core::jsonText(admin::tlsStatsJson(tls->certificates(), now).get());
  EXPECT_NE(json.find(R"("names":["a.test"],"key_type":"EC",)"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("expires_in_days":89})"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("expires_in_days":4,"warning":"expires in 4 days"})"), std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("not_after":")" + admin::isoUtc(tls->certificates()[1].not_after)),
            std::string::npos);
  // Within two weeks of a.crt's end, it is warned about too.
  EXPECT_EQ(expiryWarnings(tls->certificates(), now + 80 * 86400).size(), 2u);
}

TEST(ExpiresInDays, RoundsDownAndCountsPastDaysNegative) {
  EXPECT_EQ(admin::expiresInDays(86400 * 3, 0), 3);
  EXPECT_EQ(admin::expiresInDays(86400 * 3 - 1, 0), 2);
  EXPECT_EQ(admin::expiresInDays(0, 1), -1);
  EXPECT_EQ(admin::isoUtc(0), "1970-01-01T00:00:00Z");
}

}  // namespace
}  // namespace speedmimi::process
