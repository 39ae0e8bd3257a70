#include <fmt/format.h>

#include "knetlab/plan/policy.h"
#include "knetlab/realize/reconcilers.h"
#include "knetlab/util/error.h"

namespace knl {

bool PolicyReconciler::sync(const LabState& lab, const NodePlan& node, NodeTable& table,
                            std::string& failure) {
  const bool first = !table.loaded;
  NftTransaction tx(!first);
  tx.change(table.applied, table.desired);
  if (!first && tx.empty()) return true;
  try {
    effects_.kernel.nft_apply(node.netns,
                              (first ? policy_nft_base(lab.plan.lab, node.name) : "") + tx.str());
  } catch (const SystemError& e) {
    failure = e.what();
    table.retry = true;
    return false;
  }
  table.applied = table.desired;
  table.loaded = true;
  table.retry = false;
  for (const auto& c : tx.stale_chains()) table.stale_chains.insert(c);
  for (const auto& s : tx.stale_sets()) table.stale_sets.insert(s);
  for (const auto& c : tx.created()) table.stale_chains.erase(c), table.stale_sets.erase(c);
  // The context learnt every object of the first load: a new one starts empty.
  if (first) effects_.kernel.nft_renew(node.netns);
  return true;
}

void PolicyReconciler::reconcile(LabState& lab, Changes& changes) {
  if (!changes.all && changes.pods.empty()) return;
  if (lab.plan.network_policies.empty() && tables_.empty()) return;
  auto start = Clock::now();
  std::vector<std::string> names;
  for (const auto& n : lab.plan.nodes) names.push_back(n.name);
  auto desired = policy_nft(policy_world(lab.plan), names);
  std::string first_failure;
  size_t synced = 0;
  for (const auto& node : lab.plan.nodes) {
    auto& table = tables_[node.name];
    table.desired = std::move(desired[node.name]);
    std::string failure;
    auto before = table.applied.chains.size() + table.applied.elements.size();
    if (!sync(lab, node, table, failure)) {
      effects_.event(
          fmt::format("network policy: node {} refused its rules, tried again on the next tick: {}",
                      node.name, failure));
      if (first_failure.empty()) first_failure = failure;
      continue;
    }
    if (table.applied.chains.size() + table.applied.elements.size() != before || changes.all)
      ++synced;
  }
  if (synced)
    effects_.event(
        fmt::format("network policy: {} policies, rules of {} node(s) in {:.1f} ms",
                    lab.plan.network_policies.size(), synced,
                    std::chrono::duration<double, std::milli>(Clock::now() - start).count()));
  if (!first_failure.empty()) throw SystemError(first_failure, 0);
}

void PolicyReconciler::tick(LabState& lab, Changes&) {
  for (const auto& node : lab.plan.nodes) {
    auto it = tables_.find(node.name);
    if (it == tables_.end()) continue;
    auto& table = it->second;
    std::string failure;
    if (table.retry && sync(lab, node, table, failure))
      effects_.event(fmt::format("network policy: node {} has its rules again", node.name));
    if (table.stale_chains.empty() && table.stale_sets.empty()) continue;
    try {
      effects_.kernel.nft_apply(node.netns,
                                nft_delete({table.stale_chains.begin(), table.stale_chains.end()},
                                           {table.stale_sets.begin(), table.stale_sets.end()}));
      effects_.kernel.nft_renew(node.netns);
    } catch (const std::exception& e) {
      effects_.event(
          fmt::format("network policy: stale chains of {} stay: {}", node.name, e.what()));
    }
    table.stale_chains.clear(), table.stale_sets.clear();
  }
}

}  // namespace knl
