#include "http/error_pages.h"

#include <gtest/gtest.h>

#include <string>

#include "event/handles.h"

namespace speedmimi::http {
namespace {

std::string render(int status, bool keep_alive, bool head_only, const char* detail = nullptr) {
  event::EvbufferPtr buf(evbuffer_new());
  size_t body = appendErrorResponse(status, keep_alive, head_only, buf.get(), detail);
  size_t head_end = std::string_view(reinterpret_cast<const char*>(evbuffer_pullup(buf.get(), -1)),
                                     evbuffer_get_length(buf.get())).find("\r\n\r\n");
  EXPECT_EQ(head_end + 4 + body, evbuffer_get_length(buf.get()));
  std::string out(evbuffer_get_length(buf.get()), '\0');
  evbuffer_remove(buf.get(), out.data(), out.size());
  return out;
}

TEST(ErrorPagesTest, EveryStatusOfTheTableIsFramedCorrectly) {
  for (int status : {400, 404, 408, 413, 414, 417, 431, 501, 502, 503, 504, 505}) {
    std::string r = render(status, true, false);
    std::string line = "HTTP/1.1 " + std::to_string(status) + " " + reasonPhrase(status) + "\r\n";
    ASSERT_EQ(r.rfind(line, 0), 0u) << r;
    size_t end = r.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos);
    std::string body = r.substr(end + 4);
    EXPECT_NE(r.find("Content-Length: " + std::to_string(body.size()) + "\r\n"),
              std::string::npos) << r;
    EXPECT_NE(body.find(std::to_string(status)), std::string::npos);
    EXPECT_EQ(r.find("Connection: close"), std::string::npos);
  }
}

TEST(ErrorPagesTest, CloseAndHeadOnly) {
  std::string r = render(400, false, true);
  EXPECT_NE(r.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(r.substr(r.size() - 4), "\r\n\r\n");  // no body after the head
  EXPECT_NE(r.find("Content-Length: "), std::string::npos);
}

// nginx's answer to plain HTTP on a TLS port says what went wrong below the status.
TEST(ErrorPagesTest, ADetailLineInTheBody) {
  std::string r = render(400, false, false, "The plain HTTP request was sent to HTTPS port");
  EXPECT_NE(r.find("<center><h1>400 Bad Request</h1></center>\r\n"
                   "<center>The plain HTTP request was sent to HTTPS port</center>\r\n<hr>"),
            std::string::npos)
      << r;
  EXPECT_EQ(render(400, false, false).find("HTTPS"), std::string::npos);
}

TEST(ErrorPagesTest, ReasonPhrases) {
  EXPECT_STREQ(reasonPhrase(404), "Not Found");
  EXPECT_STREQ(reasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_STREQ(reasonPhrase(505), "HTTP Version Not Supported");
}

}  // namespace
}  // namespace speedmimi::http
