#include "knetlab/topology/schema.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <string_view>
#include <vector>

#include "knetlab/topology/parse.h"
#include "knetlab/util/error.h"

namespace knl {

std::string Where::str() const {
  return fmt::format("{}:{}:{}", file, line, column);
}

namespace {

const char* type_name(toml::value_t type) {
  switch (type) {
    case toml::value_t::boolean:
      return "a boolean";
    case toml::value_t::integer:
      return "an integer";
    case toml::value_t::floating:
      return "a float";
    case toml::value_t::string:
      return "a string";
    case toml::value_t::array:
      return "an array";
    case toml::value_t::table:
      return "a table";
    case toml::value_t::empty:
      return "nothing";
    default:
      return "a date or time";
  }
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      bool same = std::tolower(a[i - 1]) == std::tolower(b[j - 1]);
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string line_text_of(const TomlValue& value) {
  return value.location().line_str();
}

// Where each line of a file starts, found once per file: toml11 counts a
// value's line from the start of the file every time it is asked, which
// makes a large file's validation quadratic.
const std::vector<size_t>& line_starts(const toml::detail::region& region) {
  thread_local std::shared_ptr<const std::vector<char>> source;
  thread_local std::vector<size_t> starts;
  if (source != region.source()) {
    source = region.source();
    starts = {0};
    for (size_t i = 0; i < source->size(); ++i)
      if ((*source)[i] == '\n') starts.push_back(i + 1);
  }
  return starts;
}

}  // namespace

std::string excerpt(std::string_view text) {
  constexpr size_t kMax = 40;
  std::string out;
  for (char c : text.substr(0, kMax)) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\')
      out += fmt::format("\\{}", c);
    else if (u < 0x20 || u == 0x7f)
      out += fmt::format("\\x{:02x}", u);
    else
      out += c;
  }
  if (text.size() > kMax) out += "...";
  return out;
}

std::string nearest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    size_t d = edit_distance(word, candidate);
    if (d < best_distance) best_distance = d, best = candidate;
  }
  return best;
}

Where where_of(const TomlValue& value, const std::string& key) {
  const auto* region = dynamic_cast<const toml::detail::region*>(toml::detail::get_region(value));
  if (!region) {
    auto loc = value.location();
    return {loc.file_name(), loc.line(), loc.column()};
  }
  const auto& starts = line_starts(*region);
  const auto offset = static_cast<size_t>(region->first() - region->begin());
  const auto line = std::upper_bound(starts.begin(), starts.end(), offset) - starts.begin();
  const auto start = starts[static_cast<size_t>(line - 1)];
  Where where{region->name(), static_cast<unsigned>(line),
              static_cast<unsigned>(offset - start + 1)};
  if (!key.empty()) {
    // toml11 keeps the location of values, not keys: find the key on the line.
    std::string_view text(&*region->begin() + start, offset - start);
    auto pos = text.rfind(key);
    if (pos != std::string_view::npos) where.column = static_cast<unsigned>(pos + 1);
  }
  return where;
}

void fail_at(const Where& where, const std::string& line_text, const std::string& message) {
  std::string text = fmt::format("{}: {}", where.str(), message);
  if (!line_text.empty() && where.line > 0) {
    // A long line is shown as a window around the column, control
    // characters as '?', so that any input makes a short, one-line picture.
    constexpr size_t kShown = 100;
    size_t caret = std::min<size_t>(where.column > 0 ? where.column - 1 : 0, line_text.size());
    size_t start = line_text.size() > kShown && caret > kShown / 2 ? caret - kShown / 2 : 0;
    std::string shown = start > 0 ? "..." : "";
    for (char c : std::string_view(line_text).substr(start, kShown))
      shown += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c;
    if (start + kShown < line_text.size()) shown += "...";
    caret = caret - start + (start > 0 ? 3 : 0);
    text += fmt::format("\n  {:>4} | {}\n       | {}^", where.line, shown, std::string(caret, ' '));
  }
  throw UserError(text);
}

void fail_at(const TomlValue& value, const std::string& message, const std::string& key) {
  fail_at(where_of(value, key), line_text_of(value), message);
}

TableReader::TableReader(const TomlValue& value, std::string context)
    : value_(&value), context_(std::move(context)) {
  if (!value.is_table())
    fail_at(value, fmt::format("{} must be a table, not {}", context_, type_name(value.type())));
}

void TableReader::allow_only(std::initializer_list<const char*> known) const {
  std::vector<std::string> names(known.begin(), known.end());
  for (const auto& [key, v] : value_->as_table()) {
    if (std::find(names.begin(), names.end(), key) != names.end()) continue;
    auto guess = nearest(key, names);
    std::string hint = guess.empty() ? fmt::format("known keys: {}", fmt::join(names, ", "))
                                     : fmt::format("did you mean \"{}\"?", guess);
    fail_at(v,
            fmt::format("unknown key \"{}\" {}; {}", excerpt(key),
                        context_.empty() ? "at the top of the file" : "in " + context_, hint),
            key);
  }
}

bool TableReader::has(const std::string& key) const {
  return find(key) != nullptr;
}

const TomlValue* TableReader::find(const std::string& key) const {
  const auto& table = value_->as_table();
  auto it = table.find(key);
  return it == table.end() ? nullptr : &it->second;
}

void TableReader::fail(const std::string& key, const std::string& message) const {
  if (const auto* v = find(key)) fail_at(*v, message, key);
  fail_at(*value_, message);
}

namespace {
const TomlValue& expect(const TableReader& t, const std::string& key, toml::value_t type) {
  const auto& v = *t.find(key);
  if (v.type() != type)
    fail_at(v,
            fmt::format("\"{}\" in {} must be {}, not {}", key, t.context(), type_name(type),
                        type_name(v.type())),
            key);
  return v;
}
}  // namespace

std::string TableReader::required_string(const std::string& key) const {
  if (!has(key)) fail_at(*value_, fmt::format("{} needs \"{}\"", context_, key));
  return string(key, "");
}

std::string TableReader::string(const std::string& key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  return expect(*this, key, toml::value_t::string).as_string().str;
}

std::string TableReader::one_of(const std::string& key, const std::string& fallback,
                                const std::vector<std::string>& allowed) const {
  auto s = string(key, fallback);
  if (std::find(allowed.begin(), allowed.end(), s) != allowed.end()) return s;
  std::vector<std::string> quoted;
  for (const auto& n : allowed) quoted.push_back("\"" + n + "\"");
  auto guess = nearest(s, allowed);
  fail(key, fmt::format("\"{}\" = \"{}\" is not allowed; write one of {}{}", key, excerpt(s),
                        fmt::join(quoted, ", "),
                        guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess)));
}

int64_t TableReader::integer(const std::string& key, int64_t fallback, int64_t min,
                             int64_t max) const {
  if (!has(key)) return fallback;
  auto n = expect(*this, key, toml::value_t::integer).as_integer();
  if (n < min || n > max)
    fail(key, fmt::format("\"{}\" = {} is out of range; write a number from {} to {}", key, n, min,
                          max));
  return n;
}

bool TableReader::boolean(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  return expect(*this, key, toml::value_t::boolean).as_boolean();
}

std::vector<std::string> TableReader::strings(const std::string& key) const {
  std::vector<std::string> out;
  if (!has(key)) return out;
  for (const auto& v : expect(*this, key, toml::value_t::array).as_array()) {
    if (!v.is_string())
      fail_at(v, fmt::format("\"{}\" in {} must be an array of strings, not of {}", key, context_,
                             type_name(v.type())));
    out.push_back(v.as_string().str);
  }
  return out;
}

Labels TableReader::labels(const std::string& key) const {
  auto out = annotations(key);
  for (const auto& [k, v] : out)
    if (!is_label_value(v))
      fail_at(expect(*this, key, toml::value_t::table).as_table().at(k),
              fmt::format("label \"{}\" = \"{}\" is not a Kubernetes label value: empty, or at "
                          "most 63 characters of letters, digits, '-', '_' and '.', starting "
                          "and ending with a letter or digit",
                          k, excerpt(v)),
              k);
  return out;
}

Labels TableReader::annotations(const std::string& key) const {
  Labels out;
  if (!has(key)) return out;
  for (const auto& [k, v] : expect(*this, key, toml::value_t::table).as_table()) {
    if (!is_label_key(k))
      fail_at(v,
              fmt::format("key \"{}\" in \"{}\" is not a Kubernetes label key: at most 63 "
                          "characters of letters, digits, '-', '_' and '.', starting and ending "
                          "with a letter or digit, after an optional DNS prefix and '/'",
                          excerpt(k), key),
              k);
    if (!v.is_string())
      fail_at(v,
              fmt::format("\"{}\" in \"{}\" must be a string, not {}", k, key, type_name(v.type())),
              k);
    out[k] = v.as_string().str;
  }
  return out;
}

Ipv4Net TableReader::cidr(const std::string& key, const std::string& fallback) const {
  auto text = string(key, fallback);
  auto net = Ipv4Net::parse(text);
  if (!net) {
    std::string hint = "write a network such as \"10.244.0.0/16\"";
    if (auto slash = text.find('/'); slash != std::string::npos) {
      auto ip = Ipv4::parse(text.substr(0, slash));
      int prefix = std::atoi(text.c_str() + slash + 1);
      if (ip && prefix >= 0 && prefix <= 32) {
        Ipv4Net masked{Ipv4{ip->value & Ipv4Net{*ip, prefix}.mask()}, prefix};
        hint = fmt::format("host bits are set; did you mean \"{}\"?", masked.str());
      }
    }
    fail(key, fmt::format("\"{}\" = \"{}\" is not an IPv4 network; {}", key, excerpt(text), hint));
  }
  return *net;
}

std::optional<TableReader> TableReader::table(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return TableReader(expect(*this, key, toml::value_t::table), context_ + "." + key);
}

std::vector<TableReader> TableReader::tables(const std::string& key) const {
  std::vector<TableReader> out;
  if (!has(key)) return out;
  std::string ctx = context_.empty() ? "[[" + key + "]]" : context_ + "." + key;
  for (const auto& v : expect(*this, key, toml::value_t::array).as_array()) {
    if (!v.is_table())
      fail_at(
          v, fmt::format("each entry of \"{}\" must be a table, not {}", key, type_name(v.type())));
    out.emplace_back(v, ctx);
  }
  return out;
}

}  // namespace knl
