#include "knetlab/plan/kubeproxy.h"

#include <nettle/sha2.h>

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "kubeproxy_shared.h"

namespace knl {

namespace kube_proxy {

std::string lower(Protocol protocol) {
  std::string s(enum_name(protocol));
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

namespace {

bool externally(const ServicePlan& s) {
  return s.node_ports() || s.load_balancer_ip.has_value();
}

}  // namespace

bool node_dependent(const ServicePlan& s) {
  return s.internal_local || (externally(s) && s.external_local);
}

Categories categorize(const ProxyNode& node, const ServicePlan& s,
                      const std::vector<Endpoint>& all) {
  Categories c;
  c.externally = externally(s);
  c.ext_local = c.externally && s.external_local;
  c.int_local = s.internal_local;
  std::vector<Endpoint> local;
  for (const auto& e : all)
    if (e.node == node.name) local.push_back(e);
  // Externally reachable services keep the cluster-wide set for the
  // short-circuit of pod and node traffic.
  if (!c.int_local || c.externally) c.cluster = all;
  if (node_dependent(s)) c.local = local;
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

}  // namespace kube_proxy

namespace {

using kube_proxy::kTable;
using kube_proxy::lower;

constexpr size_t kServicesPerTable = 1000;
constexpr size_t kChainsPerTable = 10000;

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

}  // namespace

ProxyNode proxy_node(const Plan& plan, const NodePlan& node, const EndpointMap& endpoints) {
  size_t chains = 0;
  for (const auto& s : plan.services) {
    chains += s.ports.size();
    auto it = endpoints.find(s.key());
    if (nft_endpoint_chains(plan.network.nftables_picker, s) && it != endpoints.end())
      for (const auto& port : it->second) chains += port.size();
  }
  return {node.name,
          node.ip,
          plan.network.pod_subnet,
          plan.network.service_subnet,
          node.pod_cidr,
          plan.network.nftables_picker,
          nft_tables_for(plan.services.size(), chains)};
}

int nft_tables_for(size_t services, size_t chains) {
  auto tables = [](size_t count, size_t per) { return (count + per - 1) / per; };
  return static_cast<int>(
      std::max<size_t>({1, tables(services, kServicesPerTable), tables(chains, kChainsPerTable)}));
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
