#include "tls_transport.h"

#include "tls_certs.h"

namespace speedmimi::test {

std::string transportName(Transport transport) {
  return transport == Transport::kTls ? "Tls" : "Plain";
}

std::string transportParamName(const ::testing::TestParamInfo<Transport>& info) {
  return transportName(info.param);
}

SslSpec defaultSsl(int port) {
  const TestCerts& certs = testCerts();
  SslSpec ssl;
  ssl.port = port;
  ssl.cert_file = certs.default_rsa.cert;
  ssl.key_file = certs.default_rsa.key;
  ssl.certificates = {{certs.default_ecdsa.cert, certs.default_ecdsa.key}};
  return ssl;
}

ProxyOptions withTransport(ProxyOptions options, Transport transport) {
  if (transport == Transport::kTls) options.ssl = defaultSsl(0);
  return options;
}

std::unique_ptr<Client> connectClient(int port, Transport transport) {
  if (transport == Transport::kPlain) return std::make_unique<Client>(port);
  return std::make_unique<TlsClient>(port, tlsOptions("default.test", testCerts().ca));
}

std::optional<Response> fetchOver(Transport transport, int port, const std::string& request_bytes,
                                  std::string* error, Millis timeout) {
  if (transport == Transport::kPlain) return fetch(port, request_bytes, error, timeout);
  return fetchTls(port, request_bytes, tlsOptions("default.test", testCerts().ca), error, timeout);
}

void serveTls(FakeBackend& backend, std::shared_ptr<TlsServerLog> log) {
  const TestCerts& certs = testCerts();
  backend.setAcceptHook(tlsServer(certs.backend.cert, certs.backend.key, std::move(log)));
}

void httpsSpec(BackendSpec& spec, const std::string& ca_file) {
  spec.scheme = "https";
  spec.ca_file = ca_file;
}

ProxyOptions withHttpsBackends(ProxyOptions options) {
  for (auto& [name, list] : options.backends) {
    for (BackendSpec& spec : list) httpsSpec(spec, testCerts().ca);
  }
  return options;
}

}  // namespace speedmimi::test

namespace speedmimi::test {

INSTANTIATE_TEST_SUITE_P(Transports, ProxyTransportTest,
                         ::testing::Values(Transport::kPlain, Transport::kTls), transportParamName);

}  // namespace speedmimi::test
