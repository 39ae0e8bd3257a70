// netexec: the test workload, after the conventions of Kubernetes' e2e image
// `agnhost netexec`. Server mode answers HTTP and UDP; client mode
// (`netexec get URL`, `netexec udp HOST:PORT MESSAGE`) lets a check run from
// any pod, node or host without tools the machine may lack.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

double g_timeout = 5.0;           // seconds, for client calls and /dial
int g_local_port = 0;             // client calls: bind to this source port (0: any)
std::atomic<bool> g_ready{true};  // what /readyz answers

std::string hostname() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return name;
}

std::string peer_text(const sockaddr_in& addr) {
  char ip[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(addr.sin_port));
}

void set_timeout(int fd, double seconds) {
  timeval tv{static_cast<time_t>(seconds),
             static_cast<suseconds_t>((seconds - static_cast<time_t>(seconds)) * 1e6)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::strtol(s.substr(i + 1, 2).c_str(), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/' || c == '=' ||
        c == '?' || c == '&') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\', out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::map<std::string, std::string> parse_query(const std::string& query) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start < query.size()) {
    auto end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    auto pair = query.substr(start, end - start);
    auto eq = pair.find('=');
    if (eq == std::string::npos)
      out[url_decode(pair)] = "";
    else
      out[url_decode(pair.substr(0, eq))] = url_decode(pair.substr(eq + 1));
    start = end + 1;
  }
  return out;
}

// Resolves host:port to an IPv4 socket address.
std::optional<sockaddr_in> resolve(const std::string& host, int port, std::string& error) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    error = "resolve " + host + ": " + gai_strerror(rc);
    return std::nullopt;
  }
  sockaddr_in addr = *reinterpret_cast<sockaddr_in*>(res->ai_addr);
  freeaddrinfo(res);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// Client sockets take --local-port as their source port (a UDP client that
// keeps its port keeps its conntrack entry, as a DNS resolver does).
void bind_local_port(int fd) {
  if (g_local_port == 0) return;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(static_cast<uint16_t>(g_local_port));
  bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local);
}

// Non-blocking connect and poll, as curl does: an ICMP error that arrives
// while a blocking connect holds the socket only becomes a soft error, and the
// caller would see a timeout instead of "Connection refused". Returns 0 or
// the errno, with error filled.
int connect_with_timeout(int fd, const sockaddr_in& addr, double seconds, std::string& error) {
  set_timeout(fd, seconds);
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int err = 0;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int ready = poll(&p, 1, static_cast<int>(seconds * 1000));
      socklen_t len = sizeof err;
      if (ready == 1)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      else
        err = ETIMEDOUT;
    }
  }
  fcntl(fd, F_SETFL, flags);
  if (err != 0)
    error = std::string("connect ") + peer_text(addr) + ": " +
            (err == ETIMEDOUT ? "timed out" : std::strerror(err));
  return err;
}

// One HTTP GET; returns the status and fills body, or -1 with error.
int http_get(const std::string& host, int port, const std::string& path, std::string& body,
             std::string& error) {
  auto addr = resolve(host, port, error);
  if (!addr) return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bind_local_port(fd);
  if (connect_with_timeout(fd, *addr, g_timeout, error) != 0) {
    close(fd);
    return -1;
  }
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(port) +
                        "\r\nUser-Agent: netexec\r\nConnection: close\r\n\r\n";
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buf[4096];
  for (;;) {
    auto n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      response.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && response.empty()) {
      error = "read from " + peer_text(*addr) + ": " +
              (errno == EAGAIN ? std::string("timed out") : std::strerror(errno));
      close(fd);
      return -1;
    }
    break;
  }
  close(fd);
  int status = 0;
  if (std::sscanf(response.c_str(), "HTTP/%*d.%*d %d", &status) != 1) {
    error = "malformed answer from " + peer_text(*addr);
    return -1;
  }
  auto split = response.find("\r\n\r\n");
  body = split == std::string::npos ? "" : response.substr(split + 4);
  return status;
}

// One UDP exchange; returns the answer or nullopt with error.
std::optional<std::string> udp_exchange(const std::string& host, int port,
                                        const std::string& message, std::string& error) {
  auto addr = resolve(host, port, error);
  if (!addr) return std::nullopt;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  set_timeout(fd, g_timeout);
  bind_local_port(fd);
  // A connected socket hears about ICMP errors (a rejecting service) on recv.
  if (connect(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof *addr) != 0 ||
      send(fd, message.data(), message.size(), 0) < 0) {
    error = "send to " + peer_text(*addr) + ": " + std::strerror(errno);
    close(fd);
    return std::nullopt;
  }
  char buf[2048];
  auto n = recv(fd, buf, sizeof buf, 0);
  close(fd);
  if (n < 0) {
    error = "no answer from " + peer_text(*addr) + ": " +
            (errno == EAGAIN ? std::string("timed out") : std::strerror(errno));
    return std::nullopt;
  }
  return std::string(buf, static_cast<size_t>(n));
}

struct Request {
  std::string method, path, query;
  std::map<std::string, std::string> headers;  // lower-case names
};

std::optional<Request> read_request(int fd) {
  std::string data;
  char buf[4096];
  while (data.find("\r\n\r\n") == std::string::npos && data.size() < 65536) {
    auto n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return std::nullopt;
    data.append(buf, static_cast<size_t>(n));
  }
  Request r;
  auto line_end = data.find("\r\n");
  auto line = data.substr(0, line_end);
  auto sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1) return std::nullopt;
  r.method = line.substr(0, sp1);
  auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  auto q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string::npos) r.query = target.substr(q + 1);
  size_t pos = line_end + 2;
  while (pos < data.size()) {
    auto end = data.find("\r\n", pos);
    if (end == pos || end == std::string::npos) break;
    auto header = data.substr(pos, end - pos);
    auto colon = header.find(':');
    if (colon != std::string::npos) {
      std::string name = header.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto value = header.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      r.headers[name] = value;
    }
    pos = end + 2;
  }
  return r;
}

void respond(int fd, int status, const std::string& body,
             const std::string& type = "text/plain; charset=utf-8") {
  const char* reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request";
  std::string out =
      "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + type +
      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  send(fd, out.data(), out.size(), MSG_NOSIGNAL);
}

std::string dial(const std::map<std::string, std::string>& q) {
  auto get = [&](const char* k, const char* d) {
    auto it = q.find(k);
    return it == q.end() ? std::string(d) : it->second;
  };
  std::string request = get("request", "hostname"), protocol = get("protocol", "http"),
              host = get("host", ""), port = get("port", "0");
  int tries = std::max(1, std::atoi(get("tries", "1").c_str()));
  std::vector<std::string> responses, errors;
  for (int i = 0; i < tries; ++i) {
    std::string error, body;
    if (protocol == "udp") {
      auto answer = udp_exchange(host, std::atoi(port.c_str()), request, error);
      if (answer)
        responses.push_back(*answer);
      else
        errors.push_back(error);
    } else {
      int status = http_get(host, std::atoi(port.c_str()), "/" + url_encode(request), body, error);
      if (status >= 200 && status < 300)
        responses.push_back(body);
      else
        errors.push_back(status < 0 ? error : "HTTP " + std::to_string(status) + ": " + body);
    }
  }
  std::string out = "{\"responses\":[";
  for (size_t i = 0; i < responses.size(); ++i) out += (i ? "," : "") + json_string(responses[i]);
  out += "],\"errors\":[";
  for (size_t i = 0; i < errors.size(); ++i) out += (i ? "," : "") + json_string(errors[i]);
  return out + "]}";
}

void serve_http_connection(int fd, sockaddr_in peer) {
  set_timeout(fd, 10);
  auto request = read_request(fd);
  if (!request) {
    close(fd);
    return;
  }
  auto query = parse_query(request->query);
  const auto& path = request->path;
  // One line per request on stdout (the container's log), as agnhost logs
  // them; not the kubelet's probes, which come every second.
  if (path != "/healthz" && path != "/readyz")
    std::printf("%s %s%s%s from %s\n", request->method.c_str(), path.c_str(),
                request->query.empty() ? "" : "?", request->query.c_str(), peer_text(peer).c_str());
  if (path == "/hostname") {
    respond(fd, 200, hostname());
  } else if (path == "/clientip") {
    respond(fd, 200, peer_text(peer));
  } else if (path == "/echo") {
    respond(fd, 200, query["msg"]);
  } else if (path == "/request") {
    respond(fd, 200,
            request->method + " " + path + (request->query.empty() ? "" : "?" + request->query));
  } else if (path == "/healthz") {
    respond(fd, 200, "ok");
  } else if (path == "/readyz") {
    respond(fd, g_ready ? 200 : 503, g_ready ? "ok" : "not ready");
  } else if (path == "/readiness") {
    // /readiness?ready=false makes /readyz fail (a readiness probe then takes
    // the pod out of its services' endpoints); ready=true brings it back.
    if (query.count("ready")) g_ready = query["ready"] != "false";
    respond(fd, 200, g_ready ? "ready" : "not ready");
  } else if (path == "/dial") {
    respond(fd, 200, dial(query), "application/json");
  } else if (path == "/header") {
    auto key = query["key"];
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto it = request->headers.find(key);
    respond(fd, 200, it == request->headers.end() ? "" : it->second);
  } else if (path == "/shutdown") {
    respond(fd, 200, "shutting down");
    close(fd);
    std::fflush(stdout);
    std::_Exit(0);
  } else if (path == "/") {
    respond(fd, 200, "NOW: " + std::to_string(std::time(nullptr)));
  } else {
    respond(fd, 404, "404 page not found\n");
  }
  close(fd);
}

int listen_on(int type, int port) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      (type == SOCK_STREAM && listen(fd, 512) != 0)) {
    std::fprintf(stderr, "netexec: listen on %s port %d: %s\n", type == SOCK_STREAM ? "TCP" : "UDP",
                 port, std::strerror(errno));
    std::exit(1);
  }
  return fd;
}

void serve_udp(int fd) {
  char buf[2048];
  for (;;) {
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    auto n = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &len);
    if (n < 0) continue;
    std::string message(buf, static_cast<size_t>(n));
    while (!message.empty() && (message.back() == '\n' || message.back() == '\r'))
      message.pop_back();
    std::string answer;
    if (message == "hostname")
      answer = hostname();
    else if (message == "clientip")
      answer = peer_text(peer);
    else if (message.rfind("echo ", 0) == 0)
      answer = message.substr(5);
    else
      answer = "unknown command: " + message;
    sendto(fd, answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&peer), len);
  }
}

int usage() {
  std::fprintf(stderr,
               "usage: netexec [--http-port=N] [--udp-port=N]   serve HTTP and UDP\n"
               "       netexec get URL [--timeout=S] [--local-port=N]   print the body of URL\n"
               "       netexec udp HOST:PORT MESSAGE [--timeout=S] [--local-port=N]\n"
               "       netexec connect HOST:PORT [--count=N]   time N TCP handshakes\n");
  return 2;
}

int client_get(const std::string& url) {
  std::string rest = url.rfind("http://", 0) == 0 ? url.substr(7) : url;
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = authority.rfind(':');
  std::string host = authority.substr(0, colon);
  int port = colon == std::string::npos ? 80 : std::atoi(authority.c_str() + colon + 1);
  std::string body, error;
  int status = http_get(host, port, path, body, error);
  if (status < 0) {
    std::fprintf(stderr, "netexec: %s\n", error.c_str());
    return 1;
  }
  std::fwrite(body.data(), 1, body.size(), stdout);
  if (!body.empty() && body.back() != '\n') std::fputc('\n', stdout);
  if (status < 200 || status >= 300) {
    std::fprintf(stderr, "netexec: HTTP status %d\n", status);
    return 1;
  }
  return 0;
}

int client_udp(const std::string& target, const std::string& message) {
  auto colon = target.rfind(':');
  if (colon == std::string::npos) return usage();
  std::string error;
  auto answer =
      udp_exchange(target.substr(0, colon), std::atoi(target.c_str() + colon + 1), message, error);
  if (!answer) {
    std::fprintf(stderr, "netexec: %s\n", error.c_str());
    return 1;
  }
  std::printf("%s\n", answer->c_str());
  return 0;
}

// `netexec connect HOST:PORT --count=N`: N TCP connection attempts one after
// another, each timed from connect() to the answer: the SYN-ACK, ended at once
// with a reset (no TIME_WAIT left behind), or a reset from a port nobody
// listens on, which leaves no server process in the measure. Each SYN is the
// first packet of a new connection, so it takes the whole NAT path: what the
// first packet through a Service costs, without an HTTP exchange around it.
int client_connect(const std::string& target, int count) {
  auto colon = target.rfind(':');
  if (colon == std::string::npos || count < 1) return usage();
  std::string error;
  auto addr = resolve(target.substr(0, colon), std::atoi(target.c_str() + colon + 1), error);
  if (!addr) {
    std::fprintf(stderr, "netexec: %s\n", error.c_str());
    return 1;
  }
  std::vector<double> micros;
  micros.reserve(static_cast<size_t>(count));
  int refused = 0;
  for (int i = 0; i < count; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto start = std::chrono::steady_clock::now();
    int err = connect_with_timeout(fd, *addr, g_timeout, error);
    auto elapsed = std::chrono::steady_clock::now() - start;
    linger reset{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close(fd);
    if (err != 0 && err != ECONNREFUSED) {
      std::fprintf(stderr, "netexec: %s\n", error.c_str());
      return 1;
    }
    refused += err == ECONNREFUSED;
    micros.push_back(std::chrono::duration<double, std::micro>(elapsed).count());
  }
  std::sort(micros.begin(), micros.end());
  auto at = [&](double q) { return micros[static_cast<size_t>(q * (micros.size() - 1))]; };
  std::printf(
      "%d connects to %s (%d refused): median %.1f us, p10 %.1f us, p90 %.1f us, "
      "min %.1f us\n",
      count, target.c_str(), refused, at(0.5), at(0.1), at(0.9), micros.front());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int http_port = 8080, udp_port = 8081, sctp_port = 0, count = 1000;
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* prefix) -> std::optional<std::string> {
      std::string p = prefix;
      if (a.rfind(p + "=", 0) == 0) return a.substr(p.size() + 1);
      if (a == p && i + 1 < argc) return std::string(argv[++i]);
      return std::nullopt;
    };
    if (auto v = value("--http-port")) {
      http_port = std::atoi(v->c_str());
    } else if (auto v = value("--udp-port")) {
      udp_port = std::atoi(v->c_str());
    } else if (auto v = value("--sctp-port")) {
      sctp_port = std::atoi(v->c_str());
    } else if (auto v = value("--timeout")) {
      g_timeout = std::atof(v->c_str());
    } else if (auto v = value("--count")) {
      count = std::atoi(v->c_str());
    } else if (auto v = value("--local-port")) {
      g_local_port = std::atoi(v->c_str());
    } else if (a.rfind("--", 0) == 0) {
      std::fprintf(stderr, "netexec: unknown flag %s\n", a.c_str());
      return usage();
    } else {
      words.push_back(a);
    }
  }
  if (!words.empty()) {
    if (words[0] == "get" && words.size() == 2) return client_get(words[1]);
    if (words[0] == "connect" && words.size() == 2) return client_connect(words[1], count);
    if (words[0] == "udp" && words.size() >= 3) {
      std::string message = words[2];
      for (size_t i = 3; i < words.size(); ++i) message += " " + words[i];
      return client_udp(words[1], message);
    }
    return usage();
  }
  if (sctp_port != 0) {
    std::fprintf(stderr, "netexec: --sctp-port is not supported by this build\n");
    return 2;
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("netexec: serving HTTP on %d, UDP on %d as %s\n", http_port, udp_port,
              hostname().c_str());
  if (udp_port != 0) std::thread(serve_udp, listen_on(SOCK_DGRAM, udp_port)).detach();
  int server = listen_on(SOCK_STREAM, http_port);
  for (;;) {
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    int fd = accept4(server, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::thread(serve_http_connection, fd, peer).detach();
  }
}
