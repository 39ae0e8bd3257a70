#pragma once
// Closed sets are enums, each with one table of the words that name its
// values: the topology's words are parsed into the enum once, and the same
// words are printed back in records, listings and rules.

#include <fmt/format.h>

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace knl {

/// Specialised for each enum E: `static constexpr std::array<std::pair<E,
/// std::string_view>, N> table`, every value once, in the order messages list them.
template <typename E>
struct EnumNames;

template <typename E>
concept NamedEnum = requires {
  EnumNames<E>::table;
};

/// The word for `value`.
template <typename E>
constexpr std::string_view enum_name(E value) {
  for (const auto& [v, word] : EnumNames<E>::table)
    if (v == value) return word;
  return "?";
}

/// The value named `word`, if any.
template <typename E>
constexpr std::optional<E> enum_from_name(std::string_view word) {
  for (const auto& [v, name] : EnumNames<E>::table)
    if (name == word) return v;
  return std::nullopt;
}

/// Every word of E, in the table's order.
template <typename E>
std::vector<std::string> enum_words() {
  std::vector<std::string> out;
  for (const auto& [v, word] : EnumNames<E>::table) out.emplace_back(word);
  return out;
}

}  // namespace knl

/// Named enums print as their word.
template <knl::NamedEnum E>
struct fmt::formatter<E, char> : fmt::formatter<std::string_view, char> {
  auto format(E value, format_context& ctx) const {
    return fmt::formatter<std::string_view, char>::format(knl::enum_name(value), ctx);
  }
};
