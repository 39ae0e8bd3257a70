#include <fmt/format.h>

#include "knetlab/realize/reconcilers.h"
#include "knetlab/util/error.h"

namespace knl {

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Nodes whose first load compiles its text, at once (see first_loads): one
// per CPU of the machines knetlab runs on.
constexpr size_t kCompiledLoads = 2;

// The scripts of `steps`, moved out for Kernel::nft_load.
std::vector<std::string> take_scripts(std::vector<NftStep>& steps) {
  std::vector<std::string> scripts;
  for (auto& step : steps) scripts.push_back(std::move(step.script));
  return scripts;
}

}  // namespace

struct KubeProxyReconciler::NodeProxy {
  ProxyNode node;
  std::string netns;
  bool loaded = false;                             // the first load went through
  std::map<std::string, NftPiece> applied;         // nftables: by service key
  IptablesSynced iptables;                         // iptables: what the last sync left
  std::set<std::string> stale_chains, stale_sets;  // nftables: flushed, deleted on a tick
  std::set<std::string> retry;                     // services whose sync was refused

  /// Records the first `result.applied` of `steps`; the services of the
  /// others are retried. False when not all were applied.
  bool took(std::vector<NftStep>& steps, const NftLoadResult& result) {
    for (size_t k = 0; k < steps.size(); ++k)
      if (k < result.applied)
        take(steps[k]);
      else
        for (const auto& [key, rules] : steps[k].services) retry.insert(key);
    return result.applied == steps.size();
  }

  /// Records what `step` did, once the kernel took it.
  void take(NftStep& step) {
    for (auto& [key, rules] : step.services) {
      applied[key] = std::move(rules);
      retry.erase(key);
    }
    for (const auto& c : step.stale_chains) stale_chains.insert(c);
    for (const auto& c : step.stale_sets) stale_sets.insert(c);
    for (const auto& c : step.created) stale_chains.erase(c), stale_sets.erase(c);
  }
};

KubeProxyReconciler::KubeProxyReconciler(Effects& effects) : effects_(effects) {}
KubeProxyReconciler::~KubeProxyReconciler() = default;

bool KubeProxyReconciler::sync(const LabState& lab, NodeProxy& n,
                               const std::vector<const ServicePlan*>& services,
                               std::string& failure) {
  const bool first = !n.loaded;
  if (lab.plan.network.kube_proxy_mode == ProxyMode::iptables) {
    IptablesSynced now;
    std::set<std::string> written;
    for (const auto* s : services) written.insert(s->key());
    auto text = iptables_ruleset(n.node, lab.plan.services, lab.endpoints,
                                 first ? nullptr : &n.iptables, now, first ? nullptr : &written);
    auto result = effects_.programs.run({n.netns, {"iptables-restore", "--noflush", "-w"}, text});
    if (result.status != 0) {
      failure =
          fmt::format("load iptables rules (iptables-restore) in netns {}: exit status {}: {}",
                      n.netns, result.status, result.output);
      return false;
    }
    n.iptables = std::move(now);
    n.loaded = true;
    return true;
  }
  if (first) {
    failure = first_loads(lab, {&n}, services)[0];
    return failure.empty();
  }
  auto steps = nft_sync(n.node, n.applied, services, lab.endpoints, false);
  size_t bytes = 0;
  for (const auto& step : steps) bytes += step.script.size();
  if (bytes >= kNftLoadInChildBytes) {
    auto result = effects_.kernel.nft_load({{n.netns, [&] { return take_scripts(steps); }}})[0];
    if (!n.took(steps, result)) failure = result.error;
    return failure.empty();
  }
  for (auto& step : steps) {
    try {
      effects_.kernel.nft_apply(n.netns, step.script);
    } catch (const SystemError& e) {
      failure = e.what();
      for (const auto& [key, rules] : step.services) n.retry.insert(key);
      return false;
    }
    n.take(step);
  }
  return true;
}

std::vector<std::string> KubeProxyReconciler::first_loads(
    const LabState& lab, const std::vector<NodeProxy*>& nodes,
    const std::vector<const ServicePlan*>& services) {
  std::vector<std::vector<NftStep>> steps(nodes.size());
  // The first kCompiledLoads nodes load the text, at once; the others copy
  // the first one's tables, which spares them libnftables' compile of the
  // same text, and then load what differs on them.
  const size_t compiled = std::min(nodes.size(), kCompiledLoads);
  auto compile = [&](size_t i) -> NftLoad {
    return {nodes[i]->netns, [&, i] {
              steps[i] = nft_sync(nodes[i]->node, {}, services, lab.endpoints, true);
              return take_scripts(steps[i]);
            }};
  };
  std::vector<NftLoad> loads;
  for (size_t i = 0; i < compiled; ++i) loads.push_back(compile(i));
  auto results = effects_.kernel.nft_load(loads);
  results.resize(nodes.size());
  auto took = [&](size_t i) {
    if (!nodes[i]->took(steps[i], results[i])) return false;
    nodes[i]->loaded = true;
    return true;
  };
  const bool copy = took(0);
  for (size_t i = 1; i < compiled; ++i) took(i);
  loads.clear();
  for (size_t i = compiled; i < nodes.size(); ++i) {
    if (!copy) {
      loads.push_back(compile(i));
      continue;
    }
    NftCopy spec{nodes[0]->netns, {}, nft_node_elements(nodes[i]->node)};
    for (const auto& [table, sets] : spec.elements) spec.tables.push_back(table);
    loads.push_back({nodes[i]->netns,
                     [&, i] {
                       steps[i] = nft_after_copy(nodes[i]->node, nodes[0]->applied, services,
                                                 lab.endpoints);
                       auto scripts = take_scripts(steps[i]);
                       scripts.erase(scripts.begin());
                       return scripts;
                     },
                     std::move(spec)});
  }
  if (!loads.empty()) {
    auto rest = effects_.kernel.nft_load(loads);
    std::move(rest.begin(), rest.end(), results.begin() + static_cast<long>(compiled));
    for (size_t i = compiled; i < nodes.size(); ++i) took(i);
  }
  std::vector<std::string> failures(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i)
    if (!nodes[i]->loaded) failures[i] = results[i].error;
  return failures;
}

void KubeProxyReconciler::reconcile(LabState& lab, Changes& changes) {
  const auto& services = lab.plan.services;
  if (services.empty()) return;
  auto start = Clock::now();
  std::vector<const ServicePlan*> all, changed;
  for (const auto& [index, before] : changes.services) changed.push_back(&services[index]);
  auto every_service = [&]() -> const std::vector<const ServicePlan*>& {
    if (all.empty())
      for (const auto& s : services) all.push_back(&s);
    return all;
  };
  for (const auto& node : lab.plan.nodes)
    if (std::none_of(nodes_.begin(), nodes_.end(),
                     [&](const auto& n) { return n->node.name == node.name; })) {
      auto n = std::make_unique<NodeProxy>();
      n->node = proxy_node(lab.plan, node, lab.endpoints);
      n->netns = node.netns;
      nodes_.push_back(std::move(n));
    }
  std::string first_failure;
  size_t synced = 0;
  auto refused = [&](const NodeProxy& n, const std::string& failure) {
    effects_.event(fmt::format("kube-proxy: sync of node {} refused, retried on the next tick: {}",
                               n.node.name, failure));
    if (first_failure.empty()) first_failure = failure;
  };
  std::vector<NodeProxy*> unloaded;
  if (lab.plan.network.kube_proxy_mode == ProxyMode::nftables)
    for (auto& n : nodes_)
      if (!n->loaded) unloaded.push_back(n.get());
  if (!unloaded.empty()) {
    auto failures = first_loads(lab, unloaded, every_service());
    for (size_t i = 0; i < unloaded.size(); ++i)
      if (!failures[i].empty())
        refused(*unloaded[i], failures[i]);
      else
        synced = services.size();
  }
  for (auto& n : nodes_) {
    if (std::find(unloaded.begin(), unloaded.end(), n.get()) != unloaded.end()) continue;
    // A node not loaded yet takes every service; one whose last sync was
    // refused takes those again with this sync's.
    std::vector<const ServicePlan*> wanted = n->loaded ? changed : every_service();
    if (n->loaded && !n->retry.empty()) {
      wanted.clear();
      for (const auto* s : every_service())
        if (n->retry.count(s->key())) wanted.push_back(s);
      for (const auto* s : changed)
        if (!n->retry.count(s->key())) wanted.push_back(s);
    }
    if (n->loaded && wanted.empty()) continue;
    std::string failure;
    if (!sync(lab, *n, wanted, failure)) {
      if (lab.plan.network.kube_proxy_mode == ProxyMode::iptables)
        for (const auto* s : every_service()) n->retry.insert(s->key());
      refused(*n, failure);
      continue;
    }
    if (lab.plan.network.kube_proxy_mode == ProxyMode::iptables) n->retry.clear();
    synced = std::max(synced, wanted.size());
  }
  clear_conntrack(lab, changes);
  if (synced)
    effects_.event(fmt::format("kube-proxy ({}) synced {} service(s) on {} node(s) in {:.1f} ms",
                               enum_name(lab.plan.network.kube_proxy_mode), synced, nodes_.size(),
                               seconds_since(start) * 1000));
  if (!first_failure.empty()) throw SystemError(first_failure, 0);
}

void KubeProxyReconciler::clear_conntrack(const LabState& lab, const Changes& changes) {
  for (const auto& [index, before] : changes.services) {
    const auto& s = lab.plan.services[index];
    auto after = lab.endpoints.find(s.key());
    if (after == lab.endpoints.end()) continue;
    auto commands = udp_conntrack_deletions(s, before, after->second);
    if (commands.empty()) continue;
    for (const auto& n : nodes_)
      for (const auto& argv : commands) {
        // Exit status 1 means nothing matched, which is fine.
        auto r = effects_.programs.run({n->netns, argv, ""});
        if (r.status > 1)
          effects_.event(
              fmt::format("conntrack in {} failed ({}): {}", n->netns, r.status, r.output));
      }
    effects_.event(fmt::format("conntrack: cleared UDP entries of {} on every node", s.key()));
  }
}

void KubeProxyReconciler::tick(LabState& lab, Changes&) {
  for (auto& n : nodes_) {
    if (!n->retry.empty()) {
      std::vector<const ServicePlan*> services;
      for (const auto& s : lab.plan.services)
        if (n->retry.count(s.key())) services.push_back(&s);
      std::string failure;
      if (sync(lab, *n, services, failure)) {
        n->retry.clear();
        effects_.event(fmt::format("kube-proxy: node {} synced again", n->node.name));
      }
    }
    if (n->stale_chains.empty() && n->stale_sets.empty()) continue;
    try {
      // Deleting by name makes libnftables fetch every chain of the
      // ruleset: the context is dropped after, so that the next sync does
      // not spend its run freeing that copy.
      effects_.kernel.nft_apply(n->netns,
                                nft_delete({n->stale_chains.begin(), n->stale_chains.end()},
                                           {n->stale_sets.begin(), n->stale_sets.end()}));
      effects_.kernel.nft_renew(n->netns);
    } catch (const std::exception& e) {
      effects_.event(
          fmt::format("kube-proxy: stale chains of {} stay: {}", n->node.name, e.what()));
    }
    n->stale_chains.clear(), n->stale_sets.clear();
  }
}

}  // namespace knl
