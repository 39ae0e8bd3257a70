// Readiness probes, as the kubelet runs them from a pod's node.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <fmt/format.h>

#include <cstdio>

#include "children.h"

namespace knl {

bool tcp_connects(Ipv4 ip, int port) {
  Fd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!sock) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(ip.value);
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
      errno != EINPROGRESS)
    return false;
  pollfd p{sock.get(), POLLOUT, 0};
  if (::poll(&p, 1, 200) != 1) return false;
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  return err == 0;
}

bool http_ok(Ipv4 ip, int port, const std::string& path) {
  Fd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) return false;
  timeval tv{0, 500000};
  ::setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(sock.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(ip.value);
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return false;
  auto request = fmt::format("GET {} HTTP/1.0\r\nHost: {}\r\n\r\n", path, ip.str());
  if (::send(sock.get(), request.data(), request.size(), MSG_NOSIGNAL) < 0) return false;
  char buf[64] = {};
  auto n = ::recv(sock.get(), buf, sizeof buf - 1, 0);
  int status = 0;
  return n > 12 && std::sscanf(buf, "HTTP/%*d.%*d %d", &status) == 1 && status >= 200 &&
         status < 400;
}

bool dns_answers(Ipv4 ip, int port, const std::string& name) {
  // A query for `name`, type A, class IN, recursion desired (RFC 1035 4.1).
  std::string query("\x4b\x4e\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12);
  for (size_t start = 0; start <= name.size();) {
    auto dot = std::min(name.find('.', start), name.size());
    query += static_cast<char>(dot - start);
    query += name.substr(start, dot - start);
    start = dot + 1;
  }
  query += std::string("\x00\x00\x01\x00\x01", 5);
  Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return false;
  timeval tv{0, 200000};
  ::setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(ip.value);
  if (::sendto(sock.get(), query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&addr),
               sizeof addr) < 0)
    return false;
  unsigned char answer[512];
  auto n = ::recv(sock.get(), answer, sizeof answer, 0);
  // The same id, a response, NOERROR, at least one answer.
  return n >= 12 && answer[0] == 0x4b && answer[1] == 0x4e && (answer[2] & 0x80) &&
         (answer[3] & 0x0f) == 0 && (answer[6] << 8 | answer[7]) > 0;
}

}  // namespace knl
