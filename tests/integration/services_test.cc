// Root integration tests of Services, in both kube-proxy modes: real labs
// from topologies/services.toml, real packets, assertions on which pod
// answered and which client address it saw.

#include <fmt/format.h>

#include <chrono>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

namespace knl::test {
namespace {

using nlohmann::json;

// services.toml in one kube-proxy mode, deployed for each test.
class ROOT_Services : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    KNL_REQUIRE_ROOT();
    auto topology = source_file("topologies/services.toml");
    auto mode = GetParam();
    auto at = topology.find("kubeProxyMode = \"nftables\"");
    ASSERT_NE(at, std::string::npos);
    // "rules", "map": nftables mode with that nftablesPicker.
    topology.replace(at, std::string("kubeProxyMode = \"nftables\"").size(),
                     mode == "rules" || mode == "map"
                         ? "kubeProxyMode = \"nftables\"\nnftablesPicker = \"" + mode + "\""
                         : "kubeProxyMode = \"" + mode + "\"");
    lab_ = std::make_unique<Lab>("itsvc" + mode.substr(0, 1), topology);
    ASSERT_TRUE(lab_->ok()) << lab_->deployed().err;
    auto state = lab_->inspect();
    for (const auto& s : state["services"])
      if (s["clusterIP"].is_string()) cluster_ip_[s["name"]] = s["clusterIP"];
    for (const auto& s : state["services"])
      if (s["loadBalancerIP"].is_string()) lb_ip_[s["name"]] = s["loadBalancerIP"];
    for (const auto& n : state["nodes"]) node_ip_[n["name"]] = n["ip"];
  }
  void TearDown() override { lab_.reset(); }

  // The client pod sends `tries` requests (new connections) to host:port.
  std::vector<std::string> dial(const std::string& host, int port, int tries,
                                const std::string& protocol = "http",
                                const std::string& request = "hostname") {
    auto client = lab_->pod_ips().at("client");
    auto url = fmt::format("http://{}:8080/dial?request={}&protocol={}&host={}&port={}&tries={}",
                           client, request, protocol, host, port, tries);
    auto r = lab_->exec("node/worker2", {"netexec", "get", url, "--timeout=60"});
    EXPECT_EQ(r.status, 0) << r.err;
    auto answer = json::parse(r.out.empty() ? "{}" : r.out);
    EXPECT_TRUE(answer.value("errors", json::array()).empty()) << r.out;
    return answer.value("responses", std::vector<std::string>{});
  }
  Result get(const std::string& target, const std::string& url, int timeout = 3) {
    return lab_->exec(target, {"netexec", "get", url, fmt::format("--timeout={}", timeout)});
  }
  std::vector<std::string> endpoints(const std::string& service) {
    auto r = knetlab({"get", "endpoints", service, "--lab", lab_->name(), "-o", "json"});
    EXPECT_EQ(r.status, 0) << r.err;
    std::vector<std::string> out;
    auto listing = json::parse(r.out);
    for (const auto& e : listing["items"][0]["endpoints"])
      out.push_back(e["pod"].get<std::string>().substr(8));  // "default/"
    return out;
  }

  std::unique_ptr<Lab> lab_;
  std::map<std::string, std::string> cluster_ip_, lb_ip_, node_ip_;
};

std::set<std::string> distinct(const std::vector<std::string>& v) {
  return {v.begin(), v.end()};
}

TEST_P(ROOT_Services, ClusterIpSpreadsOverAllEndpointsAndKeepsThePodAddress) {
  auto answers = dial(cluster_ip_["web"], 80, 40);
  ASSERT_EQ(answers.size(), 40u);
  EXPECT_EQ(distinct(answers), (std::set<std::string>{"web-0", "web-1", "web-2"}));
  auto seen = get("pod/client", "http://" + cluster_ip_["web"] + "/clientip");
  EXPECT_EQ(seen.out.substr(0, seen.out.find(':')), lab_->pod_ips().at("client"))
      << "pod to ClusterIP is DNAT only";
}

TEST_P(ROOT_Services, ClusterIpOverUdpAndFromNodes) {
  auto answers = dial(cluster_ip_["web"], 53, 30, "udp");
  ASSERT_EQ(answers.size(), 30u);
  EXPECT_GE(distinct(answers).size(), 2u);
  for (const auto& a : answers) EXPECT_EQ(a.rfind("web-", 0), 0u) << a;
  for (const auto& node : {"control-plane", "worker1", "worker2"}) {
    auto r = get(std::string("node/") + node, "http://" + cluster_ip_["web"] + "/hostname");
    EXPECT_EQ(r.status, 0) << node << ": " << r.err;
    EXPECT_EQ(r.out.rfind("web-", 0), 0u) << node << " got " << r.out;
  }
}

TEST_P(ROOT_Services, ClientIpAffinitySticksToOneEndpoint) {
  auto answers = dial(cluster_ip_["sticky"], 80, 15);
  ASSERT_EQ(answers.size(), 15u);
  EXPECT_EQ(distinct(answers).size(), 1u);
}

TEST_P(ROOT_Services, InternalLocalPolicyKeepsTrafficOnTheClientsNode) {
  auto answers = dial(cluster_ip_["node-local"], 80, 20);
  ASSERT_EQ(answers.size(), 20u);
  EXPECT_EQ(distinct(answers), (std::set<std::string>{"web-2"})) << "the client runs on worker2";
  auto from_pinned = lab_->exec(
      "pod/pinned-0",
      {"netexec", "get", "http://" + cluster_ip_["node-local"] + "/hostname", "--timeout=3"});
  EXPECT_EQ(from_pinned.out, "web-1") << "pinned-0 runs on worker1: " << from_pinned.err;
}

TEST_P(ROOT_Services, EndpointReachesItsOwnServiceEveryTime) {
  auto ips = lab_->pod_ips();
  auto url =
      fmt::format("http://{}:8080/dial?request=hostname&protocol=http&host={}&port=80&tries=20",
                  ips.at("web-1"), cluster_ip_["web"]);
  auto r = lab_->exec("node/worker1", {"netexec", "get", url, "--timeout=60"});
  auto answer = json::parse(r.out);
  EXPECT_EQ(answer["responses"].size(), 20u) << r.out;
  EXPECT_TRUE(distinct(answer["responses"].get<std::vector<std::string>>()).count("web-1"))
      << "hairpin: web-1 is one of the answers " << r.out;
}

TEST_P(ROOT_Services, ServiceWithoutEndpointsRejectsAtOnce) {
  auto r = get("pod/client", "http://" + cluster_ip_["empty"] + "/hostname", 10);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("Connection refused"), std::string::npos) << r.err;
  // nftables mode also rejects other ports of a ClusterIP (cluster-ips-check);
  // iptables mode has no such rule.
  if (GetParam() != "iptables") {
    auto udp = lab_->exec(
        "pod/client", {"netexec", "udp", cluster_ip_["empty"] + ":80", "hostname", "--timeout=10"});
    EXPECT_NE(udp.err.find("Connection refused"), std::string::npos) << udp.err;
  }
}

TEST_P(ROOT_Services, NodePortOnEveryNodeMasqueradesTheClient) {
  auto host_ip = lab_->inspect()["hosts"][0]["ip"].get<std::string>();
  for (const auto& [node, ip] : node_ip_) {
    auto name = get("host/outside", fmt::format("http://{}:30080/hostname", ip));
    EXPECT_EQ(name.status, 0) << node << ": " << name.err;
    EXPECT_EQ(name.out.rfind("web-", 0), 0u);
    auto seen = get("host/outside", fmt::format("http://{}:30080/clientip", ip));
    EXPECT_NE(seen.out.substr(0, seen.out.find(':')), host_ip)
        << "externalTrafficPolicy Cluster masquerades, " << node << " let " << seen.out
        << " through";
  }
}

TEST_P(ROOT_Services, LocalPolicyKeepsTheClientAndDropsOnNodesWithoutEndpoint) {
  auto host_ip = lab_->inspect()["hosts"][0]["ip"].get<std::string>();
  auto via_lb = get("host/outside", "http://" + lb_ip_["pinned-local"] + "/clientip");
  ASSERT_EQ(via_lb.status, 0) << via_lb.err;
  EXPECT_EQ(via_lb.out.substr(0, via_lb.out.find(':')), host_ip);
  auto np = lab_->inspect()["services"];
  int node_port = 0;
  for (const auto& s : np)
    if (s["name"] == "pinned-local") node_port = s["ports"][0]["nodePort"];
  auto on_w1 =
      get("host/outside", fmt::format("http://{}:{}/clientip", node_ip_["worker1"], node_port));
  EXPECT_EQ(on_w1.out.substr(0, on_w1.out.find(':')), host_ip) << on_w1.err;
  auto on_w2 =
      get("host/outside", fmt::format("http://{}:{}/hostname", node_ip_["worker2"], node_port), 1);
  EXPECT_NE(on_w2.status, 0) << "worker2 has no local endpoint: " << on_w2.out;
  EXPECT_NE(on_w2.err.find("timed out"), std::string::npos) << on_w2.err;
}

TEST_P(ROOT_Services, LoadBalancerThroughTheCloudAndItsSourceRanges) {
  auto host_ip = lab_->inspect()["hosts"][0]["ip"].get<std::string>();
  std::set<std::string> seen;
  for (int i = 0; i < 12; ++i) {
    auto r = get("host/outside", "http://" + lb_ip_["web-lb"] + "/hostname");
    ASSERT_EQ(r.status, 0) << r.err;
    seen.insert(r.out);
  }
  EXPECT_GE(seen.size(), 2u);
  auto masq = get("host/outside", "http://" + lb_ip_["web-lb"] + "/clientip");
  EXPECT_NE(masq.out.substr(0, masq.out.find(':')), host_ip);
  auto guarded = get("host/outside", "http://" + lb_ip_["guarded"] + "/hostname", 1);
  EXPECT_NE(guarded.status, 0) << "the host is outside loadBalancerSourceRanges";
  int node_port = 0;
  auto state = lab_->inspect();
  for (const auto& s : state["services"])
    if (s["name"] == "guarded") node_port = s["ports"][0]["nodePort"];
  auto via_node_port =
      get("host/outside", fmt::format("http://{}:{}/hostname", node_ip_["worker1"], node_port));
  EXPECT_EQ(via_node_port.status, 0)
      << "source ranges apply to the LB IP only: " << via_node_port.err;
}

TEST_P(ROOT_Services, CheckFindsNothingThatDiffersFromKubernetes) {
  auto r = knetlab({"check", "--lab", lab_->name()});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find(", 0 differ"), std::string::npos) << r.out;
}

TEST_P(ROOT_Services, ScaleAndDeleteMoveTheEndpointsAndTheRules) {
  auto r = knetlab({"scale", "deployment/web", "--replicas", "5", "--lab", lab_->name()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(distinct(dial(cluster_ip_["web"], 80, 60)),
            (std::set<std::string>{"web-0", "web-1", "web-2", "web-3", "web-4"}));
  r = knetlab({"scale", "deployment/web", "--replicas", "1", "--lab", lab_->name()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(endpoints("web"), (std::vector<std::string>{"web-0", "web-0"}));
  EXPECT_EQ(distinct(dial(cluster_ip_["web"], 80, 10)), (std::set<std::string>{"web-0"}));
  if (GetParam() != "iptables") {
    // The removed endpoints' chains are flushed by the sync and deleted on
    // the supervisor's next tick, as kube-proxy defers it.
    auto web0 = "__" + lab_->pod_ips()["web-0"] + "/";
    std::string left;
    for (int i = 0; i < 40; ++i) {
      left.clear();
      auto table = lab_->exec("node/worker1", {"nft", "list", "table", "ip", "kube-proxy"});
      ASSERT_EQ(table.status, 0) << table.err;
      ASSERT_NE(table.out.find("chain endpoint-"), std::string::npos) << table.out;
      std::istringstream chains(table.out);
      for (std::string line; std::getline(chains, line);)
        if (line.find("chain endpoint-") != std::string::npos &&
            line.find("/web/") != std::string::npos && line.find(web0) == std::string::npos)
          left += line + "\n";
      if (left.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(left, "") << "endpoint chains of removed pods stay";
  }
  r = knetlab({"delete", "pod/web-0", "--lab", lab_->name()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("pod/default/web-5 created"), std::string::npos) << r.out;
  EXPECT_EQ(distinct(dial(cluster_ip_["web"], 80, 10)), (std::set<std::string>{"web-5"}));
  EXPECT_EQ(knetlab({"delete", "pod/nope", "--lab", lab_->name()}).status, 1);
}

TEST_P(ROOT_Services, ExitedContainerAndFailedReadinessLeaveTheEndpoints) {
  auto ips = lab_->pod_ips();
  auto r = get("node/worker1", fmt::format("http://{}:8080/readiness?ready=false", ips["web-1"]));
  ASSERT_EQ(r.out, "not ready");
  // The probe runs every second; the endpoint goes within a few.
  for (int i = 0; i < 50 && endpoints("web").size() != 4; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(distinct(endpoints("web")), (std::set<std::string>{"web-0", "web-2"}));
  EXPECT_EQ(distinct(dial(cluster_ip_["web"], 80, 20)), (std::set<std::string>{"web-0", "web-2"}));
  get("node/worker2", fmt::format("http://{}:8080/shutdown", ips["web-2"]));
  for (int i = 0; i < 50 && endpoints("web").size() != 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(distinct(dial(cluster_ip_["web"], 80, 10)), (std::set<std::string>{"web-0"}));
  get("node/worker1", fmt::format("http://{}:8080/readiness?ready=true", ips["web-1"]));
  for (int i = 0; i < 50 && endpoints("web").size() != 4; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(distinct(endpoints("web")), (std::set<std::string>{"web-0", "web-1"}));
}

TEST_P(ROOT_Services, UdpClientOnAFixedPortMovesToTheNewEndpoint) {
  auto r = knetlab({"scale", "deployment/web", "--replicas", "1", "--lab", lab_->name()});
  ASSERT_EQ(r.status, 0) << r.err;
  auto ask = [&] {
    return lab_->exec("pod/client", {"netexec", "udp", cluster_ip_["web"] + ":53", "hostname",
                                     "--local-port=5353", "--timeout=2"});
  };
  EXPECT_EQ(ask().out, "web-0");
  r = knetlab({"delete", "pod/web-0", "--lab", lab_->name()});
  ASSERT_EQ(r.status, 0) << r.err;
  auto moved = ask();
  EXPECT_EQ(moved.out, "web-3") << "the stale conntrack entry toward web-0 was not removed: "
                                << moved.err;
}

TEST_P(ROOT_Services, RulesHaveKubeProxysNames) {
  if (GetParam() != "iptables") {
    auto r = lab_->exec("node/worker1", {"nft", "list", "table", "ip", "kube-proxy"});
    EXPECT_NE(r.out.find("chain service-"), std::string::npos);
    EXPECT_NE(r.out.find("map service-ips"), std::string::npos);
    const std::map<std::string, std::string> picks{
        {"nftables", "numgen random mod 3 vmap"},
        {"rules", "numgen random mod 3 0 goto endpoint-"},
        {"map", "dnat ip to numgen random mod 3 map"}};
    EXPECT_NE(r.out.find(picks.at(GetParam())), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("masquerade fully-random"), std::string::npos);
  } else {
    auto r = lab_->exec("node/worker1", {"iptables-save", "-t", "nat"});
    EXPECT_NE(r.out.find("-A KUBE-SERVICES -d " + cluster_ip_["web"] + "/32 -p tcp"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("--probability 0.33333333349"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("KUBE-MARK-MASQ"), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, ROOT_Services,
                         ::testing::Values("nftables", "iptables", "rules", "map"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace knl::test

namespace knl::test {
namespace {

TEST(ROOT_ManyServices, MoreThanAThousandServicesSpreadOverTwoTablesAndAllAnswer) {
  KNL_REQUIRE_ROOT();
  std::string topology = R"(name = "x"
[network]
cni = "bridge"
[[nodes]]
name = "node0"
[[deployments]]
name = "web"
replicas = 2
labels = { app = "web" }
[[deployments.containers]]
name = "c"
image = "netexec"
[[pods]]
name = "client"
node = "node0"
[[pods.containers]]
name = "c"
image = "netexec"
)";
  for (int i = 0; i < 1200; ++i)
    topology += fmt::format(
        "[[services]]\nname = \"s{}\"\nselector = {{ app = \"web\" }}\n[[services.ports]]\n"
        "port = 80\ntargetPort = 8080\n",
        i);
  Lab lab("itmany", topology);
  ASSERT_TRUE(lab.ok()) << lab.deployed().err;
  auto second = lab.exec("node/node0", {"nft", "list", "table", "ip", "kube-proxy-1"});
  ASSERT_EQ(second.status, 0) << "1200 services use a second table: " << second.err;
  std::map<std::string, std::string> cluster_ip;
  auto state = lab.inspect();
  for (const auto& s : state["services"]) cluster_ip[s["name"]] = s["clusterIP"];
  // One service from each table.
  std::string in_first, in_second;
  for (int i = 0; i < 1200 && (in_first.empty() || in_second.empty()); ++i) {
    auto name = fmt::format("s{}", i);
    auto chain = fmt::format("default/{}/tcp/", name);
    (second.out.find(chain) != std::string::npos ? in_second : in_first) = name;
  }
  ASSERT_FALSE(in_first.empty());
  ASSERT_FALSE(in_second.empty());
  // The first load comes in several transactions; every service is in one.
  auto first = lab.exec("node/node0", {"nft", "list", "table", "ip", "kube-proxy"});
  std::set<std::string> loaded;
  std::smatch m;
  const std::regex chain("chain service-[A-Z0-9]{8}-default/(s[0-9]+)/tcp/");
  for (const auto* text : {&first.out, &second.out})
    for (auto it = text->cbegin(); std::regex_search(it, text->cend(), m, chain); it = m[0].second)
      loaded.insert(m[1]);
  EXPECT_EQ(loaded.size(), 1200U);
  auto reach = [&](const std::string& service, const std::string& from = "client") {
    auto url =
        fmt::format("http://{}:8080/dial?request=hostname&protocol=http&host={}&port=80&tries=30",
                    lab.pod_ips().at(from), cluster_ip[service]);
    auto r = lab.exec("node/node0", {"netexec", "get", url, "--timeout=30"});
    EXPECT_EQ(r.status, 0) << url << ": " << r.err;
    auto answer = json::parse(r.out.empty() ? "{}" : r.out);
    EXPECT_EQ(answer.value("errors", json::array()).size(), 0U) << from << ": " << r.out;
    std::set<std::string> pods;
    for (const auto& p : answer.value("responses", json::array()))
      pods.insert(p.get<std::string>());
    return pods;
  };
  EXPECT_EQ(reach(in_first), (std::set<std::string>{"web-0", "web-1"}));
  EXPECT_EQ(reach(in_second), (std::set<std::string>{"web-0", "web-1"}));
  // The first service and the last are in different transactions of the first load.
  EXPECT_EQ(reach("s0"), (std::set<std::string>{"web-0", "web-1"}));
  EXPECT_EQ(reach("s1199"), (std::set<std::string>{"web-0", "web-1"}));
  // A ClusterIP's unknown port is rejected by the first table's check.
  auto wrong = lab.exec(
      "pod/client", {"netexec", "get", "http://" + cluster_ip[in_second] + ":81/", "--timeout=2"});
  EXPECT_NE((wrong.out + wrong.err).find("Connection refused"), std::string::npos)
      << wrong.out << wrong.err;
  // A change reaches the second table's rules.
  auto scaled = knetlab({"scale", "deployment/web", "--replicas", "3", "--lab", "itmany"});
  ASSERT_EQ(scaled.status, 0) << scaled.err;
  EXPECT_EQ(reach(in_second), (std::set<std::string>{"web-0", "web-1", "web-2"}));
  // Hairpin through the second table: its endpoint chains mark, the first
  // table's masquerading rewrites; 30 tries from web-0 all answer.
  EXPECT_EQ(reach(in_second, "web-0"), (std::set<std::string>{"web-0", "web-1", "web-2"}));
  // Without endpoints, the second table's service is rejected by the first
  // table's no-endpoint map, at once.
  scaled = knetlab({"scale", "deployment/web", "--replicas", "0", "--lab", "itmany"});
  ASSERT_EQ(scaled.status, 0) << scaled.err;
  auto start = std::chrono::steady_clock::now();
  auto none = lab.exec("pod/client",
                       {"netexec", "get", "http://" + cluster_ip[in_second] + "/", "--timeout=5"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_NE(none.err.find("Connection refused"), std::string::npos) << none.err;
}

}  // namespace
}  // namespace knl::test
