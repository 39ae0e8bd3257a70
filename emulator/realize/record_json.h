#pragma once
// Readers shared by the record's JSON mappings (record.cc,
// record_policy.cc): each throws a UserError naming what does not parse.
// Private to emulator/realize/.

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "knetlab/net/ipv4.h"
#include "knetlab/util/enum_names.h"
#include "knetlab/util/error.h"

namespace knl::record_json {

template <typename E>
E enum_at(const nlohmann::json& j, const char* key) {
  auto word = j.at(key).get<std::string>();
  auto value = enum_from_name<E>(word);
  if (!value) throw UserError(fmt::format("unknown {} \"{}\" in the record", key, word));
  return *value;
}

inline Ipv4 ip_at(const nlohmann::json& j, const char* key) {
  auto text = j.at(key).get<std::string>();
  auto ip = Ipv4::parse(text);
  if (!ip) throw UserError(fmt::format("\"{}\" is not an address: \"{}\"", key, text));
  return *ip;
}

inline Ipv4Net net_of(const std::string& text) {
  auto net = Ipv4Net::parse(text);
  if (!net) throw UserError(fmt::format("\"{}\" is not a network", text));
  return *net;
}

}  // namespace knl::record_json
