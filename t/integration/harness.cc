#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "t/helpers/temp_dir.h"

#ifndef SPEEDMIMI_BIN
#error "SPEEDMIMI_BIN must name the speedmimi binary (see t/local.mk)"
#endif

namespace speedmimi::test {

namespace {

constexpr Millis kPollSlice{50};         // how often blocked operations look at their stop flag
constexpr Millis kBackendIdle{300'000};  // a backend connection waits this long for a request
constexpr size_t kMaxChunkLine = 4096;

std::string errnoText(int err) {
  return std::string(std::strerror(err));
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

std::string trimOws(std::string_view s) {
  size_t begin = 0;
  size_t end = s.size();
  while (begin < end && (s[begin] == ' ' || s[begin] == '\t')) ++begin;
  while (end > begin && (s[end - 1] == ' ' || s[end - 1] == '\t')) --end;
  return std::string(s.substr(begin, end - begin));
}

// Splits "a, b ,c" into trimmed, lower-case items.
std::vector<std::string> listItems(std::string_view value) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    std::string item = trimOws(value.substr(start, comma - start));
    std::transform(item.begin(), item.end(), item.begin(), lower);
    if (!item.empty()) items.push_back(item);
    start = comma + 1;
  }
  return items;
}

bool parseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The body framing a header list announces. *error is set when it is ambiguous or invalid.
Framing framingOf(const Headers& headers, uint64_t* length, std::string* error) {
  std::vector<std::string> te = headerValues(headers, "Transfer-Encoding");
  std::vector<std::string> cl = headerValues(headers, "Content-Length");
  if (!te.empty() && !cl.empty()) {
    *error = "both Transfer-Encoding and Content-Length";
    return Framing::kNone;
  }
  if (!te.empty()) {
    std::vector<std::string> codings;
    for (const auto& v : te) {
      for (auto& item : listItems(v)) codings.push_back(item);
    }
    if (codings.empty() || codings.back() != "chunked") return Framing::kUntilClose;
    if (std::count(codings.begin(), codings.end(), "chunked") != 1) {
      *error = "chunked repeated";
      return Framing::kNone;
    }
    return Framing::kChunked;
  }
  if (cl.empty()) return Framing::kNone;
  for (const auto& v : cl) {
    uint64_t n = 0;
    if (!parseDecimal(trimOws(v), &n) || (v != cl.front())) {
      *error = "bad or conflicting Content-Length";
      return Framing::kNone;
    }
    *length = n;
  }
  return Framing::kLength;
}

void setNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// A connected non-blocking socket to 127.0.0.1:port, or -1 (*err = errno).
int connectLoopback(int port, Millis timeout, int* err) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  sockaddr_in addr = loopback(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
  if (errno != EINPROGRESS) {
    *err = errno;
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  int n = poll(&p, 1, static_cast<int>(timeout.count()));
  int so_error = ETIMEDOUT;
  socklen_t len = sizeof so_error;
  if (n == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (so_error != 0) {
    *err = so_error;
    ::close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Millis Deadline::remaining() const {
  auto left = std::chrono::duration_cast<Millis>(end_ - Clock::now());
  return left.count() > 0 ? left : Millis(0);
}

int Deadline::pollTimeout(Millis cap) const {
  return static_cast<int>(std::min(remaining(), cap).count());
}

double msSince(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

bool waitFor(const std::function<bool()>& condition, Millis timeout, Millis step) {
  Deadline deadline(timeout);
  while (true) {
    if (condition()) return true;
    if (deadline.expired()) return false;
    std::this_thread::sleep_for(std::min(step, deadline.remaining()));
  }
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool containsIgnoreCase(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (equalsIgnoreCase(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

std::vector<std::string> headerValues(const Headers& headers, std::string_view name) {
  std::vector<std::string> values;
  for (const auto& h : headers) {
    if (equalsIgnoreCase(h.name, name)) values.push_back(h.value);
  }
  return values;
}

std::optional<std::string> findHeader(const Headers& headers, std::string_view name) {
  for (const auto& h : headers) {
    if (equalsIgnoreCase(h.name, name)) return h.value;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------

ChunkedDecoder::Result ChunkedDecoder::fail(std::string why) {
  error_ = std::move(why);
  return Result::kError;
}

ChunkedDecoder::Result ChunkedDecoder::sizeLine(std::string_view line) {
  size_t i = 0;
  uint64_t size = 0;
  while (i < line.size() && hexValue(line[i]) >= 0) {
    if (i >= 15) return fail("chunk size overflows");
    size = size * 16 + static_cast<uint64_t>(hexValue(line[i]));
    ++i;
  }
  if (i == 0) return fail("chunk size is not hex: '" + std::string(line) + "'");
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  if (i < line.size() && line[i] != ';') return fail("junk after chunk size");
  remaining_ = size;
  state_ = size == 0 ? State::kTrailer : State::kData;
  return Result::kNeedMore;
}

ChunkedDecoder::Result ChunkedDecoder::feed(std::string_view in, size_t* consumed,
                                            std::string* out) {
  size_t pos = 0;
  *consumed = 0;
  while (state_ != State::kDone) {
    std::string_view rest = in.substr(pos);
    if (state_ == State::kData) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, rest.size()));
      out->append(rest.data(), take);
      pos += take;
      remaining_ -= take;
      if (remaining_ > 0) break;
      state_ = State::kDataEnd;
      continue;
    }
    if (state_ == State::kDataEnd) {
      if (rest.size() < 2) break;
      if (rest.substr(0, 2) != "\r\n") return fail("chunk data not followed by CRLF");
      pos += 2;
      state_ = State::kSize;
      continue;
    }
    size_t eol = rest.find("\r\n");
    if (eol == std::string_view::npos) {
      if (rest.size() > kMaxChunkLine) return fail("chunk line too long");
      if (rest.find('\n') != std::string_view::npos) return fail("bare LF in chunk framing");
      break;
    }
    std::string_view line = rest.substr(0, eol);
    if (line.find_first_of("\r\n") != std::string_view::npos) return fail("bare CR or LF");
    pos += eol + 2;
    if (state_ == State::kSize) {
      if (sizeLine(line) == Result::kError) return Result::kError;
    } else if (line.empty()) {
      state_ = State::kDone;
    } else if (line.find(':') == std::string_view::npos) {
      return fail("malformed trailer field");
    }
  }
  *consumed = pos;
  return state_ == State::kDone ? Result::kDone : Result::kNeedMore;
}

bool parseHead(std::string_view head, std::string* start_line, Headers* headers,
               std::string* error) {
  headers->clear();
  if (head.size() < 4 || head.substr(head.size() - 4) != "\r\n\r\n") {
    *error = "head does not end with CRLF CRLF";
    return false;
  }
  std::string_view body = head.substr(0, head.size() - 2);  // every line keeps its CRLF
  bool first = true;
  while (!body.empty()) {
    size_t eol = body.find("\r\n");
    std::string_view line = body.substr(0, eol);
    body.remove_prefix(eol + 2);
    if (line.find_first_of("\r\n") != std::string_view::npos) {
      *error = "bare CR or LF in the head";
      return false;
    }
    if (first) {
      *start_line = std::string(line);
      first = false;
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0 || line[0] == ' ' || line[0] == '\t') {
      *error = "malformed field line: '" + std::string(line) + "'";
      return false;
    }
    std::string_view name = line.substr(0, colon);
    if (name.find_first_of(" \t") != std::string_view::npos) {
      *error = "whitespace in field name: '" + std::string(name) + "'";
      return false;
    }
    headers->push_back({std::string(name), trimOws(line.substr(colon + 1))});
  }
  return true;
}

std::string chunkEncode(std::string_view body, size_t chunk_size) {
  std::string out;
  char size_line[32];
  for (size_t pos = 0; pos < body.size(); pos += chunk_size) {
    size_t n = std::min(chunk_size, body.size() - pos);
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", n);
    out += size_line;
    out.append(body.substr(pos, n));
    out += "\r\n";
  }
  out += "0\r\n\r\n";
  return out;
}

namespace {

std::string encodeBody(std::string_view body, Framing framing, size_t chunk_size,
                       std::string* head) {
  if (framing == Framing::kLength) {
    *head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  } else if (framing == Framing::kChunked) {
    *head += "Transfer-Encoding: chunked\r\n";
    return chunkEncode(body, chunk_size);
  }
  return std::string(body);
}

std::string headerLines(const Headers& headers) {
  std::string out;
  for (const auto& h : headers) out += h.name + ": " + h.value + "\r\n";
  return out;
}

}  // namespace

std::string buildRequest(std::string_view method, std::string_view target, const Headers& headers,
                         std::string_view body, Framing framing, size_t chunk_size) {
  std::string head = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\n";
  if (!findHeader(headers, "Host")) head += "Host: test.local\r\n";
  head += headerLines(headers);
  std::string encoded = encodeBody(body, framing, chunk_size, &head);
  return head + "\r\n" + encoded;
}

std::string reasonPhrase(int status) {
  static const std::map<int, std::string> kReasons = {{101, "Switching Protocols"},
                                                      {200, "OK"},
                                                      {204, "No Content"},
                                                      {400, "Bad Request"},
                                                      {404, "Not Found"},
                                                      {408, "Request Timeout"},
                                                      {413, "Content Too Large"},
                                                      {414, "URI Too Long"},
                                                      {431, "Request Header Fields Too Large"},
                                                      {500, "Internal Server Error"},
                                                      {502, "Bad Gateway"},
                                                      {503, "Service Unavailable"},
                                                      {504, "Gateway Timeout"},
                                                      {505, "HTTP Version Not Supported"}};
  auto it = kReasons.find(status);
  return it == kReasons.end() ? "Status" : it->second;
}

std::string buildResponse(int status, const Headers& headers, std::string_view body,
                          Framing framing) {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reasonPhrase(status) + "\r\n";
  head += headerLines(headers);
  std::string encoded = encodeBody(body, framing, 16 * 1024, &head);
  return head + "\r\n" + encoded;
}

char patternByte(uint64_t index) {
  // Varies with the position at several scales, so a dropped, repeated or reordered block of
  // any size shows up as a mismatch.
  return static_cast<char>((index * 131 + (index >> 8) * 7 + (index >> 16)) & 0xff);
}

std::string patternBytes(uint64_t offset, size_t count) {
  std::string out(count, '\0');
  for (size_t i = 0; i < count; ++i) out[i] = patternByte(offset + i);
  return out;
}

// ---------------------------------------------------------------------------------------------

std::string webSocketAccept(std::string_view key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input = std::string(key) + std::string(kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  int n = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(encoded), static_cast<size_t>(n));
}

std::string encodeWsFrame(uint8_t opcode, std::string_view payload, bool masked) {
  static constexpr unsigned char kMask[4] = {0x37, 0xfa, 0x21, 0x3d};
  std::string out;
  out += static_cast<char>(0x80 | opcode);
  unsigned char mask_bit = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    out += static_cast<char>(mask_bit | payload.size());
  } else if (payload.size() <= 0xffff) {
    out += static_cast<char>(mask_bit | 126);
    out += static_cast<char>(payload.size() >> 8);
    out += static_cast<char>(payload.size() & 0xff);
  } else {
    out += static_cast<char>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) {
      out += static_cast<char>((static_cast<uint64_t>(payload.size()) >> shift) & 0xff);
    }
  }
  if (!masked) return out + std::string(payload);
  out.append(reinterpret_cast<const char*>(kMask), 4);
  for (size_t i = 0; i < payload.size(); ++i) out += static_cast<char>(payload[i] ^ kMask[i % 4]);
  return out;
}

long decodeWsFrame(std::string_view in, WsFrame* frame) {
  if (in.size() < 2) return 0;
  auto byte = [&](size_t i) { return static_cast<unsigned char>(in[i]); };
  if ((byte(0) & 0x70) != 0) return -1;  // no extensions were negotiated
  frame->fin = (byte(0) & 0x80) != 0;
  frame->opcode = byte(0) & 0x0f;
  frame->masked = (byte(1) & 0x80) != 0;
  uint64_t length = byte(1) & 0x7f;
  size_t pos = 2;
  size_t extra = length == 126 ? 2 : (length == 127 ? 8 : 0);
  if (in.size() < pos + extra) return 0;
  if (extra > 0) {
    length = 0;
    for (size_t i = 0; i < extra; ++i) length = (length << 8) | byte(pos + i);
    pos += extra;
  }
  if (length > (64u << 20)) return -1;
  size_t mask_at = pos;
  if (frame->masked) pos += 4;
  if (in.size() < pos + length) return 0;
  frame->payload.assign(in.substr(pos, static_cast<size_t>(length)));
  if (frame->masked) {
    for (size_t i = 0; i < frame->payload.size(); ++i) {
      frame->payload[i] = static_cast<char>(frame->payload[i] ^ in[mask_at + i % 4]);
    }
  }
  return static_cast<long>(pos + length);
}

// ---------------------------------------------------------------------------------------------

Stream::Stream(int fd) : fd_(fd) {
  setNonBlocking(fd_);
}

Stream::~Stream() {
  close();
}

Stream::Io Stream::sendAll(std::string_view bytes, const Deadline& deadline) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    if (fd_ < 0) return Io::kError;
    short wait = POLLOUT;
    ssize_t n = transport_
                    ? transport_->write(bytes.data() + sent, bytes.size() - sent, &wait)
                    : ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      errno_ = errno;
      return Io::kError;
    }
    if (stopped()) return Io::kStopped;
    if (deadline.expired()) return Io::kTimeout;
    pollfd p{fd_, wait, 0};
    poll(&p, 1, deadline.pollTimeout(kPollSlice));
  }
  return Io::kData;
}

Stream::Io Stream::fill(const Deadline& deadline, size_t max) {
  char chunk[64 * 1024];
  max = std::min(max, sizeof chunk);
  while (true) {
    if (fd_ < 0) return Io::kError;
    short wait = POLLIN;
    ssize_t n = transport_ ? transport_->read(chunk, max, &wait) : ::recv(fd_, chunk, max, 0);
    if (n > 0) {
      std::string_view got(chunk, static_cast<size_t>(n));
      buffer_.append(got);
      if (recorder_) recorder_(got);
      return Io::kData;
    }
    if (n == 0) {
      saw_eof_ = true;
      return Io::kEof;
    }
    if (errno != EAGAIN && errno != EINTR) {
      errno_ = errno;
      return Io::kError;
    }
    if (stopped()) return Io::kStopped;
    if (deadline.expired()) return Io::kTimeout;
    pollfd p{fd_, wait, 0};
    poll(&p, 1, deadline.pollTimeout(kPollSlice));
  }
}

void Stream::shutdownWrite() {
  if (fd_ >= 0 && transport_) transport_->shutdownWrite();
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void Stream::shutdownBoth() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

void Stream::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

// ---------------------------------------------------------------------------------------------

void BodyReader::start(Framing framing, uint64_t length) {
  framing_ = framing;
  remaining_ = length;
  chunked_ = ChunkedDecoder();
  done_ = framing == Framing::kNone || (framing == Framing::kLength && length == 0);
}

std::string BodyReader::readSome(Stream& stream, const Deadline& deadline, size_t max,
                                 std::string* out, std::string* raw) {
  while (!done_) {
    std::string& buf = stream.buffer();
    if (!buf.empty()) {
      size_t take = std::min(buf.size(), max);
      size_t before = out->size();
      if (framing_ == Framing::kLength) {
        take = static_cast<size_t>(std::min<uint64_t>(take, remaining_));
        out->append(buf, 0, take);
        remaining_ -= take;
        done_ = remaining_ == 0;
      } else if (framing_ == Framing::kUntilClose) {
        out->append(buf, 0, take);
      } else {
        auto result = chunked_.feed(buf, &take, out);
        if (result == ChunkedDecoder::Result::kError) {
          return "bad chunked body: " + chunked_.error();
        }
        done_ = result == ChunkedDecoder::Result::kDone;
      }
      if (raw != nullptr) raw->append(buf, 0, take);
      buf.erase(0, take);
      if (done_ || out->size() > before) return "";
    }
    Stream::Io io = stream.fill(deadline);
    if (io == Stream::Io::kData) continue;
    if (io == Stream::Io::kEof && framing_ == Framing::kUntilClose) {
      done_ = true;
      return "";
    }
    if (io == Stream::Io::kEof) return "connection closed in the middle of the body";
    if (io == Stream::Io::kTimeout) return "timed out reading the body";
    if (io == Stream::Io::kStopped) return "stopped";
    return "recv failed: " + errnoText(stream.lastErrno());
  }
  return "";
}

std::string readHead(Stream& stream, const Deadline& deadline, std::string* head, size_t max_size) {
  size_t searched = 0;
  while (true) {
    std::string& buf = stream.buffer();
    size_t end = buf.find("\r\n\r\n", searched);
    if (end != std::string::npos) {
      *head = buf.substr(0, end + 4);
      buf.erase(0, end + 4);
      return "";
    }
    if (buf.size() > max_size) return "head larger than " + std::to_string(max_size) + " bytes";
    searched = buf.size() >= 3 ? buf.size() - 3 : 0;
    Stream::Io io = stream.fill(deadline);
    if (io == Stream::Io::kData) continue;
    if (io == Stream::Io::kEof) return buf.empty() ? "eof" : "connection closed mid-head";
    if (io == Stream::Io::kTimeout) {
      return "timed out waiting for a head (" + std::to_string(buf.size()) + " bytes so far)";
    }
    if (io == Stream::Io::kStopped) return "stopped";
    return "recv failed: " + errnoText(stream.lastErrno());
  }
}

// ---------------------------------------------------------------------------------------------

Client::Client(int port, Millis connect_timeout) {
  int err = 0;
  int fd = connectLoopback(port, connect_timeout, &err);
  if (fd < 0) {
    error_ = "connect to 127.0.0.1:" + std::to_string(port) + ": " + errnoText(err);
    return;
  }
  stream_ = std::make_unique<Stream>(fd);
}

bool Client::fail(std::string what) {
  error_ = std::move(what);
  return false;
}

void Client::setReceiveBuffer(int bytes) {
  if (stream_) setsockopt(stream_->fd(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

bool Client::sendRaw(std::string_view bytes, Millis timeout) {
  if (!stream_) return fail("not connected: " + error_);
  Stream::Io io = stream_->sendAll(bytes, Deadline(timeout));
  if (io == Stream::Io::kData) return true;
  return fail("send failed: " + errnoText(stream_->lastErrno()));
}

std::optional<Response> Client::readResponseHead(Millis timeout, bool head_request) {
  if (!stream_) {
    fail("not connected: " + error_);
    return std::nullopt;
  }
  Deadline deadline(timeout);
  Response response;
  while (true) {
    std::string problem = readHead(*stream_, deadline, &response.raw_head);
    if (!problem.empty()) {
      fail("reading the response head: " + problem);
      return std::nullopt;
    }
    if (!parseHead(response.raw_head, &response.status_line, &response.headers, &problem)) {
      fail("malformed response head: " + problem + "\n" + response.raw_head);
      return std::nullopt;
    }
    const std::string& line = response.status_line;
    if (line.size() < 12 || line.compare(0, 7, "HTTP/1.") != 0 || line[8] != ' ' ||
        line[12] != ' ' || !std::isdigit(static_cast<unsigned char>(line[9]))) {
      fail("malformed status line: '" + line + "'");
      return std::nullopt;
    }
    response.version = line.substr(0, 8);
    response.status = std::atoi(line.substr(9, 3).c_str());
    response.reason = line.substr(13);
    if (response.status >= 200 || response.status == 101) break;
  }
  uint64_t length = 0;
  std::string problem;
  Framing framing = framingOf(response.headers, &length, &problem);
  if (!problem.empty()) {
    fail("response framing: " + problem);
    return std::nullopt;
  }
  int status = response.status;
  bool bodiless = head_request || status == 101 || status == 204 || status == 304;
  if (bodiless) framing = Framing::kNone;
  if (!bodiless && framing == Framing::kNone) framing = Framing::kUntilClose;
  response.chunked = framing == Framing::kChunked;
  body_.start(framing, length);
  return response;
}

bool Client::readBodySome(std::string* out, bool* done, Millis timeout, size_t max) {
  *done = body_.done();
  if (!stream_) return fail("not connected: " + error_);
  std::string problem = body_.readSome(*stream_, Deadline(timeout), max, out, nullptr);
  *done = body_.done();
  return problem.empty() || fail(problem);
}

bool Client::readBodyUntil(std::string* out, const std::function<bool(const std::string&)>& until,
                           Millis timeout) {
  if (!stream_) return fail("not connected: " + error_);
  Deadline deadline(timeout);
  while (!until(*out)) {
    if (body_.done()) return fail("the body ended before the expected bytes arrived");
    std::string problem = body_.readSome(*stream_, deadline, 256 * 1024, out, nullptr);
    if (!problem.empty()) return fail(problem);
  }
  return true;
}

std::optional<Response> Client::readResponse(Millis timeout, bool head_request) {
  Deadline deadline(timeout);
  std::optional<Response> response = readResponseHead(timeout, head_request);
  if (!response) return std::nullopt;
  while (!body_.done()) {
    std::string problem =
        body_.readSome(*stream_, deadline, SIZE_MAX, &response->body, &response->raw_body);
    if (!problem.empty()) {
      fail(problem + " (status " + std::to_string(response->status) + ", " +
           std::to_string(response->body.size()) + " body bytes so far)");
      return std::nullopt;
    }
  }
  return response;
}

std::string Client::readUntilClose(Millis timeout, bool* closed) {
  std::string out;
  if (closed != nullptr) *closed = false;
  if (!stream_) return out;
  Deadline deadline(timeout);
  while (true) {
    out += stream_->buffer();
    stream_->buffer().clear();
    Stream::Io io = stream_->fill(deadline);
    if (io == Stream::Io::kData) continue;
    if (closed != nullptr) *closed = io == Stream::Io::kEof || io == Stream::Io::kError;
    return out;
  }
}

bool Client::waitForClose(Millis timeout) {
  bool closed = false;
  readUntilClose(timeout, &closed);
  return closed;
}

std::optional<WsFrame> Client::readWsFrame(Millis timeout) {
  if (!stream_) return std::nullopt;
  Deadline deadline(timeout);
  while (true) {
    WsFrame frame;
    long used = decodeWsFrame(stream_->buffer(), &frame);
    if (used < 0) {
      fail("malformed WebSocket frame");
      return std::nullopt;
    }
    if (used > 0) {
      stream_->buffer().erase(0, static_cast<size_t>(used));
      return frame;
    }
    if (stream_->fill(deadline) != Stream::Io::kData) {
      fail("no WebSocket frame arrived (" + std::to_string(stream_->buffer().size()) +
           " bytes buffered)");
      return std::nullopt;
    }
  }
}

std::optional<Response> fetch(int port, const std::string& request_bytes, std::string* error,
                              Millis timeout) {
  Client client(port);
  std::optional<Response> response;
  if (client.sendRaw(request_bytes, timeout)) response = client.readResponse(timeout);
  if (!response && error != nullptr) *error = client.error();
  return response;
}

// ---------------------------------------------------------------------------------------------

bool Responder::send(std::string_view bytes) {
  return stream_.sendAll(bytes, Deadline(kBackendIdle)) == Stream::Io::kData;
}

bool Responder::pause(Millis delay) {
  Deadline deadline(delay);
  while (!deadline.expired()) {
    if (stop_.load()) return false;
    std::this_thread::sleep_for(std::min(kPollSlice, deadline.remaining()));
  }
  return !stop_.load();
}

void EventFeed::push(std::string event) {
  std::lock_guard<std::mutex> lock(mutex_);
  events_.push_back(std::move(event));
  ready_.notify_all();
}

void EventFeed::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  finished_ = true;
  ready_.notify_all();
}

std::optional<std::string> EventFeed::next(const std::atomic<bool>& stop) {
  std::unique_lock<std::mutex> lock(mutex_);
  while (events_.empty() && !finished_ && !stop.load()) ready_.wait_for(lock, kPollSlice);
  if (events_.empty()) return std::nullopt;
  std::string event = std::move(events_.front());
  events_.pop_front();
  ++taken_;
  return event;
}

size_t EventFeed::taken() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return taken_;
}

// ---------------------------------------------------------------------------------------------

FakeBackend::FakeBackend(Handler handler, Mode mode) : handler_(std::move(handler)), mode_(mode) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return;
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 256) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    return;
  }
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { acceptLoop(); });
}

FakeBackend::~FakeBackend() {
  stop();
}

void FakeBackend::stop() {
  stop_ = true;
  if (accept_thread_.joinable()) accept_thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  std::vector<std::thread*> threads;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& c : connections_) {
      c->stream->shutdownBoth();
      threads.push_back(&c->thread);
    }
  }
  for (auto* t : threads) {
    if (t->joinable()) t->join();
  }
}

void FakeBackend::setHandler(Handler handler) {
  std::lock_guard<std::mutex> lock(mutex_);
  handler_ = std::move(handler);
}

void FakeBackend::acceptLoop() {
  while (!stop_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(kPollSlice.count())) <= 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard<std::mutex> lock(mutex_);
    auto connection = std::make_unique<Connection>();
    connection->stream = std::make_unique<Stream>(fd);
    int index = static_cast<int>(connections_.size());
    connections_.push_back(std::move(connection));
    connections_.back()->thread = std::thread([this, index] { serve(index); });
  }
}

void FakeBackend::serve(int index) {
  Stream* stream = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stream = connections_[static_cast<size_t>(index)]->stream.get();
  }
  stream->setStopFlag(&stop_);
  stream->setRecorder([this, index](std::string_view bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    connections_[static_cast<size_t>(index)]->received.append(bytes);
  });
  bool accepted = !accept_hook_ || accept_hook_(*stream, stop_);
  if (!accepted) noteError(index, "the accept hook refused the connection");
  if (accepted && mode_ == Mode::kHttp) serveHttp(index, *stream);
  if (accepted && mode_ == Mode::kRecordRaw) recordRaw(*stream);
  // The fd is only shut down here and closed by the destructor, after every thread has joined,
  // so stop() never touches a descriptor number that was reused.
  std::lock_guard<std::mutex> lock(mutex_);
  stream->shutdownBoth();
}

void FakeBackend::recordRaw(Stream& stream) {
  while (stream.fill(Deadline(kBackendIdle)) == Stream::Io::kData) stream.buffer().clear();
}

void FakeBackend::noteError(int index, std::string what) {
  std::lock_guard<std::mutex> lock(mutex_);
  errors_.push_back("connection " + std::to_string(index) + ": " + what);
}

bool FakeBackend::readRequest(int index, Stream& stream, Request* request) {
  Deadline idle(kBackendIdle);
  std::string problem = readHead(stream, idle, &request->raw_head);
  if (problem == "eof" || problem == "stopped") return false;
  std::string start;
  if (problem.empty() && !parseHead(request->raw_head, &start, &request->headers, &problem)) {
    problem = "malformed request head: " + problem;
  }
  std::istringstream words(start);
  std::string extra;
  if (problem.empty() && (!(words >> request->method >> request->target >> request->version) ||
                          (words >> extra) || request->version.compare(0, 7, "HTTP/1.") != 0)) {
    problem = "malformed request line: '" + start + "'";
  }
  uint64_t length = 0;
  Framing framing = Framing::kNone;
  if (problem.empty()) framing = framingOf(request->headers, &length, &problem);
  if (problem.empty() && framing == Framing::kUntilClose) problem = "unknown transfer coding";
  if (!problem.empty()) {
    noteError(index, problem);
    return false;
  }
  request->chunked = framing == Framing::kChunked;
  request->connection = index;
  std::optional<std::string> expect = request->header("Expect");
  if (continue_before_body_ && framing != Framing::kNone && expect &&
      equalsIgnoreCase(*expect, "100-continue") &&
      stream.sendAll("HTTP/1.1 100 Continue\r\n\r\n", idle) != Stream::Io::kData) {
    noteError(index, "sending 100 Continue failed");
    return false;
  }
  BodyReader body;
  body.start(framing, length);
  while (!body.done() && problem.empty()) {
    problem = body.readSome(stream, idle, SIZE_MAX, &request->body, &request->raw_body);
  }
  if (!problem.empty()) noteError(index, "request body: " + problem);
  return problem.empty();
}

void FakeBackend::serveHttp(int index, Stream& stream) {
  while (!stop_.load()) {
    Request request;
    if (!readRequest(index, stream, &request)) return;
    Handler handler;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      requests_.push_back(request);
      handler = handler_;
    }
    Responder responder(stream, stop_);
    if (handler) handler(request, responder);
    std::optional<std::string> connection = request.header("Connection");
    if (responder.closing() || (connection && containsIgnoreCase(*connection, "close"))) return;
  }
}

int FakeBackend::connectionCount() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(connections_.size());
}

size_t FakeBackend::requestCount() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_.size();
}

std::vector<Request> FakeBackend::requests() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_;
}

std::string FakeBackend::receivedBytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string all;
  for (const auto& c : connections_) all += c->received;
  return all;
}

std::string FakeBackend::receivedBytes(int connection) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (connection < 0 || static_cast<size_t>(connection) >= connections_.size()) return "";
  return connections_[static_cast<size_t>(connection)]->received;
}

bool FakeBackend::peerClosed(int connection) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (connection < 0 || static_cast<size_t>(connection) >= connections_.size()) return false;
  return connections_[static_cast<size_t>(connection)]->stream->sawEof();
}

bool FakeBackend::waitForPeerClose(int connection, Millis timeout) const {
  return waitFor([&] { return peerClosed(connection); }, timeout);
}

std::vector<std::string> FakeBackend::errors() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return errors_;
}

bool FakeBackend::waitForRequests(size_t count, Millis timeout) const {
  return waitFor([&] { return requestCount() >= count; }, timeout);
}

bool FakeBackend::waitForConnections(int count, Millis timeout) const {
  return waitFor([&] { return connectionCount() >= count; }, timeout);
}

// --- handlers ---------------------------------------------------------------------------------

Handler FakeBackend::fixed(int status, std::string body, Headers headers) {
  std::string bytes = buildResponse(status, headers, body);
  return [bytes](const Request&, Responder& out) { out.send(bytes); };
}

Handler FakeBackend::echo(EchoFraming framing) {
  return [framing](const Request& request, Responder& out) {
    bool chunked = framing == EchoFraming::kSameAsRequest && request.chunked;
    Headers headers = {{"Content-Type", "application/octet-stream"}};
    out.send(
        buildResponse(200, headers, request.body, chunked ? Framing::kChunked : Framing::kLength));
  };
}

Handler FakeBackend::targetEcho() {
  return [](const Request& request, Responder& out) {
    out.send(buildResponse(200, {{"Content-Type", "text/plain"}}, request.target));
  };
}

Handler FakeBackend::largeBody(uint64_t bytes) {
  return [bytes](const Request&, Responder& out) {
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        "Content-Length: " +
        std::to_string(bytes) + "\r\n\r\n";
    if (!out.send(head)) return;
    constexpr size_t kPiece = 256 * 1024;
    for (uint64_t offset = 0; offset < bytes; offset += kPiece) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(kPiece, bytes - offset));
      if (!out.send(patternBytes(offset, n))) {
        out.closeAfter();
        return;
      }
    }
  };
}

namespace {

constexpr std::string_view kSseHead =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    "Transfer-Encoding: chunked\r\n\r\n";

bool sendChunk(Responder& out, std::string_view data) {
  char size_line[32];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
  return out.send(std::string(size_line) + std::string(data) + "\r\n");
}

}  // namespace

Handler FakeBackend::sse(std::shared_ptr<EventFeed> feed) {
  return [feed](const Request&, Responder& out) {
    if (!out.send(kSseHead)) return;
    while (std::optional<std::string> event = feed->next(out.stopFlag())) {
      if (!sendChunk(out, *event)) return;
    }
    out.send("0\r\n\r\n");
  };
}

Handler FakeBackend::sseTimed(std::vector<std::string> events, Millis gap) {
  return [events, gap](const Request&, Responder& out) {
    if (!out.send(kSseHead)) return;
    for (size_t i = 0; i < events.size(); ++i) {
      if (i > 0 && !out.pause(gap)) return;
      if (!sendChunk(out, events[i])) return;
    }
    out.send("0\r\n\r\n");
  };
}

Handler FakeBackend::webSocketEcho() {
  return [](const Request& request, Responder& out) {
    out.closeAfter();
    std::optional<std::string> key = request.header("Sec-WebSocket-Key");
    if (!key) {
      out.send(buildResponse(400, {}, "missing Sec-WebSocket-Key\n"));
      return;
    }
    out.send(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        webSocketAccept(*key) + "\r\n\r\n");
    Stream& stream = out.stream();
    while (!out.stopping()) {
      WsFrame frame;
      long used = decodeWsFrame(stream.buffer(), &frame);
      if (used < 0) return;
      if (used == 0) {
        if (stream.fill(Deadline(kBackendIdle)) != Stream::Io::kData) return;
        continue;
      }
      stream.buffer().erase(0, static_cast<size_t>(used));
      uint8_t reply = frame.opcode == kWsPing ? kWsPong : frame.opcode;
      if (!out.send(encodeWsFrame(reply, frame.payload, false)) || frame.opcode == kWsClose) {
        return;
      }
    }
  };
}

Handler FakeBackend::delayed(Millis delay, Handler then) {
  return [delay, then](const Request& request, Responder& out) {
    if (out.pause(delay)) then(request, out);
  };
}

Handler FakeBackend::hang() {
  return [](const Request&, Responder& out) {
    out.closeAfter();
    // Holds the connection without answering until the proxy closes it or the backend stops.
    while (out.stream().fill(Deadline(kBackendIdle)) == Stream::Io::kData) {
      out.stream().buffer().clear();
    }
  };
}

Handler FakeBackend::closeConnection() {
  return [](const Request&, Responder& out) { out.closeAfter(); };
}

Handler FakeBackend::resetConnection() {
  return [](const Request&, Responder& out) {
    linger reset{1, 0};
    setsockopt(out.stream().fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    out.stream().close();
    out.closeAfter();
  };
}

Handler FakeBackend::garbage(std::string bytes) {
  return [bytes](const Request&, Responder& out) {
    out.send(bytes);
    out.closeAfter();
  };
}

// ---------------------------------------------------------------------------------------------

int pickFreePort() {
  // The kernel may pick a port it picked before, once that socket is closed: two picks of one
  // start (the proxy's port and its API's, or a closed backend's) could then be equal. No port
  // is handed out twice in one run of the tests.
  static std::mutex mutex;
  static std::set<int> given;
  std::lock_guard<std::mutex> lock(mutex);
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in addr = loopback(0);
    socklen_t len = sizeof addr;
    int port = -1;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    ::close(fd);
    if (port < 0) return -1;
    if (given.insert(port).second) return port;
  }
  return -1;
}

ProxyOptions ProxyOptions::forBackends(const std::vector<int>& ports) {
  ProxyOptions options;
  auto& list = options.backends["app"];
  for (size_t i = 0; i < ports.size(); ++i) {
    BackendSpec backend;
    backend.id = "b" + std::to_string(i + 1);
    backend.port = ports[i];
    list.push_back(backend);
  }
  RouteSpec route;
  route.name = "main";
  route.upstream = "app";
  options.routes.push_back(route);
  return options;
}

std::string ProxyOptions::toYaml() const {
  std::ostringstream y;
  y << "server:\n"
    << "  host: \"127.0.0.1\"\n  port: " << port << "\n  workers: " << workers << "\n"
    << "  read_timeout: " << read_timeout << "\n  write_timeout: " << write_timeout << "\n"
    << "  connect_timeout: " << connect_timeout << "\n  header_timeout: " << header_timeout
    << "\n  idle_timeout: " << idle_timeout << "\n  shutdown_timeout: " << shutdown_timeout
    << "\n  max_body_size: " << max_body_size << "\n  max_header_size: " << max_header_size
    << "\n  max_headers: " << max_headers << "\n  max_conn: " << max_conn << "\n"
    << "  error_log: logs/error.log\n  log_level: " << log_level << "\n"
    << "  access_log: logs/access.log\n  pid_file: logs/speedmimi.pid\n";
  if (!access_log_format.empty()) y << "  access_log_format: " << access_log_format << "\n";
  if (!user.empty()) y << "  user: \"" << user << "\"\n";
  if (!real_ip_header.empty()) y << "  real_ip_header: \"" << real_ip_header << "\"\n";
  if (!trusted_proxies.empty()) {
    y << "  trusted_proxies:\n";
    for (const auto& cidr : trusted_proxies) y << "    - \"" << cidr << "\"\n";
  }
  if (ssl) {
    y << "ssl:\n  enabled: " << (ssl->enabled ? "true" : "false") << "\n  port: " << ssl->port
      << "\n  cert_file: \"" << ssl->cert_file << "\"\n  key_file: \"" << ssl->key_file << "\"\n";
    if (!ssl->certificates.empty()) {
      y << "  certificates:\n";
      for (const auto& [cert, key] : ssl->certificates) {
        y << "    - cert_file: \"" << cert << "\"\n      key_file: \"" << key << "\"\n";
      }
    }
    if (!ssl->protocols.empty()) {
      y << "  protocols: [";
      for (size_t i = 0; i < ssl->protocols.size(); ++i) {
        y << (i ? ", " : "") << ssl->protocols[i];
      }
      y << "]\n";
    }
  }
  y << "backends:\n";
  for (const auto& [name, list] : backends) {
    y << "  " << name << ":\n";
    for (const auto& b : list) {
      y << "    - id: \"" << b.id << "\"\n      host: \"" << b.host << "\"\n      port: " << b.port
        << "\n      weight: " << b.weight << "\n      active: " << (b.active ? "true" : "false")
        << "\n";
      if (b.max_conn != 0) y << "      max_conn: " << b.max_conn << "\n";
      if (b.max_fails >= 0) y << "      max_fails: " << b.max_fails << "\n";
      if (b.keepalive >= 0) y << "      keepalive: " << b.keepalive << "\n";
      if (!b.fail_timeout.empty()) y << "      fail_timeout: " << b.fail_timeout << "\n";
      if (!b.scheme.empty()) y << "      scheme: \"" << b.scheme << "\"\n";
      if (b.tls_verify) y << "      tls_verify: " << (*b.tls_verify ? "true" : "false") << "\n";
      if (!b.ca_file.empty()) y << "      ca_file: \"" << b.ca_file << "\"\n";
      if (b.health_check) {
        const HealthCheckSpec& hc = *b.health_check;
        y << "      health_check:\n        path: \"" << hc.path
          << "\"\n        interval: " << hc.interval << "\n        timeout: " << hc.timeout
          << "\n        failures: " << hc.failures << "\n        successes: " << hc.successes
          << "\n";
      }
    }
  }
  y << "routing:\n";
  for (const auto& r : routes) {
    y << "  " << r.name << ":\n    path: \"" << r.path << "\"\n    upstream: \"" << r.upstream
      << "\"\n    load_balancer: \"" << r.load_balancer << "\"\n";
    if (!r.host.empty()) y << "    host: \"" << r.host << "\"\n";
    if (!r.protocols.empty()) {
      y << "    protocols:\n";
      for (const auto& [protocol, balancer] : r.protocols) {
        y << "      " << protocol << ": \"" << balancer << "\"\n";
      }
    }
    if (r.retries >= 0) y << "    retries: " << r.retries << "\n";
    if (r.retry_on) {
      y << "    retry_on: [";
      for (size_t i = 0; i < r.retry_on->size(); ++i) y << (i ? ", " : "") << (*r.retry_on)[i];
      y << "]\n";
    }
    if (r.retry_budget >= 0) y << "    retry_budget: " << r.retry_budget << "\n";
  }
  if (!api) {
    y << "grpc:\n  enabled: false\n";
    return y.str();
  }
  y << "admin:\n  enabled: true\n  host: \"127.0.0.1\"\n  port: " << api_port << "\n";
  if (!auth_token.empty()) y << "  auth_token: \"" << auth_token << "\"\n";
  if (!admin_allow.empty()) {
    y << "  allow:\n";
    for (const std::string& cidr : admin_allow) y << "    - \"" << cidr << "\"\n";
  }
  return y.str();
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

long rssKiB(pid_t pid) {
  std::istringstream status(readFile("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.compare(0, 6, "VmRSS:") == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

bool sanitized(pid_t pid) {
  return readFile("/proc/" + std::to_string(pid) + "/maps").find("libasan") != std::string::npos;
}

bool processGone(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  return paren == std::string::npos || (paren + 2 < stat.size() && stat[paren + 2] == 'Z');
}

::testing::AssertionResult sameBytes(std::string_view expected, std::string_view actual) {
  if (expected == actual) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < expected.size() && i < actual.size() && expected[i] == actual[i]) ++i;
  return ::testing::AssertionFailure() << "expected " << expected.size() << " bytes, got "
                                       << actual.size() << "; first difference at offset " << i;
}

bool globMatch(std::string_view text, std::string_view pattern) {
  while (!pattern.empty()) {
    char p = pattern.front();
    if (p == '*') {
      for (size_t skip = 0; skip <= text.size(); ++skip) {
        if (globMatch(text.substr(skip), pattern.substr(1))) return true;
      }
      return false;
    }
    if (text.empty()) return false;
    bool ok = p == '?' || (p == '#' ? std::isdigit(static_cast<unsigned char>(text.front())) != 0
                                    : text.front() == p);
    if (!ok) return false;
    text.remove_prefix(1);
    pattern.remove_prefix(1);
  }
  return text.empty();
}

std::vector<std::string> linesContaining(const std::string& log,
                                         const std::vector<std::string>& needles) {
  std::vector<std::string> found;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    for (const auto& needle : needles) {
      if (line.find(needle) != std::string::npos) {
        found.push_back(line);
        break;
      }
    }
  }
  return found;
}

// ---------------------------------------------------------------------------------------------

Proxy::Proxy(ProxyOptions options) : options_(std::move(options)) {}

Proxy::~Proxy() {
  stop();
  if (!keep_prefix_ && !prefix_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(prefix_, ignored);
  }
}

std::optional<Response> Proxy::api(const std::string& method, const std::string& target,
                                   const std::string& body, const Headers& headers,
                                   bool no_token, Millis timeout) const {
  Headers all = {{"Host", "127.0.0.1:" + std::to_string(options_.api_port)}};
  bool has_authorization = findHeader(headers, "Authorization").has_value();
  if (!options_.auth_token.empty() && !has_authorization && !no_token) {
    all.push_back({"Authorization", "Bearer " + options_.auth_token});
  }
  if (!body.empty()) all.push_back({"Content-Type", "application/json"});
  all.insert(all.end(), headers.begin(), headers.end());
  bool with_body = !body.empty() || method == "POST" || method == "PUT";
  std::string request = with_body ? buildRequest(method, target, all, body)
                                  : buildRequest(method, target, all, "", Framing::kNone);
  return fetch(options_.api_port, request, nullptr, timeout);
}

std::string Proxy::binaryPath() {
  const char* env = std::getenv("SPEEDMIMI_BIN");
  return (env != nullptr && *env != '\0') ? env : SPEEDMIMI_BIN;
}

bool Proxy::start(std::string* error) {
  if (options_.port == 0) options_.port = pickFreePort();
  if (options_.api && options_.api_port == 0) options_.api_port = pickFreePort();
  if (options_.ssl && options_.ssl->port < 0) options_.ssl->port = pickFreePort();
  prefix_ = testing::makeTempDir("speedmimi-it");
  if (prefix_.empty()) {
    *error = "mkdtemp: " + errnoText(errno);
    return false;
  }
  // mkdtemp makes it 0700: server.user's processes must get to their files under it.
  if (!options_.user.empty() && chmod(prefix_.c_str(), 0755) != 0) {
    *error = "chmod " + prefix_ + ": " + errnoText(errno);
    return false;
  }
  mkdir((prefix_ + "/logs").c_str(), 0755);
  std::string config = configPath();
  std::ofstream(config) << options_.toYaml();
  std::string bin = binaryPath();
  if (access(bin.c_str(), X_OK) != 0) {
    *error = "no executable speedmimi at " + bin + " (build it, or set SPEEDMIMI_BIN)";
    return false;
  }
  if (options_.private_binary) {
    mkdir((prefix_ + "/sbin").c_str(), 0755);
    std::error_code ec;
    std::filesystem::copy_file(bin, binary(), ec);
    if (ec || chmod(binary().c_str(), 0755) != 0) {
      *error = "cannot copy " + bin + " to " + binary() + ": " + ec.message();
      return false;
    }
    bin = binary();
  }
  std::string out_path = prefix_ + "/logs/stdout.log";
  std::vector<std::string> args = {bin, "-c", config, "-p", prefix_};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  rlimit nofile{static_cast<rlim_t>(options_.nofile_limit),
                static_cast<rlim_t>(options_.nofile_limit)};
  pid_ = fork();
  if (pid_ < 0) {
    *error = "fork: " + errnoText(errno);
    return false;
  }
  if (pid_ == 0) {
    // Child: only async-signal-safe calls until exec.
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int in = open("/dev/null", O_RDONLY);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
    if (in >= 0) dup2(in, 0);
    if (nofile.rlim_cur > 0 && setrlimit(RLIMIT_NOFILE, &nofile) != 0) _exit(126);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return waitReady(error);
}

bool Proxy::waitReady(std::string* error) {
  Deadline deadline(Millis(20'000));
  bool serving = false;
  while (!deadline.expired()) {
    if (!running()) {
      *error = "speedmimi exited during startup (wait status " + std::to_string(exit_status_) +
               ")\nstdout/stderr:\n" + stdoutLog() + "\nerror log:\n" + errorLog() + "\nconfig:\n" +
               options_.toYaml();
      return false;
    }
    int err = 0;
    int fd = connectLoopback(options_.port, Millis(100), &err);
    bool tls_listening = true;  // a TLS listener beside plain HTTP accepts too
    if (sslPort() > 0 && sslPort() != options_.port) {
      int tls_fd = connectLoopback(sslPort(), Millis(100), &err);
      tls_listening = tls_fd >= 0;
      if (tls_listening) ::close(tls_fd);
    }
    if (fd >= 0) {
      ::close(fd);
      bool forked = tls_listening && childPids().size() >= static_cast<size_t>(options_.workers);
      if (forked && !options_.wait_serving) return true;
      serving = forked && errorLog().find("speedmimi started on") != std::string::npos;
      // Any answer will do (a 401 without the token too): the control process serves.
      if (serving && (!options_.api || api("GET", "/api/v1/stats/server", "", {}, false,
                                           Millis(2000)))) {
        return true;
      }
    }
    std::this_thread::sleep_for(Millis(10));
  }
  *error = "speedmimi did not accept on 127.0.0.1:" + std::to_string(options_.port) + " with " +
           std::to_string(options_.workers) + " workers" +
           (!serving ? "" : options_.api ? " (the API did not answer)" : "") +
           " within 20 s\nerror log:\n" + errorLog();
  return false;
}

int Proxy::sslPort() const {
  if (!options_.ssl || !options_.ssl->enabled) return 0;
  return options_.ssl->port > 0 ? options_.ssl->port : options_.port;
}

bool Proxy::running() {
  if (old_master_ > 0) {
    int status = 0;
    pid_t r = waitpid(old_master_, &status, WNOHANG);
    if (r == old_master_) exit_status_ = status;
    if (r != 0) old_master_ = -1;
  }
  if (pid_ <= 0) return false;
  if (adopted_) {
    if (!processGone(pid_)) return true;
    pid_ = -1;
    return false;
  }
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) exit_status_ = status;
  pid_ = -1;
  return false;
}

std::string Proxy::binary() const {
  return options_.private_binary ? prefix_ + "/sbin/speedmimi" : binaryPath();
}

pid_t Proxy::pidFromFile() const {
  std::istringstream in(readFile(pidFilePath()));
  long pid = 0;
  return (in >> pid) && pid > 0 ? static_cast<pid_t>(pid) : 0;
}

bool Proxy::writeConfig(const std::string& yaml) {
  std::string tmp = configPath() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << yaml;
    if (!out.flush()) return false;
  }
  return rename(tmp.c_str(), configPath().c_str()) == 0;
}

bool Proxy::rewriteConfig(ProxyOptions options) {
  options.port = options_.port;
  options.private_binary = options_.private_binary;
  if (options.api && options.api_port == 0) options.api_port = options_.api_port;
  if (options.ssl && options.ssl->port < 0 && options_.ssl) options.ssl->port = options_.ssl->port;
  if (!writeConfig(options.toYaml())) return false;
  options_ = std::move(options);
  return true;
}

Proxy::CommandResult Proxy::runCommand(const std::vector<std::string>& extra,
                                       Millis timeout) const {
  std::vector<std::string> args = {binary(), "-c", configPath(), "-p", prefix_};
  args.insert(args.end(), extra.begin(), extra.end());
  return runProgram(args, prefix_ + "/logs", timeout);
}

Proxy::CommandResult runProgram(const std::vector<std::string>& program, const std::string& dir,
                                Millis timeout) {
  Proxy::CommandResult result;
  std::string out_path = dir + "/command.out";
  std::string err_path = dir + "/command.err";
  std::vector<std::string> args = program;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    result.err = "fork: " + errnoText(errno);
    return result;
  }
  if (pid == 0) {
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = open("/dev/null", O_RDONLY);
    if (out >= 0) dup2(out, 1);
    if (err >= 0) dup2(err, 2);
    if (in >= 0) dup2(in, 0);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  bool exited = waitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!exited) {
    result.timed_out = true;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  result.out = readFile(out_path);
  result.err = readFile(err_path);
  return result;
}

void Proxy::adoptMaster(pid_t pid) {
  if (pid == pid_) return;
  if (!adopted_ && pid_ > 0) old_master_ = pid_;
  pid_ = pid;
  adopted_ = true;
  running();  // reaps the old master if it is gone already
}

std::vector<pid_t> Proxy::childPids() const {
  std::vector<pid_t> children;
  if (pid_ <= 0) return children;
  std::string task_dir = "/proc/" + std::to_string(pid_) + "/task";
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(task_dir, ec)) {
    std::istringstream in(readFile(task.path().string() + "/children"));
    pid_t child = 0;
    while (in >> child) children.push_back(child);
  }
  std::sort(children.begin(), children.end());
  return children;
}

long Proxy::totalRssKiB() const {
  long total = pid_ > 0 ? rssKiB(pid_) : 0;
  for (pid_t child : childPids()) total += std::max(0L, rssKiB(child));
  return total;
}

std::string Proxy::errorLog() const {
  return readFile(prefix_ + "/logs/error.log");
}
std::string Proxy::accessLog() const {
  return readFile(prefix_ + "/logs/access.log");
}
std::string Proxy::stdoutLog() const {
  return readFile(prefix_ + "/logs/stdout.log");
}

bool Proxy::signal(int sig) {
  if (pid_ <= 0) return false;
  std::vector<pid_t> children = childPids();
  last_children_.insert(last_children_.end(), children.begin(), children.end());
  if (sig == SIGKILL) killed_ = true;  // sent on purpose: not a crash
  return kill(pid_, sig) == 0;
}

bool Proxy::waitExit(Millis timeout, int* status) {
  bool exited = waitFor([this] { return !running(); }, timeout);
  if (exited && status != nullptr) *status = exit_status_;
  return exited;
}

bool Proxy::reapChildrenOf(const std::vector<pid_t>& children, Millis timeout) {
  auto all_gone = [&] {
    return std::all_of(children.begin(), children.end(), [](pid_t p) { return processGone(p); });
  };
  if (waitFor(all_gone, timeout)) return true;
  std::string bin = binary();
  for (pid_t child : children) {
    // Only a process still running our binary is ours; the pid may have been reused.
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(child) + "/exe", ec);
    if (!processGone(child) && !ec && std::filesystem::equivalent(exe, bin, ec)) {
      kill(child, SIGKILL);
    }
  }
  return false;
}

bool Proxy::stop(Millis timeout) {
  bool clean = true;
  if (running()) {
    signal(SIGTERM);
    if (!waitExit(timeout)) {
      clean = false;
      killed_ = true;
      kill(pid_, SIGKILL);
      waitExit(Millis(5'000));
    }
  }
  if (old_master_ > 0) {  // an upgrade left the old master running: stop it too
    kill(old_master_, SIGTERM);
    if (!waitFor([this] {
      running();
      return old_master_ <= 0;
    }, timeout)) {
      clean = false;
      killed_ = true;
      kill(old_master_, SIGKILL);
      waitFor([this] {
      running();
      return old_master_ <= 0;
    }, Millis(5'000));
    }
  }
  if (!last_children_.empty() && !reapChildrenOf(last_children_, Millis(5'000))) clean = false;
  last_children_.clear();
  return clean;
}

bool Proxy::crashed() const {
  return !killed_ && WIFSIGNALED(exit_status_) && WTERMSIG(exit_status_) != SIGTERM;
}

// ---------------------------------------------------------------------------------------------

Proxy* ProxyTest::startProxy(ProxyOptions options) {
  proxies_.push_back(std::make_unique<Proxy>(std::move(options)));
  std::string error;
  if (!proxies_.back()->start(&error)) {
    ADD_FAILURE() << "speedmimi did not start: " << error;
    return nullptr;
  }
  return proxies_.back().get();
}

void ProxyTest::TearDown() {
  for (auto& proxy : proxies_) {
    EXPECT_TRUE(proxy->stop()) << "speedmimi (and its children) did not exit within 10 s of "
                                  "SIGTERM and had to be killed";
    EXPECT_FALSE(proxy->crashed()) << "the master died from a signal";
    EXPECT_THAT(linesContaining(proxy->errorLog(), {"[alert]", "[crit]", "[emerg]"}),
                ::testing::IsEmpty())
        << "error log of " << proxy->prefix();
    EXPECT_THAT(linesContaining(proxy->stdoutLog(),
                                {"AddressSanitizer", "LeakSanitizer", "runtime error:"}),
                ::testing::IsEmpty())
        << "sanitizer report in " << proxy->prefix() << "/logs/stdout.log";
    if (HasFailure()) {
      proxy->keepPrefix();
      std::string log = proxy->errorLog();
      if (log.size() > 6000) log = "...\n" + log.substr(log.size() - 6000);
      std::cerr << "[ harness ] kept " << proxy->prefix() << "; end of its error log:\n"
                << log << "\n[ harness ] stdout/stderr:\n"
                << proxy->stdoutLog().substr(0, 4000) << std::endl;
    }
  }
  proxies_.clear();
}

size_t countTargets(const FakeBackend& backend, std::string_view prefix) {
  size_t n = 0;
  for (const Request& r : backend.requests()) n += r.target.compare(0, prefix.size(), prefix) == 0;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Which worker holds a client's connection: the socket inode of the accepted end (found in
// /proc/net/tcp by the two ports) among the file descriptors of each child of the master.

namespace {

std::set<std::string> socketInodes(pid_t pid) {
  std::set<std::string> inodes;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return inodes;
  while (dirent* e = readdir(d)) {
    char target[128];
    ssize_t n = readlink((dir + "/" + e->d_name).c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    std::string link(target, static_cast<size_t>(n));
    if (link.rfind("socket:[", 0) == 0) inodes.insert(link.substr(8, link.size() - 9));
  }
  closedir(d);
  return inodes;
}

// The inode of the loopback TCP socket local_port -> remote_port, or "".
std::string tcpInode(int local_port, int remote_port) {
  std::istringstream table(readFile("/proc/net/tcp"));
  std::string line;
  std::getline(table, line);  // header
  char local[16], remote[16];
  snprintf(local, sizeof(local), "0100007F:%04X", local_port);
  snprintf(remote, sizeof(remote), "0100007F:%04X", remote_port);
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, l, r, state, queues, timer, retransmits, uid, timeout, inode;
    fields >> slot >> l >> r >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
    if (l == local && r == remote && inode != "0") return inode;
  }
  return "";
}

}  // namespace

pid_t workerHolding(const Proxy& proxy, Client& client) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(client.stream()->fd(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  int client_port = ntohs(addr.sin_port);
  pid_t holder = 0;
  waitFor(
      [&] {
        std::string inode = tcpInode(proxy.port(), client_port);
        if (inode.empty()) return false;
        for (pid_t child : proxy.childPids()) {
          if (socketInodes(child).count(inode)) holder = child;
        }
        return holder != 0;
      },
      Millis(2000), Millis(5));
  return holder;
}

}  // namespace speedmimi::test
