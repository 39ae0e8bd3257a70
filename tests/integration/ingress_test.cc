// Root integration tests of the ingress controller with real packets: an
// outside host's curl through the controller's load-balancer address and
// every node's NodePort into real nginx and on to the pods, asserting which
// pod answered, what status and headers came back, how a canary splits, that
// a cookie pins, that a source range is enforced, and that scale is followed
// without a request lost.

#include <fmt/format.h>

#include <future>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

namespace knl::test {
namespace {

using nlohmann::json;

constexpr const char* kLab = R"~(name = "LAB"
[network]
cni = "vxlan"
[[nodes]]
name = "control-plane"
role = "control-plane"
[[nodes]]
name = "worker1"
[[hosts]]
name = "client"
[[deployments]]
name = "v1"
replicas = 2
labels = { app = "v1" }
[[deployments.containers]]
name = "netexec"
image = "netexec"
ports = [{ name = "http", containerPort = 8080 }]
readiness = { httpGet = "/healthz", port = 8080 }
[[deployments]]
name = "v2"
replicas = 1
labels = { app = "v2" }
[[deployments.containers]]
name = "netexec"
image = "netexec"
ports = [{ name = "http", containerPort = 8080 }]
readiness = { httpGet = "/healthz", port = 8080 }
[[services]]
name = "v1"
selector = { app = "v1" }
ports = [{ name = "http", port = 80, targetPort = "http" }]
[[services]]
name = "v2"
selector = { app = "v2" }
ports = [{ port = 80, targetPort = 8080 }]

[[ingresses]]
name = "app"
tls = [{ hosts = ["app.example.com"] }]
[[ingresses.rules]]
host = "app.example.com"
paths = [{ path = "/", pathType = "Prefix", service = "v1", port = "http" }]
[[ingresses.rules]]
host = "paths.example.com"
paths = [{ path = "/", pathType = "Prefix", service = "v1", port = 80 }, { path = "/hostname", pathType = "Exact", service = "v2", port = 80 }]
[[ingresses.rules]]
host = "*.wild.example.com"
paths = [{ path = "/", pathType = "Prefix", service = "v1", port = 80 }]

[[ingresses]]
name = "strip"
annotations = { "nginx.ingress.kubernetes.io/rewrite-target" = "/hostname" }
[[ingresses.rules]]
host = "strip.example.com"
paths = [{ path = "/v2", pathType = "Prefix", service = "v2", port = 80 }]

[[ingresses]]
name = "regex"
annotations = { "nginx.ingress.kubernetes.io/use-regex" = "true", "nginx.ingress.kubernetes.io/rewrite-target" = "/$2" }
[[ingresses.rules]]
host = "re.example.com"
paths = [{ path = "/svc(/|$)(.*)", pathType = "ImplementationSpecific", service = "v2", port = 80 }]

[[ingresses]]
name = "canary"
annotations = { "nginx.ingress.kubernetes.io/canary" = "true", "nginx.ingress.kubernetes.io/canary-weight" = "20", "nginx.ingress.kubernetes.io/canary-by-header" = "X-Canary" }
[[ingresses.rules]]
host = "canary.example.com"
paths = [{ path = "/", pathType = "Prefix", service = "v2", port = 80 }]
[[ingresses]]
name = "stable"
[[ingresses.rules]]
host = "canary.example.com"
paths = [{ path = "/", pathType = "Prefix", service = "v1", port = 80 }]

[[ingresses]]
name = "sticky"
annotations = { "nginx.ingress.kubernetes.io/affinity" = "cookie", "nginx.ingress.kubernetes.io/session-cookie-name" = "route" }
[[ingresses.rules]]
host = "sticky.example.com"
paths = [{ path = "/", pathType = "Prefix", service = "v1", port = 80 }]

[[ingresses]]
name = "private"
annotations = { "nginx.ingress.kubernetes.io/whitelist-source-range" = "10.244.0.0/24" }
[[ingresses.rules]]
host = "private.example.com"
paths = [{ path = "/", pathType = "Prefix", service = "v1", port = 80 }]
)~";

class ROOT_Ingress : public ::testing::Test {
 protected:
  void SetUp() override {
    KNL_REQUIRE_ROOT();
    lab_ = std::make_unique<Lab>("iting", kLab);
    ASSERT_TRUE(lab_->ok()) << lab_->deployed().err;
    auto state = lab_->inspect();
    for (const auto& s : state["services"])
      if (s["name"] == "ingress-nginx-controller") {
        address_ = s["loadBalancerIP"];
        cluster_ip_ = s["clusterIP"];
      }
    for (const auto& n : state["nodes"]) node_ips_.push_back(n["ip"]);
    ASSERT_FALSE(address_.empty()) << state.dump(2);
    ASSERT_EQ(node_ips_.size(), 2u);
  }
  void TearDown() override { lab_.reset(); }

  // What GET http://HOST/PATH answered (its body, or its status when not 200)
  // through `at` (an address, or address:port).
  // The pod nginx proxied GET http://HOST/PATH to, by the address it names
  // when asked with the probe header; "" when nginx answered itself.
  std::string proxied_to(const std::string& host, const std::string& path,
                         const std::string& at) const {
    auto upstream = lab_->curl({"-o", "/dev/null", "-w", "%header{x-knetlab-upstream}", "-H",
                                "X-Knetlab-Probe: 1", "-H", "Host: " + host,
                                fmt::format("http://{}{}", at, path)});
    auto ip = upstream.substr(0, upstream.find(':'));
    for (const auto& [pod, pod_ip] : lab_->pod_ips())
      if (!ip.empty() && pod_ip == ip) return pod;
    return "";
  }
  std::string get(const std::string& host, const std::string& path,
                  const std::string& at = "") const {
    auto out = lab_->curl({"-w", "\n%{http_code}", "-H", "Host: " + host,
                           fmt::format("http://{}{}", at.empty() ? address_ : at, path)});
    auto nl = out.rfind('\n');
    auto code = out.substr(nl + 1);
    auto body = out.substr(0, nl);
    if (!body.empty() && body.back() == '\n') body.pop_back();
    return code == "200" ? body : code + " " + body;
  }

  std::unique_ptr<Lab> lab_;
  std::string address_, cluster_ip_;
  std::vector<std::string> node_ips_;
};

TEST_F(ROOT_Ingress, RoutesByHostAndPathThroughTheAddressAndEveryNodesNodePort) {
  std::vector<std::string> ways = {address_};
  for (const auto& ip : node_ips_) ways.push_back(ip + ":30080");
  const std::set<std::string> v1 = {"v1-0", "v1-1"};
  for (const auto& at : ways) {
    SCOPED_TRACE(at);
    EXPECT_EQ(get("paths.example.com", "/hostname", at), "v2-0") << "Exact before Prefix";
    EXPECT_EQ(get("paths.example.com", "/hostname/", at).rfind("404 404 page not found", 0), 0u);
    EXPECT_TRUE(v1.count(proxied_to("paths.example.com", "/hostname/", at)))
        << "Exact is not a prefix: /hostname/ is v1's, which has no such page";
    EXPECT_TRUE(v1.count(get("a.wild.example.com", "/hostname", at)));
    EXPECT_EQ(get("a.b.wild.example.com", "/hostname", at), "404 default backend - 404")
        << "a wildcard matches one label";
    EXPECT_EQ(get("nobody.example.com", "/hostname", at), "404 default backend - 404");
    // Prefix by path element, rewritten to /hostname.
    EXPECT_EQ(get("strip.example.com", "/v2", at), "v2-0");
    EXPECT_EQ(get("strip.example.com", "/v2/anything", at), "v2-0");
    EXPECT_EQ(get("strip.example.com", "/v2x", at), "404 default backend - 404");
    // A regular expression, case-insensitive, its capture in the rewrite.
    EXPECT_EQ(get("re.example.com", "/svc/hostname", at), "v2-0");
    EXPECT_EQ(get("re.example.com", "/SVC/hostname", at), "v2-0");
    EXPECT_EQ(get("re.example.com", "/svcx/hostname", at), "404 default backend - 404");
  }
  EXPECT_EQ(get("paths.example.com", "/hostname?x=1"), "v2-0") << "a query is not the path";
}

TEST_F(ROOT_Ingress, TlsHostsAreServedWithTheLabsCaAndPlainHttpIsRedirected) {
  auto redirect = lab_->curl({"-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H",
                              "Host: app.example.com", "http://" + address_ + "/hostname?a=b"});
  EXPECT_EQ(redirect, "308 https://app.example.com/hostname?a=b");
  const std::string ca = fmt::format("/run/knetlab/{}/ca.crt", lab_->name());
  for (const auto& at : {address_, node_ips_[1]}) {
    const auto port = at == address_ ? "443" : "30443";
    auto body =
        lab_->curl({"--cacert", ca, "--resolve", fmt::format("app.example.com:{}:{}", port, at),
                    fmt::format("https://app.example.com:{}/hostname", port)});
    EXPECT_TRUE(body == "v1-0" || body == "v1-1") << at << ": " << body;
  }
  auto verbose =
      lab_->exec("host/client", {"curl", "-sv", "-o", "/dev/null", "--cacert", ca, "--resolve",
                                 "app.example.com:443:" + address_, "https://app.example.com/"});
  EXPECT_NE(verbose.err.find("subjectAltName: host \"app.example.com\" matched cert's "
                             "\"app.example.com\""),
            std::string::npos)
      << verbose.err;
  EXPECT_NE(verbose.err.find("issuer: O=knetlab; CN=knetlab lab iting CA"), std::string::npos)
      << verbose.err;
  // Without the lab's CA, curl does not trust it.
  auto untrusted = lab_->exec(
      "host/client",
      {"curl", "-s", "--resolve", "app.example.com:443:" + address_, "https://app.example.com/"});
  EXPECT_EQ(untrusted.status, 60) << untrusted.out;
}

TEST_F(ROOT_Ingress, TheBackendSeesTheForwardedHeadersAndAPodClientsOwnAddress) {
  const std::string ca = fmt::format("/run/knetlab/{}/ca.crt", lab_->name());
  auto header = [&](const std::string& key) {
    return lab_->curl({"--cacert", ca, "--resolve", "app.example.com:443:" + address_,
                       "https://app.example.com/header?key=" + key});
  };
  EXPECT_EQ(header("X-Forwarded-Proto"), "https");
  EXPECT_EQ(header("X-Forwarded-Host"), "app.example.com");
  EXPECT_TRUE(std::regex_match(header("X-Request-ID"), std::regex("[0-9a-f]{32}")));
  EXPECT_NE(header("X-Request-ID"), header("X-Request-ID"));
  // From a pod through the controller's ClusterIP, nothing is masqueraded.
  auto pods = lab_->pod_ips();
  auto seen = lab_->curl(
      {"-H", "Host: paths.example.com", "http://" + cluster_ip_ + "/header?key=X-Real-IP"},
      "pod/v2-0");
  EXPECT_EQ(seen, pods.at("v2-0"));
  EXPECT_EQ(lab_->curl({"-H", "Host: paths.example.com", "-H", "X-Forwarded-For: 192.0.2.1",
                        "http://" + cluster_ip_ + "/header?key=X-Forwarded-For"},
                       "pod/v2-0"),
            pods.at("v2-0"))
      << "a client's own X-Forwarded-For is not trusted";
}

TEST_F(ROOT_Ingress, ACanarySplitsByWeightAndByHeader) {
  auto split =
      lab_->curl_many(500, "-H 'Host: canary.example.com' http://" + address_ + "/hostname");
  const int canary = split["v2-0"], stable = split["v1-0"] + split["v1-1"];
  EXPECT_EQ(canary + stable, 500);
  // 20% of 500: 100, with a standard deviation of about 9.
  EXPECT_GE(canary, 65);
  EXPECT_LE(canary, 135);
  EXPECT_EQ(lab_->curl_many(20, "-H 'Host: canary.example.com' -H 'X-Canary: always' http://" +
                                    address_ + "/hostname"),
            (std::map<std::string, int>{{"v2-0", 20}}));
  auto never = lab_->curl_many(
      50, "-H 'Host: canary.example.com' -H 'X-Canary: never' http://" + address_ + "/hostname");
  EXPECT_EQ(never.count("v2-0"), 0u);
  EXPECT_EQ(never["v1-0"] + never["v1-1"], 50);
}

TEST_F(ROOT_Ingress, ACookiePinsAClientToOnePod) {
  auto first =
      lab_->exec("host/client", {"curl", "-s", "-D", "-", "-o", "/dev/null", "-H",
                                 "Host: sticky.example.com", "http://" + address_ + "/hostname"});
  std::smatch m;
  ASSERT_TRUE(std::regex_search(first.out, m, std::regex("Set-Cookie: (route=[0-9a-f]+)")))
      << first.out;
  auto pinned = lab_->curl_many(
      30, "-H 'Host: sticky.example.com' -b '" + m[1].str() + "' http://" + address_ + "/hostname");
  EXPECT_EQ(pinned.size(), 1u) << "every request with the cookie reaches one pod";
  auto loose =
      lab_->curl_many(40, "-H 'Host: sticky.example.com' http://" + address_ + "/hostname");
  EXPECT_EQ(loose.size(), 2u) << "clients without it are spread";
}

TEST_F(ROOT_Ingress, ASourceRangeAdmitsOnlyItsAddresses) {
  auto pods = lab_->pod_ips();
  int inside = 0, outside = 0;
  for (const auto& name : {"v1-0", "v1-1", "v2-0"}) {
    auto code = lab_->curl({"-o", "/dev/null", "-w", "%{http_code}", "-H",
                            "Host: private.example.com", "http://" + cluster_ip_ + "/hostname"},
                           std::string("pod/") + name);
    bool in_range = pods.at(name).rfind("10.244.0.", 0) == 0;
    EXPECT_EQ(code, in_range ? "200" : "403") << name << " " << pods.at(name);
    ++(in_range ? inside : outside);
  }
  EXPECT_GT(inside, 0);
  EXPECT_GT(outside, 0);
}

TEST_F(ROOT_Ingress, CheckAsksEveryRuleFromTheOutsideHostAndSeesWhatAnswered) {
  auto r = knetlab({"check", "--lab", lab_->name(), "--format", "json"});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  auto report = json::parse(r.out);
  std::map<std::string, std::string> got;
  for (const auto& p : report["probes"])
    if (p["protocol"] == "HTTP" || p["protocol"] == "HTTPS") got[p["to"]] = p["got"];
  EXPECT_EQ(got["ingress http://paths.example.com:80/hostname"], "pod v2-0");
  EXPECT_EQ(got["ingress http://app.example.com:80/"], "HTTP 308");
  EXPECT_TRUE(got["ingress https://app.example.com:443/"].rfind("pod v1-", 0) == 0);
  EXPECT_EQ(got["ingress http://strip.example.com:80/v2"], "pod v2-0");
  EXPECT_EQ(got["ingress http://strip.example.com:80/v2x"], "HTTP 404");
  EXPECT_EQ(got["ingress http://no-rule-names-this.example:80/"], "HTTP 404");
  EXPECT_EQ(report["differences"], 0);
}

TEST_F(ROOT_Ingress, GetAndDescribeShowTheAddressAndEachPathsEndpoints) {
  auto get = knetlab({"get", "ingress", "--lab", lab_->name()});
  EXPECT_TRUE(std::regex_search(
      get.out, std::regex("\\bstrip +nginx +strip[.]example[.]com +" + address_ + " +80\\n")))
      << get.out;
  auto described = knetlab({"describe", "ingress/strip", "--lab", lab_->name()});
  ASSERT_EQ(described.status, 0) << described.err;
  auto v2 = lab_->pod_ips().at("v2-0");
  EXPECT_NE(described.out.find("Address:          " + address_), std::string::npos)
      << described.out;
  EXPECT_NE(described.out.find("/v2 (Prefix)   v2:80 (" + v2 + ":8080)"), std::string::npos)
      << described.out;
  EXPECT_NE(described.out.find("nginx.ingress.kubernetes.io/rewrite-target: /hostname"),
            std::string::npos)
      << described.out;
}

TEST_F(ROOT_Ingress, EndpointsAreFollowedWithoutLosingARequest) {
  ASSERT_EQ(knetlab({"scale", "--lab", lab_->name(), "deployment/v2", "--replicas", "0"}).status,
            0);
  EXPECT_EQ(get("strip.example.com", "/v2").substr(0, 3), "503")
      << "no endpoint: 503 as soon as scale returns";
  ASSERT_EQ(knetlab({"scale", "--lab", lab_->name(), "deployment/v2", "--replicas", "1"}).status,
            0);
  EXPECT_EQ(get("strip.example.com", "/v2"), "v2-1");

  // Requests in a loop while v1's pods come and go: every one answered.
  auto loop = std::async(std::launch::async, [&] {
    return lab_->curl_many(
        300, "-o /dev/null -w '%{http_code}' -H 'Host: a.wild.example.com' http://" + address_ +
                 "/hostname");
  });
  for (int replicas : {3, 1, 4, 2, 1, 2}) {
    EXPECT_EQ(knetlab({"scale", "--lab", lab_->name(), "deployment/v1", "--replicas",
                       std::to_string(replicas)})
                  .status,
              0);
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }
  EXPECT_EQ(loop.get(), (std::map<std::string, int>{{"200", 300}}));
  auto events = read_text(fmt::format("/run/knetlab/{}/events.log", lab_->name()));
  EXPECT_NE(events.find("ingress: ingress-nginx/ingress-nginx-controller-0 reloaded nginx in"),
            std::string::npos);
}

}  // namespace
}  // namespace knl::test
