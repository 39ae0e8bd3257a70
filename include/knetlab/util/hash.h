#pragma once
// A small stable hash for names derived from names (veth names, MACs, the
// nftables table of a service): the same on every run and machine.

#include <cstdint>
#include <string_view>

namespace knl {

/// 32-bit FNV-1a.
inline uint32_t fnv1a(std::string_view text) {
  uint32_t h = 2166136261u;
  for (unsigned char c : text) h = (h ^ c) * 16777619u;
  return h;
}

}  // namespace knl
