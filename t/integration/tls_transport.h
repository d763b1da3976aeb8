// The same proxy test over plain TCP and over TLS: a test parameterised by Transport starts its
// proxy with withTransport() and talks to it with connectClient() / fetchOver(), and otherwise
// reads as the plain test it was. With Transport::kTls the proxy's server.port speaks TLS with
// the default.test certificates (RSA and ECDSA), and clients verify them against the test CA.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "harness.h"
#include "tls_client.h"

namespace speedmimi::test {

enum class Transport { kPlain, kTls };

// "Plain" / "Tls", for test names.
std::string transportName(Transport transport);
std::string transportParamName(const ::testing::TestParamInfo<Transport>& info);
inline void PrintTo(Transport transport, std::ostream* out) { *out << transportName(transport); }

// server.port speaks `transport`: with kTls an ssl block with ssl.port 0 and the default.test
// RSA and ECDSA pairs; kPlain leaves the options as they are.
ProxyOptions withTransport(ProxyOptions options, Transport transport);

// The ssl block of withTransport(), with the port given (-1: a TLS port beside plain HTTP).
SslSpec defaultSsl(int port = 0);

// A connection to `port` over `transport` (kTls: SNI default.test, verified against the CA).
std::unique_ptr<Client> connectClient(int port, Transport transport);
std::optional<Response> fetchOver(Transport transport, int port, const std::string& request_bytes,
                                  std::string* error = nullptr, Millis timeout = kIoTimeout);

// Makes `backend` an https backend with the test certificate of 127.0.0.1 (before its first
// connection), and returns its spec's TLS keys: scheme https, ca_file the test CA.
void serveTls(FakeBackend& backend, std::shared_ptr<TlsServerLog> log = nullptr);
void httpsSpec(BackendSpec& spec, const std::string& ca_file);
// Every backend of `options` as httpsSpec() with the test CA.
ProxyOptions withHttpsBackends(ProxyOptions options);

// A fixture for tests run once per transport.
class ProxyTransportTest : public ProxyTest, public ::testing::WithParamInterface<Transport> {
 protected:
  Transport transport() const { return GetParam(); }
  Proxy* startProxyOver(ProxyOptions options) {
    return startProxy(withTransport(std::move(options), transport()));
  }
  std::unique_ptr<Client> connect(const Proxy& proxy) {
    return connectClient(proxy.port(), transport());
  }
};

}  // namespace speedmimi::test
