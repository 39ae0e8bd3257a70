#pragma once
// Plain IPv4 values: an address and a prefix. Parsing reports failure through
// std::optional so the topology layer can point at the offending line.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace knl {

struct Ipv4 {
  uint32_t value = 0;  // host byte order
  std::string str() const;
  static std::optional<Ipv4> parse(std::string_view text);
  auto operator<=>(const Ipv4&) const = default;
};

struct Ipv4Net {
  Ipv4 network;
  int prefix = 0;
  uint64_t size() const { return uint64_t{1} << (32 - prefix); }
  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  bool contains(Ipv4 ip) const { return (ip.value & mask()) == network.value; }
  bool overlaps(const Ipv4Net& other) const;
  /// The address `offset` places after the network address.
  Ipv4 at(uint64_t offset) const { return Ipv4{network.value + static_cast<uint32_t>(offset)}; }
  std::string str() const;
  /// Accepts only canonical networks ("10.0.0.0/8", not "10.1.0.0/8").
  static std::optional<Ipv4Net> parse(std::string_view text);
  auto operator<=>(const Ipv4Net&) const = default;
};

}  // namespace knl
