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

}  // namespace knl
