#include "knetlab/plan/dns.h"
#include "knetlab/plan/gateway.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "knetlab/plan/endpoints.h"

namespace knl {

namespace {

// The most nameservers and search domains a resolv.conf holds, as the kubelet
// cuts them.
constexpr size_t kMaxNameservers = 3;
constexpr size_t kMaxSearches = 32;

std::string lower(Protocol protocol) {
  std::string s(enum_name(protocol));
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "a-b-c-d": an address as one DNS label.
std::string dashed(Ipv4 ip) {
  auto s = ip.str();
  std::replace(s.begin(), s.end(), '.', '-');
  return s;
}

// "d.c.b.a.in-addr.arpa.": the name of an address's PTR record.
std::string reverse_name(Ipv4 ip) {
  auto v = ip.value;
  return fmt::format("{}.{}.{}.{}.in-addr.arpa.", v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff,
                     v >> 24);
}

std::string absolute(const std::string& name) {
  return name.empty() || name.back() == '.' ? name : name + ".";
}

struct Resolver {
  std::vector<std::string> nameservers, searches;
  std::vector<DnsOption> options;
};

void merge(Resolver& r, const DnsConfig& config) {
  for (const auto& ns : config.nameservers)
    if (std::find(r.nameservers.begin(), r.nameservers.end(), ns.str()) == r.nameservers.end())
      r.nameservers.push_back(ns.str());
  for (const auto& s : config.searches)
    if (std::find(r.searches.begin(), r.searches.end(), s) == r.searches.end())
      r.searches.push_back(s);
  for (const auto& o : config.options) {
    auto same = std::find_if(r.options.begin(), r.options.end(),
                             [&](const DnsOption& x) { return x.name == o.name; });
    if (same == r.options.end())
      r.options.push_back(o);
    else
      *same = o;
  }
}

std::string render(const Resolver& r) {
  std::string out;
  if (!r.searches.empty()) {
    auto n = std::min(r.searches.size(), kMaxSearches);
    out += fmt::format("search {}\n", fmt::join(r.searches.begin(), r.searches.begin() + n, " "));
  }
  for (size_t i = 0; i < r.nameservers.size() && i < kMaxNameservers; ++i)
    out += fmt::format("nameserver {}\n", r.nameservers[i]);
  std::vector<std::string> options;
  for (const auto& o : r.options) options.push_back(o.value ? o.name + ":" + *o.value : o.name);
  if (!options.empty()) out += fmt::format("options {}\n", fmt::join(options, " "));
  return out;
}

Ipv4 cluster_dns_ip(const Network& network) {
  return network.service_subnet.at(10);
}

Resolver node_resolver(const Network& network) {
  return {{cluster_dns_ip(network).str()}, {}, {}};
}

std::string service_name(const Plan& plan, const ServicePlan& s) {
  return fmt::format("{}.{}.svc.{}.", s.name, s.namespace_, plan.network.dns_domain);
}

const PodPlan* pod_named(const Plan& plan, const std::string& key) {
  for (const auto& p : plan.pods)
    if (p.key() == key) return &p;
  return nullptr;
}

}  // namespace

bool PodPlan::serves_dns() const {
  return std::any_of(containers.begin(), containers.end(),
                     [](const ContainerPlan& c) { return c.image == kDnsImage; });
}

void add_cluster_objects(Topology& t) {
  if (std::none_of(t.namespaces.begin(), t.namespaces.end(),
                   [](const Namespace& n) { return n.name == kDnsNamespace; }))
    t.namespaces.push_back({kDnsNamespace, {}, Where{t.file, 1, 1}});
  Where where{t.file, 1, 1};
  Deployment dns;
  dns.name = kDnsDeployment, dns.namespace_ = kDnsNamespace, dns.replicas = 2;
  dns.spec.labels = {{"k8s-app", "kube-dns"}};
  Container server;
  server.name = "coredns", server.image = kDnsImage, server.where = server.where_image = where;
  server.ports = {{"dns", 53, Protocol::udp}, {"dns-tcp", 53, Protocol::tcp}};
  // Ready once it answers from its zone, as CoreDNS's ready plugin tells.
  server.readiness = Readiness{"", 53, "ns.dns." + t.network.dns_domain};
  dns.spec.containers.push_back(server);
  dns.system = true, dns.where = where;
  t.deployments.push_back(std::move(dns));

  Service kube_dns;
  kube_dns.name = kDnsService, kube_dns.namespace_ = kDnsNamespace;
  kube_dns.selector = {{"k8s-app", "kube-dns"}};
  kube_dns.cluster_ip = t.network.service_subnet.at(10).str();
  kube_dns.ports = {{"dns", 53, 53, "", std::nullopt, Protocol::udp},
                    {"dns-tcp", 53, 53, "", std::nullopt, Protocol::tcp}};
  kube_dns.system = true, kube_dns.where = where;
  Service kubernetes;
  kubernetes.name = "kubernetes", kubernetes.namespace_ = "default";
  kubernetes.cluster_ip = t.network.service_subnet.at(1).str();
  kubernetes.ports = {{"https", 443, 6443, "", std::nullopt, Protocol::tcp}};
  kubernetes.system = true, kubernetes.where = where;
  t.services.insert(t.services.begin(), {std::move(kubernetes), std::move(kube_dns)});
  add_ingress_objects(t);
  add_gateway_objects(t);
}

bool is_cluster_namespace(const std::string& ns) {
  return ns == kDnsNamespace || ns == kIngressNamespace;
}

std::string node_resolv_conf(const Network& network) {
  return render(node_resolver(network));
}

std::string pod_resolv_conf(const Network& network, const std::string& ns,
                            const PodTemplate& spec) {
  Resolver r;
  bool cluster = spec.dns_policy == DnsPolicy::cluster_first_with_host_net ||
                 (spec.dns_policy == DnsPolicy::cluster_first && !spec.host_network);
  if (cluster) {
    const auto& d = network.dns_domain;
    r.nameservers = {cluster_dns_ip(network).str()};
    r.searches = {ns + ".svc." + d, "svc." + d, d};
    r.options = {{"ndots", "5"}};
  } else if (spec.dns_policy != DnsPolicy::none) {
    r = node_resolver(network);
  }
  if (spec.dns_config) merge(r, *spec.dns_config);
  return render(r);
}

std::string pod_hosts_file(const Network& network, const PodPlan& pod) {
  std::string names = pod.hostname;
  if (!pod.subdomain.empty())
    names = fmt::format("{}.{}.{}.svc.{}\t{}", pod.hostname, pod.subdomain, pod.namespace_,
                        network.dns_domain, pod.hostname);
  return fmt::format(
      "# Kubernetes-managed hosts file (knetlab).\n127.0.0.1\tlocalhost\n"
      "::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
      "fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n{}\t{}\n",
      pod.ip.str(), names);
}

std::string dns_group_of_service(const ServicePlan& s) {
  return "service:" + s.key();
}

std::string dns_group_of_pod(const std::string& pod_key) {
  return "pod:" + pod_key;
}

std::vector<DnsRecord> service_dns_records(const Plan& plan, const ServicePlan& s,
                                           const ServiceEndpoints& endpoints) {
  std::vector<DnsRecord> out;
  const auto name = service_name(plan, s);
  if (s.type == ServiceType::external_name) {
    out.push_back({name, DnsType::cname, absolute(s.external_name)});
    return out;
  }
  if (s.cluster_ip) {
    out.push_back({name, DnsType::a, s.cluster_ip->str()});
    out.push_back({reverse_name(*s.cluster_ip), DnsType::ptr, name});
    for (const auto& p : s.ports)
      if (!p.name.empty())
        out.push_back({fmt::format("_{}._{}.{}", p.name, lower(p.protocol), name), DnsType::srv,
                       fmt::format("0 100 {} {}", p.port, name)});
  } else if (s.headless) {
    // Each ready endpoint once, under its pod's hostname when the pod names
    // this service as its subdomain, else under its dashed address.
    std::map<Ipv4, std::string> hosts;
    for (const auto& list : endpoints)
      for (const auto& e : list) {
        const auto* pod = pod_named(plan, e.pod);
        bool named = pod && !pod->subdomain.empty() && pod->subdomain == s.name &&
                     pod->namespace_ == s.namespace_;
        hosts.emplace(e.ip, (named ? pod->hostname : dashed(e.ip)) + "." + name);
      }
    for (const auto& [ip, host] : hosts) {
      out.push_back({name, DnsType::a, ip.str()});
      out.push_back({host, DnsType::a, ip.str()});
      out.push_back({reverse_name(ip), DnsType::ptr, host});
    }
    for (size_t i = 0; i < s.ports.size() && i < endpoints.size(); ++i) {
      const auto& p = s.ports[i];
      if (p.name.empty() || endpoints[i].empty()) continue;
      int weight = std::max<int>(1, 100 / static_cast<int>(endpoints[i].size()));
      for (const auto& e : endpoints[i])
        out.push_back({fmt::format("_{}._{}.{}", p.name, lower(p.protocol), name), DnsType::srv,
                       fmt::format("0 {} {} {}", weight, e.port, hosts.at(e.ip))});
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<DnsRecord> pod_dns_records(const Plan& plan, const PodPlan& pod) {
  if (pod.host_network) return {};
  return {{fmt::format("{}.{}.pod.{}.", dashed(pod.ip), pod.namespace_, plan.network.dns_domain),
           DnsType::a, pod.ip.str()}};
}

DnsRecordSets dns_records(const Plan& plan, const EndpointMap& endpoints) {
  DnsRecordSets out;
  const auto& zone = plan.network.dns_domain;
  auto& lab = out["lab"];
  lab.push_back({fmt::format("ns.dns.{}.", zone), DnsType::a, cluster_dns_ip(plan.network).str()});
  lab.push_back({fmt::format("dns-version.{}.", zone), DnsType::txt, "\"1.1.0\""});
  for (const auto& h : plan.hosts) {
    for (const auto& name : h.dns_names) lab.push_back({absolute(name), DnsType::a, h.ip.str()});
    if (!h.dns_names.empty())
      lab.push_back({reverse_name(h.ip), DnsType::ptr, absolute(h.dns_names.front())});
  }
  std::sort(lab.begin(), lab.end());
  for (const auto& s : plan.services) {
    auto eps = endpoints.find(s.key());
    out[dns_group_of_service(s)] =
        service_dns_records(plan, s, eps == endpoints.end() ? ServiceEndpoints{} : eps->second);
  }
  for (const auto& p : plan.pods) out[dns_group_of_pod(p.key())] = pod_dns_records(plan, p);
  return out;
}

EndpointMap endpoints_all_ready(const Plan& plan) {
  EndpointMap out;
  auto all = [](const PodPlan&) { return true; };
  for (const auto& s : plan.services) out[s.key()] = service_endpoints(s, plan.pods, all);
  return out;
}

std::string dns_zone_file(const Plan& plan, const DnsRecordSets& records) {
  const auto& zone = plan.network.dns_domain;
  std::string out = fmt::format(
      "; The lab's DNS zone, written by knetlab: the root, holding the cluster's\n"
      "; names under {0}, the reverse names and the outside world's names.\n"
      "$TTL {1}\n"
      ". IN SOA ns.dns.{0}. hostmaster.{0}. 1 7200 1800 86400 {1}\n"
      ". IN NS ns.dns.{0}.\n",
      zone, kDnsTtl);
  for (const auto& [group, list] : records)
    for (const auto& r : list)
      out += fmt::format("{} IN {} {}\n", r.name, enum_name(r.type), r.data);
  return out;
}

std::string dns_zone_path(const PodPlan& pod) {
  return pod.dir + "/root.zone";
}
std::string dns_config_path(const PodPlan& pod) {
  return pod.dir + "/knot.conf";
}
std::string dns_socket_path(const PodPlan& pod) {
  return pod.dir + "/knot.sock";
}

std::string knot_config(const PodPlan& pod) {
  return fmt::format(
      "# knotd of the cluster DNS pod {0}, written by knetlab.\n"
      "server:\n"
      "    listen: 0.0.0.0@53\n"
      "    rundir: \"{1}\"\n"
      "    udp-workers: 1\n"
      "    tcp-workers: 1\n"
      "    background-workers: 1\n"
      "log:\n"
      "  - target: stderr\n"
      "    any: notice\n"
      "control:\n"
      "    listen: \"{2}\"\n"
      "database:\n"
      "    storage: \"{1}/db\"\n"
      "template:\n"
      "  - id: default\n"
      "    storage: \"{1}\"\n"
      "    semantic-checks: off\n"
      "    journal-content: none\n"
      "    zonefile-sync: 0\n"
      "zone:\n"
      "  - domain: .\n"
      "    file: \"{3}\"\n",
      pod.key(), pod.dir, dns_socket_path(pod), dns_zone_path(pod));
}

std::string knotc_transaction(const std::vector<DnsRecord>& from,
                              const std::vector<DnsRecord>& to) {
  std::vector<DnsRecord> gone, added;
  std::set_difference(from.begin(), from.end(), to.begin(), to.end(), std::back_inserter(gone));
  std::set_difference(to.begin(), to.end(), from.begin(), from.end(), std::back_inserter(added));
  if (gone.empty() && added.empty()) return "";
  std::string out = "zone-begin .\n";
  for (const auto& r : gone)
    out += fmt::format("zone-unset . {} {} {}\n", r.name, enum_name(r.type), r.data);
  for (const auto& r : added)
    out += fmt::format("zone-set . {} {} {} {}\n", r.name, kDnsTtl, enum_name(r.type), r.data);
  return out + "zone-commit .\n";
}

std::vector<FileSpec> dns_pod_files(const Plan& plan, const PodPlan& pod) {
  return {{dns_config_path(pod), knot_config(pod)},
          {dns_zone_path(pod), dns_zone_file(plan, dns_records(plan, endpoints_all_ready(plan)))}};
}

}  // namespace knl
