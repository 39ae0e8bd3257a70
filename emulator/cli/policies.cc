#include "policies.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "knetlab/cli/lab.h"
#include "knetlab/kernel/programs.h"

namespace knl::cli {

using nlohmann::json;

namespace {

std::string types_text(const NetworkPolicy& p) {
  std::vector<std::string> types;
  if (p.ingress) types.emplace_back(enum_name(PolicyType::ingress));
  if (p.egress) types.emplace_back(enum_name(PolicyType::egress));
  return fmt::format("{}", fmt::join(types, ", "));
}

std::string or_none(const std::string& text) {
  return text.empty() ? "<none>" : text;
}

// Packets counted by each rule of `chain` ("rule N" by its comment) and by
// its final drop (""), summed over the nodes' tables; empty when no node
// could be read.
using Counters = std::map<std::pair<std::string, std::string>, uint64_t>;
Counters read_counters(const LabRecord& state) {
  Counters out;
  for (const auto& n : state.nodes) {
    auto r = run_program(n.netns, {"nft", "-j", "list", "table", kPolicyTable});
    if (r.status != 0) continue;
    json listing = json::parse(r.output, nullptr, false);
    if (!listing.is_object() || !listing.contains("nftables")) continue;
    for (const auto& item : listing["nftables"]) {
      if (!item.contains("rule")) continue;
      const auto& rule = item["rule"];
      for (const auto& e : rule.value("expr", json::array()))
        if (e.contains("counter"))
          out[{rule.value("chain", ""), rule.value("comment", "")}] +=
              e["counter"].value("packets", uint64_t{0});
    }
  }
  return out;
}

void print_peer(const PolicyWorld& world, const NetworkPolicy& policy, const PolicyPeer& peer,
                const char* word) {
  fmt::print("    {}:\n", word);
  if (peer.ip_block) {
    std::vector<std::string> except;
    for (const auto& e : peer.ip_block->except) except.push_back(e.str());
    fmt::print("      IPBlock:\n        CIDR: {}\n        Except: {}\n", peer.ip_block->cidr.str(),
               fmt::join(except, ", "));
    return;
  }
  if (peer.namespace_selector)
    fmt::print("      NamespaceSelector: {}\n", or_none(selector_str(*peer.namespace_selector)));
  if (peer.pod_selector)
    fmt::print("      PodSelector: {}\n", or_none(selector_str(*peer.pod_selector)));
  std::vector<std::string> pods;
  for (const auto& pod : world.pods)
    if (peer_selects(world, policy.namespace_, peer, pod)) pods.push_back(pod.key());
  fmt::print("      Pods now: {}\n",
             pods.empty() ? "<none>" : fmt::format("{}", fmt::join(pods, ", ")));
}

void print_rules(const PolicyWorld& world, const NetworkPolicy& policy, PolicyType type,
                 const Counters& counters) {
  const bool ingress = type == PolicyType::ingress;
  if (!policy.affects(type)) {
    fmt::print("  Not affecting {} traffic\n", ingress ? "ingress" : "egress");
    return;
  }
  fmt::print("  Allowing {} traffic:\n", ingress ? "ingress" : "egress");
  const auto& rules = policy.rules(type);
  if (rules.empty())
    fmt::print("    <none> (Selected pods are isolated for {} connectivity)\n",
               ingress ? "ingress" : "egress");
  const auto chain = policy_chain(policy, type);
  for (size_t i = 0; i < rules.size(); ++i) {
    if (i > 0) fmt::print("    ----------\n");
    const auto& rule = rules[i];
    if (rule.ports.empty()) fmt::print("    To Port: <any> (traffic allowed to all ports)\n");
    for (const auto& p : rule.ports) {
      auto port = !p.port_name.empty() ? p.port_name
                  : p.port == 0        ? std::string("<any>")
                  : p.end_port > 0     ? fmt::format("{}-{}", p.port, p.end_port)
                                       : std::to_string(p.port);
      fmt::print("    To Port: {}/{}\n", port, enum_name(p.protocol));
    }
    const char* word = ingress ? "From" : "To";
    if (rule.peers.empty())
      fmt::print("    {}: <any> (traffic not restricted by {})\n", word,
                 ingress ? "source" : "destination");
    for (const auto& peer : rule.peers) print_peer(world, policy, peer, word);
    auto it = counters.find({chain, fmt::format("rule {}", i + 1)});
    fmt::print("    Accepted: {} packets (rule {}, chain {})\n",
               it == counters.end() ? 0 : it->second, i + 1, chain);
  }
}

}  // namespace

PolicyWorld record_world(const LabRecord& state) {
  PolicyWorld world{state.network_policies, state.namespaces, {}};
  for (const auto& p : state.pods) {
    PolicyPod pod{p.namespace_, p.name, p.node, p.ip, p.labels, p.host_network, {}};
    for (const auto& c : p.containers)
      pod.ports.insert(pod.ports.end(), c.ports.begin(), c.ports.end());
    world.pods.push_back(std::move(pod));
  }
  return world;
}

void print_network_policies(const LabRecord& state, bool wide, const std::string& name) {
  auto world = record_world(state);
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAMESPACE", "NAME", "POD-SELECTOR", "POLICY-TYPES", "PODS"});
  if (wide) rows.back().insert(rows.back().end(), {"INGRESS-RULES", "EGRESS-RULES"});
  for (const auto& p : state.network_policies) {
    if (!name.empty() && p.name != name) continue;
    size_t selected = 0;
    for (const auto& pod : world.pods) selected += policy_selects(p, pod) ? 1 : 0;
    rows.push_back({p.namespace_, p.name, or_none(selector_str(p.pod_selector)), types_text(p),
                    std::to_string(selected)});
    if (wide)
      rows.back().insert(rows.back().end(), {std::to_string(p.ingress_rules.size()),
                                             std::to_string(p.egress_rules.size())});
  }
  print_table(rows);
}

void describe_network_policy(const LabRecord& state, const NetworkPolicy& policy) {
  auto world = record_world(state);
  auto counters = read_counters(state);
  fmt::print("Name:         {}\nNamespace:    {}\nSpec:\n", policy.name, policy.namespace_);
  auto selector = selector_str(policy.pod_selector);
  fmt::print("  PodSelector:     {}\n",
             selector.empty() ? "<none> (Allowing the specific traffic to all pods in this "
                                "namespace)"
                              : selector);
  std::vector<std::string> selected;
  uint64_t dropped = 0;
  for (const auto& pod : world.pods) {
    if (!policy_selects(policy, pod)) continue;
    selected.push_back(fmt::format("{} ({} on {})", pod.key(), pod.ip.str(), pod.node));
    for (auto type : {PolicyType::ingress, PolicyType::egress}) {
      auto it = counters.find(
          {fmt::format("pod-{}-{}", pod.key(), type == PolicyType::ingress ? "ingress" : "egress"),
           fmt::format("{} is isolated for {}", pod.key(), enum_name(type))});
      if (policy.affects(type) && it != counters.end()) dropped += it->second;
    }
  }
  fmt::print("  Selected pods:   {}\n",
             selected.empty() ? "<none>" : fmt::format("{}", fmt::join(selected, ", ")));
  for (auto type : {PolicyType::ingress, PolicyType::egress})
    print_rules(world, policy, type, counters);
  fmt::print("  Policy Types: {}\n", types_text(policy));
  fmt::print(
      "Dropped: {} packets to or from the pods it selects, allowed by no policy (the pods' "
      "chains, which every policy selecting them shares)\n",
      dropped);
  fmt::print("Rules: knetlab exec node/NODE -- nft list table {}\n", kPolicyTable);
}

}  // namespace knl::cli
