// OpenSSL handles of the harness's TLS client, each owned with its free function (keys and
// certificates: t/helpers/test_certs.h).
#pragma once

#include <openssl/ssl.h>

#include <memory>

namespace speedmimi::test {

template <typename T, void (*Free)(T*)>
struct OpenSslFree {
  void operator()(T* p) const { Free(p); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, OpenSslFree<SSL_CTX, SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, OpenSslFree<SSL, SSL_free>>;

}  // namespace speedmimi::test
