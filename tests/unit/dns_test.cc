// Cluster DNS without root: the records rendered for a plan after the
// Kubernetes DNS specification, the resolv.conf of each dnsPolicy, the
// cluster's own objects, and the DNS reconciler's knotc transactions.

#include <gtest/gtest.h>

#include <algorithm>

#include "fakes.h"
#include "knetlab/plan/dns.h"
#include "knetlab/plan/endpoints.h"
#include "knetlab/realize/controller.h"
#include "knetlab/realize/executor.h"
#include "knetlab/topology/parse.h"

namespace knl {
namespace {

constexpr const char* kLab = R"(
name = "dns"
[[nodes]]
name = "cp"
role = "control-plane"
[[nodes]]
name = "w1"
[[hosts]]
name = "db"
dnsNames = ["db.example.com", "database.example.com"]
[[namespaces]]
name = "other"
[[deployments]]
name = "web"
replicas = 2
labels = { app = "web" }
subdomain = "web-headless"
[[deployments.containers]]
name = "c"
image = "netexec"
ports = [{ name = "http", containerPort = 8080 }]
[[pods]]
name = "plain"
namespace = "other"
labels = { app = "plain" }
[[pods.containers]]
name = "c"
image = "netexec"
[[services]]
name = "web"
selector = { app = "web" }
[[services.ports]]
name = "http"
port = 80
targetPort = 8080
[[services]]
name = "web-headless"
clusterIP = "None"
selector = { app = "web" }
[[services.ports]]
name = "http"
port = 8080
[[services]]
name = "plain"
namespace = "other"
clusterIP = "None"
selector = { app = "plain" }
[[services.ports]]
port = 8080
[[services]]
name = "external"
type = "ExternalName"
externalName = "db.example.com"
)";

std::vector<std::string> lines_of(const DnsRecordSets& sets) {
  std::vector<std::string> out;
  for (const auto& [group, list] : sets)
    for (const auto& r : list)
      out.push_back(r.name + " " + std::string(enum_name(r.type)) + " " + r.data);
  return out;
}

bool has(const std::vector<std::string>& lines, const std::string& line) {
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

std::string ip_of(const Plan& p, const std::string& pod) {
  for (const auto& x : p.pods)
    if (x.name == pod) return x.ip.str();
  return "";
}

TEST(Dns, EveryLabHasTheClusterDnsAndTheKubernetesService) {
  auto p = plan_of(kLab);
  std::vector<std::string> dns_pods;
  for (const auto& pod : p.pods)
    if (pod.serves_dns()) dns_pods.push_back(pod.key());
  EXPECT_EQ(dns_pods, (std::vector<std::string>{"kube-system/coredns-0", "kube-system/coredns-1"}));
  EXPECT_EQ(p.pods.back().name, "coredns-1") << "the cluster's pods are placed after the file's";
  const auto& kube_dns = *std::find_if(p.services.begin(), p.services.end(),
                                       [](const ServicePlan& s) { return s.name == "kube-dns"; });
  EXPECT_EQ(kube_dns.cluster_ip->str(), "10.96.0.10");
  ASSERT_EQ(kube_dns.ports.size(), 2u);
  EXPECT_EQ(kube_dns.ports[0].protocol, Protocol::udp);
  EXPECT_EQ(kube_dns.ports[1].name, "dns-tcp");
  const auto& api = p.services.front();
  EXPECT_EQ(api.key(), "default/kubernetes");
  EXPECT_EQ(api.cluster_ip->str(), "10.96.0.1");
  auto eps = service_endpoints(api, p.pods, [](const PodPlan&) { return true; });
  ASSERT_EQ(eps.at(0).size(), 1u);
  EXPECT_EQ(eps[0][0].str(), "172.18.0.2:6443") << "the control-plane node";
  // The server's files are in its pod's folder, the image's {dir} expanded.
  const auto& dns =
      *std::find_if(p.pods.begin(), p.pods.end(), [](const PodPlan& x) { return x.serves_dns(); });
  EXPECT_EQ(dns.containers[0].argv,
            (std::vector<std::string>{"/usr/sbin/knotd", "--config", dns.dir + "/knot.conf"}));
  auto zone = std::find_if(p.files.begin(), p.files.end(),
                           [&](const FileSpec& f) { return f.path == dns.dir + "/root.zone"; });
  ASSERT_NE(zone, p.files.end());
  EXPECT_NE(zone->content.find(". IN SOA ns.dns.cluster.local. hostmaster.cluster.local."),
            std::string::npos);
  EXPECT_NE(zone->content.find("web.default.svc.cluster.local. IN A 10.96.0.11"), std::string::npos)
      << zone->content;
}

TEST(Dns, RecordsFollowTheKubernetesDnsSpecification) {
  auto p = plan_of(kLab);
  auto lines = lines_of(dns_records(p, endpoints_all_ready(p)));
  auto web0 = ip_of(p, "web-0"), web1 = ip_of(p, "web-1"), plain = ip_of(p, "plain");
  // A ClusterIP service: A, PTR, SRV per named port.
  EXPECT_TRUE(has(lines, "web.default.svc.cluster.local. A 10.96.0.11"));
  EXPECT_TRUE(has(lines, "11.0.96.10.in-addr.arpa. PTR web.default.svc.cluster.local."));
  EXPECT_TRUE(has(lines,
                  "_http._tcp.web.default.svc.cluster.local. SRV 0 100 80 "
                  "web.default.svc.cluster.local."));
  EXPECT_TRUE(has(lines, "kubernetes.default.svc.cluster.local. A 10.96.0.1"));
  EXPECT_TRUE(has(lines,
                  "_https._tcp.kubernetes.default.svc.cluster.local. SRV 0 100 443 "
                  "kubernetes.default.svc.cluster.local."));
  // Headless: one A per ready endpoint; the pods name it as their
  // subdomain, so their hostnames (the pod names) have records too.
  for (const auto& [pod, ip] : {std::pair{"web-0", web0}, std::pair{"web-1", web1}}) {
    auto host = std::string(pod) + ".web-headless.default.svc.cluster.local.";
    EXPECT_TRUE(has(lines, "web-headless.default.svc.cluster.local. A " + ip)) << pod;
    EXPECT_TRUE(has(lines, host + " A " + ip)) << pod;
    EXPECT_TRUE(
        has(lines, "_http._tcp.web-headless.default.svc.cluster.local. SRV 0 50 8080 " + host))
        << pod;
  }
  // A pod without a matching subdomain is named by its dashed address.
  auto dashed = plain;
  std::replace(dashed.begin(), dashed.end(), '.', '-');
  EXPECT_TRUE(has(lines, dashed + ".plain.other.svc.cluster.local. A " + plain));
  EXPECT_TRUE(has(lines, dashed + ".other.pod.cluster.local. A " + plain));
  // ExternalName, the outside world's names, the version.
  EXPECT_TRUE(has(lines, "external.default.svc.cluster.local. CNAME db.example.com."));
  EXPECT_TRUE(has(lines, "db.example.com. A 172.18.0.4"));
  EXPECT_TRUE(has(lines, "database.example.com. A 172.18.0.4"));
  EXPECT_TRUE(has(lines, "4.0.18.172.in-addr.arpa. PTR db.example.com."));
  EXPECT_TRUE(has(lines, "dns-version.cluster.local. TXT \"1.1.0\""));
  // Without ready endpoints a headless service has no address at all.
  auto none = lines_of(dns_records(p, {}));
  EXPECT_FALSE(has(none, "web-headless.default.svc.cluster.local. A " + web0));
  EXPECT_TRUE(has(none, "web.default.svc.cluster.local. A 10.96.0.11"));
}

TEST(Dns, AKnotcTransactionUnsetsWhatGoesAndSetsWhatComes) {
  std::vector<DnsRecord> before = {{"a.", DnsType::a, "10.0.0.1"}, {"b.", DnsType::a, "10.0.0.2"}};
  std::vector<DnsRecord> after = {{"b.", DnsType::a, "10.0.0.2"}, {"c.", DnsType::txt, "\"x\""}};
  EXPECT_EQ(knotc_transaction(before, after),
            "zone-begin .\nzone-unset . a. A 10.0.0.1\nzone-set . c. 5 TXT \"x\"\n"
            "zone-commit .\n");
  EXPECT_EQ(knotc_transaction(after, after), "");
}

TEST(Dns, ResolvConfFollowsDnsPolicyAndDnsConfigAsTheKubeletWritesIt) {
  Network net;
  PodTemplate spec;
  EXPECT_EQ(pod_resolv_conf(net, "team", spec),
            "search team.svc.cluster.local svc.cluster.local cluster.local\n"
            "nameserver 10.96.0.10\noptions ndots:5\n");
  spec.host_network = true;  // ClusterFirst falls back to the node's
  EXPECT_EQ(pod_resolv_conf(net, "team", spec), "nameserver 10.96.0.10\n");
  spec.dns_policy = DnsPolicy::cluster_first_with_host_net;
  EXPECT_NE(pod_resolv_conf(net, "team", spec).find("search team.svc"), std::string::npos);
  spec.dns_policy = DnsPolicy::none;
  spec.dns_config = DnsConfig{{*Ipv4::parse("10.96.0.10"), *Ipv4::parse("1.1.1.1")},
                              {"example.com"},
                              {{"ndots", "2"}, {"edns0", std::nullopt}}};
  EXPECT_EQ(pod_resolv_conf(net, "team", spec),
            "search example.com\nnameserver 10.96.0.10\nnameserver 1.1.1.1\n"
            "options ndots:2 edns0\n");
  spec.dns_policy = DnsPolicy::cluster_first;
  spec.host_network = false;
  EXPECT_EQ(pod_resolv_conf(net, "team", spec),
            "search team.svc.cluster.local svc.cluster.local cluster.local example.com\n"
            "nameserver 10.96.0.10\nnameserver 1.1.1.1\noptions ndots:2 edns0\n")
      << "dnsConfig is merged: its ndots replaces the kubelet's";
}

TEST(Dns, ThePodsOwnNamesAreInItsHostsFile) {
  auto p = plan_of(kLab);
  const auto& web0 = *std::find_if(p.pods.begin(), p.pods.end(),
                                   [](const PodPlan& x) { return x.name == "web-0"; });
  EXPECT_EQ(web0.hostname, "web-0");
  EXPECT_NE(pod_hosts_file(p.network, web0)
                .find(web0.ip.str() + "\tweb-0.web-headless.default.svc.cluster.local\tweb-0\n"),
            std::string::npos);
}

TEST(Dns, ParseRefusesWhatKubernetesRefuses) {
  auto refused = [](const std::string& extra) {
    try {
      parse_topology(std::string("name = \"x\"\n[[nodes]]\nname = \"n\"\n") + extra, "lab.toml");
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(refused("[[pods]]\nname = \"p\"\ndnsPolicy = \"None\"\n[[pods.containers]]\nname = "
                    "\"c\"\nimage = \"shell\"\n")
                .find("needs dnsConfig with at least one nameserver"),
            std::string::npos);
  EXPECT_NE(refused("[[hosts]]\nname = \"h\"\ndnsNames = [\"Bad_Name\"]\n").find("lab.toml:6"),
            std::string::npos);
  EXPECT_NE(refused("[[hosts]]\nname = \"h\"\ndnsNames = [\"x.cluster.local\"]\n")
                .find("in the cluster's domain"),
            std::string::npos);
  EXPECT_NE(refused("[[services]]\nname = \"kubernetes\"\n[[services.ports]]\nport = 1\n")
                .find("one every lab has"),
            std::string::npos);
  EXPECT_NE(refused("[[services]]\nname = \"s\"\nclusterIP = \"10.96.0.10\"\n[[services.ports]]\n"
                    "port = 1\n")
                .find("the kube-dns service's"),
            std::string::npos);
}

// A lab with the cluster DNS deployed into the fakes, under a controller.
struct DnsLab : FakeLab {
  DnsLab() : FakeLab(kLab) {}
  std::vector<ProgramCall> knotc() const {
    std::vector<ProgramCall> out;
    for (const auto& c : programs.calls)
      if (c.argv.at(0) == "knotc") out.push_back(c);
    return out;
  }
};

TEST(DnsReconciler, TheDeploysZoneNeedsNoChangeAndEachChangeIsOneTransactionPerReplica) {
  DnsLab lab;
  EXPECT_TRUE(lab.knotc().empty()) << "the zone was written with every pod ready";
  lab.controller->request(ScaleRequest{"web", 3});
  auto calls = lab.knotc();
  ASSERT_EQ(calls.size(), 2u);
  std::set<std::string> replicas;
  for (const auto& c : calls) {
    replicas.insert(c.netns);
    EXPECT_EQ(c.input.rfind("zone-begin .\n", 0), 0u);
    EXPECT_NE(c.input.find("zone-set . web-2.web-headless.default.svc.cluster.local. 5 A "),
              std::string::npos)
        << c.input;
    EXPECT_NE(c.input.find(".default.pod.cluster.local. 5 A "), std::string::npos) << c.input;
  }
  EXPECT_EQ(replicas, (std::set<std::string>{"knl-dns-p-kube-system-coredns-0",
                                             "knl-dns-p-kube-system-coredns-1"}));
  lab.controller->request(ScaleRequest{"web", 1});
  calls = lab.knotc();
  ASSERT_EQ(calls.size(), 6u) << "a pass for each terminating pod, then one for the scale";
  EXPECT_NE(calls.back().input.find("zone-unset . web-headless.default.svc.cluster.local. A"),
            std::string::npos)
      << calls.back().input;
}

TEST(DnsReconciler, AReCreatedReplicaLoadsItsZoneWholeAndARefusalIsRetried) {
  DnsLab lab;
  lab.controller->request(DeleteRequest{"kube-system/coredns-0"});
  auto calls = lab.knotc();
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back().netns, "knl-dns-p-kube-system-coredns-2");
  EXPECT_EQ(calls.back().argv.back(), ".");
  EXPECT_EQ(calls.back().argv[calls.back().argv.size() - 2], "zone-reload");
  const auto& zone = lab.runtime.files.at("/run/knetlab/dns/pods/kube-system_coredns-2/root.zone");
  auto ip = ip_of(lab.controller->lab().plan, "coredns-2");
  auto dashed = ip;
  std::replace(dashed.begin(), dashed.end(), '.', '-');
  EXPECT_NE(zone.find(dashed + ".kube-system.pod.cluster.local. IN A " + ip), std::string::npos)
      << "it names the new pod's address too:\n"
      << zone;
  // A server that does not answer: the pass fails, the next tick tries again.
  lab.programs.answer = [](const ProgramCall& c) {
    return c.argv[0] == "knotc" ? ProgramResult{0, "error: failed to connect to socket"}
                                : ProgramResult{};
  };
  EXPECT_THROW(lab.controller->request(ScaleRequest{"web", 3}), SystemError);
  auto refused = lab.knotc().size();
  lab.programs.answer = nullptr;
  lab.controller->tick();
  EXPECT_EQ(lab.knotc().size(), refused + 2) << "both replicas tried again";
  lab.controller->tick();
  EXPECT_EQ(lab.knotc().size(), refused + 2) << "done: nothing more";
}

}  // namespace
}  // namespace knl
