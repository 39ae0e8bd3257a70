#include "knetlab/plan/policy.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace knl {

namespace {

const char* type_word(PolicyType type) {
  return type == PolicyType::ingress ? "ingress" : "egress";
}

const char* nft_protocol(Protocol protocol) {
  switch (protocol) {
    case Protocol::udp:
      return "udp";
    case Protocol::sctp:
      return "sctp";
    default:
      return "tcp";
  }
}

bool block_contains(const IpBlock& block, Ipv4 ip) {
  return block.cidr.contains(ip) && std::none_of(block.except.begin(), block.except.end(),
                                                 [&](const Ipv4Net& e) { return e.contains(ip); });
}

Ipv4 end_address(const PolicyEnd& end) {
  return end.pod ? end.pod->ip : end.ip;
}

// Whether `peer` matches the end of a connection: its pod by selectors, or
// its address by an ipBlock.
bool peer_matches(const PolicyWorld& world, const std::string& policy_namespace,
                  const PolicyPeer& peer, const PolicyEnd& end) {
  if (peer.ip_block) return block_contains(*peer.ip_block, end_address(end));
  return end.pod && peer_selects(world, policy_namespace, peer, *end.pod);
}

using Range = std::pair<uint32_t, uint32_t>;

// The addresses of `blocks` with their excepts cut out, as disjoint ranges
// in order.
std::vector<Range> block_ranges(const std::vector<const IpBlock*>& blocks) {
  std::vector<Range> ranges;
  for (const auto* b : blocks) {
    auto last = [](const Ipv4Net& n) {
      return static_cast<uint32_t>(n.network.value + n.size() - 1);
    };
    std::vector<Range> cuts;
    for (const auto& e : b->except) cuts.emplace_back(e.network.value, last(e));
    std::sort(cuts.begin(), cuts.end());
    uint64_t from = b->cidr.network.value;
    for (const auto& [lo, hi] : cuts) {
      if (lo > from) ranges.emplace_back(static_cast<uint32_t>(from), lo - 1);
      from = std::max<uint64_t>(from, uint64_t{hi} + 1);
    }
    if (from <= last(b->cidr)) ranges.emplace_back(static_cast<uint32_t>(from), last(b->cidr));
  }
  std::sort(ranges.begin(), ranges.end());
  std::vector<Range> merged;
  for (const auto& r : ranges) {
    if (!merged.empty() && uint64_t{merged.back().second} + 1 >= r.first)
      merged.back().second = std::max(merged.back().second, r.second);
    else
      merged.push_back(r);
  }
  return merged;
}

// A range as nft reads it: an address, a prefix when it is exactly one, or
// FIRST-LAST.
std::string range_str(const Range& r) {
  if (r.first == r.second) return Ipv4{r.first}.str();
  uint64_t size = uint64_t{r.second} - r.first + 1;
  if ((size & (size - 1)) == 0 && r.first % size == 0) {
    int prefix = 32;
    while ((uint64_t{1} << (32 - prefix)) < size) --prefix;
    return Ipv4Net{Ipv4{r.first}, prefix}.str();
  }
  return Ipv4{r.first}.str() + "-" + Ipv4{r.second}.str();
}

std::string port_range(const PolicyPort& p) {
  if (p.port == 0) return "0-65535";
  if (p.end_port > p.port) return fmt::format("{}-{}", p.port, p.end_port);
  return std::to_string(p.port);
}

// The chain, sets and elements of one policy for one type, the same on every
// node that has a pod it selects.
NftPiece policy_piece(const PolicyWorld& world, const NetworkPolicy& policy, PolicyType type,
                      const std::vector<const PolicyPod*>& selected) {
  NftPiece piece;
  const auto chain = policy_chain(policy, type);
  const char* peer_address = type == PolicyType::ingress ? "ip saddr" : "ip daddr";
  auto& rules = piece.chains[chain];
  const auto& policy_rules = policy.rules(type);
  for (size_t i = 0; i < policy_rules.size(); ++i) {
    const auto& rule = policy_rules[i];
    const auto base = fmt::format("{}-{}", chain, i + 1);
    std::vector<std::string> peer_parts{""}, port_parts{""};
    if (!rule.peers.empty()) {
      peer_parts.clear();
      std::vector<const IpBlock*> blocks;
      bool by_selector = false;
      for (const auto& peer : rule.peers) {
        if (peer.ip_block)
          blocks.push_back(&*peer.ip_block);
        else
          by_selector = true;
      }
      if (by_selector) {
        auto set = base + "-pods";
        piece.sets[set] = "{ type ipv4_addr ; }";
        for (const auto& pod : world.pods)
          if (std::any_of(rule.peers.begin(), rule.peers.end(), [&](const PolicyPeer& peer) {
                return peer_selects(world, policy.namespace_, peer, pod);
              }))
            piece.elements[{set, pod.ip.str()}] = "";
        peer_parts.push_back(fmt::format("{} @{}", peer_address, set));
      }
      if (!blocks.empty()) {
        auto set = base + "-cidrs";
        piece.sets[set] = "{ type ipv4_addr ; flags interval ; }";
        for (const auto& r : block_ranges(blocks)) piece.elements[{set, range_str(r)}] = "";
        peer_parts.push_back(fmt::format("{} @{}", peer_address, set));
      }
    }
    if (!rule.ports.empty()) {
      port_parts.clear();
      std::vector<const PolicyPort*> numbered, named;
      for (const auto& p : rule.ports) (p.port_name.empty() ? numbered : named).push_back(&p);
      if (numbered.size() == 1) {
        const auto& p = *numbered.front();
        port_parts.push_back(
            p.port == 0 ? fmt::format("meta l4proto {}", nft_protocol(p.protocol))
                        : fmt::format("{} dport {}", nft_protocol(p.protocol), port_range(p)));
      } else if (!numbered.empty()) {
        auto set = base + "-ports";
        piece.sets[set] = "{ type inet_proto . inet_service ; flags interval ; }";
        for (const auto* p : numbered)
          piece.elements[{set, fmt::format("{} . {}", nft_protocol(p->protocol), port_range(*p))}] =
              "";
        port_parts.push_back("meta l4proto . th dport @" + set);
      }
      if (!named.empty()) {
        // A named port is a number on each destination: ingress's are the
        // selected pods, egress's the pods its peers allow.
        auto set = base + "-named";
        piece.sets[set] = "{ type ipv4_addr . inet_proto . inet_service ; }";
        auto add = [&](const PolicyPod& pod) {
          for (const auto* p : named)
            for (const auto& cp : pod.ports)
              if (cp.name == p->port_name && cp.protocol == p->protocol)
                piece.elements[{set, fmt::format("{} . {} . {}", pod.ip.str(),
                                                 nft_protocol(cp.protocol), cp.container_port)}] =
                    "";
        };
        if (type == PolicyType::ingress) {
          for (const auto* pod : selected) add(*pod);
        } else {
          for (const auto& pod : world.pods)
            if (!pod.host_network &&
                (rule.peers.empty() ||
                 std::any_of(rule.peers.begin(), rule.peers.end(), [&](const PolicyPeer& peer) {
                   return peer_matches(world, policy.namespace_, peer, policy_end(pod));
                 })))
              add(pod);
        }
        port_parts.push_back("ip daddr . meta l4proto . th dport @" + set);
      }
    }
    for (const auto& peer : peer_parts)
      for (const auto& port : port_parts) {
        std::string match = peer;
        if (!port.empty()) match += (match.empty() ? "" : " ") + port;
        rules.push_back(fmt::format("{}{}counter accept comment \"rule {}\"", match,
                                    match.empty() ? "" : " ", i + 1));
      }
  }
  return piece;
}

void merge(NftPiece& into, const NftPiece& piece) {
  for (const auto& [name, rules] : piece.chains) into.chains[name] = rules;
  for (const auto& [name, decl] : piece.sets) into.sets[name] = decl;
  for (const auto& [key, value] : piece.elements) into.elements[key] = value;
}

}  // namespace

std::map<std::string, Labels> namespace_labels(const std::vector<Namespace>& namespaces) {
  std::map<std::string, Labels> out;
  for (const auto& ns : namespaces) {
    auto& labels = out[ns.name] = ns.labels;
    labels[kNamespaceNameLabel] = ns.name;
  }
  return out;
}

PolicyWorld policy_world(const Plan& plan) {
  PolicyWorld world{plan.network_policies, plan.namespace_labels, {}};
  for (const auto& p : plan.pods) {
    PolicyPod pod{p.namespace_, p.name, p.node, p.ip, p.labels, p.host_network, {}};
    for (const auto& c : p.containers)
      pod.ports.insert(pod.ports.end(), c.ports.begin(), c.ports.end());
    world.pods.push_back(std::move(pod));
  }
  return world;
}

bool selector_matches(const LabelSelector& selector, const Labels& labels) {
  for (const auto& [key, value] : selector.match_labels) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  for (const auto& r : selector.match_expressions) {
    auto it = labels.find(r.key);
    bool in = it != labels.end() &&
              std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
    switch (r.op) {
      case SelectorOperator::in:
        if (!in) return false;
        break;
      case SelectorOperator::not_in:
        if (in) return false;
        break;
      case SelectorOperator::exists:
        if (it == labels.end()) return false;
        break;
      case SelectorOperator::does_not_exist:
        if (it != labels.end()) return false;
        break;
    }
  }
  return true;
}

std::string selector_str(const LabelSelector& selector) {
  std::vector<std::string> parts;
  for (const auto& [key, value] : selector.match_labels) parts.push_back(key + "=" + value);
  for (const auto& r : selector.match_expressions) {
    switch (r.op) {
      case SelectorOperator::in:
        parts.push_back(fmt::format("{} in ({})", r.key, fmt::join(r.values, ",")));
        break;
      case SelectorOperator::not_in:
        parts.push_back(fmt::format("{} notin ({})", r.key, fmt::join(r.values, ",")));
        break;
      case SelectorOperator::exists:
        parts.push_back(r.key);
        break;
      case SelectorOperator::does_not_exist:
        parts.push_back("!" + r.key);
        break;
    }
  }
  return fmt::format("{}", fmt::join(parts, ","));
}

bool policy_selects(const NetworkPolicy& policy, const PolicyPod& pod) {
  return !pod.host_network && pod.namespace_ == policy.namespace_ &&
         selector_matches(policy.pod_selector, pod.labels);
}

bool peer_selects(const PolicyWorld& world, const std::string& policy_namespace,
                  const PolicyPeer& peer, const PolicyPod& pod) {
  if (peer.ip_block || pod.host_network) return false;
  if (peer.namespace_selector) {
    auto ns = world.namespaces.find(pod.namespace_);
    if (ns == world.namespaces.end() || !selector_matches(*peer.namespace_selector, ns->second))
      return false;
  } else if (pod.namespace_ != policy_namespace) {
    return false;
  }
  return !peer.pod_selector || selector_matches(*peer.pod_selector, pod.labels);
}

bool port_allows(const PolicyPort& port, Protocol protocol, int number,
                 const PolicyPod* destination) {
  if (port.protocol != protocol) return false;
  if (!port.port_name.empty())
    return destination && !destination->host_network &&
           std::any_of(destination->ports.begin(), destination->ports.end(),
                       [&](const ContainerPort& p) {
                         return p.name == port.port_name && p.protocol == protocol &&
                                p.container_port == number;
                       });
  if (port.port == 0) return true;
  if (port.end_port > 0) return number >= port.port && number <= port.end_port;
  return number == port.port;
}

PolicyEnd policy_end(const PolicyPod& pod) {
  if (pod.host_network) return {nullptr, pod.ip, pod.node};
  return {&pod, pod.ip, pod.node};
}

PolicyVerdict policy_verdict(const PolicyWorld& world, const PolicyEnd& from, const PolicyEnd& to,
                             Protocol protocol, int port, bool through_service) {
  auto normal = [](const PolicyEnd& e) { return e.pod ? policy_end(*e.pod) : e; };
  const auto f = normal(from), t = normal(to);
  PolicyVerdict v;
  if (f.pod && f.pod == t.pod && !through_service) return v;
  if (!f.pod && t.pod && !f.node.empty() && f.node == t.pod->node) return v;
  auto check = [&](PolicyType type, const PolicyPod& subject, std::vector<std::string>& isolated,
                   std::vector<std::string>& allowed) {
    const auto& peer_end = type == PolicyType::ingress ? f : t;
    for (const auto& p : world.policies) {
      if (!p.affects(type) || !policy_selects(p, subject)) continue;
      isolated.push_back(p.key());
      for (const auto& rule : p.rules(type)) {
        bool peer_ok =
            rule.peers.empty() ||
            std::any_of(rule.peers.begin(), rule.peers.end(), [&](const PolicyPeer& peer) {
              return peer_matches(world, p.namespace_, peer, peer_end);
            });
        bool port_ok = rule.ports.empty() ||
                       std::any_of(rule.ports.begin(), rule.ports.end(), [&](const PolicyPort& pp) {
                         return port_allows(pp, protocol, port, t.pod);
                       });
        if (peer_ok && port_ok) {
          allowed.push_back(p.key());
          break;
        }
      }
    }
    return isolated.empty() || !allowed.empty();
  };
  bool egress =
      !f.pod || check(PolicyType::egress, *f.pod, v.egress_isolated_by, v.egress_allowed_by);
  bool ingress =
      !t.pod || check(PolicyType::ingress, *t.pod, v.ingress_isolated_by, v.ingress_allowed_by);
  v.allowed = egress && ingress;
  return v;
}

std::string policy_chain(const NetworkPolicy& policy, PolicyType type) {
  return fmt::format("policy-{}-{}", policy.key(), type_word(type));
}

std::string policy_nft_base(const std::string& lab, const std::string& node) {
  const std::string t = kPolicyTable;
  std::string out = fmt::format(
      "add table {0} {{ comment \"NetworkPolicies of lab {1} on node {2} (knetlab)\" ; }}\n"
      "add map {0} ingress-pods {{ type ipv4_addr : verdict ; comment \"this node's pods that "
      "an Ingress policy selects\" ; }}\n"
      "add map {0} egress-pods {{ type ipv4_addr : verdict ; comment \"this node's pods that "
      "an Egress policy selects\" ; }}\n"
      "add chain {0} egress {{ type filter hook forward priority filter - 5 ; policy accept ; }}\n"
      "add chain {0} egress-to-node {{ type filter hook input priority filter - 5 ; policy "
      "accept ; }}\n"
      "add chain {0} ingress {{ type filter hook forward priority filter ; policy accept ; }}\n",
      t, lab, node);
  for (const auto& [chain, map, address] : {std::tuple{"egress", "egress-pods", "saddr"},
                                            std::tuple{"egress-to-node", "egress-pods", "saddr"},
                                            std::tuple{"ingress", "ingress-pods", "daddr"}})
    out += fmt::format(
        "add rule {0} {1} ct state established,related accept\n"
        "add rule {0} {1} ip {3} vmap @{2}\n",
        t, chain, map, address);
  return out;
}

std::map<std::string, NftPiece> policy_nft(const PolicyWorld& world,
                                           const std::vector<std::string>& nodes) {
  std::map<std::string, NftPiece> out;
  for (const auto& n : nodes) out[n].table = kPolicyTable;
  // Per pod key and type: the chains of the policies that select it.
  std::map<std::pair<std::string, PolicyType>, std::vector<std::string>> isolation;
  std::vector<const NetworkPolicy*> policies;
  for (const auto& p : world.policies) policies.push_back(&p);
  std::sort(policies.begin(), policies.end(),
            [](const auto* a, const auto* b) { return a->key() < b->key(); });
  for (const auto* policy : policies)
    for (auto type : {PolicyType::ingress, PolicyType::egress}) {
      if (!policy->affects(type)) continue;
      std::vector<const PolicyPod*> selected;
      std::set<std::string> on_nodes;
      for (const auto& pod : world.pods)
        if (policy_selects(*policy, pod)) {
          selected.push_back(&pod);
          on_nodes.insert(pod.node);
          isolation[{pod.key(), type}].push_back(policy_chain(*policy, type));
        }
      if (selected.empty()) continue;
      auto piece = policy_piece(world, *policy, type, selected);
      for (const auto& node : on_nodes)
        if (auto it = out.find(node); it != out.end()) merge(it->second, piece);
    }
  for (const auto& pod : world.pods)
    for (auto type : {PolicyType::ingress, PolicyType::egress}) {
      auto it = isolation.find({pod.key(), type});
      auto node = out.find(pod.node);
      if (it == isolation.end() || node == out.end()) continue;
      auto chain = fmt::format("pod-{}-{}", pod.key(), type_word(type));
      auto& rules = node->second.chains[chain];
      for (const auto& policy_chain : it->second) rules.push_back("jump " + policy_chain);
      rules.push_back(fmt::format("counter drop comment \"{} is isolated for {}\"", pod.key(),
                                  enum_name(type)));
      node->second.elements[{fmt::format("{}-pods", type_word(type)), pod.ip.str()}] =
          " : jump " + chain;
    }
  return out;
}

}  // namespace knl
