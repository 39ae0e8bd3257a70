// kube-proxy's iptables mode: iptables-restore input with its chain names,
// hashes and probabilities.

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "knetlab/plan/kubeproxy.h"
#include "kubeproxy_shared.h"

namespace knl {

using kube_proxy::categorize;
using kube_proxy::lower;

// --- iptables ----------------------------------------------------------------

std::string iptables_ruleset(const ProxyNode& node, const std::vector<ServicePlan>& services,
                             const EndpointMap& endpoints, const IptablesSynced* previous,
                             IptablesSynced& now, const std::set<std::string>* written) {
  const bool first = previous == nullptr;
  const auto pods = node.pod_subnet.str();
  // Each proxied service's part, in plan order, and whether this sync writes its chains.
  std::vector<std::pair<const IptablesService*, bool>> parts;
  std::string written_rules;  // the rules of the chains this sync writes
  for (const auto& s : services) {
    if (!s.proxied()) continue;
    const auto key = s.key();
    // A service not written keeps its chains and their rules as the last
    // sync left them: not declared, iptables-restore --noflush leaves them.
    if (previous && written && !written->count(key))
      if (auto kept = previous->services.find(key); kept != previous->services.end()) {
        parts.emplace_back(&(now.services[key] = kept->second), false);
        continue;
      }
    auto& part = now.services[key];
    part = {};
    parts.emplace_back(&part, true);
    auto &nat = written_rules, &nat_services = part.nat_services,
         &nat_nodeports = part.nat_nodeports, &filter_services = part.filter_services,
         &filter_external = part.filter_external, &filter_firewall = part.filter_firewall;
    auto& nat_chains = part.chains;
    auto found = endpoints.find(key);
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
  std::string declared, nat_services, nat_nodeports, filter_services, filter_external,
      filter_firewall;
  for (const auto& [part, write] : parts) {
    if (write)
      for (const auto& c : part->chains) declared += fmt::format(":{} - [0:0]\n", c);
    nat_services += part->nat_services, nat_nodeports += part->nat_nodeports;
    filter_services += part->filter_services, filter_external += part->filter_external;
    filter_firewall += part->filter_firewall;
  }
  // Chains of the last sync that no service has now: those of services
  // written again, or gone.
  std::vector<std::string> stale;
  if (previous)
    for (const auto& [key, before] : previous->services) {
      auto after = now.services.find(key);
      for (const auto& c : before.chains)
        if (after == now.services.end() ||
            std::find(after->second.chains.begin(), after->second.chains.end(), c) ==
                after->second.chains.end())
          stale.push_back(c);
    }

  // The shared chains' rules; one is written (declared, so flushed, and
  // refilled) only when it differs from the last sync's.
  const std::vector<std::pair<std::string, std::string>> nat_shared = {
      {"KUBE-MARK-MASQ", "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n"},
      {"KUBE-POSTROUTING",
       "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
       "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n"
       "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j "
       "MASQUERADE --random-fully\n"},
      {"KUBE-NODEPORTS", nat_nodeports},
      {"KUBE-SERVICES",
       nat_services +
           "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must "
           "be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n"}};
  const std::vector<std::pair<std::string, std::string>> filter_shared = {
      {"KUBE-SERVICES", filter_services},
      {"KUBE-EXTERNAL-SERVICES", filter_external},
      {"KUBE-FORWARD",
       "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
       "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark "
       "0x4000/0x4000 -j ACCEPT\n"
       "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m "
       "conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"},
      {"KUBE-NODEPORTS", ""},
      {"KUBE-PROXY-FIREWALL", filter_firewall}};
  std::string nat_declared, nat_rules, filter_declared, filter_rules;
  auto shared = [&](const char* table, const auto& list, std::string& declared,
                    std::string& rules) {
    for (const auto& [chain, text] : list) {
      const auto key = fmt::format("{} {}", table, chain);
      auto before = previous ? previous->shared.find(key) : now.shared.end();
      if (!previous || before == previous->shared.end() || before->second != text) {
        declared += fmt::format(":{} - [0:0]\n", chain);
        rules += text;
      }
      now.shared[key] = text;
    }
  };
  shared("nat", nat_shared, nat_declared, nat_rules);
  shared("filter", filter_shared, filter_declared, filter_rules);

  std::string out = "*nat\n" + nat_declared + declared;
  for (const auto& c : stale) out += fmt::format(":{} - [0:0]\n", c);
  if (first)
    out +=
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j "
        "KUBE-POSTROUTING\n";
  out += nat_rules + written_rules;
  for (const auto& c : stale) out += fmt::format("-X {}\n", c);
  out += "COMMIT\n";
  if (!first && filter_declared.empty()) return out;
  out += "*filter\n" + filter_declared;
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
  out += filter_rules + "COMMIT\n";
  return out;
}

}  // namespace knl
