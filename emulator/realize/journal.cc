#include <fcntl.h>

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>

#include "knetlab/realize/journal.h"
#include "knetlab/util/error.h"

namespace knl {

namespace {
// Each kind's word in the file.
constexpr std::pair<JournalEntry::Kind, const char*> kKindWords[] = {
    {JournalEntry::Kind::netns, "netns"},     {JournalEntry::Kind::dir, "dir"},
    {JournalEntry::Kind::process, "process"}, {JournalEntry::Kind::mount, "mount"},
    {JournalEntry::Kind::cni, "cni"},
};

const char* kind_word(JournalEntry::Kind kind) {
  for (const auto& [k, word] : kKindWords)
    if (k == kind) return word;
  return "";
}
}  // namespace

Journal Journal::open_file(const std::string& path) {
  Journal j;
  j.fd_.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!j.fd_) throw errno_error("open journal", path, "", errno);
  j.entries_ = read_file(path);
  return j;
}

Journal Journal::in_memory() {
  return Journal();
}

std::vector<JournalEntry> Journal::read_file(const std::string& path) {
  std::vector<JournalEntry> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string kind;
    JournalEntry e{};
    words >> kind;
    bool cancel = kind == "cancel";
    if (cancel) words >> kind;
    auto known = std::find_if(std::begin(kKindWords), std::end(kKindWords),
                              [&](const auto& kw) { return kind == kw.second; });
    if (known == std::end(kKindWords)) continue;  // a line cut short by a crash
    e.kind = known->first;
    if (e.kind == JournalEntry::Kind::process) words >> e.process.pid >> e.process.start_time;
    words >> e.name;
    if (words.fail()) continue;
    if (!cancel) {
      out.push_back(e);
    } else if (auto it = std::find(out.rbegin(), out.rend(), e); it != out.rend()) {
      out.erase(std::next(it).base());
    }
  }
  return out;
}

namespace {
std::string journal_line(const JournalEntry& entry) {
  return entry.kind == JournalEntry::Kind::process
             ? fmt::format("process {} {} {}\n", entry.process.pid, entry.process.start_time,
                           entry.name)
             : fmt::format("{} {}\n", kind_word(entry.kind), entry.name);
}
}  // namespace

void Journal::append(const std::string& line) {
  if (!fd_) return;
  if (::write(fd_.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    throw errno_error("write journal", line, "", errno);
}

void Journal::record(const JournalEntry& entry) {
  entries_.push_back(entry);
  append(journal_line(entry));
}

void Journal::record(const std::vector<JournalEntry>& entries) {
  std::string lines;
  for (const auto& entry : entries) lines += journal_line(entry);
  entries_.insert(entries_.end(), entries.begin(), entries.end());
  append(lines);
}

void Journal::cancel(const JournalEntry& entry) {
  if (auto it = std::find(entries_.rbegin(), entries_.rend(), entry); it != entries_.rend())
    entries_.erase(std::next(it).base());
  append("cancel " + journal_line(entry));
}

}  // namespace knl
