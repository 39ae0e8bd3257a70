// inspect and get: what the state record and the running processes say.

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "knetlab/cli/commands.h"
#include "knetlab/cli/lab.h"
#include "knetlab/util/error.h"

namespace knl::cli {

using nlohmann::json;

namespace {

// Live view of one pod: how many containers run.
std::pair<size_t, size_t> containers_running(const json& pod) {
  size_t up = 0, total = pod["containers"].size();
  for (const auto& c : pod["containers"])
    if (c.contains("pid") && process_alive(process_of(c))) ++up;
  return {up, total};
}

// Ready as the controller last saw it (readiness probes), and running now.
bool pod_ready(const json& pod) {
  auto [up, total] = containers_running(pod);
  return up == total && pod.value("ready", true);
}

json pod_view(const json& pod) {
  return {{"name", pod["name"]},  {"namespace", pod["namespace"]}, {"node", pod["node"]},
          {"ip", pod["ip"]},      {"labels", pod["labels"]},       {"ready", pod_ready(pod)},
          {"netns", pod["netns"]}};
}

json service_view(const json& s) {
  json ports = json::array();
  for (const auto& p : s["ports"]) ports.push_back(p);
  return {{"name", s["name"]},
          {"namespace", s["namespace"]},
          {"type", s["type"]},
          {"clusterIP", s["clusterIP"]},
          {"ports", ports},
          {"loadBalancerIP", s["loadBalancerIP"]},
          {"endpoints", s["endpoints"]}};
}

std::string ports_text(const json& s) {
  std::vector<std::string> out;
  for (const auto& p : s["ports"]) {
    auto text = std::to_string(p["port"].get<int>());
    if (!p["nodePort"].is_null()) text += ":" + std::to_string(p["nodePort"].get<int>());
    out.push_back(text + "/" + p["protocol"].get<std::string>());
  }
  return out.empty() ? "<none>" : fmt::format("{}", fmt::join(out, ","));
}

std::string ip_text(const json& v) {
  return v.is_null() ? "<none>" : v.get<std::string>();
}

void print_services(const json& state, bool wide, const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"});
  if (wide) rows.back().push_back("SELECTOR");
  for (const auto& s : state["services"]) {
    if (!name.empty() && s["name"] != name) continue;
    auto external = s.contains("externalName") ? s["externalName"].get<std::string>()
                                               : ip_text(s["loadBalancerIP"]);
    rows.push_back(
        {s["namespace"], s["name"], s["type"], ip_text(s["clusterIP"]), external, ports_text(s)});
    if (wide) {
      std::vector<std::string> selector;
      for (const auto& [k, v] : s["selector"].items())
        selector.push_back(k + "=" + v.get<std::string>());
      rows.back().push_back(selector.empty() ? "<none>"
                                             : fmt::format("{}", fmt::join(selector, ",")));
    }
  }
  print_table(rows);
}

void print_endpoints(const json& state, bool wide, const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAMESPACE", "NAME", "ENDPOINTS"});
  if (wide) rows.back().insert(rows.back().end(), {"PODS", "NODES"});
  for (const auto& s : state["services"]) {
    if (!name.empty() && s["name"] != name) continue;
    if (s["type"] == "ExternalName") continue;
    std::vector<std::string> eps, pods, nodes;
    for (const auto& e : s["endpointDetails"]) {
      eps.push_back(fmt::format("{}:{}", e["ip"].get<std::string>(), e["port"].get<int>()));
      pods.push_back(e["pod"]);
      nodes.push_back(e["node"]);
    }
    auto join = [](const std::vector<std::string>& v) {
      return v.empty() ? std::string("<none>") : fmt::format("{}", fmt::join(v, ","));
    };
    rows.push_back({s["namespace"], s["name"], join(eps)});
    if (wide) rows.back().insert(rows.back().end(), {join(pods), join(nodes)});
  }
  print_table(rows);
}

json node_view(const json& n) {
  return {{"name", n["name"]},
          {"role", n["role"]},
          {"ip", n["ip"]},
          {"podCIDR", n["podCIDR"]},
          {"netns", n["netns"]},
          {"rack", n.value("rack", "")},
          {"frr", n.value("frr", json(nullptr))}};
}

json host_view(const json& h) {
  return {
      {"name", h["name"]}, {"ip", h["ip"]}, {"netns", h["netns"]}, {"rack", h.value("rack", "")}};
}

json router_view(const json& r) {
  return {{"name", r["name"]}, {"ip", r["ip"]},       {"subnet", r["subnet"]},
          {"asn", r["asn"]},   {"netns", r["netns"]}, {"frr", r["frr"]}};
}

void print_routers(const json& state, bool wide, const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "IP", "SUBNET", "ASN", "BGP-PEERS"});
  if (wide) rows.back().push_back("NETNS");
  for (const auto& r : state.value("routers", json::array())) {
    if (!name.empty() && r["name"] != name) continue;
    std::vector<std::string> peers;
    if (!r["frr"].is_null())
      for (const auto& p : r["frr"]["peers"]) peers.push_back(p["target"]);
    rows.push_back({r["name"], r["ip"],
                    r["subnet"].is_null() ? "-" : r["subnet"].get<std::string>(),
                    r["asn"].is_null() ? "-" : std::to_string(r["asn"].get<uint32_t>()),
                    peers.empty() ? "<none>" : fmt::format("{}", fmt::join(peers, ","))});
    if (wide) rows.back().push_back(r["netns"]);
  }
  print_table(rows);
}

json inspect_json(const json& state) {
  json out = {{"name", state["name"]},  {"network", state["network"]}, {"nodes", json::array()},
              {"hosts", json::array()}, {"pods", json::array()},       {"services", json::array()}};
  for (const auto& n : state["nodes"]) out["nodes"].push_back(node_view(n));
  for (const auto& h : state["hosts"]) out["hosts"].push_back(host_view(h));
  out["routers"] = json::array();
  for (const auto& r : state.value("routers", json::array()))
    out["routers"].push_back(router_view(r));
  for (const auto& p : state["pods"]) out["pods"].push_back(pod_view(p));
  for (const auto& s : state.value("services", json::array()))
    out["services"].push_back(service_view(s));
  return out;
}

void print_nodes(const json& state, bool wide, const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "STATUS", "ROLES", "INTERNAL-IP", "POD-CIDR"});
  if (wide) rows.back().insert(rows.back().end(), {"VTEP-MAC", "NETNS"});
  for (const auto& n : state["nodes"]) {
    if (!name.empty() && n["name"] != name) continue;
    rows.push_back({n["name"], "Ready", n["role"], n["ip"], n["podCIDR"]});
    if (wide) rows.back().insert(rows.back().end(), {n["vtepMAC"], n["netns"]});
  }
  print_table(rows);
}

void print_pods(const json& state, bool wide, const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAMESPACE", "NAME", "READY", "STATUS", "IP", "NODE"});
  if (wide) rows.back().insert(rows.back().end(), {"PID", "NETNS"});
  for (const auto& p : state["pods"]) {
    if (!name.empty() && p["name"] != name) continue;
    auto [up, total] = containers_running(p);
    rows.push_back({p["namespace"], p["name"],
                    fmt::format("{}/{}", pod_ready(p) ? up : std::min(up, total - 1), total),
                    up == total ? "Running" : "Error", p["ip"], p["node"]});
    if (wide)
      rows.back().insert(
          rows.back().end(),
          {p.contains("sandbox") ? std::to_string(p["sandbox"]["pid"].get<int>()) : "-",
           p["netns"]});
  }
  print_table(rows);
}

void print_hosts(const json& state, bool wide, const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "IP"});
  if (wide) rows.back().push_back("NETNS");
  for (const auto& h : state["hosts"]) {
    if (!name.empty() && h["name"] != name) continue;
    rows.push_back({h["name"], h["ip"]});
    if (wide) rows.back().push_back(h["netns"]);
  }
  print_table(rows);
}

}  // namespace

int inspect(const ListOptions& options) {
  auto state = read_state(pick_lab(options.lab));
  if (options.format == "json") {
    fmt::print("{}\n", inspect_json(state).dump(2));
    return 0;
  }
  fmt::print("Lab {}  (cni {}, pods {}, services {})\n\nNODES\n", state["name"].get<std::string>(),
             state["network"]["cni"].get<std::string>(),
             state["network"]["podSubnet"].get<std::string>(),
             state["network"]["serviceSubnet"].get<std::string>());
  print_nodes(state, true, "");
  fmt::print("\nPODS\n");
  print_pods(state, true, "");
  if (!state["hosts"].empty()) {
    fmt::print("\nHOSTS\n");
    print_hosts(state, true, "");
  }
  if (!state.value("routers", json::array()).empty()) {
    fmt::print("\nROUTERS\n");
    print_routers(state, true, "");
  }
  if (!state.value("services", json::array()).empty()) {
    fmt::print("\nSERVICES\n");
    print_services(state, true, "");
    fmt::print("\nENDPOINTS\n");
    print_endpoints(state, true, "");
  }
  return 0;
}

int get(const std::string& kind, const std::string& name, const ListOptions& options) {
  static const std::map<std::string, std::string> kinds = {
      {"nodes", "nodes"},       {"node", "nodes"},
      {"no", "nodes"},          {"pods", "pods"},
      {"pod", "pods"},          {"po", "pods"},
      {"hosts", "hosts"},       {"host", "hosts"},
      {"routers", "routers"},   {"router", "routers"},
      {"services", "services"}, {"service", "services"},
      {"svc", "services"},      {"endpoints", "endpoints"},
      {"ep", "endpoints"},      {"endpointslices", "endpoints"}};
  static const std::vector<std::string> later = {"ingresses", "networkpolicies"};
  auto it = kinds.find(kind);
  if (it == kinds.end()) {
    if (std::find(later.begin(), later.end(), kind) != later.end())
      throw UserError(
          fmt::format("\"{}\" come with ingresses and policies, which this version does not "
                      "build yet; try nodes, pods, services, endpoints, hosts or routers",
                      kind));
    throw UserError(fmt::format(
        "unknown kind \"{}\"; try nodes, pods, services, endpoints, hosts or routers", kind));
  }
  auto state = read_state(pick_lab(options.lab));
  const auto& what = it->second;
  const auto& items_of = state.value(what == "endpoints" ? "services" : what, json::array());
  bool found = name.empty();
  for (const auto& item : items_of) found = found || item["name"] == name;
  if (!found)
    throw UserError(fmt::format("no {} named \"{}\" in lab \"{}\"", what.substr(0, what.size() - 1),
                                name, state["name"].get<std::string>()));
  if (options.format == "json") {
    json items = json::array();
    for (const auto& item : items_of) {
      if (!name.empty() && item["name"] != name) continue;
      if (what == "endpoints")
        items.push_back({{"name", item["name"]},
                         {"namespace", item["namespace"]},
                         {"endpoints", item["endpointDetails"]}});
      else
        items.push_back(what == "pods"       ? pod_view(item)
                        : what == "nodes"    ? node_view(item)
                        : what == "services" ? service_view(item)
                        : what == "routers"  ? router_view(item)
                                             : host_view(item));
    }
    fmt::print("{}\n", json{{"kind", "List"}, {"items", items}}.dump(2));
    return 0;
  }
  bool wide = options.format == "wide";
  if (what == "nodes") print_nodes(state, wide, name);
  if (what == "pods") print_pods(state, wide, name);
  if (what == "hosts") print_hosts(state, wide, name);
  if (what == "routers") print_routers(state, wide, name);
  if (what == "services") print_services(state, wide, name);
  if (what == "endpoints") print_endpoints(state, wide, name);
  return 0;
}

}  // namespace knl::cli
