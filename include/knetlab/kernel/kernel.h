#pragma once
// The narrow interface through which a lab changes the kernel: namespaces,
// links, addresses, routes, neighbours, sysctls (rtnetlink through libnl,
// from sockets opened inside each namespace) and nftables transactions
// (libnftables). Tests use a recording fake (tests/unit/fakes.h).
//
/// Every call either does all it says or throws SystemError naming the
/// operation, the object, the namespace and the errno text. Deleting what is
/// already gone succeeds.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "knetlab/net/objects.h"

namespace knl {

/// Tables (family ip) copied from one namespace into another as the kernel
/// holds them: a node's first load then skips compiling the same text again.
struct NftCopy {
  std::string from;                 // the namespace whose tables are copied
  std::vector<std::string> tables;  // every one of them must exist there
  NftSetElements elements;          // sets whose elements are these, not the copied ones
};

/// Transactions of a load (or of a later sync) that total this many bytes, or
/// follow a copy, run in a forked child, whose exit frees libnftables' memory
/// for them; smaller ones run in the supervisor through the namespace's kept
/// context, which spares the fork and the wait of a context closed right after
/// a transaction that deleted objects (its close waits for the kernel to free
/// them).
constexpr size_t kNftLoadInChildBytes = 256 * 1024;

/// A namespace's nftables transactions, run in order by Kernel::nft_load.
struct NftLoad {
  std::string netns;
  /// Renders the transactions; called just before this load starts, on the
  /// load's own thread (loads render side by side), so that only the loads
  /// under way hold their text.
  std::function<std::vector<std::string>()> transactions;
  /// If set, done first and counted as the first transaction applied: the
  /// copy replaces those tables in `netns`, in a few transactions of its own.
  /// Its source must not be loaded by the same Kernel::nft_load call.
  std::optional<NftCopy> copy;
};

/// How far an NftLoad went: all its transactions, or `applied` of them and
/// then the refusal of the next (nft's message, as nft_apply throws it).
struct NftLoadResult {
  size_t applied = 0;
  std::string error;  // empty when every transaction was applied
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  /// Creates every namespace of `namespaces` (several at a time, in any
  /// order), each with its loopback up; a pod's gives the links created in it
  /// no IPv6 link-local address. `inside(i)`, if given, runs on the calling
  /// thread as soon as namespaces[i] is made, while the next ones are being
  /// made, and may call the add_ and set_ methods. `created[i]` says whether
  /// namespaces[i] was, also when it throws (one whose `inside` threw was).
  virtual void create_netns(const std::vector<NetnsSpec>& namespaces, std::vector<bool>& created,
                            const std::function<void(size_t)>& inside = {}) = 0;
  virtual void delete_netns(const std::string& name) = 0;
  virtual void add_link(const LinkSpec& link) = 0;
  virtual void add_address(const AddressSpec& address) = 0;
  virtual void add_route(const RouteSpec& route) = 0;
  virtual void delete_route(const std::string& netns, const Ipv4Net& dst) = 0;
  virtual void add_neighbour(const NeighbourSpec& neighbour) = 0;
  virtual void add_fdb(const FdbSpec& fdb) = 0;
  virtual void set_sysctl(const SysctlSpec& sysctl) = 0;
  /// Closes the handles kept per namespace (an fd and a socket each): a lab
  /// of a thousand pods must not make every later child process inherit them.
  virtual void release_handles() = 0;
  /// The IPv4 routes of `netns`'s main table.
  virtual std::vector<KernelRoute> list_routes(const std::string& netns) = 0;

  /// Runs `script` (the language of `nft -f`) as one atomic transaction in
  /// `netns`, through a libnftables context kept for that namespace;
  /// SystemError with nft's own message (naming the line) when it is refused,
  /// and then nothing of it is applied.
  virtual void nft_apply(const std::string& netns, const std::string& script) = 0;
  /// Replaces the context kept for `netns` with a new one.
  /// A context keeps what it learnt of the ruleset and frees it at its next
  /// run once the ruleset changed, which after a full load or a delete by
  /// name costs that run as much as the ruleset is large.
  virtual void nft_renew(const std::string& netns) = 0;
  /// Runs every load, as many at once as there are CPUs, each on a thread of
  /// its own: a load's copy goes over netlink from that thread, its
  /// transactions run in a child process of their own, where the copy of the
  /// ruleset that libnftables builds stays, or, when the load copies nothing
  /// and they are smaller than kNftLoadInChildBytes, in this process (one
  /// such load at a time) through a new context for the namespace, which
  /// nft_apply then uses. A result per load, in order; a child that dies is a refusal
  /// naming its signal. The contexts kept for the loads' namespaces before the
  /// call are dropped.
  virtual std::vector<NftLoadResult> nft_load(const std::vector<NftLoad>& loads) = 0;
};

/// The real kernel. Its methods are called from one thread at a time.
std::unique_ptr<Kernel> make_netlink_kernel();

}  // namespace knl
