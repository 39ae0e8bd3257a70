// Parse: one test per class of rejection, each asserting the line and column
// the message points at; and what a valid file becomes.

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "knetlab/topology/parse.h"
#include "knetlab/util/error.h"

namespace knl {
namespace {

constexpr const char* kNodes = R"(
[[nodes]]
name = "cp"
role = "control-plane"

[[nodes]]
name = "w1"
)";

struct Rejection {
  unsigned line = 0, column = 0;
  std::string message;
};

// Parses `text` (as lab.toml) and returns where and why it was rejected.
Rejection reject(const std::string& text) {
  try {
    auto topology = parse_topology(text, "lab.toml");
    check_buildable(topology);
  } catch (const UserError& e) {
    std::smatch m;
    std::string what = e.what();
    if (!std::regex_search(what, m, std::regex(R"(^lab\.toml:(\d+):(\d+): )"))) return {0, 0, what};
    return {static_cast<unsigned>(std::stoul(m[1])), static_cast<unsigned>(std::stoul(m[2])), what};
  }
  ADD_FAILURE() << "accepted:\n" << text;
  return {};
}

TEST(Parse, AcceptsAMinimalLabWithDefaults) {
  auto t = parse_topology(std::string("name = \"demo\"\n") + kNodes, "lab.toml");
  EXPECT_EQ(t.name, "demo");
  EXPECT_EQ(t.network.cni, Cni::vxlan);
  EXPECT_EQ(t.network.kube_proxy_mode, ProxyMode::nftables);
  EXPECT_EQ(t.network.pod_subnet.str(), "10.244.0.0/16");
  EXPECT_EQ(t.network.service_subnet.str(), "10.96.0.0/16");
  EXPECT_EQ(t.network.mtu, 1500);
  ASSERT_EQ(t.nodes.size(), 2u);
  EXPECT_EQ(t.nodes[0].role, NodeRole::control_plane);
  EXPECT_EQ(t.nodes[1].role, NodeRole::worker);
  ASSERT_EQ(t.namespaces.size(), 1u);
  EXPECT_EQ(t.namespaces[0].name, "default");
}

TEST(Parse, ReadsDeploymentsWithoutPlacingTheirPods) {
  auto t = parse_topology(std::string("name = \"demo\"\n") + kNodes + R"(
[[deployments]]
name = "web"
replicas = 3
labels = { app = "web" }
nodes = ["w1"]
[[deployments.containers]]
name = "c"
image = "netexec"
[[pods]]
name = "tool"
[[pods.containers]]
name = "c"
image = "shell"
)",
                          "lab.toml");
  ASSERT_EQ(t.deployments.size(), 1u);
  EXPECT_EQ(t.deployments[0].replicas, 3);
  EXPECT_EQ(t.deployments[0].nodes, std::vector<std::string>{"w1"});
  EXPECT_EQ(t.deployments[0].spec.labels.at("app"), "web");
  // The scheduler places pods (plan): a bare pod without `node` has none yet.
  ASSERT_EQ(t.pods.size(), 1u);
  EXPECT_EQ(t.pods[0].node, "");
}

TEST(Parse, RejectsABarePodNamedLikeAReplica) {
  auto r = reject(std::string("name = \"demo\"\n") + kNodes + R"(
[[deployments]]
name = "web"
replicas = 2
[[deployments.containers]]
name = "c"
image = "shell"
[[pods]]
name = "web-1"
[[pods.containers]]
name = "c"
image = "shell"
)");
  EXPECT_EQ(r.line, 17u) << r.message;
  EXPECT_NE(r.message.find("pod \"default/web-1\" exists twice"), std::string::npos) << r.message;
}

TEST(Parse, RejectsInvalidToml) {
  auto r = reject("name = \"demo\"\n[network\ncni = \"vxlan\"\n");
  EXPECT_EQ(r.line, 2u) << r.message;
  EXPECT_NE(r.message.find("not valid TOML"), std::string::npos) << r.message;
}

TEST(Parse, RejectsUnknownKeyNamingTheNearest) {
  auto r = reject(std::string("name = \"demo\"\n") + kNodes + R"(
[[deployments]]
name = "web"
replica = 3
)");
  EXPECT_EQ(r.line, 12u) << r.message;
  EXPECT_EQ(r.column, 1u) << r.message;
  EXPECT_NE(r.message.find("unknown key \"replica\""), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("did you mean \"replicas\""), std::string::npos) << r.message;
}

TEST(Parse, RejectsUnknownTopLevelKey) {
  auto r = reject(std::string("name = \"demo\"\nnetwrk = {}\n") + kNodes);
  EXPECT_EQ(r.line, 2u) << r.message;
  EXPECT_NE(r.message.find("did you mean \"network\""), std::string::npos) << r.message;
}

TEST(Parse, RejectsWrongType) {
  auto r = reject(std::string("name = \"demo\"\n[network]\nmtu = \"1500\"\n") + kNodes);
  EXPECT_EQ(r.line, 3u) << r.message;
  EXPECT_EQ(r.column, 1u) << r.message;
  EXPECT_NE(r.message.find("must be an integer, not a string"), std::string::npos) << r.message;
}

TEST(Parse, RejectsValueOutsideTheAllowedOnes) {
  auto r = reject(std::string("name = \"demo\"\n[network]\ncni = \"vxlam\"\n") + kNodes);
  EXPECT_EQ(r.line, 3u) << r.message;
  EXPECT_NE(r.message.find("did you mean \"vxlan\""), std::string::npos) << r.message;
}

TEST(Parse, RejectsOutOfRangeNumber) {
  auto r = reject(std::string("name = \"demo\"\n[network]\nmtu = 100\n") + kNodes);
  EXPECT_EQ(r.line, 3u) << r.message;
  EXPECT_NE(r.message.find("from 1280 to 9000"), std::string::npos) << r.message;
}

TEST(Parse, RejectsDuplicateNames) {
  auto r = reject(std::string("name = \"demo\"\n") + kNodes + "\n[[nodes]]\nname = \"w1\"\n");
  EXPECT_EQ(r.line, 11u) << r.message;
  EXPECT_NE(r.message.find("duplicate node or host \"w1\""), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("first defined at lab.toml:8:1"), std::string::npos)
      << "names the first one: " << r.message;
}

TEST(Parse, RejectsUnknownReference) {
  auto r = reject(std::string("name = \"demo\"\n") + kNodes + R"(
[[pods]]
name = "p"
node = "w2"
[[pods.containers]]
name = "c"
image = "shell"
)");
  EXPECT_EQ(r.line, 12u) << r.message;
  EXPECT_NE(r.message.find("unknown node \"w2\"; did you mean \"w1\""), std::string::npos)
      << r.message;
}

TEST(Parse, RejectsOverlappingSubnets) {
  auto r = reject(std::string("name = \"demo\"\n[network]\npodSubnet = \"10.0.0.0/8\"\n"
                              "serviceSubnet = \"10.96.0.0/16\"\n") +
                  kNodes);
  EXPECT_EQ(r.line, 4u) << r.message;
  EXPECT_NE(r.message.find("overlaps podSubnet"), std::string::npos) << r.message;
}

TEST(Parse, RejectsHostBitsInANetworkWithTheFix) {
  auto r =
      reject(std::string("name = \"demo\"\n[network]\npodSubnet = \"10.244.1.0/16\"\n") + kNodes);
  EXPECT_EQ(r.line, 3u) << r.message;
  EXPECT_NE(r.message.find("did you mean \"10.244.0.0/16\""), std::string::npos) << r.message;
}

TEST(Parse, RejectsExhaustedPodSubnet) {
  auto r = reject(std::string("name = \"demo\"\n[network]\npodSubnet = \"10.244.0.0/24\"\n"
                              "nodeMaskSize = 24\n") +
                  kNodes);
  EXPECT_EQ(r.line, 10u) << r.message;  // the first node that does not fit
  EXPECT_NE(r.message.find("holds 1 node pod CIDRs"), std::string::npos) << r.message;
}

TEST(Parse, RejectsTheMapPickerWithNodePodCidrsTooBigToListForHairpins) {
  auto r = reject(std::string("name = \"demo\"\n[network]\nnftablesPicker = \"map\"\n"
                              "nodeMaskSize = 19\n") +
                  kNodes);
  EXPECT_EQ(r.line, 3u) << r.message;
  EXPECT_NE(r.message.find("nodeMaskSize 20 or more (it is 19)"), std::string::npos) << r.message;
}

TEST(Parse, RejectsNamesAKernelOrShellWouldChokeOn) {
  for (const char* bad : {"Demo", "de mo", "demo;rm", "a-very-long-lab-name", "-demo"}) {
    auto r = reject(std::string("name = \"") + bad + "\"\n" + kNodes);
    EXPECT_EQ(r.line, 1u) << bad << ": " << r.message;
    EXPECT_EQ(r.column, 1u) << bad << ": " << r.message;
    EXPECT_NE(r.message.find("a-z, 0-9 and '-'"), std::string::npos) << r.message;
  }
}

TEST(Parse, RejectsMissingName) {
  auto r = reject(kNodes);
  EXPECT_EQ(r.line, 1u) << r.message;
  EXPECT_NE(r.message.find("needs a name"), std::string::npos) << r.message;
}

TEST(Parse, RejectsALabWithoutNodes) {
  auto r = reject("name = \"demo\"\n");
  EXPECT_NE(r.message.find("at least one node"), std::string::npos) << r.message;
}

TEST(Parse, RejectsBridgeCniWithSeveralNodes) {
  auto r = reject(std::string("name = \"demo\"\n[network]\ncni = \"bridge\"\n") + kNodes);
  EXPECT_EQ(r.line, 10u) << r.message;
  EXPECT_NE(r.message.find("single-node"), std::string::npos) << r.message;
}

TEST(Parse, RefusesWhatIsParsedButNotBuiltYet) {
  auto r = reject(std::string("name = \"demo\"\n[network]\nipFamily = \"dual\"\n") + kNodes);
  EXPECT_EQ(r.line, 3u) << r.message;
  EXPECT_NE(r.message.find("ipFamily = \"dual\" is understood but not built yet"),
            std::string::npos)
      << r.message;
}

TEST(Parse, ValidatesServiceNodePorts) {
  auto r = reject(std::string("name = \"demo\"\n") + kNodes + R"(
[[services]]
name = "web"
type = "NodePort"
[[services.ports]]
port = 80
nodePort = 80
)");
  EXPECT_EQ(r.line, 15u) << r.message;
  EXPECT_NE(r.message.find("from 30000 to 32767"), std::string::npos) << r.message;
}

TEST(Parse, RejectsAContainerWithNeitherImageNorCommand) {
  auto r = reject(std::string("name = \"demo\"\n") + kNodes + R"(
[[pods]]
name = "p"
[[pods.containers]]
name = "c"
)");
  EXPECT_EQ(r.line, 13u) << r.message;
  EXPECT_NE(r.message.find("exactly one of \"image\""), std::string::npos) << r.message;
}

TEST(Parse, QuotesTheOffendingLine) {
  auto r = reject(std::string("name = \"demo\"\n[network]\nmtu = \"big\"\n") + kNodes);
  EXPECT_NE(r.message.find("   3 | mtu = \"big\""), std::string::npos) << r.message;
}

TEST(Parse, ReportsAnUnreadableFile) {
  try {
    parse_topology_file("/nonexistent/lab.toml");
    FAIL() << "accepted a missing file";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/lab.toml: cannot read"), std::string::npos)
        << e.what();
  }
}

TEST(Parse, EveryExampleTopologyIsValid) {
  int count = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(KNL_SOURCE_DIR) + "/topologies")) {
    if (entry.path().extension() != ".toml") continue;
    ++count;
    EXPECT_NO_THROW(check_buildable(parse_topology_file(entry.path().string()))) << entry.path();
  }
  EXPECT_GE(count, 2);
}

}  // namespace
}  // namespace knl

namespace knl {
namespace {

constexpr const char* kRacks = R"(
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
)";

TEST(ParseBgp, AcceptsRacksWithPeeringTor) {
  auto t = parse_topology(std::string("name = \"demo\"\n[network]\ncni = \"bgp\"\n"
                                      "[network.bgp]\npeering = \"tor\"\n") +
                              kRacks,
                          "lab.toml");
  check_buildable(t);
  ASSERT_EQ(t.racks.size(), 2u);
  EXPECT_EQ(t.nodes[1].rack, "rack2");
  EXPECT_EQ(t.network.bgp_or_default().fabric_subnet.str(), "10.255.255.0/24");
}

TEST(ParseBgp, RefusesTheMeshAcrossRacks) {
  auto r = reject(std::string("name = \"demo\"\n[network]\ncni = \"bgp\"\n") + kRacks);
  EXPECT_EQ(r.line, 3u) << r.message;
  EXPECT_NE(r.message.find("peering = \"tor\""), std::string::npos) << r.message;
}

TEST(ParseBgp, RefusesTwoRacksWithOneAsn) {
  std::string racks = kRacks;
  racks.replace(racks.find("65002"), 5, "65001");
  auto r = reject(std::string("name = \"demo\"\n") + racks);
  EXPECT_EQ(r.line, 11u) << r.message;
  EXPECT_NE(r.message.find("rack \"rack1\"'s too"), std::string::npos) << r.message;
}

TEST(ParseBgp, RefusesAFabricThatOverlapsARack) {
  auto r = reject(
      std::string("name = \"demo\"\n[network.bgp]\nfabricSubnet = \"172.18.2.0/28\"\n") + kRacks);
  EXPECT_EQ(r.line, 2u) << r.message;
  EXPECT_NE(r.message.find("overlaps rack \"rack2\""), std::string::npos) << r.message;
}

TEST(ParseBgp, RefusesABgpPoolInsideTheLan) {
  auto r = reject(std::string("name = \"demo\"\n[network]\nloadBalancerMode = \"bgp\"\n"
                              "loadBalancerPool = \"172.18.0.200-172.18.0.250\"\n") +
                  kNodes);
  EXPECT_EQ(r.line, 4u) << r.message;
  EXPECT_NE(r.message.find("outside nodeSubnet"), std::string::npos) << r.message;
}

TEST(ParseBgp, DefaultsTheBgpPoolOutsideTheLan) {
  auto t = parse_topology(
      std::string("name = \"demo\"\n[network]\nloadBalancerMode = \"bgp\"\n") + kNodes, "lab.toml");
  EXPECT_EQ(t.network.lb_pool_first.str(), "172.18.255.200");
}

TEST(ParseBgp, RefusesTheCloudLoadBalancerInRacks) {
  auto r = reject(std::string("name = \"demo\"\n") + kRacks + R"(
[[services]]
name = "web"
type = "LoadBalancer"
[[services.ports]]
port = 80
)");
  EXPECT_EQ(r.line, 21u) << r.message;  // [[services]]
  EXPECT_NE(r.message.find("loadBalancerMode = \"bgp\""), std::string::npos) << r.message;
}

}  // namespace
}  // namespace knl
