#include "knetlab/plan/kubeproxy.h"

#include <nettle/sha2.h>

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <string_view>

#include "knetlab/util/hash.h"

namespace knl {

namespace {

// "tcp", "udp" or "sctp", as kube-proxy writes a protocol in names and rules.
std::string lower(Protocol protocol) {
  std::string s(enum_name(protocol));
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// base32 (RFC 4648 alphabet, as Go's base32.StdEncoding) of sha256(text).
std::string sha256_base32(const std::string& text) {
  sha256_ctx ctx;
  sha256_init(&ctx);
  sha256_update(&ctx, text.size(), reinterpret_cast<const uint8_t*>(text.data()));
  uint8_t digest[SHA256_DIGEST_SIZE];
  sha256_digest(&ctx, sizeof digest, digest);
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t byte : digest) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) out += kAlphabet[(buffer >> (bits - 5)) & 31], bits -= 5;
  }
  if (bits > 0) out += kAlphabet[(buffer << (5 - bits)) & 31];
  return out;
}

// How one service port's endpoints divide on one node (kube-proxy's
// CategorizeEndpoints, without terminating endpoints).
struct Categories {
  std::vector<Endpoint> cluster, local, reachable;  // reachable: cluster ∪ local
  bool externally = false, ext_local = false, int_local = false;
  bool has_endpoints = false, has_internal = false, has_external = false;
  bool uses_external = false;  // the external- / KUBE-EXT- chain exists
};

Categories categorize(const ProxyNode& node, const ServicePlan& s,
                      const std::vector<Endpoint>& all) {
  Categories c;
  c.externally = s.node_ports() || s.load_balancer_ip.has_value();
  c.ext_local = c.externally && s.external_local;
  c.int_local = s.internal_local;
  std::vector<Endpoint> local;
  for (const auto& e : all)
    if (e.node == node.name) local.push_back(e);
  // Externally reachable services keep the cluster-wide set for the
  // short-circuit of pod and node traffic.
  if (!c.int_local || c.externally) c.cluster = all;
  if (c.int_local || c.ext_local) c.local = local;
  c.has_endpoints = !all.empty();
  c.has_internal = c.int_local ? !local.empty() : !all.empty();
  c.has_external = c.ext_local ? !local.empty() : !all.empty();
  c.uses_external = c.has_endpoints && c.externally;
  std::set<Endpoint> seen;
  for (const auto* list : {&c.cluster, &c.local})
    for (const auto& e : *list)
      if (seen.insert(e).second) c.reachable.push_back(e);
  std::sort(c.reachable.begin(), c.reachable.end());
  return c;
}

constexpr const char* kTable = "ip kube-proxy";
constexpr size_t kServicesPerTable = 1000;

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

ProxyNode proxy_node(const Plan& plan, const NodePlan& node) {
  return {node.name,
          node.ip,
          plan.network.pod_subnet,
          plan.network.service_subnet,
          plan.network.nftables_picker == NftPicker::rules,
          nft_tables_for(plan.services.size())};
}

int nft_tables_for(size_t services) {
  return static_cast<int>(
      std::max<size_t>(1, (services + kServicesPerTable - 1) / kServicesPerTable));
}

std::string nft_table(int shard) {
  return shard == 0 ? kTable : fmt::format("{}-{}", kTable, shard);
}

std::string nft_hash_name(const std::string& name) {
  return sha256_base32(name).substr(0, 8) + "-" + name;
}

std::string nft_service_base(const ServicePlan& s, const ServicePortPlan& p) {
  return fmt::format("{}/{}/{}/{}", s.namespace_, s.name, lower(p.protocol), p.name);
}

std::string iptables_hash(const std::string& text) {
  return sha256_base32(text).substr(0, 16);
}

std::string service_port_name(const ServicePlan& s, const ServicePortPlan& p) {
  return p.name.empty() ? fmt::format("{}/{}", s.namespace_, s.name)
                        : fmt::format("{}/{}:{}", s.namespace_, s.name, p.name);
}

// --- nftables ----------------------------------------------------------------

NftService nft_service(const ProxyNode& node, const ServicePlan& s,
                       const ServiceEndpoints& endpoints) {
  NftService out;
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
    // numgen over `eps`, after the affinity lookups.
    auto pick = [&](std::vector<std::string>& rules, const std::vector<Endpoint>& eps) {
      if (s.affinity)
        for (const auto& e : eps)
          rules.push_back(
              fmt::format("ip saddr @affinity-{0} goto endpoint-{0}", endpoint_name(e)));
      if (node.pick_by_rules) {
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
      rules.push_back(fmt::format("ip daddr {} ip saddr != {} jump mark-for-masquerade", cip,
                                  node.pod_subnet.str()));
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
    for (const auto& e : c.reachable) {
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
std::string nft_nat_table(const ProxyNode& node, int shard) {
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
      "add rule {0} mark-for-masquerade mark set mark or 0x4000\n"
      "add element {0} nodeport-ips {{ {1} }}\n",
      t, node.ip.str());
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
  line(fmt::format("add element {} nodeport-ips {{ {} }}", t, node.ip.str()));
  return out;
}

}  // namespace

std::string nft_base(const ProxyNode& node) {
  std::string out = nft_first_table(node);
  for (int shard = 1; shard < node.shards; ++shard) out += nft_nat_table(node, shard);
  return out;
}

void NftTransaction::change(const NftService& from, const NftService& to) {
  const std::string t = !to.table.empty() ? to.table : !from.table.empty() ? from.table : kTable;
  auto table_of = [&](const std::string& name) { return in_first_table(name) ? kTable : t; };
  for (const auto& [key, value] : from.elements) {
    auto it = to.elements.find(key);
    if (it == to.elements.end() || it->second != value)
      delete_elements_ += fmt::format("delete element {} {} {{ {} }}\n", table_of(key.first),
                                      key.first, key.second);
  }
  for (const auto& [key, value] : to.elements) {
    auto it = from.elements.find(key);
    if (it == from.elements.end() || it->second != value)
      add_elements_ += fmt::format("add element {} {} {{ {}{} }}\n", table_of(key.first), key.first,
                                   key.second, value);
  }
  for (const auto& [name, decl] : to.sets)
    if (!from.sets.count(name)) {
      add_objects_ += fmt::format("add set {} {} {}\n", t, name, decl);
      created_.push_back(t + " " + name);
    }
  for (const auto& [name, rules] : to.chains) {
    auto it = from.chains.find(name);
    if (it != from.chains.end() && it->second == rules) continue;
    const auto table = table_of(name);
    if (it == from.chains.end()) {
      add_objects_ += fmt::format("add chain {} {}\n", table, name);
      created_.push_back(table + " " + name);
    } else {
      rules_ += fmt::format("flush chain {} {}\n", table, name);
    }
    // A block's rules cannot name a set (affinity): libnftables would need
    // the set cache that the block form skips.
    bool names_set = std::any_of(rules.begin(), rules.end(), [](const std::string& r) {
      return r.find('@') != std::string::npos;
    });
    if (!blocks_ || names_set)
      for (const auto& rule : rules)
        rules_ += fmt::format("add rule {} {} {}\n", table, name, rule);
    else if (!rules.empty())
      rules_ += fmt::format("add chain {} {} {{ {} ; }}\n", table, name, fmt::join(rules, " ; "));
  }
  for (const auto& [name, rules] : from.chains)
    if (!to.chains.count(name)) {
      rules_ += fmt::format("flush chain {} {}\n", table_of(name), name);
      stale_chains_.push_back(table_of(name) + " " + name);
    }
  for (const auto& [name, decl] : from.sets)
    if (!to.sets.count(name)) stale_sets_.push_back(t + " " + name);
}

bool NftTransaction::empty() const {
  return delete_elements_.empty() && add_objects_.empty() && rules_.empty() &&
         add_elements_.empty();
}

std::string NftTransaction::str() const {
  return delete_elements_ + add_objects_ + rules_ + add_elements_;
}

std::string nft_delete(const std::vector<std::string>& chains,
                       const std::vector<std::string>& sets) {
  std::string out;
  for (const auto& c : chains) out += fmt::format("delete chain {}\n", c);
  for (const auto& s : sets) out += fmt::format("delete set {}\n", s);
  return out;
}

std::string nft_full(const ProxyNode& node, const std::vector<ServicePlan>& services,
                     const EndpointMap& endpoints) {
  NftTransaction tx(false);
  for (const auto& s : services) {
    auto it = endpoints.find(s.key());
    tx.change({}, nft_service(node, s, it == endpoints.end() ? ServiceEndpoints{} : it->second));
  }
  return nft_base(node) + tx.str();
}

std::vector<NftStep> nft_sync(const ProxyNode& node,
                              const std::map<std::string, NftService>& applied,
                              const std::vector<const ServicePlan*>& changed,
                              const EndpointMap& endpoints, bool first) {
  std::vector<NftStep> steps;
  const size_t chunk = first ? kFirstLoadServices : std::max<size_t>(changed.size(), 1);
  for (size_t at = 0; at == 0 || at < changed.size(); at += chunk) {
    NftTransaction tx(!first);
    NftStep step;
    for (size_t i = at; i < std::min(at + chunk, changed.size()); ++i) {
      const auto& s = *changed[i];
      auto eps = endpoints.find(s.key());
      auto next = nft_service(node, s, eps == endpoints.end() ? ServiceEndpoints{} : eps->second);
      auto was = applied.find(s.key());
      tx.change(was == applied.end() ? NftService{} : was->second, next);
      step.services.emplace_back(s.key(), std::move(next));
    }
    if (!first && tx.empty()) continue;
    step.script = (first && at == 0 ? nft_base(node) : "") + tx.str();
    step.stale_chains = tx.stale_chains();
    step.stale_sets = tx.stale_sets();
    step.created = tx.created();
    steps.push_back(std::move(step));
  }
  return steps;
}

// --- iptables ----------------------------------------------------------------

std::string iptables_ruleset(const ProxyNode& node, const std::vector<ServicePlan>& services,
                             const EndpointMap& endpoints, bool first,
                             const std::vector<std::string>& previous_chains,
                             std::vector<std::string>& chains) {
  std::vector<std::string> nat_chains{"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING",
                                      "KUBE-MARK-MASQ"};
  std::vector<std::string> filter_chains{"KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD",
                                         "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL"};
  std::string nat, nat_services, nat_nodeports, filter_services, filter_external, filter_firewall;
  const auto pods = node.pod_subnet.str();
  for (const auto& s : services) {
    if (!s.proxied()) continue;
    auto found = endpoints.find(s.key());
    for (size_t i = 0; i < s.ports.size(); ++i) {
      const auto& port = s.ports[i];
      const auto proto = lower(port.protocol);
      const auto name = service_port_name(s, port);
      const auto hash = iptables_hash(name + proto);
      const auto svc = "KUBE-SVC-" + hash, svl = "KUBE-SVL-" + hash, ext = "KUBE-EXT-" + hash,
                 fw = "KUBE-FW-" + hash;
      const auto cip = s.cluster_ip->str() + "/32";
      static const std::vector<Endpoint> kNone;
      const auto& all =
          found != endpoints.end() && i < found->second.size() ? found->second[i] : kNone;
      auto c = categorize(node, s, all);
      auto sep = [&](const Endpoint& e) {
        return "KUBE-SEP-" + iptables_hash(name + proto + e.str());
      };
      auto pick = [&](const std::string& chain, const std::vector<Endpoint>& eps) {
        if (s.affinity)
          for (const auto& e : eps)
            nat += fmt::format(
                "-A {} -m comment --comment \"{} -> {}\" -m recent --name {} --mask "
                "255.255.255.255 --rsource --rcheck --seconds {} --reap -j {}\n",
                chain, name, e.str(), sep(e), s.affinity_timeout, sep(e));
        for (size_t k = 0; k < eps.size(); ++k) {
          auto probability = k + 1 < eps.size()
                                 ? fmt::format(" -m statistic --mode random --probability {:.11f}",
                                               1.0 / static_cast<double>(eps.size() - k))
                                 : std::string();
          nat += fmt::format("-A {} -m comment --comment \"{} -> {}\"{} -j {}\n", chain, name,
                             eps[k].str(), probability, sep(eps[k]));
        }
      };
      if (!c.cluster.empty()) {
        nat_chains.push_back(svc);
        nat += fmt::format(
            "-A {} ! -s {} -d {} -p {} -m comment --comment \"{} cluster IP\" -m {} --dport {} -j "
            "KUBE-MARK-MASQ\n",
            svc, pods, cip, proto, name, proto, port.port);
        pick(svc, c.cluster);
      }
      if (!c.local.empty()) {
        nat_chains.push_back(svl);
        pick(svl, c.local);
      }
      for (const auto& e : c.reachable) {
        auto chain = sep(e);
        nat_chains.push_back(chain);
        nat += fmt::format("-A {} -s {}/32 -m comment --comment {} -j KUBE-MARK-MASQ\n", chain,
                           e.ip.str(), name);
        nat +=
            fmt::format("-A {} -p {} -m comment --comment {}{} -m {} -j DNAT --to-destination {}\n",
                        chain, proto, name,
                        s.affinity ? fmt::format(" -m recent --set --name {} --mask "
                                                 "255.255.255.255 --rsource",
                                                 chain)
                                   : "",
                        proto, e.str());
      }
      if (c.uses_external) {
        nat_chains.push_back(ext);
        if (!c.ext_local) {
          nat += fmt::format(
              "-A {} -m comment --comment \"masquerade traffic for {} external destinations\" "
              "-j KUBE-MARK-MASQ\n-A {} -j {}\n",
              ext, name, ext, svc);
        } else {
          nat += fmt::format(
              "-A {0} -s {1} -m comment --comment \"pod traffic for {2} external destinations\" "
              "-j {3}\n"
              "-A {0} -m comment --comment \"masquerade LOCAL traffic for {2} external "
              "destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ\n"
              "-A {0} -m comment --comment \"route LOCAL traffic for {2} external destinations\" "
              "-m addrtype --src-type LOCAL -j {3}\n",
              ext, pods, name, svc);
          if (!c.local.empty()) nat += fmt::format("-A {} -j {}\n", ext, svl);
        }
      }
      auto reject = [&](const std::string& why_none) {
        return c.has_endpoints ? fmt::format("\"{} has no local endpoints\"", why_none)
                               : fmt::format("\"{} has no endpoints\"", why_none);
      };
      auto verdict = c.has_endpoints ? std::string("DROP")
                                     : std::string("REJECT --reject-with icmp-port-unreachable");
      if (c.has_internal)
        nat_services += fmt::format(
            "-A KUBE-SERVICES -d {} -p {} -m comment --comment \"{} cluster IP\" -m {} --dport {} "
            "-j {}\n",
            cip, proto, name, proto, port.port, c.int_local ? svl : svc);
      else
        filter_services += fmt::format(
            "-A KUBE-SERVICES -d {} -p {} -m comment --comment {} -m {} --dport {} -j {}\n", cip,
            proto, reject(name), proto, port.port, verdict);
      if (s.load_balancer_ip) {
        auto lb = s.load_balancer_ip->str() + "/32";
        bool firewall = !s.source_ranges.empty() && c.has_external;
        if (c.uses_external)
          nat_services += fmt::format(
              "-A KUBE-SERVICES -d {} -p {} -m comment --comment \"{} loadbalancer IP\" -m {} "
              "--dport {} -j {}\n",
              lb, proto, name, proto, port.port, firewall ? fw : ext);
        if (firewall && c.uses_external) {
          nat_chains.push_back(fw);
          for (const auto& r : s.source_ranges)
            nat += fmt::format("-A {} -s {} -m comment --comment \"{} loadbalancer IP\" -j {}\n",
                               fw, r.str(), name, ext);
          nat += fmt::format(
              "-A {} -m comment --comment \"other traffic to {} will be dropped by "
              "KUBE-PROXY-FIREWALL\"\n",
              fw, name);
          filter_firewall += fmt::format(
              "-A KUBE-PROXY-FIREWALL -d {} -p {} -m comment --comment \"{} traffic not accepted "
              "by {}\" -m {} --dport {} -j DROP\n",
              lb, proto, name, fw, proto, port.port);
        }
        if (!c.has_external)
          filter_external += fmt::format(
              "-A KUBE-EXTERNAL-SERVICES -d {} -p {} -m comment --comment {} -m {} --dport {} -j "
              "{}\n",
              lb, proto, reject(name), proto, port.port, verdict);
      }
      if (port.node_port) {
        if (c.uses_external)
          nat_nodeports += fmt::format(
              "-A KUBE-NODEPORTS -p {} -m comment --comment {} -m {} --dport {} -j {}\n", proto,
              name, proto, port.node_port, ext);
        if (!c.has_external)
          filter_external += fmt::format(
              "-A KUBE-EXTERNAL-SERVICES -p {} -m comment --comment {} -m addrtype --dst-type "
              "LOCAL -m {} --dport {} -j {}\n",
              proto, reject(name), proto, port.node_port, verdict);
      }
    }
  }
  chains = nat_chains;
  std::set<std::string> current(nat_chains.begin(), nat_chains.end());
  std::vector<std::string> stale;
  for (const auto& c : previous_chains)
    if (!current.count(c)) stale.push_back(c);

  std::string out = "*nat\n";
  for (const auto& c : nat_chains) out += fmt::format(":{} - [0:0]\n", c);
  for (const auto& c : stale) out += fmt::format(":{} - [0:0]\n", c);
  if (first)
    out +=
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j "
        "KUBE-POSTROUTING\n";
  out +=
      "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n"
      "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
      "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n"
      "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j "
      "MASQUERADE --random-fully\n";
  out += nat_nodeports + nat_services;
  out +=
      "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be "
      "the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n";
  out += nat;
  for (const auto& c : stale) out += fmt::format("-X {}\n", c);
  out += "COMMIT\n*filter\n";
  for (const auto& c : filter_chains) out += fmt::format(":{} - [0:0]\n", c);
  if (first)
    out +=
        "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer "
        "firewall\" -j KUBE-PROXY-FIREWALL\n"
        "-A INPUT -m comment --comment \"kubernetes health check service ports\" -j "
        "KUBE-NODEPORTS\n"
        "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible "
        "service portals\" -j KUBE-EXTERNAL-SERVICES\n"
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer "
        "firewall\" -j KUBE-PROXY-FIREWALL\n"
        "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n"
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service "
        "portals\" -j KUBE-SERVICES\n"
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes "
        "externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n"
        "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer "
        "firewall\" -j KUBE-PROXY-FIREWALL\n"
        "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service "
        "portals\" -j KUBE-SERVICES\n";
  out +=
      "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
      "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark "
      "0x4000/0x4000 -j ACCEPT\n"
      "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m "
      "conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n";
  out += filter_services + filter_external + filter_firewall;
  out += "COMMIT\n";
  return out;
}

// --- conntrack ---------------------------------------------------------------

std::vector<std::vector<std::string>> udp_conntrack_deletions(const ServicePlan& s,
                                                              const ServiceEndpoints& before,
                                                              const ServiceEndpoints& after) {
  std::vector<std::vector<std::string>> commands;
  if (!s.cluster_ip) return commands;
  std::vector<std::string> destinations{s.cluster_ip->str()};
  if (s.load_balancer_ip) destinations.push_back(s.load_balancer_ip->str());
  for (size_t i = 0; i < s.ports.size() && i < before.size() && i < after.size(); ++i) {
    const auto& port = s.ports[i];
    if (port.protocol != Protocol::udp) continue;
    if (before[i].empty() && !after[i].empty())
      for (const auto& d : destinations)
        commands.push_back({"conntrack", "-D", "-p", "udp", "--orig-dst", d});
    for (const auto& gone : before[i]) {
      if (std::find(after[i].begin(), after[i].end(), gone) != after[i].end()) continue;
      for (const auto& d : destinations)
        commands.push_back(
            {"conntrack", "-D", "-p", "udp", "--orig-dst", d, "--dst-nat", gone.ip.str()});
      if (port.node_port)
        commands.push_back({"conntrack", "-D", "-p", "udp", "--orig-port-dst",
                            std::to_string(port.node_port), "--dst-nat", gone.ip.str()});
    }
  }
  return commands;
}

}  // namespace knl
