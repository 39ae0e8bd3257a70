#include "knetlab/net/ipv4.h"

#include <arpa/inet.h>

#include <fmt/format.h>
#include <charconv>

namespace knl {

std::string Ipv4::str() const {
  return fmt::format("{}.{}.{}.{}", value >> 24, (value >> 16) & 0xff, (value >> 8) & 0xff,
                     value & 0xff);
}

std::optional<Ipv4> Ipv4::parse(std::string_view text) {
  std::string s(text);
  in_addr addr{};
  if (inet_pton(AF_INET, s.c_str(), &addr) != 1) return std::nullopt;
  return Ipv4{ntohl(addr.s_addr)};
}

bool Ipv4Net::overlaps(const Ipv4Net& other) const {
  int shorter = std::min(prefix, other.prefix);
  uint32_t m = shorter == 0 ? 0 : ~uint32_t{0} << (32 - shorter);
  return (network.value & m) == (other.network.value & m);
}

std::string Ipv4Net::str() const {
  return fmt::format("{}/{}", network.str(), prefix);
}

std::optional<Ipv4Net> Ipv4Net::parse(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto ip = Ipv4::parse(text.substr(0, slash));
  int prefix = -1;
  auto digits = text.substr(slash + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
  if (!ip || ec != std::errc{} || end != digits.data() + digits.size() || prefix < 0 || prefix > 32)
    return std::nullopt;
  Ipv4Net net{*ip, prefix};
  if ((ip->value & net.mask()) != ip->value) return std::nullopt;
  return net;
}

}  // namespace knl
