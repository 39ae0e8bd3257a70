// Plan: allocation of addresses and names, flannel's objects, determinism.

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <stdexcept>

#include "knetlab/plan/endpoints.h"
#include "knetlab/plan/plan.h"
#include "knetlab/plan/scheduler.h"
#include "knetlab/realize/record.h"
#include "knetlab/topology/parse.h"
#include "knetlab/util/error.h"

namespace knl {
namespace {

PlanContext context() {
  PlanContext c;
  c.bin_dir = "/opt/knetlab/bin";
  c.images = {{"netexec", {"netexec", "/opt/knetlab/bin/netexec", {"--http-port=8080"}}},
              {"shell", {"shell", "/opt/knetlab/bin/pause", {}}}};
  return c;
}

Plan plan_of(const std::string& text) {
  return make_plan(parse_topology(text, "lab.toml"), context());
}

const char* kLab = R"(
name = "demo"
[[nodes]]
name = "cp"
role = "control-plane"
[[nodes]]
name = "w1"
[[nodes]]
name = "w2"
[[hosts]]
name = "client"
[[deployments]]
name = "web"
replicas = 4
labels = { app = "web" }
[[deployments.containers]]
name = "netexec"
image = "netexec"
ports = [{ containerPort = 8080 }]
)";

// Every desired object as one line, in plan order.
std::string dump(const Plan& p) {
  std::ostringstream out;
  for (const auto& n : p.namespaces) out << "netns " << n.name << "\n";
  for (const auto& l : p.links)
    out << "link " << l.netns << " " << l.name << " mtu " << l.mtu << " master " << l.master
        << " peer " << l.peer_netns << "/" << l.peer_name << " mac " << l.mac << " vni " << l.vni
        << " port " << l.port << "\n";
  for (const auto& a : p.addresses)
    out << "addr " << a.netns << " " << a.dev << " " << a.ip.str() << "/" << a.prefix << "\n";
  for (const auto& r : p.routes)
    out << "route " << r.netns << " " << r.dst.str() << " via " << r.via.str() << " " << r.dev
        << (r.onlink ? " onlink" : "") << "\n";
  for (const auto& n : p.neighbours)
    out << "neigh " << n.netns << " " << n.ip.str() << " " << n.mac << "\n";
  for (const auto& f : p.fdb)
    out << "fdb " << f.netns << " " << f.mac << " " << f.dst.str() << "\n";
  for (const auto& f : p.files) out << "file " << f.path << "\n" << f.content;
  return out.str();
}

TEST(Record, WrittenAPodAndAServiceAtATimeIsTheSameDocument) {
  auto plan = plan_of(std::string(kLab) +
                      "[[services]]\nname = \"web\"\nselector = { app = \"web\" }\n"
                      "ports = [{ port = 80, targetPort = 8080 }]\n"
                      "[[services]]\nname = \"db\"\nselector = { app = \"db\" }\n"
                      "ports = [{ port = 5432 }]\n");
  auto record = make_record(plan, {}, LabPhase::ready);
  ASSERT_EQ(record.services.size(), 2u);
  std::ostringstream out;
  write_record(out, record);
  auto written = nlohmann::json::parse(out.str());
  EXPECT_EQ(written["name"], record.name);
  EXPECT_EQ(written["nodes"].size(), record.nodes.size());
  EXPECT_EQ(written["services"].size(), 2u);
  EXPECT_EQ(written["pods"].size(), record.pods.size());
  // Read back and written again, every field comes out as it went in.
  auto read = written.get<LabRecord>();
  EXPECT_EQ(read.services[1].name, record.services[1].name);
  EXPECT_EQ(read.pods.back().ip, record.pods.back().ip);
  std::ostringstream again;
  write_record(again, read);
  EXPECT_EQ(again.str(), out.str());

  record.pods.clear(), record.services.clear();
  std::ostringstream empty;
  write_record(empty, record);
  auto none = nlohmann::json::parse(empty.str());
  EXPECT_EQ(none["pods"], nlohmann::json::array());
  EXPECT_EQ(none["services"], nlohmann::json::array());
  EXPECT_EQ(none["name"], record.name);
}

TEST(Plan, AllocatesNodeAndHostAddressesInOrder) {
  auto p = plan_of(kLab);
  ASSERT_EQ(p.nodes.size(), 3u);
  EXPECT_EQ(p.lan_gateway.str(), "172.18.0.1");
  EXPECT_EQ(p.nodes[0].ip.str(), "172.18.0.2");
  EXPECT_EQ(p.nodes[2].ip.str(), "172.18.0.4");
  EXPECT_EQ(p.hosts[0].ip.str(), "172.18.0.5");  // after the nodes
  EXPECT_EQ(p.nodes[0].pod_cidr.str(), "10.244.0.0/24");
  EXPECT_EQ(p.nodes[2].pod_cidr.str(), "10.244.2.0/24");
}

TEST(Plan, AllocatesPodAddressesPerNode) {
  auto p = plan_of(kLab);
  ASSERT_EQ(p.pods.size(), 4u);
  EXPECT_EQ(p.pods[0].node, "cp");
  EXPECT_EQ(p.pods[0].ip.str(), "10.244.0.2");
  EXPECT_EQ(p.pods[1].ip.str(), "10.244.1.2");
  EXPECT_EQ(p.pods[3].node, "cp");
  EXPECT_EQ(p.pods[3].ip.str(), "10.244.0.3");  // the node's second pod
  EXPECT_EQ(p.pods[0].netns, "knl-demo-p-default-web-0");
  EXPECT_EQ(p.pods[1].node_netns, "knl-demo-n-w1");
}

// A topology of `nodes` nodes named n0, n1, … and what follows.
std::string with_nodes(int nodes, const std::string& rest, const std::string& network = "") {
  std::string text = "name = \"sched\"\n" + network;
  for (int i = 0; i < nodes; ++i) text += "[[nodes]]\nname = \"n" + std::to_string(i) + "\"\n";
  return text + rest;
}

std::map<std::string, int> pods_per_node(const Plan& p) {
  std::map<std::string, int> out;
  for (const auto& pod : p.pods) ++out[pod.node];
  return out;
}

TEST(Scheduler, SpreadsManySmallDeploymentsOverEveryNode) {
  std::string deployments;
  for (int i = 0; i < 500; ++i)
    deployments += "[[deployments]]\nname = \"d" + std::to_string(i) +
                   "\"\nreplicas = 2\n[[deployments.containers]]\nname = \"c\"\n"
                   "image = \"shell\"\n";
  auto p = plan_of(with_nodes(10, deployments));
  ASSERT_EQ(p.pods.size(), 1000u);
  for (const auto& [node, count] : pods_per_node(p)) EXPECT_EQ(count, 100) << node;
  // Each deployment's two pods on different nodes: d0 on n0 and n1, d1 on n2 and n3.
  EXPECT_EQ(p.pods[0].node, "n0");
  EXPECT_EQ(p.pods[1].node, "n1");
  EXPECT_EQ(p.pods[2].node, "n2");
  EXPECT_EQ(p.pods[3].node, "n3");
}

TEST(Scheduler, PlacesPodsInFileOrderAndBreaksTiesInNodeOrder) {
  auto p = plan_of(with_nodes(3, R"(
[[deployments]]
name = "web"
replicas = 4
[[deployments.containers]]
name = "c"
image = "shell"
[[deployments]]
name = "db"
replicas = 1
[[deployments.containers]]
name = "c"
image = "shell"
[[pods]]
name = "pinned"
node = "n1"
[[pods.containers]]
name = "c"
image = "shell"
[[pods]]
name = "free"
[[pods.containers]]
name = "c"
image = "shell"
)"));
  std::map<std::string, std::string> node_of;
  for (const auto& pod : p.pods) node_of[pod.name] = pod.node;
  // The deployments first: web round the three nodes, web-3 back on n0, db
  // on n1 (n1 and n2 level, n1 first); then the bare pods: `pinned` where it
  // is told, `free` on the emptiest node, n2.
  EXPECT_EQ(node_of["web-0"], "n0");
  EXPECT_EQ(node_of["web-1"], "n1");
  EXPECT_EQ(node_of["web-2"], "n2");
  EXPECT_EQ(node_of["web-3"], "n0");
  EXPECT_EQ(node_of["db-0"], "n1");
  EXPECT_EQ(node_of["pinned"], "n1");
  EXPECT_EQ(node_of["free"], "n2");
}

TEST(Scheduler, BreaksATieByTheFewestPodsOfTheSameDeployment) {
  std::vector<NodePlan> nodes(3);
  for (size_t i = 0; i < nodes.size(); ++i) {
    nodes[i].name = "n" + std::to_string(i);
    nodes[i].pod_cidr = *Ipv4Net::parse("10.244." + std::to_string(i) + ".0/24");
  }
  Scheduler s(nodes);
  s.place("n0", false, "");
  s.place("n1", false, "");
  s.place("n2", false, "");
  s.place("n1", false, "");
  s.place("n2", false, "");
  EXPECT_EQ(s.pick({}, false, "kube-system/coredns"), "n0");
  // All three hold two pods now: node order would say n0, where a coredns is.
  EXPECT_EQ(s.pick({}, false, "kube-system/coredns"), "n1");
  // n0 and n2 hold two pods, n1 three: another deployment's pod goes to n0.
  EXPECT_EQ(s.pick({}, false, "default/web"), "n0");
}

TEST(Scheduler, KeepsADeploymentToItsNodesAndRefusesWhenTheyAreFull) {
  auto p = plan_of(with_nodes(3, R"(
[[deployments]]
name = "web"
replicas = 4
nodes = ["n2"]
[[deployments.containers]]
name = "c"
image = "shell"
)"));
  for (const auto& pod : p.pods) EXPECT_EQ(pod.node, "n2") << pod.name;
  try {
    plan_of(with_nodes(2, R"(
[[deployments]]
name = "web"
replicas = 12
nodes = ["n1"]
[[deployments.containers]]
name = "c"
image = "shell"
)",
                       "[network]\nnodeMaskSize = 29\n"));
    FAIL() << "placed 12 pods in a /29 (room for 5)";
  } catch (const UserError& e) {
    std::string what = e.what();
    EXPECT_EQ(what.rfind("lab.toml:9:1: ", 0), 0u) << what;  // the deployment's line
    EXPECT_NE(what.find("no node has room for pod \"web-5\""), std::string::npos) << what;
  }
  try {
    plan_of(with_nodes(1, R"(
[[deployments]]
name = "web"
replicas = 5
[[deployments.containers]]
name = "c"
image = "shell"
[[pods]]
name = "a"
node = "n0"
[[pods.containers]]
name = "c"
image = "shell"
)",
                       "[network]\nnodeMaskSize = 29\n"));
    FAIL() << "placed 6 pods in a /29 (room for 5)";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("node \"n0\" has room for 5 pods"), std::string::npos)
        << e.what();
  }
}

TEST(PodAddresses, HandsOutTheAddressAfterTheLastAndWrapsPastThoseInUse) {
  NodePlan node;
  node.name = "n";
  node.pod_cidr = *Ipv4Net::parse("10.244.0.0/29");  // .2 .. .6
  PodAddresses a({node});
  EXPECT_EQ(a.allocate("n").str(), "10.244.0.2");
  EXPECT_EQ(a.allocate("n").str(), "10.244.0.3");
  a.release("n", *Ipv4::parse("10.244.0.2"));
  // host-local: the next after the last, not the lowest free.
  EXPECT_EQ(a.allocate("n").str(), "10.244.0.4");
  EXPECT_EQ(a.allocate("n").str(), "10.244.0.5");
  EXPECT_EQ(a.allocate("n").str(), "10.244.0.6");
  EXPECT_EQ(a.allocate("n").str(), "10.244.0.2");  // wrapped
  EXPECT_THROW(a.allocate("n"), SystemError);
  EXPECT_EQ(a.last().at("n").str(), "10.244.0.2");
}

TEST(Plan, SkipsPodCidrsThatNodesFixed) {
  auto p = plan_of(R"(
name = "demo"
[[nodes]]
name = "a"
[[nodes]]
name = "b"
podCIDR = "10.244.0.0/24"
)");
  EXPECT_EQ(p.nodes[0].pod_cidr.str(), "10.244.1.0/24");
  EXPECT_EQ(p.nodes[1].pod_cidr.str(), "10.244.0.0/24");
}

TEST(Plan, BuildsFlannelVxlanPerNode) {
  auto p = plan_of(kLab);
  auto vxlans = std::count_if(p.links.begin(), p.links.end(),
                              [](const LinkSpec& l) { return l.kind == LinkKind::vxlan; });
  EXPECT_EQ(vxlans, 3);
  const auto& v = *std::find_if(p.links.begin(), p.links.end(),
                                [](const LinkSpec& l) { return l.kind == LinkKind::vxlan; });
  EXPECT_EQ(v.name, "flannel.1");
  EXPECT_EQ(v.vni, 1u);
  EXPECT_EQ(v.port, 8472);
  EXPECT_EQ(v.mtu, 1450);
  EXPECT_EQ(v.local.str(), "172.18.0.2");
  EXPECT_EQ(v.mac, p.nodes[0].vtep_mac);
  // Each node: a route, a neighbour and an FDB entry per other node.
  EXPECT_EQ(p.fdb.size(), 6u);
  EXPECT_EQ(p.neighbours.size(), 6u);
  auto text = dump(p);
  EXPECT_NE(text.find("route knl-demo-n-cp 10.244.1.0/24 via 10.244.1.0 flannel.1 onlink"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("neigh knl-demo-n-cp 10.244.1.0 " + p.nodes[1].vtep_mac), std::string::npos);
  EXPECT_NE(text.find("fdb knl-demo-n-cp " + p.nodes[1].vtep_mac + " 172.18.0.3"),
            std::string::npos);
  EXPECT_NE(text.find("addr knl-demo-n-w1 flannel.1 10.244.1.0/32"), std::string::npos);
}

TEST(Plan, BridgeCniHasNoTunnel) {
  auto p = plan_of("name = \"one\"\n[network]\ncni = \"bridge\"\n[[nodes]]\nname = \"n\"\n");
  EXPECT_TRUE(p.fdb.empty());
  for (const auto& l : p.links) EXPECT_NE(l.kind, LinkKind::vxlan);
  for (const auto& l : p.links) {
    if (l.name == "cni0") {
      EXPECT_EQ(l.mtu, 1500);
    }
  }
}

TEST(Plan, WiresPodsToTheirNodeBridge) {
  auto p = plan_of(kLab);
  auto text = dump(p);
  auto veth = pod_veth_name("default", "web-1");
  EXPECT_EQ(veth.size(), 12u);
  EXPECT_NE(text.find("link knl-demo-n-w1 " + veth +
                      " mtu 1450 master cni0 peer knl-demo-p-default-web-1/eth0"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("addr knl-demo-p-default-web-1 eth0 10.244.1.2/24"), std::string::npos);
  EXPECT_NE(text.find("route knl-demo-p-default-web-1 0.0.0.0/0 via 10.244.1.1 eth0"),
            std::string::npos);
  EXPECT_NE(text.find("addr knl-demo-n-w1 cni0 10.244.1.1/24"), std::string::npos);
}

TEST(Plan, GivesEveryPodItsResolvConfAndHosts) {
  auto p = plan_of(kLab);
  auto text = dump(p);
  EXPECT_NE(text.find("file /run/knetlab/demo/pods/default_web-0/resolv.conf\n"
                      "search default.svc.cluster.local svc.cluster.local cluster.local\n"
                      "nameserver 10.96.0.10\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("10.244.0.2\tweb-0\n"), std::string::npos);
}

TEST(Plan, ResolvesImagesAndKeepsTheirArgumentsUnlessOverridden) {
  auto p = plan_of(kLab);
  const auto& c = p.pods[0].containers[0];
  EXPECT_EQ(c.argv, (std::vector<std::string>{"/opt/knetlab/bin/netexec", "--http-port=8080"}));
  EXPECT_EQ(c.tcp_ports, std::vector<int>{8080});
  EXPECT_EQ(c.log_path, "/run/knetlab/demo/pods/default_web-0/netexec.log");
}

TEST(Plan, RejectsAnUnknownImageAtItsLine) {
  try {
    plan_of(
        "name = \"demo\"\n[[nodes]]\nname = \"n\"\n[[pods]]\nname = \"p\"\n"
        "[[pods.containers]]\nname = \"c\"\nimage = \"netexek\"\n");
    FAIL() << "accepted an unknown image";
  } catch (const UserError& e) {
    std::string what = e.what();
    EXPECT_EQ(what.rfind("lab.toml:8:1:", 0), 0u) << what;
    EXPECT_NE(what.find("did you mean \"netexec\""), std::string::npos) << what;
  }
}

TEST(Plan, HostNetworkPodsShareTheirNodesNamespace) {
  auto p = plan_of(
      "name = \"demo\"\n[[nodes]]\nname = \"n\"\n[[pods]]\nname = \"p\"\n"
      "hostNetwork = true\n[[pods.containers]]\nname = \"c\"\nimage = \"shell\"\n");
  EXPECT_EQ(p.pods[0].netns, "knl-demo-n-n");
  EXPECT_EQ(p.pods[0].ip.str(), "172.18.0.2");
  EXPECT_EQ(p.namespaces.size(), 2u);  // the LAN and the node
}

TEST(Plan, IsDeterministic) {
  EXPECT_EQ(dump(plan_of(kLab)), dump(plan_of(kLab)));
}

TEST(Plan, TwoLabsShareNoKernelName) {
  auto a = plan_of(kLab);
  std::string other = kLab;
  other.replace(other.find("\"demo\""), 6, "\"demo2\"");
  auto b = plan_of(other);
  for (const auto& x : a.namespaces)
    for (const auto& y : b.namespaces) EXPECT_NE(x.name, y.name);
}

}  // namespace
}  // namespace knl

namespace knl {
namespace {

const char* kServices = R"(
name = "svc"
[network]
nodePortRange = "30000-30002"
loadBalancerPool = "172.18.0.200-172.18.0.201"
[[nodes]]
name = "n1"
[[nodes]]
name = "n2"
[[deployments]]
name = "web"
replicas = 2
labels = { app = "web" }
[[deployments.containers]]
name = "c"
image = "netexec"
ports = [{ name = "http", containerPort = 8080 }, { name = "dns", containerPort = 53, protocol = "UDP" }]
[[services]]
name = "fixed"
clusterIP = "10.96.0.11"
selector = { app = "web" }
[[services.ports]]
port = 80
[[services]]
name = "np"
type = "NodePort"
selector = { app = "web" }
[[services.ports]]
name = "a"
port = 80
targetPort = "http"
nodePort = 30000
[[services.ports]]
name = "b"
port = 53
targetPort = "dns"
protocol = "UDP"
[[services]]
name = "lb"
type = "LoadBalancer"
selector = { app = "web" }
[[services.ports]]
port = 80
targetPort = "missing"
[[services]]
name = "headless"
clusterIP = "None"
selector = { app = "web" }
[[services.ports]]
port = 80
)";

TEST(PlanServices, AllocatesClusterIpsNodePortsAndLoadBalancerIps) {
  auto plan = plan_of(kServices);
  ASSERT_EQ(plan.services.size(), 4u);
  EXPECT_EQ(plan.services[0].cluster_ip->str(), "10.96.0.11");
  EXPECT_EQ(plan.services[1].cluster_ip->str(), "10.96.0.12") << ".11 is taken by \"fixed\"";
  EXPECT_EQ(plan.services[1].ports[0].node_port, 30000);
  EXPECT_EQ(plan.services[1].ports[1].node_port, 30001) << "30000 is fixed by port a";
  EXPECT_EQ(plan.services[2].ports[0].node_port, 30002);
  EXPECT_EQ(plan.services[2].load_balancer_ip->str(), "172.18.0.200");
  EXPECT_FALSE(plan.services[3].proxied());
  EXPECT_EQ(plan.services[0].ports[0].node_port, 0);
}

TEST(PlanServices, RefusesWhenNodePortsRunOut) {
  std::string text = kServices;
  text += "[[services]]\nname = \"more\"\ntype = \"NodePort\"\n[[services.ports]]\nport = 1\n";
  try {
    plan_of(text);
    FAIL() << "planned a fourth NodePort in a range of three";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("nodePortRange 30000-30002 has no port left"),
              std::string::npos)
        << e.what();
  }
}

TEST(PlanServices, EndpointsResolveNamedPortsAndFollowReadiness) {
  auto plan = plan_of(kServices);
  auto all_ready = [](const PodPlan&) { return true; };
  auto np = service_endpoints(plan.services[1], plan.pods, all_ready);
  ASSERT_EQ(np.size(), 2u);
  ASSERT_EQ(np[0].size(), 2u);
  EXPECT_EQ(np[0][0].port, 8080);
  EXPECT_EQ(np[1][0].port, 53);
  EXPECT_EQ(np[0][0].pod, "default/web-0");
  EXPECT_NE(np[0][0].node, np[0][1].node) << "round-robin over n1 and n2";
  auto lb = service_endpoints(plan.services[2], plan.pods, all_ready);
  EXPECT_TRUE(lb[0].empty()) << "no container port is named \"missing\"";
  auto only_web1 = service_endpoints(plan.services[1], plan.pods,
                                     [](const PodPlan& p) { return p.name == "web-1"; });
  ASSERT_EQ(only_web1[0].size(), 1u);
  EXPECT_EQ(only_web1[0][0].pod, "default/web-1");
}

}  // namespace
}  // namespace knl

namespace knl {
namespace {

std::string racks_lab(const std::string& extra_network) {
  return R"(
name = "dc"
[network]
cni = "bgp"
loadBalancerMode = "bgp"
)" + extra_network +
         R"(
[network.bgp]
peering = "tor"
[[racks]]
name = "rack1"
subnet = "172.18.1.0/24"
asn = 65001
[[racks]]
name = "rack2"
subnet = "172.18.2.0/24"
asn = 65002
[[nodes]]
name = "a"
rack = "rack1"
[[nodes]]
name = "b"
rack = "rack2"
[[nodes]]
name = "c"
rack = "rack2"
[[hosts]]
name = "h"
rack = "rack2"
[[services]]
name = "all"
type = "LoadBalancer"
[[services.ports]]
port = 80
[[services]]
name = "local"
type = "LoadBalancer"
externalTrafficPolicy = "Local"
[[services.ports]]
port = 80
)";
}

const FrrPlan& frr(const Plan& p, const std::string& target) {
  for (const auto& f : p.frr)
    if (f.target == target) return f;
  throw std::runtime_error("no FRR instance " + target);
}

std::string file(const Plan& p, const std::string& path) {
  for (const auto& f : p.files)
    if (f.path == path) return f.content;
  return "";
}

TEST(PlanBgp, RacksNumberTheirMachinesAndLinkToTheSpineByA31) {
  auto p = plan_of(racks_lab(""));
  EXPECT_EQ(p.nodes[0].ip.str(), "172.18.1.2");
  EXPECT_EQ(p.nodes[1].ip.str(), "172.18.2.2");
  EXPECT_EQ(p.nodes[2].ip.str(), "172.18.2.3");
  EXPECT_EQ(p.hosts[0].ip.str(), "172.18.2.4");  // after its rack's nodes
  auto d = dump(p);
  EXPECT_NE(d.find("link knl-dc-spine to-rack2 mtu 1500 master  peer knl-dc-r-rack2/spine"),
            std::string::npos)
      << d;
  EXPECT_NE(d.find("addr knl-dc-spine to-rack2 10.255.255.2/31"), std::string::npos);
  EXPECT_NE(d.find("addr knl-dc-r-rack2 spine 10.255.255.3/31"), std::string::npos);
  EXPECT_NE(d.find("route knl-dc-h-h 0.0.0.0/0 via 172.18.2.1 eth0"), std::string::npos);
  EXPECT_TRUE(p.lan_netns.empty()) << "no shared LAN with racks";
}

TEST(PlanBgp, PeersNodesWithTheirRackAndRacksWithTheSpine) {
  auto p = plan_of(racks_lab(""));
  ASSERT_EQ(p.frr.size(), 6u);  // spine, 2 racks, 3 nodes
  const auto& spine = frr(p, "router/spine");
  ASSERT_EQ(spine.peers.size(), 2u);
  EXPECT_EQ(spine.peers[1].ip.str(), "10.255.255.3");
  EXPECT_EQ(spine.peers[1].asn, 65002u);
  EXPECT_TRUE(spine.peers[1].passive) << "the rack's router connects";
  const auto& rack2 = frr(p, "router/rack2");
  ASSERT_EQ(rack2.peers.size(), 3u);  // the spine, b and c
  EXPECT_EQ(rack2.peers[0].target, "router/spine");
  EXPECT_FALSE(rack2.peers[0].passive);
  const auto& b = frr(p, "node/b");
  ASSERT_EQ(b.peers.size(), 1u);
  EXPECT_EQ(b.peers[0].ip.str(), "172.18.2.1");
  EXPECT_EQ(b.peers[0].asn, 65002u);
  EXPECT_TRUE(b.peers[0].allowas_in) << "every node shares ASN 64512";
  // What each kernel must hold: the spine every rack and pod CIDR and the
  // Cluster service's LB IP (the Local one only once a node announces it).
  std::set<std::string> want;
  for (const auto& [net, why] : spine.expected) want.insert(net.str());
  EXPECT_EQ(want, (std::set<std::string>{"10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24",
                                         "172.18.1.0/24", "172.18.2.0/24", "172.18.255.200/32"}));
}

TEST(PlanBgp, WritesACommentedFrrConfPerInstance) {
  auto p = plan_of(racks_lab(""));
  const auto& b = frr(p, "node/b");
  auto conf = file(p, b.config_path());
  EXPECT_NE(conf.find("! FRR configuration of node/b in lab \"dc\""), std::string::npos) << conf;
  EXPECT_NE(conf.find("router bgp 64512\n bgp router-id 172.18.2.2\n"), std::string::npos);
  EXPECT_NE(conf.find(" neighbor 172.18.2.1 remote-as 65002\n"), std::string::npos);
  EXPECT_NE(conf.find("  network 10.244.1.0/24\n"), std::string::npos) << "its pod CIDR";
  EXPECT_NE(conf.find("  network 172.18.255.200/32\n"), std::string::npos) << "Cluster LB";
  EXPECT_EQ(conf.find("172.18.255.201"), std::string::npos) << "Local LB: the controller's";
  EXPECT_NE(conf.find("  neighbor 172.18.2.1 allowas-in 1\n"), std::string::npos);
  EXPECT_NE(conf.find(" no bgp network import-check\n"), std::string::npos);
  auto spine = file(p, frr(p, "router/spine").config_path());
  EXPECT_NE(spine.find(" bgp bestpath as-path multipath-relax\n"), std::string::npos) << spine;
  EXPECT_NE(spine.find("  maximum-paths 16\n"), std::string::npos);
  EXPECT_NE(spine.find(" neighbor 10.255.255.1 passive\n"), std::string::npos);
}

TEST(PlanBgp, StartsEveryZebraBeforeAnyBgpdAndKeepsTheirFilesInTheRunFolder) {
  auto p = plan_of(racks_lab(""));
  ASSERT_EQ(p.daemons.size(), 12u);
  for (size_t i = 0; i < p.daemons.size(); ++i) {
    const auto& d = p.daemons[i];
    EXPECT_EQ(d.name.rfind(i < 6 ? "zebra of " : "bgpd of ", 0), 0u) << d.name;
    EXPECT_EQ(d.dir.rfind("/run/knetlab/dc/frr/", 0), 0u) << d.dir;
    ASSERT_EQ(d.binds.size(), 1u);
    EXPECT_EQ(d.binds[0].second, "/var/tmp") << "FRR's crash logs stay in the lab's folder";
    EXPECT_EQ(d.wait_for.empty(), i < 6) << d.name;
    for (const auto& arg : d.argv) {
      if (arg.find('/') != std::string::npos && arg.rfind("/usr/lib/frr/", 0) != 0) {
        EXPECT_EQ(arg.rfind(d.dir, 0), 0u) << d.name << ": " << arg;
      }
    }
  }
}

TEST(PlanBgp, MeshPairsConnectFromTheLaterNodeOnly) {
  auto p = plan_of(R"(
name = "mesh"
[network]
cni = "bgp"
[[nodes]]
name = "a"
[[nodes]]
name = "b"
[[nodes]]
name = "c"
)");
  ASSERT_EQ(p.frr.size(), 3u) << "no router runs FRR without racks or a BGP load balancer";
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(p.frr[i].peers.size(), 2u);
    for (const auto& peer : p.frr[i].peers) {
      EXPECT_EQ(peer.asn, 64512u);
      auto other = peer.target.back() - 'a';
      EXPECT_EQ(peer.passive, static_cast<size_t>(other) > i)
          << p.frr[i].target << " " << peer.target;
    }
    EXPECT_EQ(p.frr[i].expected.size(), 2u) << "the other two pod CIDRs";
  }
  for (const auto& l : p.links) EXPECT_NE(l.kind, LinkKind::vxlan) << "no tunnel";
}

}  // namespace
}  // namespace knl
