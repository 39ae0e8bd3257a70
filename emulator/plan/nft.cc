#include "knetlab/plan/nft.h"

#include <fmt/format.h>

#include <algorithm>

namespace knl {

void NftTransaction::change(const NftPiece& from, const NftPiece& to) {
  const std::string t = !to.table.empty() ? to.table : from.table;
  auto table_of = [&](const std::string& name) { return table_of_ ? table_of_(name, t) : t; };
  for (const auto& [key, value] : from.elements) {
    auto it = to.elements.find(key);
    if (it == to.elements.end() || it->second != value)
      delete_elements_ += fmt::format("delete element {} {} {{ {} }}\n", table_of(key.first),
                                      key.first, key.second);
  }
  for (const auto& [key, value] : to.elements) {
    auto it = from.elements.find(key);
    if (it == from.elements.end() || it->second != value)
      add_elements_ += fmt::format("add element {} {} {{ {}{} }}\n", table_of(key.first), key.first,
                                   key.second, value);
  }
  for (const auto& [name, decl] : to.sets)
    if (!from.sets.count(name)) {
      add_objects_ += fmt::format("add set {} {} {}\n", table_of(name), name, decl);
      created_.push_back(table_of(name) + " " + name);
    }
  for (const auto& [name, rules] : to.chains) {
    auto it = from.chains.find(name);
    if (it != from.chains.end() && it->second == rules) continue;
    const auto table = table_of(name);
    if (it == from.chains.end()) {
      add_objects_ += fmt::format("add chain {} {}\n", table, name);
      created_.push_back(table + " " + name);
    } else {
      rules_ += fmt::format("flush chain {} {}\n", table, name);
    }
    // A block's rules cannot name a set: libnftables would need the set
    // cache that the block form skips.
    bool names_set = std::any_of(rules.begin(), rules.end(), [](const std::string& r) {
      return r.find('@') != std::string::npos;
    });
    if (!blocks_ || names_set)
      for (const auto& rule : rules)
        rules_ += fmt::format("add rule {} {} {}\n", table, name, rule);
    else if (!rules.empty())
      rules_ += fmt::format("add chain {} {} {{ {} ; }}\n", table, name, fmt::join(rules, " ; "));
  }
  for (const auto& [name, rules] : from.chains)
    if (!to.chains.count(name)) {
      rules_ += fmt::format("flush chain {} {}\n", table_of(name), name);
      stale_chains_.push_back(table_of(name) + " " + name);
    }
  for (const auto& [name, decl] : from.sets)
    if (!to.sets.count(name)) stale_sets_.push_back(table_of(name) + " " + name);
}

bool NftTransaction::empty() const {
  return delete_elements_.empty() && add_objects_.empty() && rules_.empty() &&
         add_elements_.empty();
}

std::string NftTransaction::str() const {
  return delete_elements_ + add_objects_ + rules_ + add_elements_;
}

std::string nft_delete(const std::vector<std::string>& chains,
                       const std::vector<std::string>& sets) {
  std::string out;
  for (const auto& c : chains) out += fmt::format("delete chain {}\n", c);
  for (const auto& s : sets) out += fmt::format("delete set {}\n", s);
  return out;
}

}  // namespace knl
