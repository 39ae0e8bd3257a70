// Root integration tests of NetworkPolicy with real packets, in three
// setups (nftables kube-proxy over VXLAN, iptables kube-proxy over BGP, one
// bridged node): the upstream netpol e2e lab (namespaces x, y, z with pods
// a, b, c serving TCP and UDP on 80 and 81), its policies changed by
// `knetlab apply` while it runs, the truth tables of `check --policies`
// asserted cell by cell against Kubernetes' semantics written out here,
// Services' DNAT, established connections, counters, DNS under egress policy
// and pods added by scale.

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <thread>

#include "../netpol_lab.h"
#include "harness.h"

namespace knl::test {
namespace {

using nlohmann::json;

struct Setup {
  std::string name, mode, cni;
};
void PrintTo(const Setup& s, std::ostream* out) {
  *out << s.mode << " " << s.cni;
}

std::string xyz_lab(const Setup& setup, const std::string& policies) {
  std::string text = fmt::format(
      "name = \"LAB\"\n[network]\ncni = \"{}\"\nkubeProxyMode = \"{}\"\n", setup.cni, setup.mode);
  for (const char* node : setup.cni == "bridge" ? std::vector<const char*>{"n1"}
                                                : std::vector<const char*>{"n1", "n2", "n3"})
    text += fmt::format("[[nodes]]\nname = \"{}\"\n", node);
  text += "[[hosts]]\nname = \"outside\"\n";
  text += netpol_xyz_objects();
  // x/a behind a Service, and a deployment of pods labelled pod=b in x.
  text += R"(
[[deployments]]
name = "more-b"
namespace = "x"
replicas = 1
labels = { pod = "b" }
[[deployments.containers]]
name = "c80"
image = "netexec"
args = ["--http-port=80", "--udp-port=80"]
[[services]]
name = "a"
namespace = "x"
type = "NodePort"
selector = { pod = "a" }
[[services.ports]]
port = 8000
targetPort = 80
)";
  return text + policies;
}

// Policies of the upstream e2e tests, each with the truth table Kubernetes
// gives for one protocol and port (rows from, columns to, both in the order
// x/a x/b x/c y/a y/b y/c z/a z/b z/c).
struct Case {
  std::string name, policies, protocol;
  int port;
  std::vector<std::string> rows;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {"no policy", "", "TCP", 80, std::vector<std::string>(9, ".........")},
      {"deny all ingress in x",
       R"(
[[networkPolicies]]
name = "deny"
namespace = "x"
podSelector = {}
)",
       "TCP",
       80,
       {".XX......", "X.X......", "XX.......", "XXX......", "XXX......", "XXX......", "XXX......",
        "XXX......", "XXX......"}},
      {"allow x/a from namespace y",
       R"(
[[networkPolicies]]
name = "deny"
namespace = "x"
podSelector = {}
[[networkPolicies]]
name = "from-y"
namespace = "x"
podSelector = { pod = "a" }
[[networkPolicies.ingress]]
from = [{ namespaceSelector = { ns = "y" } }]
)",
       "TCP",
       80,
       {".XX......", "X.X......", "XX.......", ".XX......", ".XX......", ".XX......", "XXX......",
        "XXX......", "XXX......"}},
      {"pod and namespace selectors together, by expressions",
       R"(
[[networkPolicies]]
name = "and"
namespace = "x"
podSelector = { pod = "a" }
[[networkPolicies.ingress]]
from = [{ namespaceSelector = { matchExpressions = [{ key = "ns", operator = "NotIn", values = ["x", "y"] }] }, podSelector = { matchExpressions = [{ key = "pod", operator = "In", values = ["b", "c"] }] } }]
)",
       "UDP",
       81,
       {".........", "X........", "X........", "X........", "X........", "X........", "X........",
        ".........", "........."}},
      {"ports by range and by name",
       R"(
[[networkPolicies]]
name = "ports"
namespace = "x"
podSelector = {}
[[networkPolicies.ingress]]
ports = [{ port = 79, endPort = 80 }, { port = "serve-81-udp", protocol = "UDP" }]
)",
       "TCP",
       81,
       {".XX......", "X.X......", "XX.......", "XXX......", "XXX......", "XXX......", "XXX......",
        "XXX......", "XXX......"}},
      {"deny all egress in y",
       R"(
[[networkPolicies]]
name = "deny-egress"
namespace = "y"
podSelector = {}
policyTypes = ["Egress"]
)",
       "TCP",
       80,
       {".........", ".........", ".........", "XXX.XXXXX", "XXXX.XXXX", "XXXXX.XXX", ".........",
        ".........", "........."}},
  };
  return all;
}

class ROOT_Policy : public ::testing::TestWithParam<Setup> {
 protected:
  void SetUp() override {
    KNL_REQUIRE_ROOT();
    name_ = "itnp" + GetParam().name;
    lab_ = std::make_unique<Lab>(name_, xyz_lab(GetParam(), ""));
    ASSERT_TRUE(lab_->ok()) << lab_->deployed().err;
  }
  void TearDown() override {
    lab_.reset();
    std::filesystem::remove(file_);
  }

  // `knetlab apply` of the lab with `policies`; its output.
  Result apply(const std::string& policies) {
    std::ofstream(file_) << renamed(xyz_lab(GetParam(), policies), name_);
    auto r = knetlab({"apply", file_});
    EXPECT_EQ(r.status, 0) << r.err;
    return r;
  }
  json check(bool policies) {
    std::vector<std::string> args = {"check", "--lab", name_, "--format", "json"};
    if (policies) args.push_back("--policies");
    auto r = knetlab(args);
    EXPECT_TRUE(r.status == 0 || r.status == 1) << r.err;
    return json::parse(r.out);
  }
  // The pods' and services' facts, from a fresh inspect.
  std::string pod_ip(const std::string& key) const {
    auto state = lab_->inspect();
    for (const auto& p : state["pods"])
      if (p["namespace"].get<std::string>() + "/" + p["name"].get<std::string>() == key)
        return p["ip"];
    return "";
  }
  std::string pod_node(const std::string& key) const {
    auto state = lab_->inspect();
    for (const auto& p : state["pods"])
      if (p["namespace"].get<std::string>() + "/" + p["name"].get<std::string>() == key)
        return p["node"];
    return "";
  }
  std::string cluster_ip() const {
    auto state = lab_->inspect();
    for (const auto& s : state["services"])
      if (s["namespace"] == "x" && s["name"] == "a") return s["clusterIP"];
    return "";
  }
  // netexec's HTTP answer from `from` (pod/NS/NAME), or "" when it failed.
  std::string get(const std::string& from, const std::string& url) const {
    auto r = lab_->exec(from, {"netexec", "--timeout=1", "get", url});
    return r.status == 0 ? r.out : "";
  }
  // The packets counted by the rule commented `comment` of `chain` on `node`.
  long counted(const std::string& node, const std::string& chain, const std::string& comment) {
    auto r = lab_->exec("node/" + node, {"nft", "list", "chain", "ip", "network-policies", chain});
    std::smatch m;
    std::regex rule("counter packets (\\d+) bytes \\d+ \\w+ comment \"" + comment + "\"");
    if (!std::regex_search(r.out, m, rule)) {
      ADD_FAILURE() << "no rule \"" << comment << "\" in " << chain << " on " << node << ":\n"
                    << r.out << r.err;
      return -1;
    }
    return std::stol(m[1]);
  }

  std::string name_, file_ = "/tmp/knetlab-policy-test.toml";
  std::unique_ptr<Lab> lab_;
};

// The policies of every upstream case applied in turn to the running lab:
// each truth table observed with real packets must be Kubernetes', and the
// lab's other probes (Services, NodePorts from outside, DNS) what the
// policies give.
TEST_P(ROOT_Policy, UpstreamCasesGiveKubernetesTruthTablesAsThePoliciesChange) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name);
    auto r = apply(c.policies);
    auto result = check(true);
    EXPECT_TRUE(result["differences"].empty()) << result["differences"].dump(2);
    std::vector<std::string> pods = result["pods"];
    for (const auto& table : result["tables"]) {
      if (table["protocol"] != c.protocol || table["port"] != c.port) continue;
      // The deployment's pod x/more-b-0 is third; the rows are checked
      // without it, and its own row and column must follow pod=b's.
      std::vector<std::string> rows;
      for (size_t f = 0; f < pods.size(); ++f) {
        if (pods[f] == "x/more-b-0") continue;
        std::string row;
        for (size_t t = 0; t < pods.size(); ++t)
          if (pods[t] != "x/more-b-0") row += table["marks"][f].get<std::string>()[t];
        rows.push_back(row);
      }
      EXPECT_EQ(rows, c.rows);
    }
    auto probes = check(false);
    EXPECT_EQ(probes["differences"], 0) << probes.dump(2);
  }
}

TEST_P(ROOT_Policy, ADeniedClientIsDeniedThroughTheClusterIpAndRepliesAlwaysPass) {
  apply(R"(
[[networkPolicies]]
name = "allow-b"
namespace = "x"
podSelector = { pod = "a" }
[[networkPolicies.ingress]]
from = [{ podSelector = { pod = "b" } }]
ports = [{ port = 80 }]
)");
  auto url = fmt::format("http://{}:8000/clientip", cluster_ip());
  // x/b is let in after the DNAT and seen with its own address.
  EXPECT_EQ(get("pod/x/b", url).substr(0, pod_ip("x/b").size() + 1), pod_ip("x/b") + ":");
  EXPECT_EQ(get("pod/x/more-b-0", url).substr(0, pod_ip("x/more-b-0").size() + 1),
            pod_ip("x/more-b-0") + ":");
  // y/b has the label but not the namespace; x/c neither.
  EXPECT_EQ(get("pod/y/b", url), "");
  EXPECT_EQ(get("pod/x/c", url), "");
  EXPECT_EQ(get("pod/x/c", fmt::format("http://{}:80/clientip", pod_ip("x/a"))), "");
  // x/a's own connections out are not isolated, and their replies pass.
  EXPECT_EQ(get("pod/x/a", fmt::format("http://{}:80/hostname", pod_ip("y/c"))), "c");
}

TEST_P(ROOT_Policy, CountersNameThePolicyRuleThatAllowedAndTheDropOfTheIsolatedPod) {
  apply(R"(
[[networkPolicies]]
name = "allow-b"
namespace = "x"
podSelector = { pod = "a" }
[[networkPolicies.ingress]]
from = [{ podSelector = { pod = "b" } }]
)");
  auto node = pod_node("x/a");
  auto target = fmt::format("http://{}:80/hostname", pod_ip("x/a"));
  auto accepted = counted(node, "policy-x/allow-b-ingress", "rule 1");
  auto dropped = counted(node, "pod-x/a-ingress", "x/a is isolated for Ingress");
  EXPECT_EQ(get("pod/x/b", target), "a");
  EXPECT_EQ(get("pod/z/c", target), "");
  EXPECT_EQ(counted(node, "policy-x/allow-b-ingress", "rule 1"), accepted + 1)
      << "one new connection, its other packets established";
  EXPECT_GT(counted(node, "pod-x/a-ingress", "x/a is isolated for Ingress"), dropped);
  auto described = knetlab({"describe", "--lab", name_, "networkpolicy/x/allow-b"});
  EXPECT_EQ(described.status, 0) << described.err;
  EXPECT_NE(described.out.find("x/a"), std::string::npos) << described.out;
}

TEST_P(ROOT_Policy, EstablishedConnectionsOutliveAPolicyThatDeniesNewOnes) {
  auto ip = pod_ip("x/a");
  // A TCP connection opened before the policy, its request sent after.
  auto held = std::async(std::launch::async, [&] {
    return lab_->exec("pod/y/a", {"bash", "-c",
                                  fmt::format("exec 3<>/dev/tcp/{}/80 && sleep 3 && printf 'GET "
                                              "/hostname HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3",
                                              ip)});
  });
  // A UDP flow from a fixed source port, answered before the policy.
  auto udp = [&](int port) {
    return lab_->exec("pod/y/b", {"netexec", "--timeout=1", fmt::format("--local-port={}", port),
                                  "udp", ip + ":80", "hostname"});
  };
  EXPECT_EQ(udp(40000).out, "a");
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  apply(R"(
[[networkPolicies]]
name = "deny"
namespace = "x"
podSelector = {}
)");
  EXPECT_EQ(get("pod/y/c", fmt::format("http://{}:80/hostname", ip)), "") << "new: denied";
  EXPECT_EQ(udp(40001).out, "") << "a new UDP flow: denied";
  EXPECT_EQ(udp(40000).out, "a") << "the established UDP flow";
  auto r = held.get();
  EXPECT_NE(r.out.find("\r\n\r\na"), std::string::npos)
      << "the established TCP connection: " << r.out << r.err;
}

TEST_P(ROOT_Policy, EgressPoliciesGovernDnsAndIpBlocksExceptAnAddress) {
  // The except names x/a's address, known once the lab runs.
  auto xa = pod_ip("x/a");
  std::string policies = R"(
[[networkPolicies]]
name = "dns-and-pods"
namespace = "y"
podSelector = { pod = "a" }
policyTypes = ["Egress"]
[[networkPolicies.egress]]
to = [{ namespaceSelector = { "kubernetes.io/metadata.name" = "kube-system" }, podSelector = { "k8s-app" = "kube-dns" } }]
ports = [{ port = 53, protocol = "UDP" }, { port = 53, protocol = "TCP" }]
[[networkPolicies.egress]]
to = [{ ipBlock = { cidr = "10.244.0.0/16", except = ["XA/32"] } }]
)";
  policies.replace(policies.find("XA"), 2, xa);
  apply(policies);
  auto dig =
      lab_->exec("pod/y/a", {"dig", "+short", "+time=1", "+tries=1", "a.x.svc.cluster.local"});
  EXPECT_EQ(dig.out, cluster_ip()) << dig.err;
  EXPECT_EQ(get("pod/y/a", fmt::format("http://{}:80/hostname", pod_ip("z/b"))), "b");
  EXPECT_EQ(get("pod/y/a", fmt::format("http://{}:80/hostname", xa)), "") << "the except";
  EXPECT_EQ(get("pod/y/a", fmt::format("http://{}:8000/hostname", cluster_ip())), "")
      << "the except, after the Service's DNAT";
  // Without the DNS rule, names no longer resolve from y/a.
  apply(R"(
[[networkPolicies]]
name = "deny-egress"
namespace = "y"
podSelector = { pod = "a" }
policyTypes = ["Egress"]
)");
  dig = lab_->exec("pod/y/a", {"dig", "+short", "+time=1", "+tries=1", "a.x.svc.cluster.local"});
  EXPECT_NE(dig.status, 0) << dig.out;
  EXPECT_NE(dig.out.find("timed out"), std::string::npos) << dig.out;
}

TEST_P(ROOT_Policy, APodAddedByScaleOrRelabelledByApplyIsAPeerBeforeTheCommandReturns) {
  const std::string allow_b = R"(
[[networkPolicies]]
name = "allow-b"
namespace = "x"
podSelector = { pod = "a" }
[[networkPolicies.ingress]]
from = [{ podSelector = { pod = "b" } }]
)";
  apply(allow_b);
  auto target = fmt::format("http://{}:80/hostname", pod_ip("x/a"));
  auto r = knetlab({"scale", "--lab", name_, "deployment/x/more-b", "--replicas", "3"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(get("pod/x/more-b-2", target), "a") << "the new pod, at once";
  // x/c relabelled pod=b by apply: let in; x/b relabelled away: denied.
  auto text = renamed(xyz_lab(GetParam(), allow_b), name_);
  text.replace(text.find("replicas = 1"), 12, "replicas = 3");
  auto relabel = [&](const std::string& pod, const std::string& label) {
    auto at = text.find(fmt::format("name = \"{}\"\nnamespace = \"x\"\nlabels = {{ pod = ", pod));
    auto label_at = text.find("pod = \"", at) + 7;
    text.replace(label_at, 1, label);
  };
  relabel("c", "b");
  relabel("b", "q");
  std::ofstream(file_) << text;
  r = knetlab({"apply", file_});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("relabelled"), std::string::npos) << r.err;
  EXPECT_EQ(get("pod/x/c", target), "a");
  EXPECT_EQ(get("pod/x/b", target), "");
}

INSTANTIATE_TEST_SUITE_P(Setups, ROOT_Policy,
                         ::testing::Values(Setup{"n", "nftables", "vxlan"},
                                           Setup{"i", "iptables", "bgp"},
                                           Setup{"b", "nftables", "bridge"}),
                         [](const auto& info) { return info.param.mode + "_" + info.param.cni; });

}  // namespace
}  // namespace knl::test
