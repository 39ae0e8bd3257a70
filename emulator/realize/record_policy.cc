// The JSON mapping of a network policy, in the shape of Kubernetes'
// NetworkPolicy (metadata's name and namespace beside its spec's fields).

#include "knetlab/realize/record.h"
#include "record_json.h"

namespace knl {

using nlohmann::json;
using record_json::enum_at;
using record_json::net_of;

namespace {

json selector_json(const LabelSelector& s) {
  json out = json::object();
  if (!s.match_labels.empty()) out["matchLabels"] = s.match_labels;
  if (!s.match_expressions.empty()) {
    json& list = out["matchExpressions"] = json::array();
    for (const auto& r : s.match_expressions) {
      json e = {{"key", r.key}, {"operator", enum_name(r.op)}};
      if (!r.values.empty()) e["values"] = r.values;
      list.push_back(std::move(e));
    }
  }
  return out;
}

LabelSelector selector_at(const json& j) {
  LabelSelector s;
  if (j.contains("matchLabels")) s.match_labels = j["matchLabels"].get<Labels>();
  if (j.contains("matchExpressions"))
    for (const auto& e : j["matchExpressions"])
      s.match_expressions.push_back({e.at("key"), enum_at<SelectorOperator>(e, "operator"),
                                     e.value("values", std::vector<std::string>{})});
  return s;
}

json rule_json(const PolicyRule& rule, const char* peers_key) {
  json peers = json::array(), ports = json::array();
  for (const auto& p : rule.peers) {
    json peer = json::object();
    if (p.pod_selector) peer["podSelector"] = selector_json(*p.pod_selector);
    if (p.namespace_selector) peer["namespaceSelector"] = selector_json(*p.namespace_selector);
    if (p.ip_block) {
      json except = json::array();
      for (const auto& e : p.ip_block->except) except.push_back(e.str());
      peer["ipBlock"] = {{"cidr", p.ip_block->cidr.str()}, {"except", std::move(except)}};
    }
    peers.push_back(std::move(peer));
  }
  for (const auto& p : rule.ports) {
    json port = {{"protocol", enum_name(p.protocol)}};
    if (!p.port_name.empty())
      port["port"] = p.port_name;
    else if (p.port != 0)
      port["port"] = p.port;
    if (p.end_port != 0) port["endPort"] = p.end_port;
    ports.push_back(std::move(port));
  }
  return {{peers_key, std::move(peers)}, {"ports", std::move(ports)}};
}

PolicyRule rule_at(const json& j, const char* peers_key) {
  PolicyRule rule;
  for (const auto& p : j.at(peers_key)) {
    PolicyPeer peer;
    if (p.contains("podSelector")) peer.pod_selector = selector_at(p["podSelector"]);
    if (p.contains("namespaceSelector"))
      peer.namespace_selector = selector_at(p["namespaceSelector"]);
    if (p.contains("ipBlock")) {
      IpBlock block{net_of(p["ipBlock"].at("cidr")), {}};
      for (const auto& e : p["ipBlock"].at("except")) block.except.push_back(net_of(e));
      peer.ip_block = std::move(block);
    }
    rule.peers.push_back(std::move(peer));
  }
  for (const auto& p : j.at("ports")) {
    PolicyPort port{enum_at<Protocol>(p, "protocol")};
    if (p.contains("port")) {
      if (p["port"].is_string())
        port.port_name = p["port"];
      else
        port.port = p["port"];
    }
    port.end_port = p.value("endPort", 0);
    rule.ports.push_back(std::move(port));
  }
  return rule;
}

}  // namespace

void to_json(json& j, const NetworkPolicy& p) {
  json types = json::array(), ingress = json::array(), egress = json::array();
  if (p.ingress) types.push_back(enum_name(PolicyType::ingress));
  if (p.egress) types.push_back(enum_name(PolicyType::egress));
  for (const auto& r : p.ingress_rules) ingress.push_back(rule_json(r, "from"));
  for (const auto& r : p.egress_rules) egress.push_back(rule_json(r, "to"));
  j = {{"name", p.name},
       {"namespace", p.namespace_},
       {"podSelector", selector_json(p.pod_selector)},
       {"policyTypes", std::move(types)},
       {"ingress", std::move(ingress)},
       {"egress", std::move(egress)}};
}

void from_json(const json& j, NetworkPolicy& p) {
  p.name = j.at("name"), p.namespace_ = j.at("namespace");
  p.pod_selector = selector_at(j.at("podSelector"));
  p.ingress = p.egress = false;
  for (const auto& t : j.at("policyTypes")) {
    auto type = enum_from_name<PolicyType>(t.get<std::string>());
    if (!type) throw UserError(fmt::format("unknown policy type {} in the record", t.dump()));
    (*type == PolicyType::egress ? p.egress : p.ingress) = true;
  }
  for (const auto& r : j.at("ingress")) p.ingress_rules.push_back(rule_at(r, "from"));
  for (const auto& r : j.at("egress")) p.egress_rules.push_back(rule_at(r, "to"));
}

}  // namespace knl
