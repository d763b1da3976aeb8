// A non-blocking byte stream over a socket: an input and an output evbuffer, a read event that
// is enabled on demand, and a write event armed only when the kernel refuses bytes.
//
// Unlike a libevent bufferevent it writes eagerly: flush() calls writev() at once and arms the
// write event only on EAGAIN, so a request/response exchange costs no epoll_ctl calls in the
// common case. Reads go straight into the input buffer with readv() (no FIONREAD ioctl), and
// are sized by what the peer sends: a stream starts with small reads (most heads and small
// answers fit) and doubles the size while reads fill it, so an idle or chatty connection ties up
// little memory while a bulk transfer still reads in large pieces.
//
// A stream may speak TLS (startTls): input() and output() then carry the plaintext, and an SSL
// reads and writes the socket itself (SSL_set_fd), not a bufferevent_openssl, so TLS keeps the
// eager writes: flush() is one SSL_write per record at once, a small answer one record and one
// send(), where a filtering bufferevent would queue the bytes and write them from the loop.
//
// Callback contract: the handler is called only from the event loop, never from inside a
// Stream method, and the handler may destroy the Stream from within the callback (the Stream
// touches nothing after the call).
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "event/handles.h"
#include "event/tls.h"

namespace speedmimi::event {

class Stream;

enum class StreamEvent {
  kReadable,      // new bytes were appended to input()
  kEof,           // the peer closed its side; input() may still hold bytes
  kError,         // a socket error (errno in Stream::lastError()) or a TLS one (tlsError())
  kReadTimeout,   // no bytes within the read timeout while reading
  kWriteTimeout,  // output could not be written within the write timeout
  kConnected,     // connect() completed
  kDrained,       // output fell to or below the low watermark after a blocked write
};

const char* streamEventName(StreamEvent ev);

class StreamHandler {
 public:
  virtual void onStreamEvent(Stream& stream, StreamEvent ev) = 0;

 protected:
  ~StreamHandler() = default;
};

class Stream {
 public:
  // Takes ownership of the connected, non-blocking socket `fd`.
  Stream(event_base* base, int fd, StreamHandler* handler);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Starts a non-blocking connect; kConnected or kError (or kWriteTimeout after `timeout`) is
  // reported later. Returns nullptr with errno set when the socket cannot even be created.
  static std::unique_ptr<Stream> connect(event_base* base, const sockaddr* addr,
                                         socklen_t len, std::chrono::milliseconds timeout,
                                         StreamHandler* handler);

  evbuffer* input() const { return input_.get(); }
  evbuffer* output() const { return output_.get(); }
  int fd() const { return fd_.get(); }
  int lastError() const { return last_error_; }
  uint64_t bytesRead() const { return bytes_read_; }
  uint64_t bytesWritten() const { return bytes_written_; }
  // Bytes read and written from now on are also added to these counters (either may be
  // nullptr). They must be written by this process only (a worker's own slot in the zone).
  void countInto(std::atomic<uint64_t>* read, std::atomic<uint64_t>* written) {
    read_counter_ = read;
    written_counter_ = written;
  }
  // The size of the next read (for tests).
  size_t readSize() const { return read_size_; }
  bool connected() const { return connected_; }

  // A new handler (the pool, at the end of an exchange) has no use for the ACK that the last read
  // owed (see setQuickAck).
  void setHandler(StreamHandler* handler) {
    handler_ = handler;
    ack_owed_ = false;
  }

  // Reading with an inactivity timeout (0 = none). Calling again with another timeout changes
  // it; with the same one it does nothing (the timer keeps running).
  void startReading(std::chrono::milliseconds timeout);
  // No more kReadable. A TLS flush waiting for the peer's bytes still gets them, under the
  // write timeout.
  void stopReading();
  bool reading() const { return reading_; }

  // Writes as much of output() as the kernel takes now. Returns false on a fatal socket error
  // (lastError() says which); the handler is not called for it. When bytes remain, the write
  // event is armed with `write_timeout` and kDrained follows once they are written down to the
  // low watermark.
  bool flush();
  void setWriteTimeout(std::chrono::milliseconds timeout) { write_timeout_ = timeout; }
  void setLowWatermark(size_t bytes) { low_watermark_ = bytes; }
  size_t pendingOutput() const { return evbuffer_get_length(output_.get()); }

  // Acknowledge the peer's answer at once when more of it is awaited (Linux TCP_QUICKACK), for
  // connections to backends. A backend that writes a response's head and its body separately
  // with Nagle's algorithm on holds the body until the head is acknowledged, and Linux delays
  // that ACK by ~40 ms once this side has sent soon after receiving (it hopes to carry the ACK on
  // an answer that will not come); sending clears the option again. So the first read after a
  // write owes an ACK, and once the handler has seen that read, before the loop waits again, a
  // setsockopt() sends it and leaves delayed-ACK mode, unless the debt was dropped meanwhile:
  // by a write (which carries the ACK), a new handler (the exchange is over: the pool took the
  // stream) or the stream's end. An answer that arrives whole costs nothing; one in pieces, one
  // setsockopt() per exchange.
  void setQuickAck(bool on);
  uint64_t quickAcks() const { return quick_acks_; }  // ACKs sent that way (for tests)

  // Half-closes the sending side (lingering close after an error response); over TLS after a
  // close_notify (sent once, without waiting for the peer's).
  void shutdownWrite();

  // From now on input() and output() carry plaintext through `ssl` (from ServerTls or
  // ClientTls) over the socket: an accepted stream is the server side, one from connect() the
  // client side, which may start TLS before or after kConnected (still reported when TCP
  // connects; the handshake then runs under the writes, or at once when none are waiting).
  // A server side whose first byte is an ASCII letter, not a TLS record, falls back to plain
  // (plainHttpOnTls()), so that the session can answer the request in clear text.
  void startTls(SslPtr ssl);
  bool isTls() const { return tls_ != nullptr; }
  SSL* tlsSession() const { return tls_.get(); }  // for the peer's certificate, and tests
  bool plainHttpOnTls() const { return plain_on_tls_; }
  bool handshakeDone() const { return handshake_done_; }
  const char* tlsVersion() const;  // "TLSv1.3"; "" before the handshake or when plain
  const char* tlsCipher() const;   // OpenSSL's name; "" likewise
  std::string_view tlsAlpn() const;
  // After kError (or flush() false) of a TLS stream that failed in TLS: OpenSSL's reason, for a
  // client one that failed verification "certificate verify failed: <X509 reason>", and
  // lastError() is EPROTO. Empty after a socket error under TLS: lastError() has its errno.
  const std::string& tlsError() const { return tls_error_; }

 private:
  static void onRead(evutil_socket_t fd, short what, void* arg);
  static void onWrite(evutil_socket_t fd, short what, void* arg);
  void readPlain();
  void readTls();
  bool flushTls();
  // Drives the handshake while it is not done: SSL_ERROR_NONE once it is, else the SSL error
  // (`saved_errno` the call's errno).
  int continueHandshake(int& saved_errno);
  // The first byte of an accepted TLS stream: true to go on with TLS.
  bool sniffTls();
  // Counts `n` bytes read into a reservation of `room` bytes after asking for `asked`: the
  // counters, the quick-ACK debt and the size of the next read.
  void afterRead(size_t n, size_t asked, size_t room);
  // Records why the TLS call that returned `ssl_error` failed (`saved_errno` its errno).
  void tlsFailed(int ssl_error, int saved_errno);
  void handleConnect(short what);
  void notify(StreamEvent ev) { handler_->onStreamEvent(*this, ev); }
  // Arms the write event (created on first use: most streams never need it).
  bool armWrite(const timeval* timeout);
  void makeWriteEvent();
  // Arms the write event with the write timeout when `wait`, else disarms it. False (errno in
  // lastError()) when it cannot be armed.
  bool waitForWrite(bool wait);
  // Arms the read event for a TLS flush that wants the peer's bytes while the handler reads
  // nothing (read_armed_for_write_), with the write timeout; false when it cannot be armed.
  // disarmReadForWrite undoes it once the flush no longer waits.
  bool armReadForWrite();
  void disarmReadForWrite();
  // event_add() failed (epoll_ctl: ENOMEM, ENOSPC): kError from the loop, as the callback
  // contract wants.
  void failLater(int err);
  // Pays the ACK the last read owed, if it still does (the event armed by that read).
  static void onAckDue(evutil_socket_t, short, void* arg);

  Fd fd_;
  event_base* base_;
  StreamHandler* handler_;
  EvbufferPtr input_;
  EvbufferPtr output_;
  EventPtr read_event_;
  EventPtr write_event_;  // nullptr until a write blocks or a connect starts
  EventPtr ack_event_;    // with quick ACKs: made active by a read that owes an ACK
  std::chrono::milliseconds write_timeout_{30'000};
  size_t low_watermark_ = 0;
  int last_error_ = 0;
  uint64_t bytes_read_ = 0;
  uint64_t bytes_written_ = 0;
  uint64_t quick_acks_ = 0;
  std::atomic<uint64_t>* read_counter_ = nullptr;
  std::atomic<uint64_t>* written_counter_ = nullptr;
  size_t read_size_;
  bool failed_ = false;
  bool reading_ = false;
  std::chrono::milliseconds read_timeout_{0};  // of the current startReading()
  bool write_armed_ = false;
  bool connected_ = true;
  bool quick_ack_ = false;
  bool wrote_since_read_ = false;  // bytes sent since the last read
  bool ack_owed_ = false;          // see setQuickAck
  // TLS: an SSL call wants the socket the other way round than the one it was made for.
  SslPtr tls_;
  std::string tls_error_;
  bool client_ = false;  // made by connect(): the client side of a handshake
  bool sniffed_ = false;
  bool plain_on_tls_ = false;
  bool handshake_done_ = false;
  bool read_wants_write_ = false;  // SSL_read wanted to write: retried once writable
  bool write_wants_read_ = false;  // SSL_write wanted to read: flush retried once readable
  // The read event is armed, with the write timeout, only for a flush that wants to read
  // (write_wants_read_ while not reading_): it reads nothing for the handler.
  bool read_armed_for_write_ = false;
  bool tls_eof_ = false;           // the peer's end was read with bytes: kEof still owed
};

}  // namespace speedmimi::event
