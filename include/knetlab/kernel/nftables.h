#pragma once
// nftables through libnftables: the same language as `nft -f`, applied as one
// atomic transaction per call inside a lab namespace.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "knetlab/kernel/fd.h"
#include "knetlab/kernel/kernel.h"

struct nft_ctx;

namespace knl {

/// A libnftables context bound to one network namespace (its netlink socket
/// is opened there). Reused across syncs.
class NftSession {
 public:
  explicit NftSession(const std::string& netns);
  ~NftSession();
  NftSession(const NftSession&) = delete;
  NftSession& operator=(const NftSession&) = delete;

  /// Runs `commands` as one transaction; SystemError with nft's own message
  /// (naming the failing line) when the kernel or the parser refuses.
  void run(const std::string& commands);
  /// Runs a listing command and returns what nft prints.
  std::string list(const std::string& command);

 private:
  std::string netns_;
  Fd fd_;
  nft_ctx* ctx_ = nullptr;
};

/// Tables of one namespace as the kernel holds them, dumped once (through
/// libnftnl) to be copied into other namespaces (NftCopy), part by part as the
/// dump goes: copies may start while it runs.
class NftTablesCopy {
 public:
  /// A copy of `tables` (family ip) of netns `from`, made by dump().
  NftTablesCopy(const std::string& from, const std::vector<std::string>& tables);
  ~NftTablesCopy();
  NftTablesCopy(const NftTablesCopy&) = delete;
  NftTablesCopy& operator=(const NftTablesCopy&) = delete;

  /// Dumps the tables, publishing each transaction of the copy as it is
  /// rendered; the calling thread stays where it is. A failure (a table
  /// missing, a dump refused: SystemError naming the step and errno) is kept
  /// and thrown by into().
  void dump() noexcept;

  /// Replaces the tables in the calling thread's namespace (`netns`, named
  /// in errors) with the copy, the sets of `replaced` with those elements
  /// instead of the dumped ones; sends each part as soon as dump() published
  /// it, waiting for dump(), which must have started or start on another
  /// thread. Sets that a rule updates (dynamic) are copied empty. SystemError
  /// naming errno when the kernel refuses or the dump failed; a refused
  /// transaction leaves nothing of itself, the earlier ones stay.
  void into(const std::string& netns, const NftSetElements& replaced) const;

 private:
  struct Rendered;
  std::string from_;
  std::vector<std::string> tables_;
  std::unique_ptr<Rendered> rendered_;
};

/// The kept libnftables context of each namespace, by its name.
using NftSessions = std::map<std::string, std::unique_ptr<NftSession>>;

/// Kernel::nft_load's work: at most `jobs` loads at a time, each on a thread of
/// its own, which does the load's copy itself and runs its transactions in a
/// forked child, or, for a load that copies nothing and is below
/// kNftLoadInChildBytes, in this process through the namespace's context in
/// `sessions` (made if missing, kept afterwards: a context closed right after a
/// transaction that deleted objects waits for the kernel to free them); each
/// copy's source is dumped on a further thread while the loads that copy it
/// start. Fork or pipe failures throw SystemError once the loads under way are
/// done, and no further load starts.
std::vector<NftLoadResult> nft_load_at_once(const std::vector<NftLoad>& loads, size_t jobs,
                                            NftSessions& sessions);

}  // namespace knl
