#pragma once
// nftables through libnftables: the same language as `nft -f`, applied as one
// atomic transaction per call inside a lab namespace.

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

/// Kernel::nft_load's work: `loads` in forked children, at most `jobs` at a
/// time. Fork or pipe failures throw SystemError.
std::vector<NftLoadResult> nft_load_in_children(const std::vector<NftLoad>& loads, size_t jobs);

}  // namespace knl
