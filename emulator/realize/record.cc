#include "knetlab/realize/record.h"

#include <fmt/format.h>

#include <filesystem>
#include <utility>

#include "knetlab/util/error.h"
#include "record_json.h"

namespace knl {

using nlohmann::json;
using record_json::enum_at;
using record_json::ip_at;
using record_json::net_of;

namespace {

json process_json(const ProcessRecord& p) {
  return {{"pid", p.pid}, {"startTime", p.start_time}};
}

ProcessRecord process_at(const json& j) {
  return {j.at("pid").get<int>(), j.at("startTime").get<uint64_t>()};
}

template <typename T>
json optional_json(const std::optional<T>& value, auto&& to) {
  return value ? json(to(*value)) : json(nullptr);
}

json frr_json(const FrrRecord& f) {
  json peers = json::array();
  for (const auto& p : f.peers)
    peers.push_back({{"ip", p.ip.str()}, {"asn", p.asn}, {"target", p.target}});
  return {{"dir", f.dir}, {"asn", f.asn}, {"routerID", f.router_id.str()}, {"peers", peers}};
}

std::optional<FrrRecord> frr_at(const json& j) {
  if (!j.contains("frr") || j["frr"].is_null()) return std::nullopt;
  const auto& f = j["frr"];
  FrrRecord r{f.at("dir"), f.at("asn"), ip_at(f, "routerID"), {}};
  for (const auto& p : f.at("peers"))
    r.peers.push_back({ip_at(p, "ip"), p.at("asn"), p.at("target")});
  return r;
}

json pod_json(const PodRecord& p) {
  json containers = json::array();
  for (const auto& c : p.containers) {
    json& entry = containers.emplace_back(json::object());
    entry["name"] = c.name;
    entry["log"] = c.log;
    entry["argv"] = c.argv;
    json ports = json::array();
    for (const auto& port : c.ports)
      ports.push_back({{"name", port.name},
                       {"containerPort", port.container_port},
                       {"protocol", enum_name(port.protocol)}});
    entry["ports"] = std::move(ports);
    if (c.process) {
      entry["pid"] = c.process->pid;
      entry["startTime"] = c.process->start_time;
    }
  }
  // Set key by key: a braced list builds a two-element array per key first.
  json pod = json::object();
  pod["name"] = p.name;
  pod["namespace"] = p.namespace_;
  pod["node"] = p.node;
  pod["ip"] = p.ip.str();
  pod["labels"] = p.labels;
  pod["netns"] = p.netns;
  pod["hostNetwork"] = p.host_network;
  pod["deployment"] = p.deployment;
  pod["dir"] = p.dir;
  pod["ready"] = p.ready;
  pod["containers"] = std::move(containers);
  if (p.sandbox) pod["sandbox"] = process_json(*p.sandbox);
  return pod;
}

PodRecord pod_at(const json& j) {
  PodRecord p;
  p.name = j.at("name"), p.namespace_ = j.at("namespace"), p.node = j.at("node");
  p.ip = ip_at(j, "ip");
  p.labels = j.at("labels").get<Labels>();
  p.netns = j.at("netns"), p.host_network = j.at("hostNetwork");
  p.deployment = j.at("deployment"), p.dir = j.at("dir"), p.ready = j.at("ready");
  for (const auto& c : j.at("containers")) {
    ContainerRecord r{c.at("name"), c.at("log"), c.at("argv"), std::nullopt, {}};
    if (c.contains("pid")) r.process = process_at(c);
    for (const auto& port : c.at("ports"))
      r.ports.push_back(
          {port.at("name"), port.at("containerPort"), enum_at<Protocol>(port, "protocol")});
    p.containers.push_back(std::move(r));
  }
  if (j.contains("sandbox")) p.sandbox = process_at(j["sandbox"]);
  return p;
}

json service_json(const ServiceRecord& s) {
  json ports = json::array(), endpoints = json::array(), ranges = json::array();
  for (const auto& p : s.ports)
    ports.push_back({{"name", p.name},
                     {"port", p.port},
                     {"protocol", enum_name(p.protocol)},
                     {"targetPort",
                      p.target_port_name.empty() ? json(p.target_port) : json(p.target_port_name)},
                     {"nodePort", p.node_port ? json(*p.node_port) : json(nullptr)}});
  for (const auto& e : s.endpoints)
    endpoints.push_back({{"ip", e.ip.str()},
                         {"port", e.port},
                         {"portName", e.port_name},
                         {"protocol", enum_name(e.protocol)},
                         {"node", e.node},
                         {"pod", e.pod}});
  for (const auto& r : s.load_balancer_source_ranges) ranges.push_back(r.str());
  return {{"name", s.name},
          {"namespace", s.namespace_},
          {"type", enum_name(s.type)},
          {"clusterIP", s.headless     ? json("None")
                        : s.cluster_ip ? json(s.cluster_ip->str())
                                       : json(nullptr)},
          {"ports", std::move(ports)},
          {"selector", s.selector},
          {"sessionAffinity", enum_name(s.session_affinity)},
          {"externalTrafficPolicy", enum_name(s.external_traffic_policy)},
          {"internalTrafficPolicy", enum_name(s.internal_traffic_policy)},
          {"loadBalancerIP", optional_json(s.load_balancer_ip, [](Ipv4 ip) { return ip.str(); })},
          {"loadBalancerSourceRanges", std::move(ranges)},
          {"externalName", s.external_name},
          {"endpoints", std::move(endpoints)}};
}

ServiceRecord service_at(const json& j) {
  ServiceRecord s;
  s.name = j.at("name"), s.namespace_ = j.at("namespace");
  s.type = enum_at<ServiceType>(j, "type");
  const auto& ip = j.at("clusterIP");
  s.headless = ip == "None";
  if (ip.is_string() && !s.headless) s.cluster_ip = ip_at(j, "clusterIP");
  for (const auto& p : j.at("ports")) {
    ServicePortRecord r{p.at("name"), p.at("port"), enum_at<Protocol>(p, "protocol"), 0, "", {}};
    if (p.at("targetPort").is_string())
      r.target_port_name = p["targetPort"];
    else
      r.target_port = p["targetPort"];
    if (!p.at("nodePort").is_null()) r.node_port = p["nodePort"].get<int>();
    s.ports.push_back(std::move(r));
  }
  s.selector = j.at("selector").get<Labels>();
  s.session_affinity = enum_at<SessionAffinity>(j, "sessionAffinity");
  s.external_traffic_policy = enum_at<TrafficPolicy>(j, "externalTrafficPolicy");
  s.internal_traffic_policy = enum_at<TrafficPolicy>(j, "internalTrafficPolicy");
  if (!j.at("loadBalancerIP").is_null()) s.load_balancer_ip = ip_at(j, "loadBalancerIP");
  for (const auto& r : j.at("loadBalancerSourceRanges"))
    s.load_balancer_source_ranges.push_back(net_of(r));
  s.external_name = j.at("externalName");
  for (const auto& e : j.at("endpoints"))
    s.endpoints.push_back({ip_at(e, "ip"), e.at("port"), e.at("portName"),
                           enum_at<Protocol>(e, "protocol"), e.at("node"), e.at("pod")});
  return s;
}

std::string absolute(const std::string& file) {
  return file.empty() ? file : std::filesystem::absolute(file).string();
}

}  // namespace

LabRecord make_record(const Plan& plan, const std::map<std::string, PodProcesses>& pods,
                      LabPhase phase, const EndpointMap* endpoints,
                      const std::set<std::string>* ready_pods) {
  LabRecord r;
  r.name = plan.lab;
  r.file = absolute(plan.file);
  r.phase = phase;
  r.network = {plan.network.cni,
               plan.network.kube_proxy_mode,
               plan.network.pod_subnet,
               plan.network.service_subnet,
               plan.network.load_balancer_mode,
               plan.network.dns_domain};
  r.lan_netns = plan.lan_netns;
  r.lan_gateway = plan.lan_gateway;
  auto frr_of = [&](const std::string& target) -> std::optional<FrrRecord> {
    for (const auto& f : plan.frr)
      if (f.target == target) {
        FrrRecord out{f.dir, f.asn, f.router_id, {}};
        for (const auto& p : f.peers) out.peers.push_back({p.ip, p.asn, p.target});
        return out;
      }
    return std::nullopt;
  };
  for (const auto& n : plan.nodes)
    r.nodes.push_back(
        {n.name, n.role, n.ip, n.pod_cidr, n.netns, n.vtep_mac, n.rack, frr_of("node/" + n.name)});
  for (const auto& h : plan.hosts) r.hosts.push_back({h.name, h.ip, h.netns, h.rack, h.dns_names});
  for (const auto& router : plan.routers)
    r.routers.push_back(
        {router.name, router.netns, router.ip,
         router.name == "spine" ? std::nullopt : std::optional<Ipv4Net>(router.subnet),
         router.runs_frr ? std::optional<uint32_t>(router.asn) : std::nullopt,
         frr_of("router/" + router.name)});
  r.pods.reserve(plan.pods.size());
  for (const auto& p : plan.pods) {
    PodRecord& pod = r.pods.emplace_back();
    pod.name = p.name, pod.namespace_ = p.namespace_, pod.node = p.node, pod.ip = p.ip;
    pod.labels = p.labels, pod.netns = p.netns, pod.host_network = p.host_network;
    pod.deployment = p.deployment, pod.dir = p.dir;
    pod.ready = !ready_pods || ready_pods->count(p.key()) > 0;
    auto running = pods.find(p.key());
    for (const auto& c : p.containers) {
      ContainerRecord& cr = pod.containers.emplace_back();
      cr.name = c.name, cr.log = c.log_path, cr.argv = c.argv, cr.ports = c.ports;
      if (running != pods.end()) cr.process = running->second.containers.at(c.name);
    }
    if (running != pods.end()) pod.sandbox = running->second.sandbox;
  }
  for (const auto& s : plan.services) {
    ServiceRecord& sr = r.services.emplace_back();
    sr.name = s.name, sr.namespace_ = s.namespace_, sr.type = s.type, sr.headless = s.headless;
    sr.cluster_ip = s.cluster_ip, sr.selector = s.selector;
    sr.session_affinity = s.affinity ? SessionAffinity::client_ip : SessionAffinity::none;
    sr.external_traffic_policy = s.external_local ? TrafficPolicy::local : TrafficPolicy::cluster;
    sr.internal_traffic_policy = s.internal_local ? TrafficPolicy::local : TrafficPolicy::cluster;
    sr.load_balancer_ip = s.load_balancer_ip;
    sr.load_balancer_source_ranges = s.source_ranges;
    sr.external_name = s.external_name;
    for (const auto& p : s.ports)
      sr.ports.push_back({p.name, p.port, p.protocol, p.target_port, p.target_port_name,
                          p.node_port ? std::optional<int>(p.node_port) : std::nullopt});
    const ServiceEndpoints* found = nullptr;
    if (endpoints)
      if (auto it = endpoints->find(s.key()); it != endpoints->end()) found = &it->second;
    for (size_t i = 0; found && i < s.ports.size() && i < found->size(); ++i)
      for (const auto& e : (*found)[i])
        sr.endpoints.push_back({e.ip, e.port, s.ports[i].name, s.ports[i].protocol, e.node, e.pod});
  }
  r.namespaces = plan.namespace_labels;
  r.network_policies = plan.network_policies;
  r.ingresses = plan.ingresses;
  r.gateways = plan.gateways;
  r.http_routes = plan.http_routes;
  r.lb_netns = plan.lb_netns;
  r.lb_ip = plan.lb_ip;
  return r;
}

LabRecord desired_part(LabRecord r) {
  r.file.clear();
  for (auto& s : r.services) s.endpoints.clear();
  for (auto& p : r.pods) {
    p.sandbox.reset();
    p.ready = true;
    for (auto& c : p.containers) c.process.reset();
  }
  return r;
}

namespace {

// The record's JSON document but its pods and services.
json record_head(const LabRecord& r) {
  json nodes = json::array(), hosts = json::array(), routers = json::array();
  for (const auto& n : r.nodes)
    nodes.push_back({{"name", n.name},
                     {"role", enum_name(n.role)},
                     {"ip", n.ip.str()},
                     {"podCIDR", n.pod_cidr.str()},
                     {"netns", n.netns},
                     {"vtepMAC", n.vtep_mac},
                     {"rack", n.rack},
                     {"frr", optional_json(n.frr, frr_json)}});
  for (const auto& h : r.hosts)
    hosts.push_back({{"name", h.name},
                     {"ip", h.ip.str()},
                     {"netns", h.netns},
                     {"rack", h.rack},
                     {"dnsNames", h.dns_names}});
  for (const auto& router : r.routers)
    routers.push_back(
        {{"name", router.name},
         {"netns", router.netns},
         {"ip", router.ip.str()},
         {"subnet", optional_json(router.subnet, [](const Ipv4Net& n) { return n.str(); })},
         {"asn", optional_json(router.asn, [](uint32_t a) { return a; })},
         {"frr", optional_json(router.frr, frr_json)}});
  return {
      {"name", r.name},
      {"file", r.file},
      {"phase", enum_name(r.phase)},
      {"network",
       {{"cni", enum_name(r.network.cni)},
        {"kubeProxyMode", enum_name(r.network.kube_proxy_mode)},
        {"podSubnet", r.network.pod_subnet.str()},
        {"serviceSubnet", r.network.service_subnet.str()},
        {"loadBalancerMode", enum_name(r.network.load_balancer_mode)},
        {"dnsDomain", r.network.dns_domain}}},
      {"lan", {{"netns", r.lan_netns}, {"gateway", r.lan_gateway.str()}}},
      {"nodes", std::move(nodes)},
      {"hosts", std::move(hosts)},
      {"routers", std::move(routers)},
      {"namespaces", r.namespaces},
      {"networkPolicies", r.network_policies},
      {"ingresses", r.ingresses},
      {"gateways", r.gateways},
      {"httpRoutes", r.http_routes},
      {"cloudLoadBalancer",
       r.lb_netns.empty() ? json(nullptr) : json{{"netns", r.lb_netns}, {"ip", r.lb_ip.str()}}}};
}

}  // namespace

void write_record(std::ostream& out, const LabRecord& r) {
  auto head = record_head(r).dump();
  head.pop_back();  // its closing brace
  out << head << ",\n\"pods\": [";
  const char* separator = "\n";
  for (const auto& p : r.pods) out << std::exchange(separator, ",\n") << pod_json(p).dump();
  out << "],\n\"services\": [";
  separator = "\n";
  for (const auto& s : r.services) out << std::exchange(separator, ",\n") << service_json(s).dump();
  out << "]}\n";
}

void from_json(const json& j, LabRecord& r) {
  r.name = j.at("name"), r.file = j.at("file");
  r.phase = enum_at<LabPhase>(j, "phase");
  const auto& n = j.at("network");
  r.network = {enum_at<Cni>(n, "cni"),
               enum_at<ProxyMode>(n, "kubeProxyMode"),
               net_of(n.at("podSubnet")),
               net_of(n.at("serviceSubnet")),
               enum_at<LoadBalancerMode>(n, "loadBalancerMode"),
               n.at("dnsDomain")};
  r.lan_netns = j.at("lan").at("netns");
  r.lan_gateway = ip_at(j.at("lan"), "gateway");
  for (const auto& x : j.at("nodes"))
    r.nodes.push_back({x.at("name"), enum_at<NodeRole>(x, "role"), ip_at(x, "ip"),
                       net_of(x.at("podCIDR")), x.at("netns"), x.at("vtepMAC"), x.at("rack"),
                       frr_at(x)});
  for (const auto& x : j.at("hosts"))
    r.hosts.push_back({x.at("name"), ip_at(x, "ip"), x.at("netns"), x.at("rack"),
                       x.at("dnsNames").get<std::vector<std::string>>()});
  for (const auto& x : j.at("routers")) {
    RouterRecord router{x.at("name"), x.at("netns"), ip_at(x, "ip"), {}, {}, frr_at(x)};
    if (!x.at("subnet").is_null()) router.subnet = net_of(x["subnet"]);
    if (!x.at("asn").is_null()) router.asn = x["asn"].get<uint32_t>();
    r.routers.push_back(std::move(router));
  }
  for (const auto& x : j.at("pods")) r.pods.push_back(pod_at(x));
  for (const auto& x : j.at("services")) r.services.push_back(service_at(x));
  r.namespaces = j.at("namespaces").get<std::map<std::string, Labels>>();
  r.network_policies = j.at("networkPolicies").get<std::vector<NetworkPolicy>>();
  r.ingresses = j.at("ingresses").get<std::vector<Ingress>>();
  r.gateways = j.at("gateways").get<std::vector<Gateway>>();
  r.http_routes = j.at("httpRoutes").get<std::vector<HttpRoute>>();
  if (const auto& lb = j.at("cloudLoadBalancer"); !lb.is_null()) {
    r.lb_netns = lb.at("netns");
    r.lb_ip = ip_at(lb, "ip");
  }
}

// --- requests --------------------------------------------------------------------

json request_json(const Request& request) {
  return std::visit(
      [](const auto& r) -> json {
        using R = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<R, ScaleRequest>)
          return {{"op", "scale"}, {"deployment", r.deployment}, {"replicas", r.replicas}};
        if constexpr (std::is_same_v<R, DeleteRequest>) return {{"op", "delete"}, {"pod", r.pod}};
        if constexpr (std::is_same_v<R, ApplyRequest>) return {{"op", "apply"}, {"file", r.file}};
        if constexpr (std::is_same_v<R, SyncRequest>) return {{"op", "sync"}};
        if constexpr (std::is_same_v<R, QuiesceRequest>)
          return r.stop ? json{{"op", "quiesce"}, {"stop", true}} : json{{"op", "quiesce"}};
      },
      request);
}

Request parse_request(const json& j) {
  try {
    auto op = j.value("op", "");
    if (op == "scale")
      return ScaleRequest{j.at("deployment").get<std::string>(), j.at("replicas").get<int>()};
    if (op == "delete") return DeleteRequest{j.at("pod").get<std::string>()};
    if (op == "apply") return ApplyRequest{j.at("file").get<std::string>()};
    if (op == "sync") return SyncRequest{};
    if (op == "quiesce") return QuiesceRequest{j.value("stop", false)};
    throw UserError(fmt::format("unknown request \"{}\"", op));
  } catch (const json::exception& e) {
    throw UserError(fmt::format("malformed request {}: {}", j.dump(), e.what()));
  }
}

void to_json(json& j, const ScaleResult& r) {
  j = {{"deployment", r.deployment},
       {"replicas", r.replicas},
       {"added", r.added},
       {"removed", r.removed},
       {"syncSeconds", r.sync_seconds}};
}
void from_json(const json& j, ScaleResult& r) {
  r = {j.at("deployment"), j.at("replicas"), j.at("added"), j.at("removed"), j.at("syncSeconds")};
}

void to_json(json& j, const DeleteResult& r) {
  j = {{"deleted", r.deleted}, {"syncSeconds", r.sync_seconds}};
  if (r.replacement) j["replacement"] = *r.replacement;
}
void from_json(const json& j, DeleteResult& r) {
  r.deleted = j.at("deleted");
  if (j.contains("replacement")) r.replacement = j["replacement"].get<std::string>();
  r.sync_seconds = j.at("syncSeconds");
}

void to_json(json& j, const ApplyResult& r) {
  j = {{"nodes", r.nodes},     {"hosts", r.hosts},           {"routers", r.routers},
       {"pods", r.pods},       {"relabelled", r.relabelled}, {"policies", r.policies},
       {"seconds", r.seconds}, {"ingresses", r.ingresses}};
}
void from_json(const json& j, ApplyResult& r) {
  r = {j.at("nodes"),      j.at("hosts"),    j.at("routers"), j.at("pods"),
       j.at("relabelled"), j.at("policies"), j.at("seconds"), j.at("ingresses")};
}

void to_json(json& j, const SyncResult& r) {
  j = {{"syncSeconds", r.sync_seconds}, {"services", r.services}};
}
void from_json(const json& j, SyncResult& r) {
  r = {j.at("syncSeconds"), j.at("services")};
}

void to_json(json& j, const QuiesceResult& r) {
  j = json::object();
  if (r.stopped) j["stopped"] = *r.stopped;
}
void from_json(const json& j, QuiesceResult& r) {
  if (j.contains("stopped")) r.stopped = j["stopped"].get<size_t>();
}

void to_json(json& j, const Answer& a) {
  if (a.ok)
    j = {{"ok", true}, {"result", a.result}};
  else
    j = {{"ok", false}, {"user", a.user_error}, {"error", a.error}};
}
void from_json(const json& j, Answer& a) {
  a.ok = j.at("ok");
  if (a.ok) {
    a.result = j.at("result");
  } else {
    a.user_error = j.value("user", false);
    a.error = j.value("error", std::string("the controller refused"));
  }
}

}  // namespace knl
