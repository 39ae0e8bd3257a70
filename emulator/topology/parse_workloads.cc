// The parser's workloads: containers, pods, deployments and services.

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "knetlab/util/error.h"
#include "parser.h"

namespace knl {

std::optional<int64_t> bandwidth_bits(std::string_view quantity) {
  static const std::pair<std::string_view, int64_t> kSuffixes[] = {{"Ki", int64_t{1} << 10},
                                                                   {"Mi", int64_t{1} << 20},
                                                                   {"Gi", int64_t{1} << 30},
                                                                   {"Ti", int64_t{1} << 40},
                                                                   {"k", 1000},
                                                                   {"M", 1000000},
                                                                   {"G", 1000000000},
                                                                   {"T", 1000000000000},
                                                                   {"", 1}};
  size_t digits = 0;
  while (digits < quantity.size() && std::isdigit(static_cast<unsigned char>(quantity[digits])))
    ++digits;
  if (digits == 0 || digits > 12) return std::nullopt;
  int64_t number = std::stoll(std::string(quantity.substr(0, digits)));
  for (const auto& [suffix, scale] : kSuffixes)
    if (quantity.substr(digits) == suffix) {
      if (number == 0 || number > INT64_MAX / scale) return std::nullopt;
      return number * scale;
    }
  return std::nullopt;
}

}  // namespace knl

namespace knl::parsing {

Container Parser::container(const TableReader& t, UniqueNames& names) {
  t.allow_only({"name", "image", "command", "args", "ports", "readiness"});
  Container c{name_of(t),
              t.string("image", ""),
              t.strings("command"),
              t.strings("args"),
              {},
              std::nullopt,
              t.where(),
              t.has("image") ? where_of(*t.find("image"), "image") : t.where()};
  names.add(t, c.name);
  if (c.image.empty() == c.command.empty())
    t.fail(c.image.empty() ? "name" : "command",
           "a container needs exactly one of \"image\" (a folder under images/) or \"command\"");
  if (!c.image.empty() && !is_dns_label(c.image, 40))
    t.fail("image", fmt::format("image \"{}\" is not an image folder name", excerpt(c.image)));
  std::set<std::string> port_names;
  for (const auto& p : t.tables("ports")) {
    p.allow_only({"name", "containerPort", "protocol", "hostPort"});
    ContainerPort port{p.string("name", ""), 0, p.choice("protocol", Protocol::tcp)};
    if (p.has("hostPort")) {
      if (topo_.network.cni != Cni::external)
        p.fail("hostPort",
               "hostPort is served by the portmap CNI plugin: it needs cni = \"external\"");
      port.host_port = static_cast<int>(p.integer("hostPort", 0, 1, 65535));
    }
    if (!p.has("containerPort")) p.fail("containerPort", "a port needs \"containerPort\"");
    port.container_port = static_cast<int>(p.integer("containerPort", 0, 1, 65535));
    if (!port.name.empty() && !is_iana_svc_name(port.name))
      p.fail("name", fmt::format("port name \"{}\" is not a Kubernetes port name: {}",
                                 excerpt(port.name), kIanaSvcNameRule));
    if (!port.name.empty() && !port_names.insert(port.name).second)
      p.fail("name", fmt::format("port name \"{}\" is used twice in the container", port.name));
    c.ports.push_back(port);
  }
  if (auto r = t.table("readiness")) {
    r->allow_only({"httpGet", "port"});
    if (!r->has("port")) r->fail("port", "readiness needs \"port\"");
    Readiness probe{r->string("httpGet", ""), static_cast<int>(r->integer("port", 0, 1, 65535))};
    if (!probe.http_get.empty() && probe.http_get.front() != '/')
      r->fail("httpGet", "httpGet is a path and starts with '/', e.g. \"/healthz\"");
    c.readiness = probe;
  }
  return c;
}

PodTemplate Parser::pod_template(const TableReader& t) {
  PodTemplate spec;
  spec.labels = t.labels("labels");
  spec.annotations = t.annotations("annotations");
  for (const auto* key : {kIngressBandwidth, kEgressBandwidth}) {
    auto it = spec.annotations.find(key);
    if (it == spec.annotations.end()) continue;
    if (!bandwidth_bits(it->second))
      t.fail("annotations", fmt::format("{} = \"{}\" is not a bandwidth: a quantity of bits per "
                                        "second such as \"10M\" or \"1Gi\"",
                                        key, excerpt(it->second)));
    if (topo_.network.cni != Cni::external)
      t.fail("annotations", fmt::format("{} is served by the bandwidth CNI plugin: it needs "
                                        "cni = \"external\"",
                                        key));
  }
  spec.host_network = t.boolean("hostNetwork", false);
  for (const auto* key : {"hostname", "subdomain"}) {
    auto value = t.string(key, "");
    if (!value.empty() && !is_dns_label(value, 63))
      t.fail(key, fmt::format("{} \"{}\" must be 1..63 characters of a-z, 0-9 and '-', starting "
                              "and ending with a letter or digit",
                              key, excerpt(value)));
    (std::string(key) == "hostname" ? spec.hostname : spec.subdomain) = value;
  }
  spec.dns_policy = t.choice("dnsPolicy", DnsPolicy::cluster_first);
  if (auto c = t.table("dnsConfig")) spec.dns_config = dns_config(*c);
  if (spec.dns_policy == DnsPolicy::none &&
      (!spec.dns_config || spec.dns_config->nameservers.empty()))
    t.fail("dnsPolicy",
           "dnsPolicy = \"None\" needs dnsConfig with at least one nameserver, e.g. "
           "dnsConfig = { nameservers = [\"10.96.0.10\"] }");
  UniqueNames names("container");
  for (const auto& c : t.tables("containers")) spec.containers.push_back(container(c, names));
  if (spec.containers.empty())
    t.fail("name", fmt::format("{} needs at least one container: add a [[{}.containers]] table",
                               t.context(), t.context().substr(2, t.context().size() - 4)));
  return spec;
}

// A dnsConfig as Kubernetes validates it: at most 3 nameservers, at most 32
// search domains, options `name` or `name:value` (or tables of them).
DnsConfig Parser::dns_config(const TableReader& t) {
  t.allow_only({"nameservers", "searches", "options"});
  DnsConfig config;
  auto servers = t.strings("nameservers");
  if (servers.size() > 3)
    t.fail("nameservers", "dnsConfig has at most 3 nameservers, as a resolv.conf does");
  for (const auto& text : servers) {
    auto ip = Ipv4::parse(text);
    if (!ip)
      t.fail("nameservers", fmt::format("nameserver \"{}\" is not an IPv4 address", excerpt(text)));
    config.nameservers.push_back(*ip);
  }
  config.searches = t.strings("searches");
  if (config.searches.size() > 32) t.fail("searches", "dnsConfig has at most 32 search domains");
  for (const auto& domain : config.searches)
    if (!is_domain_name(domain))
      t.fail("searches", fmt::format("search domain \"{}\" is not a domain name", excerpt(domain)));
  if (const auto* options = t.find("options"); options && options->is_array()) {
    for (const auto& o : options->as_array()) {
      DnsOption option;
      if (o.is_string()) {
        const auto& text = o.as_string().str;
        auto colon = text.find(':');
        option.name = text.substr(0, colon);
        if (colon != std::string::npos) option.value = text.substr(colon + 1);
      } else if (o.is_table()) {
        TableReader ot(o, "dnsConfig.options");
        ot.allow_only({"name", "value"});
        option.name = ot.required_string("name");
        if (ot.has("value")) option.value = ot.string("value", "");
      }
      // Written into resolv.conf, where a blank would end the option and a
      // newline start a line of its own: resolver options are words and numbers.
      auto word = [](const std::string& text, bool may_be_empty) {
        return (may_be_empty || !text.empty()) && text.size() <= 64 &&
               std::all_of(text.begin(), text.end(), [](unsigned char c) {
                 return std::isalnum(c) || c == '-' || c == '_' || c == '.';
               });
      };
      if (!word(option.name, false) || (option.value && !word(*option.value, true)))
        fail_at(o,
                "a resolver option is \"name\" or \"name:value\" (e.g. \"ndots:2\"), or "
                "{ name = \"ndots\", value = \"2\" }");
      config.options.push_back(option);
    }
  } else if (options) {
    t.fail("options", "options is a list, e.g. [\"ndots:2\", \"edns0\"]");
  }
  return config;
}

// Names `namespace/name` as a pod's, refusing it when a bare pod or a
// deployment's replica (`DEPLOYMENT-INDEX`, as the plan names them) has it.
void Parser::claim_pod_name(const TableReader& t, const std::string& ns, const std::string& name) {
  auto key = ns + "/" + name;
  auto [it, fresh] = pod_where_.emplace(key, t.where());
  if (!fresh)
    t.fail("name", fmt::format("pod \"{}\" exists twice (also from {})", key, it->second.str()));
}

void Parser::workloads() {
  UniqueNames deployment_names("deployment");
  for (const auto& t : root_.tables("deployments")) {
    t.allow_only({"name", "namespace", "replicas", "labels", "annotations", "nodes", "containers",
                  "hostNetwork", "subdomain", "dnsPolicy", "dnsConfig"});
    Deployment d{
        name_of(t, 30),     namespace_of(t), static_cast<int>(t.integer("replicas", 1, 0, 5000)),
        t.strings("nodes"), pod_template(t), false,
        t.where()};
    deployment_names.add(t, d.namespace_ + "/" + d.name);
    if (d.namespace_ == "kube-system" && d.name == "coredns")
      t.fail("name",
             "deployment kube-system/coredns is the cluster DNS every lab runs; name "
             "yours otherwise");
    for (const auto& n : d.nodes) require_known(t, "nodes", n, node_names_, "node");
    for (int i = 0; i < d.replicas; ++i)
      claim_pod_name(t, d.namespace_, fmt::format("{}-{}", d.name, i));
    topo_.deployments.push_back(std::move(d));
  }
  for (const auto& t : root_.tables("pods")) {
    t.allow_only({"name", "namespace", "node", "labels", "annotations", "hostNetwork", "containers",
                  "hostname", "subdomain", "dnsPolicy", "dnsConfig"});
    Pod p{name_of(t), namespace_of(t), t.string("node", ""), pod_template(t), "", t.where()};
    if (!p.node.empty()) require_known(t, "node", p.node, node_names_, "node");
    claim_pod_name(t, p.namespace_, p.name);
    topo_.pods.push_back(std::move(p));
  }
}

void Parser::services() {
  const auto& net = topo_.network;
  UniqueNames names("service");
  std::map<int, std::string> node_ports;
  std::map<std::string, std::string> cluster_ips;
  for (const auto& t : root_.tables("services")) {
    t.allow_only({"name", "namespace", "type", "selector", "clusterIP", "sessionAffinity",
                  "externalTrafficPolicy", "internalTrafficPolicy", "externalName",
                  "loadBalancerSourceRanges", "ports"});
    Service s;
    s.name = name_of(t), s.namespace_ = namespace_of(t), s.where = t.where();
    names.add(t, s.namespace_ + "/" + s.name);
    if (s.key() == "kube-system/kube-dns" || s.key() == "default/kubernetes")
      t.fail("name", fmt::format("service {} is one every lab has (cluster DNS, the API "
                                 "server); name yours otherwise",
                                 s.key()));
    s.type = t.choice("type", ServiceType::cluster_ip);
    s.selector = t.labels("selector");
    s.cluster_ip = t.string("clusterIP", "");
    if (!s.cluster_ip.empty() && s.cluster_ip != "None") {
      auto ip = Ipv4::parse(s.cluster_ip);
      if (!ip || !net.service_subnet.contains(*ip))
        t.fail("clusterIP", fmt::format("clusterIP \"{}\" must be \"None\" or an address in "
                                        "serviceSubnet {}",
                                        excerpt(s.cluster_ip), net.service_subnet.str()));
      if (*ip == net.service_subnet.at(1) || *ip == net.service_subnet.at(10))
        t.fail("clusterIP",
               fmt::format("clusterIP {} is the {} service's; pick another", ip->str(),
                           *ip == net.service_subnet.at(1) ? "kubernetes" : "kube-dns"));
      auto [it, fresh] = cluster_ips.emplace(s.cluster_ip, s.name);
      if (!fresh)
        t.fail("clusterIP",
               fmt::format("clusterIP {} is already service \"{}\"'s", s.cluster_ip, it->second));
    }
    s.session_affinity = t.choice("sessionAffinity", SessionAffinity::none);
    s.external_traffic_policy = t.choice("externalTrafficPolicy", TrafficPolicy::cluster);
    s.internal_traffic_policy = t.choice("internalTrafficPolicy", TrafficPolicy::cluster);
    s.external_name = t.string("externalName", "");
    if ((s.type == ServiceType::external_name) != !s.external_name.empty())
      t.fail(s.external_name.empty() ? "type" : "externalName",
             "\"externalName\" goes with type = \"ExternalName\", and only there");
    for (const auto& text : t.strings("loadBalancerSourceRanges")) {
      auto range = Ipv4Net::parse(text);
      if (!range)
        t.fail("loadBalancerSourceRanges",
               fmt::format("\"{}\" is not a network such as \"172.18.0.0/28\"", excerpt(text)));
      s.load_balancer_source_ranges.push_back(*range);
    }
    std::set<std::string> port_names;
    auto ports = t.tables("ports");
    if (ports.empty() && s.type != ServiceType::external_name && s.cluster_ip != "None")
      t.fail("name", "a service needs at least one [[services.ports]] table");
    for (const auto& p : ports) {
      p.allow_only({"name", "port", "targetPort", "nodePort", "protocol"});
      ServicePort sp;
      sp.name = p.string("name", "");
      if (!sp.name.empty() && !is_iana_svc_name(sp.name))
        p.fail("name", fmt::format("port name \"{}\" is not a Kubernetes port name: {}",
                                   excerpt(sp.name), kIanaSvcNameRule));
      if (ports.size() > 1 && sp.name.empty())
        p.fail("port", "a service with several ports needs a \"name\" on each");
      if (!port_names.insert(sp.name).second)
        p.fail("name", fmt::format("duplicate port name \"{}\"", sp.name));
      if (!p.has("port")) p.fail("port", "a service port needs \"port\"");
      sp.port = static_cast<int>(p.integer("port", 0, 1, 65535));
      sp.protocol = p.choice("protocol", Protocol::tcp);
      if (const auto* target = p.find("targetPort"); target && target->is_string()) {
        sp.target_port_name = target->as_string().str;
        if (!is_iana_svc_name(sp.target_port_name))
          p.fail("targetPort",
                 fmt::format("targetPort \"{}\" is neither a number nor a container port name: {}",
                             excerpt(sp.target_port_name), kIanaSvcNameRule));
        target_port_declared(p, s, sp);
      } else {
        sp.target_port = static_cast<int>(p.integer("targetPort", sp.port, 1, 65535));
      }
      if (p.has("nodePort")) {
        if (s.type != ServiceType::node_port && s.type != ServiceType::load_balancer)
          p.fail("nodePort", "\"nodePort\" needs type = \"NodePort\" or \"LoadBalancer\"");
        int np = static_cast<int>(p.integer("nodePort", 0, net.node_port_min, net.node_port_max));
        auto [it, fresh] = node_ports.emplace(np, s.name);
        if (!fresh)
          p.fail("nodePort",
                 fmt::format("nodePort {} is already used by service \"{}\"", np, it->second));
        sp.node_port = np;
      }
      s.ports.push_back(sp);
    }
    topo_.services.push_back(std::move(s));
  }
  service_names_ = names;
}

void Parser::target_port_declared(const TableReader& t, const Service& s, const ServicePort& port) {
  // The container port names of the pods the service selects, by protocol.
  std::vector<std::string> names;
  bool selects = false;
  auto look = [&](const std::string& ns, const PodTemplate& spec) {
    if (ns != s.namespace_ || s.selector.empty()) return;
    for (const auto& [key, value] : s.selector) {
      auto it = spec.labels.find(key);
      if (it == spec.labels.end() || it->second != value) return;
    }
    selects = true;
    for (const auto& c : spec.containers)
      for (const auto& cp : c.ports)
        if (!cp.name.empty() && cp.protocol == port.protocol) names.push_back(cp.name);
  };
  for (const auto& d : topo_.deployments) look(d.namespace_, d.spec);
  for (const auto& pod : topo_.pods) look(pod.namespace_, pod.spec);
  if (!selects || std::find(names.begin(), names.end(), port.target_port_name) != names.end())
    return;
  // Kubernetes accepts it: the service just never has an endpoint.
  auto guess = nearest(port.target_port_name, names);
  topo_.warnings.push_back(
      {where_of(*t.find("targetPort"), "targetPort"),
       fmt::format("targetPort \"{}\" is a port name no pod selected by service {}/{} declares, "
                   "so the port gets no endpoints{}",
                   port.target_port_name, s.namespace_, s.name,
                   guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess))});
}

void Parser::service_ref(const TableReader& t, const std::string& key, const std::string& ns) {
  auto name = t.required_string(key);
  if (!service_names_.contains(ns + "/" + name))
    t.fail(key, fmt::format("unknown service \"{}\" in namespace \"{}\"; define it under "
                            "[[services]]",
                            excerpt(name), ns));
}

}  // namespace knl::parsing
