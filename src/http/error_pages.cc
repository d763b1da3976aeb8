#include "http/error_pages.h"

#include <cstdio>

namespace speedmimi::http {

const char* reasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

size_t appendErrorResponse(int status, bool keep_alive, bool head_only, evbuffer* out,
                           const char* detail) {
  const char* reason = reasonPhrase(status);
  char body[512];
  int body_len = snprintf(body, sizeof(body),
                          "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
                          "<center><h1>%d %s</h1></center>\r\n%s%s%s"
                          "<hr><center>speedmimi</center>\r\n</body>\r\n</html>\r\n",
                          status, reason, status, reason, detail ? "<center>" : "",
                          detail ? detail : "", detail ? "</center>\r\n" : "");
  evbuffer_add_printf(out,
                      "HTTP/1.1 %d %s\r\nServer: speedmimi\r\nContent-Type: text/html\r\n"
                      "Content-Length: %d\r\n%s\r\n",
                      status, reason, body_len, keep_alive ? "" : "Connection: close\r\n");
  if (head_only) return 0;
  evbuffer_add(out, body, body_len);
  return static_cast<size_t>(body_len);
}

}  // namespace speedmimi::http
