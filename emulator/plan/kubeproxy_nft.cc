// kube-proxy's nftables mode: a service's rules, the base tables, and the
// transactions that change them.

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "knetlab/plan/kubeproxy.h"
#include "knetlab/util/hash.h"
#include "kubeproxy_shared.h"

namespace knl {

namespace {

using kube_proxy::categorize;
using kube_proxy::kTable;
using kube_proxy::lower;

// What every service puts in the first table, whichever table its NAT chains
// are in: the packet filter's maps (ClusterIPs, services without endpoints,
// and firewall-ips for LoadBalancer source ranges) and the firewall- chains
// that map jumps to. The other tables then need only NAT chains at two hooks,
// so a packet passes few base chains however many tables there are.
bool in_first_table(const std::string& set_or_chain) {
  return set_or_chain == "cluster-ips" || set_or_chain.rfind("no-endpoint-", 0) == 0 ||
         set_or_chain.rfind("firewall-", 0) == 0;
}

// The shard of a service: stable for the lab's life.
int shard_of(const ProxyNode& node, const ServicePlan& s) {
  return static_cast<int>(fnv1a(s.key()) % static_cast<uint32_t>(node.shards));
}

}  // namespace

// --- nftables ----------------------------------------------------------------

NftPiece nft_service(const ProxyNode& node, const ServicePlan& s,
                     const ServiceEndpoints& endpoints) {
  NftPiece out;
  if (!s.proxied()) return out;
  out.table = nft_table(shard_of(node, s));
  const auto cip = s.cluster_ip->str();
  out.elements[{"cluster-ips", cip}] = "";
  for (size_t i = 0; i < s.ports.size(); ++i) {
    const auto& port = s.ports[i];
    const auto proto = lower(port.protocol);
    const auto base = nft_service_base(s, port);
    const auto hashed = nft_hash_name(base);
    const auto service_chain = "service-" + hashed, local_chain = "local-" + hashed;
    const auto external_chain = "external-" + hashed, firewall_chain = "firewall-" + hashed;
    const auto comment = fmt::format(" comment \"{}\"", service_port_name(s, port));
    static const std::vector<Endpoint> kNone;
    auto c = categorize(node, s, i < endpoints.size() ? endpoints[i] : kNone);

    auto endpoint_name = [&](const Endpoint& e) {
      return nft_hash_name(fmt::format("{}__{}/{}", base, e.ip.str(), e.port));
    };
    const bool lean = !nft_endpoint_chains(node.picker, s);
    // numgen over `eps`, after the affinity lookups.
    auto pick = [&](std::vector<std::string>& rules, const std::vector<Endpoint>& eps) {
      if (lean) {
        std::string map;
        for (size_t k = 0; k < eps.size(); ++k)
          map += fmt::format("{}{} : {} . {}", k ? " , " : "", k, eps[k].ip.str(), eps[k].port);
        rules.push_back(fmt::format("meta l4proto {} dnat ip to numgen random mod {} map {{ {} }}",
                                    proto, eps.size(), map));
        return;
      }
      if (s.affinity)
        for (const auto& e : eps)
          rules.push_back(
              fmt::format("ip saddr @affinity-{0} goto endpoint-{0}", endpoint_name(e)));
      if (node.picker == NftPicker::rules) {
        // Endpoint k of n is taken with probability 1/(n-k), as iptables mode does.
        for (size_t k = 0; k + 1 < eps.size(); ++k)
          rules.push_back(fmt::format("numgen random mod {} 0 goto endpoint-{}", eps.size() - k,
                                      endpoint_name(eps[k])));
        rules.push_back("goto endpoint-" + endpoint_name(eps.back()));
        return;
      }
      std::string vmap;
      for (size_t k = 0; k < eps.size(); ++k)
        vmap += fmt::format("{}{} : goto endpoint-{}", k ? " , " : "", k, endpoint_name(eps[k]));
      rules.push_back(fmt::format("numgen random mod {} vmap {{ {} }}", eps.size(), vmap));
    };
    bool cluster_chain = !c.cluster.empty();
    bool local_chain_used = !c.local.empty();
    if (cluster_chain) {
      auto& rules = out.chains[service_chain];
      rules.push_back(fmt::format("ip daddr {} {} dport {} ip saddr != {} jump mark-for-masquerade",
                                  cip, proto, port.port, node.pod_subnet.str()));
      pick(rules, c.cluster);
    }
    if (local_chain_used) pick(out.chains[local_chain], c.local);
    if (c.uses_external) {
      auto& rules = out.chains[external_chain];
      if (!c.ext_local) {
        rules.push_back("jump mark-for-masquerade");
        rules.push_back("goto " + service_chain);
      } else {
        rules.push_back(fmt::format("ip saddr {} goto {} comment \"short-circuit pod traffic\"",
                                    node.pod_subnet.str(), service_chain));
        rules.push_back(
            "fib saddr type local jump mark-for-masquerade comment \"masquerade local "
            "traffic\"");
        rules.push_back(fmt::format(
            "fib saddr type local goto {} comment \"short-circuit local traffic\"", service_chain));
        if (local_chain_used) rules.push_back("goto " + local_chain);
      }
    }
    for (const auto& e : lean ? kNone : c.reachable) {
      auto name = endpoint_name(e);
      auto& rules = out.chains["endpoint-" + name];
      rules.push_back(fmt::format("ip saddr {} jump mark-for-masquerade", e.ip.str()));
      if (s.affinity) {
        rules.push_back(fmt::format("update @affinity-{} {{ ip saddr }}", name));
        out.sets["affinity-" + name] = fmt::format(
            "{{ type ipv4_addr ; flags dynamic,timeout ; timeout {}s ; }}", s.affinity_timeout);
      }
      rules.push_back(fmt::format("meta l4proto {} dnat to {}", proto, e.str()));
    }

    auto filter_verdict = c.has_endpoints ? std::string(" : drop") : " : goto reject-chain";
    auto key = [&](const std::string& ip) {
      return fmt::format("{} . {} . {}", ip, proto, port.port);
    };
    if (c.has_internal)
      out.elements[{"service-ips", key(cip)}] =
          " : goto " + (c.int_local ? local_chain : service_chain);
    else
      out.elements[{"no-endpoint-services", key(cip)}] = comment + filter_verdict;
    if (s.load_balancer_ip) {
      auto lb = s.load_balancer_ip->str();
      if (c.uses_external) out.elements[{"service-ips", key(lb)}] = " : goto " + external_chain;
      if (!s.source_ranges.empty() && c.has_external) {
        std::vector<std::string> ranges;
        for (const auto& r : s.source_ranges) ranges.push_back(r.str());
        out.chains[firewall_chain].push_back(
            fmt::format("ip saddr != {{ {} }} drop", fmt::join(ranges, ", ")));
        out.elements[{"firewall-ips", key(lb)}] = " : goto " + firewall_chain;
      }
      if (!c.has_external)
        out.elements[{"no-endpoint-services", key(lb)}] = comment + filter_verdict;
    }
    if (port.node_port) {
      auto np = fmt::format("{} . {}", proto, port.node_port);
      if (c.uses_external) out.elements[{"service-nodeports", np}] = " : goto " + external_chain;
      if (!c.has_external) out.elements[{"no-endpoint-nodeports", np}] = comment + filter_verdict;
    }
  }
  return out;
}

namespace {

// A further table: the NAT part of kube-proxy's table for its services.
std::string nft_nat_table(int shard) {
  const std::string t = nft_table(shard);
  std::string out = fmt::format(
      "add table {0} {{ comment \"rules for kube-proxy: NAT of a share of the services\" ; }}\n"
      "add set {0} nodeport-ips {{ type ipv4_addr ; comment \"IPs that accept NodePort traffic\" "
      "; }}\n"
      "add map {0} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment "
      "\"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }}\n"
      "add map {0} service-nodeports {{ type inet_proto . inet_service : verdict ; comment "
      "\"NodePort traffic\" ; }}\n"
      "add chain {0} mark-for-masquerade\n"
      "add chain {0} nat-output {{ type nat hook output priority -100 ; }}\n"
      "add chain {0} nat-prerouting {{ type nat hook prerouting priority -100 ; }}\n"
      "add rule {0} mark-for-masquerade mark set mark or 0x4000\n",
      t);
  // The first table's services chain, in each base chain itself: one jump
  // less for every new connection.
  for (const char* chain : {"nat-output", "nat-prerouting"})
    out += fmt::format(
        "add rule {0} {1} ip daddr . meta l4proto . th dport vmap @service-ips\n"
        "add rule {0} {1} ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports\n",
        t, chain);
  return out;
}

// The first table: kube-proxy's own, whole.
std::string nft_first_table(const ProxyNode& node) {
  const std::string t = kTable;
  std::string out = fmt::format("add table {} {{ comment \"rules for kube-proxy\" ; }}\n", t);
  auto line = [&](std::string text) { out += text + "\n"; };
  const std::string addr_key = "ipv4_addr . inet_proto . inet_service";
  line(fmt::format("add set {} cluster-ips {{ type ipv4_addr ; comment \"Active ClusterIPs\" ; }}",
                   t));
  line(
      fmt::format("add set {} nodeport-ips {{ type ipv4_addr ; comment \"IPs that accept NodePort "
                  "traffic\" ; }}",
                  t));
  line(
      fmt::format("add map {} firewall-ips {{ type {} : verdict ; comment \"destinations that "
                  "are subject to LoadBalancerSourceRanges\" ; }}",
                  t, addr_key));
  line(
      fmt::format("add map {} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict "
                  "; comment \"vmap to drop or reject packets to service nodeports with no "
                  "endpoints\" ; }}",
                  t));
  line(
      fmt::format("add map {} no-endpoint-services {{ type {} : verdict ; comment \"vmap to drop "
                  "or reject packets to services with no endpoints\" ; }}",
                  t, addr_key));
  line(
      fmt::format("add map {} service-ips {{ type {} : verdict ; comment \"ClusterIP, "
                  "ExternalIP and LoadBalancer IP traffic\" ; }}",
                  t, addr_key));
  line(
      fmt::format("add map {} service-nodeports {{ type inet_proto . inet_service : verdict ; "
                  "comment \"NodePort traffic\" ; }}",
                  t));
  for (const char* chain :
       {"cluster-ips-check",
        "filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }",
        "filter-output-pre-dnat { type filter hook output priority -110 ; }",
        "filter-forward { type filter hook forward priority 0 ; }",
        "filter-input { type filter hook input priority 0 ; }",
        "filter-output { type filter hook output priority 0 ; }", "firewall-check",
        "mark-for-masquerade", "masquerading",
        "nat-output { type nat hook output priority -100 ; }",
        "nat-postrouting { type nat hook postrouting priority 100 ; }",
        "nat-prerouting { type nat hook prerouting priority -100 ; }", "nodeport-endpoints-check",
        "reject-chain { comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\" ; }",
        "services", "service-endpoints-check"})
    line(fmt::format("add chain {} {}", t, chain));
  for (const auto& rule : std::vector<std::string>{
           "cluster-ips-check ip daddr @cluster-ips reject comment \"Reject traffic to invalid "
           "ports of ClusterIPs\"",
           fmt::format("cluster-ips-check ip daddr {{ {} }} drop comment \"Drop traffic to "
                       "unallocated ClusterIPs\"",
                       node.service_subnet.str()),
           "filter-prerouting-pre-dnat ct state new jump firewall-check",
           "filter-forward ct state new jump service-endpoints-check",
           "filter-forward ct state new jump cluster-ips-check",
           "filter-input ct state new jump nodeport-endpoints-check",
           "filter-input ct state new jump service-endpoints-check",
           "filter-output ct state new jump service-endpoints-check",
           "filter-output-pre-dnat ct state new jump firewall-check",
           "filter-output ct state new jump cluster-ips-check",
           "firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips",
           "mark-for-masquerade mark set mark or 0x4000",
           "masquerading mark and 0x4000 == 0 return",
           "masquerading mark set mark xor 0x4000",
           "masquerading masquerade fully-random",
           "nat-output jump services",
           "nat-postrouting jump masquerading",
           "nat-prerouting jump services",
           "nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap "
           "@no-endpoint-nodeports",
           "reject-chain reject",
           "services ip daddr . meta l4proto . th dport vmap @service-ips",
           "services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
           "service-endpoints-check ip daddr . meta l4proto . th dport vmap "
           "@no-endpoint-services"})
    line(fmt::format("add rule {} {}", t, rule));
  if (node.picker == NftPicker::map) {
    // Without endpoint chains nothing marks a pod's connection to a service
    // that picked the pod itself; this set of (address . same address) for
    // every pod address of the node does, as nft compares no two fields.
    line(
        fmt::format("add set {} pod-hairpin {{ type ipv4_addr . ipv4_addr ; comment \"a "
                    "pod's own address twice: hairpin connections\" ; }}",
                    t));
    line(
        fmt::format("insert rule {} masquerading ct status dnat ip saddr . ip daddr "
                    "@pod-hairpin jump mark-for-masquerade",
                    t));
  }
  return out;
}

}  // namespace

NftSetElements nft_node_elements(const ProxyNode& node) {
  NftSetElements out;
  for (int shard = 0; shard < node.shards; ++shard) {
    auto table = nft_table(shard).substr(std::string_view("ip ").size());
    out[table]["nodeport-ips"] = {{node.ip}};
    if (shard == 0 && node.picker == NftPicker::map) {
      auto& pairs = out[table]["pod-hairpin"];
      for (uint64_t k = 1; k + 1 < node.node_pods.size(); ++k)
        pairs.push_back({node.node_pods.at(k), node.node_pods.at(k)});
    }
  }
  return out;
}

std::string nft_base(const ProxyNode& node) {
  std::string out = nft_first_table(node);
  for (int shard = 1; shard < node.shards; ++shard) out += nft_nat_table(shard);
  for (const auto& [table, sets] : nft_node_elements(node))
    for (const auto& [set, keys] : sets) {
      if (keys.empty()) continue;
      std::vector<std::string> texts;
      for (const auto& key : keys) {
        std::vector<std::string> fields;
        for (const auto& ip : key) fields.push_back(ip.str());
        texts.push_back(fmt::format("{}", fmt::join(fields, " . ")));
      }
      out += fmt::format("add element ip {} {} {{ {} }}\n", table, set, fmt::join(texts, ", "));
    }
  return out;
}

std::string nft_table_of(const std::string& name, const std::string& table) {
  return in_first_table(name) ? kTable : table;
}

namespace {

// A service's chains as blocks, each after the chains it jumps to, so that
// none needs declaring first: endpoint chains, then the service and local
// chains that pick one, then the external and firewall chains.
std::string nft_blocks(const NftPiece& piece) {
  auto rank = [](const std::string& chain) {
    if (chain.rfind("endpoint-", 0) == 0) return 0;
    if (chain.rfind("service-", 0) == 0 || chain.rfind("local-", 0) == 0) return 1;
    return 2;
  };
  std::string out;
  for (int r = 0; r < 3; ++r)
    for (const auto& [name, rules] : piece.chains)
      if (rank(name) == r)
        out +=
            fmt::format("add chain {} {}{}\n", nft_table_of(name, piece.table), name,
                        rules.empty() ? "" : fmt::format(" {{ {} ; }}", fmt::join(rules, " ; ")));
  return out;
}

// A node's first load, in the order that costs the kernel least: the base
// tables (after deleting what an earlier, refused first load left); then the
// chains of services without sets, about kFirstLoadBytes at a time as blocks
// (unreachable until the end, so each commit validates little, and small,
// because the kernel walks the whole transaction for every anonymous map a
// rule binds); then, in one transaction, the sets, the chains that use them
// and every map element, which make libnftables list the tables' chains
// once. Only that last step brings the services to their state.
std::vector<NftStep> nft_first_load(const ProxyNode& node,
                                    const std::vector<const ServicePlan*>& services,
                                    const EndpointMap& endpoints) {
  std::string clean;
  for (int shard = 0; shard < node.shards; ++shard)
    clean += fmt::format("add table {0}\ndelete table {0}\n", nft_table(shard));
  std::vector<NftStep> steps(1);
  steps[0].script = clean + nft_base(node);
  NftTransaction rest(true, nft_table_of);
  NftStep last;
  std::string chains;
  size_t total = 0;
  auto close_chains = [&] {
    if (!chains.empty()) steps.push_back({std::move(chains), {}, {}, {}, {}});
    chains.clear();
  };
  for (const auto* s : services) {
    auto eps = endpoints.find(s->key());
    auto piece = nft_service(node, *s, eps == endpoints.end() ? ServiceEndpoints{} : eps->second);
    // A service with sets (session affinity) keeps its chains together in
    // the last step: they refer to each other and to the sets.
    NftPiece other{piece.table, {}, piece.sets, piece.elements};
    if (!piece.sets.empty()) other.chains = piece.chains;
    rest.change({}, other);
    last.services.emplace_back(s->key(), std::move(piece));
  }
  // Table by table: the kernel validates the tables a transaction changed.
  for (int shard = 0; shard < node.shards; ++shard) {
    const auto table = nft_table(shard);
    for (const auto& [key, piece] : last.services)
      if (piece.sets.empty() && piece.table == table) {
        const auto blocks = nft_blocks(piece);
        chains += blocks, total += blocks.size();
        if (chains.size() >= kFirstLoadBytes) close_chains();
      }
    close_chains();
  }
  last.script = rest.str();
  last.created = rest.created();
  // A lab whose chains fit one step loads in one transaction.
  if (total < kFirstLoadBytes) {
    for (auto step = steps.rbegin(); step != steps.rend(); ++step)
      last.script.insert(0, step->script);
    steps.clear();
  }
  steps.push_back(std::move(last));
  return steps;
}

}  // namespace

std::vector<NftStep> nft_after_copy(const ProxyNode& node,
                                    const std::map<std::string, NftPiece>& copied,
                                    const std::vector<const ServicePlan*>& services,
                                    const EndpointMap& endpoints) {
  NftStep copy;
  for (const auto& [key, piece] : copied) copy.services.emplace_back(key, piece);
  std::vector<const ServicePlan*> differing;
  for (const auto* s : services)
    if (kube_proxy::node_dependent(*s)) differing.push_back(s);
  auto steps = nft_sync(node, copied, differing, endpoints, false);
  steps.insert(steps.begin(), std::move(copy));
  return steps;
}

std::vector<NftStep> nft_sync(const ProxyNode& node, const std::map<std::string, NftPiece>& applied,
                              const std::vector<const ServicePlan*>& changed,
                              const EndpointMap& endpoints, bool first) {
  if (first) return nft_first_load(node, changed, endpoints);
  NftTransaction tx(true, nft_table_of);
  NftStep step;
  for (const auto* s : changed) {
    auto eps = endpoints.find(s->key());
    auto next = nft_service(node, *s, eps == endpoints.end() ? ServiceEndpoints{} : eps->second);
    auto was = applied.find(s->key());
    tx.change(was == applied.end() ? NftPiece{} : was->second, next);
    step.services.emplace_back(s->key(), std::move(next));
  }
  if (tx.empty()) return {};
  step.script = tx.str();
  step.stale_chains = tx.stale_chains();
  step.stale_sets = tx.stale_sets();
  step.created = tx.created();
  return {std::move(step)};
}

}  // namespace knl
