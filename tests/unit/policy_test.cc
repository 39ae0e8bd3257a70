// NetworkPolicy without root: what the parser accepts and refuses, the
// verdicts of Kubernetes' semantics on the upstream e2e tests' x/y/z × a/b/c
// lab, the nftables table rendered for each node, and the policy
// reconciler's transactions as pods come and go or a node refuses.

#include <gtest/gtest.h>

#include <algorithm>

#include "../netpol_lab.h"
#include "fakes.h"
#include "knetlab/plan/dns.h"
#include "knetlab/plan/policy.h"
#include "knetlab/realize/controller.h"
#include "knetlab/realize/executor.h"
#include "knetlab/topology/parse.h"
#include "knetlab/util/error.h"

namespace knl {
namespace {

// The upstream netpol e2e lab (../netpol_lab.h) on three nodes, then
// `policies`.
std::string xyz_lab(const std::string& policies, const std::string& mode = "nftables") {
  std::string text = "name = \"np\"\n[network]\ncni = \"vxlan\"\nkubeProxyMode = \"" + mode +
                     "\"\n[[nodes]]\nname = \"n1\"\n[[nodes]]\nname = \"n2\"\n"
                     "[[nodes]]\nname = \"n3\"\n";
  text += netpol_xyz_objects();
  return text + policies;
}

// The truth table for `protocol`/`port`: one row per source pod "x/a",
// its columns the destinations in the same order, '.' allowed, 'X' denied.
std::vector<std::string> truth(const PolicyWorld& world, Protocol protocol, int port) {
  std::vector<const PolicyPod*> pods;
  for (const auto& p : world.pods)
    if (p.namespace_ != "kube-system") pods.push_back(&p);
  std::vector<std::string> rows;
  for (const auto* from : pods) {
    std::string row = from->key() + " ";
    for (const auto* to : pods)
      row += policy_verdict(world, policy_end(*from), policy_end(*to), protocol, port).allowed
                 ? '.'
                 : 'X';
    rows.push_back(row);
  }
  return rows;
}

std::vector<std::string> truth_of(const std::string& policies, Protocol protocol, int port) {
  return truth(policy_world(plan_of(xyz_lab(policies))), protocol, port);
}

std::string rejection(const std::string& policies) {
  try {
    auto t = parse_topology(xyz_lab(policies), "lab.toml");
    check_buildable(t);
  } catch (const UserError& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted:\n" << policies;
  return "";
}

// Rows are x/a x/b x/c y/a y/b y/c z/a z/b z/c, columns in the same order.

TEST(PolicyVerdict, NoPolicyAllowsEverything) {
  for (const auto& row : truth_of("", Protocol::tcp, 80))
    EXPECT_EQ(row.substr(4), ".........") << row;
}

TEST(PolicyVerdict, DenyAllIngressIsolatesTheNamespacesPodsButTheirOwnTraffic) {
  auto rows = truth_of(R"(
[[networkPolicies]]
name = "deny"
namespace = "x"
podSelector = {}
)",
                       Protocol::tcp, 80);
  EXPECT_EQ(rows[0], "x/a .XX......");
  EXPECT_EQ(rows[1], "x/b X.X......");
  EXPECT_EQ(rows[4], "y/b XXX......");
}

TEST(PolicyVerdict, AllowFromANamespaceByItsLabelOrItsName) {
  for (const auto* selector : {"{ ns = \"y\" }", "{ \"kubernetes.io/metadata.name\" = \"y\" }"}) {
    auto rows = truth_of(fmt::format(R"(
[[networkPolicies]]
name = "from-y"
namespace = "x"
podSelector = {{ pod = "a" }}
[[networkPolicies.ingress]]
from = [{{ namespaceSelector = {} }}]
)",
                                     selector),
                         Protocol::tcp, 80);
    for (size_t i = 0; i < rows.size(); ++i)
      EXPECT_EQ(rows[i][4], i == 0 || (i >= 3 && i < 6) ? '.' : 'X') << selector << " " << rows[i];
    EXPECT_EQ(rows[0].substr(5), "........") << "only x/a is isolated";
  }
}

TEST(PolicyVerdict, PodAndNamespaceSelectorsInOnePeerAreAnd) {
  auto rows = truth_of(R"(
[[networkPolicies]]
name = "and"
namespace = "x"
podSelector = { pod = "a" }
[[networkPolicies.ingress]]
from = [{ namespaceSelector = { matchExpressions = [{ key = "ns", operator = "NotIn", values = ["x", "y"] }] }, podSelector = { matchExpressions = [{ key = "pod", operator = "In", values = ["b", "c"] }] } }]
)",
                       Protocol::udp, 81);
  std::string column;
  for (const auto& row : rows) column += row[4];
  EXPECT_EQ(column, ".XXXXXX..") << "x/a itself, z/b and z/c";
}

TEST(PolicyVerdict, PortsByNumberRangeAndNamePerDestinationPod) {
  const std::string policy = R"(
[[networkPolicies]]
name = "ports"
namespace = "x"
podSelector = {}
[[networkPolicies.ingress]]
ports = [{ port = 79, endPort = 80 }, { port = "serve-81-udp", protocol = "UDP" }]
)";
  EXPECT_EQ(truth_of(policy, Protocol::tcp, 80)[3], "y/a .........");
  EXPECT_EQ(truth_of(policy, Protocol::udp, 80)[3], "y/a XXX......") << "TCP only";
  EXPECT_EQ(truth_of(policy, Protocol::tcp, 81)[3], "y/a XXX......");
  EXPECT_EQ(truth_of(policy, Protocol::udp, 81)[3], "y/a .........");
}

TEST(PolicyVerdict, EgressDenyAllowsOnlyWhatARuleAllowsAndTheSourceSelf) {
  auto world = policy_world(plan_of(xyz_lab(R"(
[[networkPolicies]]
name = "dns-only"
namespace = "y"
podSelector = {}
policyTypes = ["Egress"]
[[networkPolicies.egress]]
to = [{ namespaceSelector = { "kubernetes.io/metadata.name" = "kube-system" }, podSelector = { "k8s-app" = "kube-dns" } }]
ports = [{ port = 53, protocol = "UDP" }, { port = 53 }]
)")));
  auto rows = truth(world, Protocol::tcp, 80);
  EXPECT_EQ(rows[4], "y/b XXXX.XXXX");
  EXPECT_EQ(rows[0], "x/a .........");
  const auto* from = &world.pods[0];
  const PolicyPod* dns = nullptr;
  for (const auto& p : world.pods) {
    if (p.key() == "y/b") from = &p;
    if (p.namespace_ == "kube-system") dns = &p;
  }
  ASSERT_NE(dns, nullptr);
  auto verdict = policy_verdict(world, policy_end(*from), policy_end(*dns), Protocol::udp, 53);
  EXPECT_TRUE(verdict.allowed);
  EXPECT_EQ(verdict.egress_allowed_by, (std::vector<std::string>{"y/dns-only"}));
  EXPECT_FALSE(
      policy_verdict(world, policy_end(*from), policy_end(*dns), Protocol::udp, 54).allowed);
}

TEST(PolicyVerdict, IpBlockWithExceptSelectsAddressesPodsIncluded) {
  auto world = policy_world(plan_of(xyz_lab(R"(
[[networkPolicies]]
name = "lan"
namespace = "x"
podSelector = {}
[[networkPolicies.ingress]]
from = [{ ipBlock = { cidr = "172.18.0.0/24", except = ["172.18.0.4/32"] } }, { ipBlock = { cidr = "10.244.0.0/16", except = ["10.244.1.0/24"] } }]
)")));
  const auto& xa = world.pods[0];
  auto from = [](const char* ip) { return PolicyEnd{nullptr, *Ipv4::parse(ip), ""}; };
  EXPECT_TRUE(policy_verdict(world, from("172.18.0.9"), policy_end(xa), Protocol::tcp, 80).allowed);
  EXPECT_FALSE(
      policy_verdict(world, from("172.18.0.4"), policy_end(xa), Protocol::tcp, 80).allowed);
  EXPECT_FALSE(policy_verdict(world, from("10.0.0.1"), policy_end(xa), Protocol::tcp, 80).allowed);
  // Pods match by their address: those of n2 (10.244.1.0/24) are cut out.
  for (const auto& pod : world.pods)
    EXPECT_EQ(policy_verdict(world, policy_end(pod), policy_end(xa), Protocol::tcp, 80).allowed,
              pod.node != "n2" || &pod == &xa)
        << pod.key() << " on " << pod.node;
}

TEST(PolicyVerdict, TheUnionOfPoliciesAndTheNodesOwnTrafficPass) {
  auto world = policy_world(plan_of(xyz_lab(R"(
[[networkPolicies]]
name = "deny"
namespace = "x"
podSelector = {}
[[networkPolicies]]
name = "from-b"
namespace = "x"
podSelector = { pod = "a" }
[[networkPolicies.ingress]]
from = [{ podSelector = { pod = "b" } }]
)")));
  auto rows = truth(world, Protocol::tcp, 80);
  EXPECT_EQ(rows[1], "x/b ..X......");
  const auto& xa = world.pods[0];
  auto verdict =
      policy_verdict(world, policy_end(world.pods[1]), policy_end(xa), Protocol::tcp, 80);
  EXPECT_EQ(verdict.ingress_isolated_by, (std::vector<std::string>{"x/deny", "x/from-b"}));
  EXPECT_EQ(verdict.ingress_allowed_by, (std::vector<std::string>{"x/from-b"}));
  PolicyEnd own_node{nullptr, *Ipv4::parse("10.244.0.1"), xa.node};
  EXPECT_TRUE(policy_verdict(world, own_node, policy_end(xa), Protocol::tcp, 80).allowed);
  PolicyEnd other_node{nullptr, *Ipv4::parse("10.244.9.1"), xa.node == "n1" ? "n2" : "n1"};
  EXPECT_FALSE(policy_verdict(world, other_node, policy_end(xa), Protocol::tcp, 80).allowed);
}

TEST(PolicyVerdict, APodsOwnConnectionThroughAServiceMeetsThePolicies) {
  auto world = policy_world(plan_of(xyz_lab(R"(
[[networkPolicies]]
name = "deny"
namespace = "x"
podSelector = {}
)")));
  auto self = policy_end(world.pods[0]);
  EXPECT_TRUE(policy_verdict(world, self, self, Protocol::tcp, 80).allowed) << "loopback";
  EXPECT_FALSE(policy_verdict(world, self, self, Protocol::tcp, 80, true).allowed) << "hairpin";
}

TEST(PolicySelector, MatchExpressionsAndTheirPrintedForm) {
  LabelSelector s;
  s.match_labels = {{"app", "web"}};
  s.match_expressions = {{"tier", SelectorOperator::in, {"a", "b"}},
                         {"debug", SelectorOperator::does_not_exist, {}},
                         {"zone", SelectorOperator::not_in, {"x"}},
                         {"team", SelectorOperator::exists, {}}};
  EXPECT_TRUE(selector_matches(s, {{"app", "web"}, {"tier", "b"}, {"team", ""}}));
  EXPECT_FALSE(selector_matches(s, {{"app", "web"}, {"tier", "b"}, {"team", ""}, {"debug", "1"}}));
  EXPECT_FALSE(selector_matches(s, {{"app", "web"}, {"tier", "c"}, {"team", ""}}));
  EXPECT_FALSE(selector_matches(s, {{"app", "web"}, {"tier", "a"}, {"team", ""}, {"zone", "x"}}));
  EXPECT_FALSE(selector_matches(s, {{"app", "web"}, {"tier", "a"}}));
  EXPECT_TRUE(selector_matches({}, {}));
  EXPECT_EQ(selector_str(s), "app=web,tier in (a,b),!debug,zone notin (x),team");
}

TEST(PolicyParse, ReadsBothSelectorFormsPortsAndDefaultPolicyTypes) {
  auto t = parse_topology(xyz_lab(R"(
[[networkPolicies]]
name = "p"
namespace = "x"
podSelector = { matchLabels = { pod = "a" }, matchExpressions = [{ key = "tier", operator = "Exists" }] }
[[networkPolicies.egress]]
to = [{ ipBlock = { cidr = "10.0.0.0/8", except = ["10.1.0.0/16"] } }]
ports = [{ port = 1000, endPort = 2000, protocol = "UDP" }, { port = "serve-80-tcp" }]
)"),
                          "lab.toml");
  ASSERT_EQ(t.network_policies.size(), 1u);
  const auto& p = t.network_policies[0];
  EXPECT_TRUE(p.ingress) << "Ingress is always a type unless policyTypes says otherwise";
  EXPECT_TRUE(p.egress) << "Egress because egress rules are written";
  EXPECT_TRUE(p.ingress_rules.empty());
  EXPECT_EQ(selector_str(p.pod_selector), "pod=a,tier");
  const auto& rule = p.egress_rules.at(0);
  ASSERT_TRUE(rule.peers.at(0).ip_block);
  EXPECT_EQ(rule.peers[0].ip_block->cidr.str(), "10.0.0.0/8");
  EXPECT_EQ(rule.ports.at(0).end_port, 2000);
  EXPECT_EQ(rule.ports[0].protocol, Protocol::udp);
  EXPECT_EQ(rule.ports.at(1).port_name, "serve-80-tcp");
}

TEST(PolicyParse, RefusesWhatKubernetesRefusesAtItsLine) {
  auto base = [](const std::string& rest) {
    return "[[networkPolicies]]\nname = \"p\"\nnamespace = \"x\"\npodSelector = {}\n" + rest;
  };
  EXPECT_TRUE(contains(rejection(base("[[networkPolicies.ingress]]\nfrom = [{ ipBlock = { cidr = "
                                      "\"10.0.0.0/8\", except = [\"11.0.0.0/16\"] } }]\n")),
                       "except \"11.0.0.0/16\" must lie strictly inside cidr \"10.0.0.0/8\""));
  EXPECT_TRUE(contains(rejection(base("[[networkPolicies.ingress]]\nfrom = [{ ipBlock = { cidr = "
                                      "\"10.0.0.0/8\" }, podSelector = {} }]\n")),
                       "ipBlock"));
  EXPECT_TRUE(
      contains(rejection(base("[[networkPolicies.ingress]]\nports = [{ port = \"Serve_80\" }]\n")),
               "is neither a number nor a container port's name"));
  EXPECT_TRUE(contains(
      rejection(base("[[networkPolicies.ingress]]\nports = [{ port = \"http\", endPort = 90 }]\n")),
      "\"endPort\" needs a numeric \"port\""));
  EXPECT_TRUE(contains(rejection(base("policyTypes = [\"Egress\"]\n[[networkPolicies.ingress]]\n")),
                       "ingress rules are written but policyTypes leaves out \"Ingress\""));
  EXPECT_TRUE(contains(rejection(base("policyTypes = [\"ingress\"]\n")),
                       "must be \"Ingress\" or \"Egress\""));
  auto r =
      rejection(base("[[networkPolicies.ingress]]\nfrom = [{ podSelector = { matchExpressions "
                     "= [{ key = \"pod\", operator = \"In\" }] } }]\n"));
  EXPECT_TRUE(contains(r, "lab.toml:")) << r;
  EXPECT_TRUE(contains(rejection("[[networkPolicies]]\nname = \"p\"\nnamespace = \"x\"\n"),
                       "a policy needs \"podSelector\""));
  EXPECT_TRUE(contains(rejection(base("[[networkPolicies.ingress]]\nfrom = [{ podSelector = { "
                                      "\"a b\" = \"c\" } }]\n")),
                       "is not a Kubernetes label key"));
}

TEST(PolicyNft, EachNodeGetsTheChainsOfThePoliciesSelectingItsPodsWithSetsNamedAfterThem) {
  auto plan = plan_of(xyz_lab(R"(
[[networkPolicies]]
name = "allow-b"
namespace = "x"
podSelector = { pod = "a" }
[[networkPolicies.ingress]]
from = [{ podSelector = { pod = "b" } }, { ipBlock = { cidr = "172.18.0.0/24", except = ["172.18.0.128/25"] } }]
ports = [{ port = 80 }, { port = "serve-81-udp", protocol = "UDP" }]
)"));
  auto world = policy_world(plan);
  const PolicyPod *xa = nullptr, *xb = nullptr;
  for (const auto& p : world.pods) {
    if (p.key() == "x/a") xa = &p;
    if (p.key() == "x/b") xb = &p;
  }
  auto tables = policy_nft(world, {"n1", "n2", "n3"});
  const auto& mine = tables.at(xa->node);
  const std::string chain = "policy-x/allow-b-ingress";
  ASSERT_EQ(mine.chains.count(chain), 1u);
  // Peers and ports are OR'd: a rule per (peer kind, port kind), all counted as rule 1.
  const std::string named = "ip daddr . meta l4proto . th dport @policy-x/allow-b-ingress-1-named";
  EXPECT_EQ(mine.chains.at(chain),
            (std::vector<std::string>{
                "ip saddr @policy-x/allow-b-ingress-1-pods tcp dport 80 counter accept comment "
                "\"rule 1\"",
                "ip saddr @policy-x/allow-b-ingress-1-pods " + named +
                    " counter accept comment \"rule 1\"",
                "ip saddr @policy-x/allow-b-ingress-1-cidrs tcp dport 80 counter accept comment "
                "\"rule 1\"",
                "ip saddr @policy-x/allow-b-ingress-1-cidrs " + named +
                    " counter accept comment \"rule 1\""}));
  EXPECT_EQ(mine.elements.count({chain + "-1-pods", xb->ip.str()}), 1u);
  EXPECT_EQ(mine.elements.count({chain + "-1-cidrs", "172.18.0.0/25"}), 1u);
  EXPECT_EQ(mine.elements.count({chain + "-1-named", xa->ip.str() + " . udp . 81"}), 1u);
  EXPECT_EQ(mine.elements.at({"ingress-pods", xa->ip.str()}), " : jump pod-x/a-ingress");
  EXPECT_EQ(mine.chains.at("pod-x/a-ingress"),
            (std::vector<std::string>{"jump " + chain,
                                      "counter drop comment \"x/a is isolated for Ingress\""}));
  for (const auto& [node, piece] : tables) {
    if (node != xa->node) {
      EXPECT_EQ(piece.chains.count(chain), 0u) << node;
    }
  }
  EXPECT_TRUE(contains(policy_nft_base("np", "n1"), "ct state established,related accept"));
}

// The upstream lab deployed into the recording fakes, under a controller.
struct Lab : FakeLab {
  using FakeLab::FakeLab;
  // node's nft transactions that touch the policy table.
  std::vector<std::string> policy_nft(const std::string& node) {
    std::vector<std::string> out;
    for (const auto& script : kernel.nft["knl-np-n-" + node])
      if (contains(script, kPolicyTable)) out.push_back(script);
    return out;
  }
};

constexpr const char* kDeployment = R"(
[[deployments]]
name = "web"
namespace = "x"
replicas = 3
labels = { pod = "b" }
[[deployments.containers]]
name = "c"
image = "netexec"
[[networkPolicies]]
name = "allow-b"
namespace = "x"
podSelector = { pod = "a" }
[[networkPolicies.ingress]]
from = [{ podSelector = { pod = "b" } }]
)";

TEST(PolicyReconciler, StartLoadsEachNodesTableOnceAndANewPodOnlyAddsElements) {
  Lab lab(xyz_lab(kDeployment));
  for (const auto* node : {"n1", "n2", "n3"}) {
    auto scripts = lab.policy_nft(node);
    ASSERT_EQ(scripts.size(), 1u) << node;
    EXPECT_TRUE(contains(scripts[0], "add table ip network-policies")) << node;
  }
  std::string node_of_a;
  for (const auto& p : lab.controller->lab().plan.pods)
    if (p.key() == "x/a") node_of_a = p.node;
  auto before = lab.policy_nft(node_of_a).size();
  lab.controller->request(ScaleRequest{"x/web", 4});
  std::string ip;
  for (const auto& p : lab.controller->lab().plan.pods)
    if (p.key() == "x/web-3") ip = p.ip.str();
  auto after = lab.policy_nft(node_of_a);
  ASSERT_EQ(after.size(), before + 1) << "the new peer reaches x/a's node before scale returns";
  EXPECT_EQ(after.back(),
            "add element ip network-policies policy-x/allow-b-ingress-1-pods { " + ip + " }\n");
  EXPECT_TRUE(std::any_of(lab.events.begin(), lab.events.end(), [](const std::string& e) {
    return contains(e, "network policy: 1 policies");
  }));
}

TEST(PolicyReconciler, ANodeThatRefusesKeepsItsOldRulesAndIsSyncedOnTheNextTick) {
  Lab lab(xyz_lab(kDeployment));
  std::string node_of_a;
  for (const auto& p : lab.controller->lab().plan.pods)
    if (p.key() == "x/a") node_of_a = p.node;
  auto before = lab.policy_nft(node_of_a).size();
  lab.injector.fail_kind = "nft_apply knl-np-n-" + node_of_a;
  lab.injector.fail_kind_at = 1;
  EXPECT_THROW(lab.controller->request(ScaleRequest{"x/web", 1}), SystemError);
  EXPECT_EQ(lab.policy_nft(node_of_a).size(), before);
  lab.controller->tick();
  auto after = lab.policy_nft(node_of_a);
  ASSERT_EQ(after.size(), before + 1);
  EXPECT_TRUE(contains(after.back(),
                       "delete element ip network-policies "
                       "policy-x/allow-b-ingress-1-pods"))
      << after.back();
}

}  // namespace
}  // namespace knl
