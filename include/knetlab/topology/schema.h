#pragma once
// A thin reader over toml11 values that knows where each value was written.
// Every accessor checks the type and range of what it reads and throws a
// UserError "FILE:LINE:COLUMN: what is wrong; what to write instead".

#include <toml.hpp>

#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "knetlab/topology/model.h"

namespace knl {

using TomlValue = toml::basic_value<toml::discard_comments, std::map, std::vector>;

/// Where `value` was written; `key`, when given, moves the column to the key.
Where where_of(const TomlValue& value, const std::string& key = "");

/// Throws the UserError for `where`, quoting the source line under the message.
[[noreturn]] void fail_at(const Where& where, const std::string& line_text,
                          const std::string& message);
[[noreturn]] void fail_at(const TomlValue& value, const std::string& message,
                          const std::string& key = "");

/// One TOML table of the file. `context` names it in messages ("[[nodes]]").
class TableReader {
 public:
  TableReader(const TomlValue& value, std::string context);

  /// Rejects keys not in `known`, naming the nearest known one.
  void allow_only(std::initializer_list<const char*> known) const;

  bool has(const std::string& key) const;
  const TomlValue* find(const std::string& key) const;
  const TomlValue& value() const { return *value_; }
  const std::string& context() const { return context_; }
  Where where() const { return where_of(*value_); }

  std::string required_string(const std::string& key) const;
  std::string string(const std::string& key, const std::string& fallback) const;
  std::string one_of(const std::string& key, const std::string& fallback,
                     const std::vector<std::string>& allowed) const;
  /// One of E's words (util/enum_names.h), as its value; `fallback` when absent.
  template <typename E>
  E choice(const std::string& key, E fallback) const {
    return *enum_from_name<E>(one_of(key, std::string(enum_name(fallback)), enum_words<E>()));
  }
  int64_t integer(const std::string& key, int64_t fallback, int64_t min, int64_t max) const;
  bool boolean(const std::string& key, bool fallback) const;
  std::vector<std::string> strings(const std::string& key) const;
  /// A table of Kubernetes labels (is_label_key, is_label_value).
  Labels labels(const std::string& key) const;
  /// A table of strings whose keys are label keys' syntax, values free.
  Labels annotations(const std::string& key) const;
  Ipv4Net cidr(const std::string& key, const std::string& fallback) const;
  std::optional<TableReader> table(const std::string& key) const;
  /// An array of tables (`[[key]]` or `key = [{...}]`); empty when absent.
  std::vector<TableReader> tables(const std::string& key) const;

  /// Names the value of `key` (or the table) in an error.
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

 private:
  const TomlValue* value_;
  std::string context_;
};

/// `text` as a message may quote it: at most 40 characters, control
/// characters and quotes escaped, "..." when it was cut.
std::string excerpt(std::string_view text);

/// The closest of `candidates` to `word`, or "" when none is close.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace knl
