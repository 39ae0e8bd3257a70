#pragma once
// nftables tables kept in pieces: each piece is what one object (a service,
// a policy's node) contributes to a table, and a transaction turns the
// pieces a node has into the ones it needs with the fewest commands. Pure
// text; the Kernel applies it (Kernel::nft_apply).

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace knl {

/// What one object contributes to a table.
struct NftPiece {
  std::string table;                                       // "ip kube-proxy", …
  std::map<std::string, std::vector<std::string>> chains;  // chain -> rules, in order
  std::map<std::string, std::string> sets;                 // set -> its declaration ("{ … }")
  /// (map or set, key) -> value: " : VERDICT" for a map, empty for a set.
  std::map<std::pair<std::string, std::string>, std::string> elements;
};

/// The table a piece's chain, set or map named `name` lives in, given the
/// piece's own `table` (kube-proxy's shards keep some maps in the first).
using NftTableOf = std::function<std::string(const std::string& name, const std::string& table)>;

/// One transaction, built from per-piece changes: element removals first,
/// then new chains and sets, every changed chain's rules, and element
/// additions. A chain's rules are written as one `add chain NAME { … }`
/// block, which libnftables applies without first fetching the whole table
/// (an `add rule` makes it list every chain and set).
/// Chains and sets that are no longer used are flushed here and deleted later
/// (nft_delete), as kube-proxy does with its stale chains: a delete also
/// makes libnftables fetch the table.
class NftTransaction {
 public:
  /// `blocks` false writes `add rule` lines instead: faster for a first,
  /// full load, where the fetch happens once anyway. Without `table_of`,
  /// everything of a piece is in its own table.
  explicit NftTransaction(bool blocks = true, NftTableOf table_of = {})
      : blocks_(blocks), table_of_(std::move(table_of)) {}
  /// Adds what turns `from` into `to` (either may be empty).
  void change(const NftPiece& from, const NftPiece& to);
  bool empty() const;
  std::string str() const;
  /// Flushed, to be deleted by a later transaction; each as "TABLE NAME".
  const std::vector<std::string>& stale_chains() const { return stale_chains_; }
  const std::vector<std::string>& stale_sets() const { return stale_sets_; }
  /// Chains and sets this transaction (re)creates: no longer stale.
  const std::vector<std::string>& created() const { return created_; }

 private:
  bool blocks_;
  NftTableOf table_of_;
  std::string delete_elements_, add_objects_, rules_, add_elements_;
  std::vector<std::string> stale_chains_, stale_sets_, created_;
};

/// Deletes stale chains, then stale sets (nothing refers to them any more);
/// each given as "TABLE NAME".
std::string nft_delete(const std::vector<std::string>& chains,
                       const std::vector<std::string>& sets);

}  // namespace knl
