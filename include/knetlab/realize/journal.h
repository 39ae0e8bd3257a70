#pragma once
// The lab's journal: one line per thing created, appended *before* it is
// created (namespaces, folders, mounts) or the moment it exists (processes), so that
// destroy can undo a deploy that crashed, was killed or failed half-way.

#include <memory>
#include <string>
#include <vector>

#include "knetlab/kernel/fd.h"
#include "knetlab/runtime/runtime.h"

namespace knl {

/// The name of the lab supervisor's process entry (runtime/supervisor.h).
inline constexpr const char* kSupervisorEntry = "supervisor";
/// The process holding the mount namespace every pod's is copied from.
inline constexpr const char* kMountTemplateEntry = "mount-template";

struct JournalEntry {
  enum class Kind { netns, dir, process, mount, cni } kind;
  /// netns name, folder, mount point, what the process is, or the cache file
  /// of a pod's CNI attachment (realize/cni.h)
  std::string name;
  ProcessRecord process;
  auto operator<=>(const JournalEntry&) const = default;
};

class Journal {
 public:
  /// Appends to the file at `path` (created if missing).
  static Journal open_file(const std::string& path);
  /// Keeps entries in memory only (tests).
  static Journal in_memory();
  /// Every entry of the file at `path`; empty when it does not exist.
  static std::vector<JournalEntry> read_file(const std::string& path);

  void record(const JournalEntry& entry);
  /// Records `entries` with one write: a lab's namespaces, all journaled
  /// before the first is made.
  void record(const std::vector<JournalEntry>& entries);
  /// Takes back `entry` (recorded last for it) when its creation failed and
  /// left nothing: a namespace whose name was taken is not ours to remove.
  void cancel(const JournalEntry& entry);
  const std::vector<JournalEntry>& entries() const { return entries_; }

 private:
  void append(const std::string& line);

  Fd fd_;
  std::vector<JournalEntry> entries_;
};

}  // namespace knl
