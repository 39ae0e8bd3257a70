// Root integration tests of the Gateway API with real packets: an outside
// host's curl through a gateway's load-balancer address and every node's
// NodePort into its nginx data plane and on to the pods, asserting which pod
// answered each match by the API's precedence, what each filter did to the
// request (as the pod saw it) and to the answer, how weights split, what a
// missing or empty backend answers, which routes a listener admits, and
// that scale is followed without a request lost.

#include <fmt/format.h>

#include <future>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <unistd.h>

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
[[namespaces]]
name = "infra"
[[namespaces]]
name = "team"
[[deployments]]
name = "web"
replicas = 2
labels = { app = "web" }
[[deployments.containers]]
name = "netexec"
image = "netexec"
readiness = { httpGet = "/healthz", port = 8080 }
[[deployments]]
name = "api"
labels = { app = "api" }
[[deployments.containers]]
name = "netexec"
image = "netexec"
readiness = { httpGet = "/healthz", port = 8080 }
[[deployments]]
name = "v2"
labels = { app = "v2" }
[[deployments.containers]]
name = "netexec"
image = "netexec"
readiness = { httpGet = "/healthz", port = 8080 }
[[deployments]]
name = "shadow"
labels = { app = "shadow" }
[[deployments.containers]]
name = "netexec"
image = "netexec"
readiness = { httpGet = "/healthz", port = 8080 }
[[deployments]]
name = "t"
namespace = "team"
labels = { app = "t" }
[[deployments.containers]]
name = "netexec"
image = "netexec"
readiness = { httpGet = "/healthz", port = 8080 }
[[services]]
name = "web"
selector = { app = "web" }
ports = [{ port = 80, targetPort = 8080 }]
[[services]]
name = "api"
selector = { app = "api" }
ports = [{ port = 80, targetPort = 8080 }]
[[services]]
name = "v2"
selector = { app = "v2" }
ports = [{ port = 80, targetPort = 8080 }]
[[services]]
name = "shadow"
selector = { app = "shadow" }
ports = [{ port = 80, targetPort = 8080 }]
[[services]]
name = "empty"
selector = { app = "nothing" }
ports = [{ port = 80, targetPort = 8080 }]
[[services]]
name = "t"
namespace = "team"
selector = { app = "t" }
ports = [{ port = 80, targetPort = 8080 }]

[[gateways]]
name = "gw"
listeners = [{ name = "http", port = 80, protocol = "HTTP" },
             { name = "https", port = 443, protocol = "HTTPS", hostname = "*.example.com" }]
[[gateways]]
name = "shared"
namespace = "infra"
listeners = [{ name = "web", port = 8000, protocol = "HTTP", hostname = "*.team.example" }]
allowedRoutes = { namespaces = "All" }

[[httpRoutes]]
name = "matches"
parentRefs = ["gw"]
hostnames = ["match.example.com"]
[[httpRoutes.rules]]
matches = [{ path = { type = "PathPrefix", value = "/" } }]
backendRefs = [{ name = "web", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { type = "PathPrefix", value = "/p" } }]
backendRefs = [{ name = "api", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { type = "PathPrefix", value = "/p/deeper/" } }]
backendRefs = [{ name = "v2", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { type = "Exact", value = "/p/exact" } }]
backendRefs = [{ name = "shadow", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { type = "RegularExpression", value = "/re/[0-9]+/hostname" } }]
backendRefs = [{ name = "v2", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { type = "PathPrefix", value = "/" }, method = "POST" }]
backendRefs = [{ name = "v2", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { type = "PathPrefix", value = "/" }, headers = [{ name = "x-a", value = "1" }] }]
backendRefs = [{ name = "api", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { type = "PathPrefix", value = "/" }, headers = [{ name = "x-a", value = "1" }, { name = "x-b", value = "v[0-9]", type = "RegularExpression" }] }]
backendRefs = [{ name = "shadow", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { type = "PathPrefix", value = "/" }, queryParams = [{ name = "v", value = "2" }] }]
backendRefs = [{ name = "v2", port = 80 }]

[[httpRoutes]]
name = "filters"
parentRefs = ["gw"]
hostnames = ["filters.example.com"]
[[httpRoutes.rules]]
matches = [{ path = { value = "/req" } }]
filters = [{ type = "RequestHeaderModifier", set = [{ name = "x-env", value = "lab" }], add = [{ name = "x-multi", value = "b" }], remove = ["x-drop"] },
           { type = "URLRewrite", path = { type = "ReplacePrefixMatch", value = "/" } }]
backendRefs = [{ name = "api", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { value = "/resp" } }]
filters = [{ type = "ResponseHeaderModifier", set = [{ name = "x-resp", value = "1" }], add = [{ name = "x-added", value = "2" }], remove = ["content-type"] },
           { type = "URLRewrite", path = { type = "ReplaceFullPath", value = "/hostname" } }]
backendRefs = [{ name = "api", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { value = "/old" } }]
filters = [{ type = "RequestRedirect", scheme = "https", hostname = "new.example.com", statusCode = 301, path = { type = "ReplacePrefixMatch", value = "/new" } }]
[[httpRoutes.rules]]
matches = [{ path = { value = "/moved" } }]
filters = [{ type = "RequestRedirect", path = { type = "ReplaceFullPath", value = "/elsewhere" } }]
[[httpRoutes.rules]]
matches = [{ path = { value = "/host" } }]
filters = [{ type = "URLRewrite", hostname = "internal.example", path = { type = "ReplaceFullPath", value = "/header" } }]
backendRefs = [{ name = "api", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { value = "/mirror" } }]
filters = [{ type = "RequestMirror", backendRef = { name = "shadow", port = 80 } }]
backendRefs = [{ name = "api", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { value = "/missing" } }]
backendRefs = [{ name = "nosuch", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { value = "/empty" } }]
backendRefs = [{ name = "empty", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { value = "/zero" } }]
backendRefs = [{ name = "web", port = 80, weight = 0 }]

[[httpRoutes]]
name = "canary"
parentRefs = ["gw"]
hostnames = ["canary.example.com"]
[[httpRoutes.rules]]
backendRefs = [{ name = "web", port = 80, weight = 80 }, { name = "v2", port = 80, weight = 20 }, { name = "api", port = 80, weight = 0 }]

[[httpRoutes]]
name = "secure"
parentRefs = [{ name = "gw", sectionName = "https" }]
hostnames = ["secure.example.com"]
[[httpRoutes.rules]]
backendRefs = [{ name = "v2", port = 80 }]

[[httpRoutes]]
name = "team"
namespace = "team"
parentRefs = [{ name = "shared", namespace = "infra" }, { name = "gw", namespace = "default" }]
hostnames = ["app.team.example"]
[[httpRoutes.rules]]
backendRefs = [{ name = "t", port = 80 }]
)~";

class ROOT_Gateway : public ::testing::Test {
 protected:
  void SetUp() override {
    KNL_REQUIRE_ROOT();
    lab_ = std::make_unique<Lab>("gwting", kLab);
    ASSERT_TRUE(lab_->ok()) << lab_->deployed().err;
    auto state = lab_->inspect();
    for (const auto& s : state["services"])
      if (s["name"] == "gw-gateway") {
        address_ = s["loadBalancerIP"];
        cluster_ip_ = s["clusterIP"];
        for (const auto& p : s["ports"]) node_ports_[p["port"]] = p["nodePort"];
      } else if (s["name"] == "shared-gateway") {
        shared_ = s["loadBalancerIP"];
      }
    for (const auto& n : state["nodes"]) node_ips_.push_back(n["ip"]);
    ASSERT_FALSE(address_.empty()) << state.dump(2);
    ASSERT_EQ(node_ips_.size(), 2u);
  }
  void TearDown() override { lab_.reset(); }

  // The pod nginx proxied a request to (`args` add to it), by the address it
  // names when asked with the probe header; the status when nginx answered.
  std::string proxied_to(const std::string& host, const std::string& path,
                         const std::vector<std::string>& args = {},
                         const std::string& at = "") const {
    std::vector<std::string> argv = {
        "-o", "/dev/null",          "-w", "%{http_code} %header{x-knetlab-upstream}",
        "-H", "X-Knetlab-Probe: 1", "-H", "Host: " + host};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(fmt::format("http://{}{}", at.empty() ? address_ : at, path));
    auto out = lab_->curl(argv);
    auto upstream = out.substr(out.find(' ') + 1);
    auto ip = upstream.substr(0, upstream.find(':'));
    for (const auto& [pod, pod_ip] : lab_->pod_ips())
      if (!ip.empty() && pod_ip == ip) return pod;
    return out.substr(0, out.find(' '));
  }
  // The body of GET http://HOST/PATH, or its status and body when not 200.
  std::string get(const std::string& host, const std::string& path,
                  const std::vector<std::string>& args = {}) const {
    std::vector<std::string> argv = {"-w", "\n%{http_code}", "-H", "Host: " + host};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("http://" + address_ + path);
    auto out = lab_->curl(argv);
    auto nl = out.rfind('\n');
    auto code = out.substr(nl + 1);
    auto body = out.substr(0, nl);
    if (!body.empty() && body.back() == '\n') body.pop_back();
    return code == "200" ? body : code + " " + body;
  }
  std::string ca() const { return fmt::format("/run/knetlab/{}/ca.crt", lab_->name()); }

  std::unique_ptr<Lab> lab_;
  std::string address_, cluster_ip_, shared_;
  std::map<int, int> node_ports_;
  std::vector<std::string> node_ips_;
};

TEST_F(ROOT_Gateway, MatchesTakePrecedenceAsTheApiSaysThroughTheAddressAndEveryNodesNodePort) {
  std::vector<std::string> ways = {address_};
  for (const auto& ip : node_ips_) ways.push_back(fmt::format("{}:{}", ip, node_ports_.at(80)));
  const std::set<std::string> web = {"web-0", "web-1"};
  const std::string host = "match.example.com";
  for (const auto& at : ways) {
    SCOPED_TRACE(at);
    EXPECT_EQ(proxied_to(host, "/p/exact", {}, at), "shadow-0") << "Exact before any prefix";
    EXPECT_EQ(proxied_to(host, "/p/exactly", {}, at), "api-0") << "Exact is not a prefix";
    EXPECT_EQ(proxied_to(host, "/p/deeper", {}, at), "v2-0") << "the longest prefix; '/' ends it";
    EXPECT_EQ(proxied_to(host, "/p/deeper/x", {}, at), "v2-0");
    EXPECT_EQ(proxied_to(host, "/p/deeperx", {}, at), "api-0") << "a prefix is by element";
    EXPECT_EQ(proxied_to(host, "/p", {}, at), "api-0");
    EXPECT_TRUE(web.count(proxied_to(host, "/px", {}, at)));
    EXPECT_EQ(proxied_to(host, "/re/42/hostname", {}, at), "v2-0");
    EXPECT_TRUE(web.count(proxied_to(host, "/re/x/hostname", {}, at)));
    EXPECT_EQ(proxied_to(host, "/", {"-X", "POST"}, at), "v2-0") << "a method before headers";
    EXPECT_EQ(proxied_to(host, "/", {"-X", "POST", "-H", "x-a: 1"}, at), "v2-0");
    EXPECT_EQ(proxied_to(host, "/", {"-H", "x-a: 1"}, at), "api-0");
    EXPECT_EQ(proxied_to(host, "/", {"-H", "x-a: 1", "-H", "x-b: v7"}, at), "shadow-0")
        << "the most headers first";
    EXPECT_EQ(proxied_to(host, "/", {"-H", "x-a: 1", "-H", "x-b: w7"}, at), "api-0");
    EXPECT_EQ(proxied_to(host, "/?v=2", {}, at), "v2-0");
    EXPECT_EQ(proxied_to(host, "/?a=1&v=2", {}, at), "v2-0");
    EXPECT_TRUE(web.count(proxied_to(host, "/?v=22", {}, at)));
    EXPECT_EQ(proxied_to("nobody.example.com", "/", {}, at), "404") << "no route has that host";
  }
  auto headers = lab_->curl({"-sI", "-H", "Host: " + host, "http://" + address_ + "/hostname"});
  EXPECT_NE(headers.find("Server: nginx"), std::string::npos) << headers;
}

TEST_F(ROOT_Gateway, FiltersChangeWhatThePodSeesAndWhatTheClientGets) {
  const std::string host = "filters.example.com";
  // RequestHeaderModifier and a prefix rewrite, as the pod received them.
  EXPECT_EQ(get(host, "/req/header?key=x-env"), "lab");
  EXPECT_EQ(get(host, "/req/header?key=x-env", {"-H", "x-env: mine"}), "lab");
  EXPECT_EQ(get(host, "/req/header?key=x-multi", {"-H", "x-multi: a"}), "a,b");
  EXPECT_EQ(get(host, "/req/header?key=x-multi"), "b");
  EXPECT_EQ(get(host, "/req/header?key=x-drop", {"-H", "x-drop: 1"}), "");
  EXPECT_EQ(get(host, "/req/request?a=b"), "GET /request?a=b");
  EXPECT_EQ(get(host, "/req").rfind("NOW: ", 0), 0u) << "/req is / at the pod";
  // ResponseHeaderModifier and a full-path rewrite that keeps the query.
  auto answer = lab_->curl({"-i", "-H", "Host: " + host, "http://" + address_ + "/resp/any?z=1"});
  EXPECT_NE(answer.find("\r\nx-resp: 1\r\n"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\r\nx-added: 2\r\n"), std::string::npos) << answer;
  EXPECT_EQ(answer.find("Content-Type"), std::string::npos) << answer;
  EXPECT_EQ(answer.substr(answer.size() - 5), "api-0");
  // Redirects: scheme, host, status and the path replaced, the query kept.
  auto redirect = [&](const std::string& path) {
    return lab_->curl({"-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H",
                       "Host: " + host, "http://" + address_ + path});
  };
  EXPECT_EQ(redirect("/old/x?q=1"), "301 https://new.example.com/new/x?q=1");
  EXPECT_EQ(redirect("/old"), "301 https://new.example.com/new");
  EXPECT_EQ(redirect("/moved/a?b=c"), "302 http://filters.example.com/elsewhere?b=c");
  EXPECT_EQ(lab_->curl({"-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--cacert", ca(),
                        "--resolve", "filters.example.com:443:" + address_,
                        "https://filters.example.com/moved"}),
            "302 https://filters.example.com/elsewhere")
      << "the listener's scheme by default";
  EXPECT_EQ(get(host, "/host?key=host"), "internal.example") << "URLRewrite's hostname";
  // RequestMirror: the mirror's pod gets a copy; the answer is the backend's.
  const std::string id = fmt::format("mirror-{}", ::getpid());
  EXPECT_EQ(proxied_to(host, "/mirror/request?id=" + id), "api-0");
  std::string log;
  for (int i = 0; i < 100 && log.find(id) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    log = read_text(fmt::format("/run/knetlab/{}/pods/default_shadow-0/netexec.log", lab_->name()));
  }
  EXPECT_NE(log.find("GET /mirror/request?id=" + id + " from "), std::string::npos) << log;
}

TEST_F(ROOT_Gateway, MissingEmptyAndZeroWeightBackendsAndScaleToZeroAndBack) {
  const std::string host = "filters.example.com";
  EXPECT_EQ(get(host, "/missing").substr(0, 3), "500");
  EXPECT_EQ(get(host, "/empty").substr(0, 3), "503");
  EXPECT_EQ(get(host, "/zero").substr(0, 3), "500") << "weight 0 sends nothing";
  EXPECT_EQ(get(host, "/nothing").substr(0, 3), "404") << "no match";
  ASSERT_EQ(knetlab({"scale", "--lab", lab_->name(), "deployment/v2", "--replicas", "0"}).status,
            0);
  EXPECT_EQ(get("match.example.com", "/re/1/hostname").substr(0, 3), "503")
      << "no endpoint: 503 as soon as scale returns";
  ASSERT_EQ(knetlab({"scale", "--lab", lab_->name(), "deployment/v2", "--replicas", "1"}).status,
            0);
  EXPECT_EQ(proxied_to("match.example.com", "/re/1/hostname"), "v2-1");
}

TEST_F(ROOT_Gateway, WeightsSplitRequestsInProportion) {
  auto split =
      lab_->curl_many(500, "-H 'Host: canary.example.com' http://" + address_ + "/hostname");
  const int canary = split["v2-0"], stable = split["web-0"] + split["web-1"];
  EXPECT_EQ(canary + stable, 500) << "weight 0 (api) gets none";
  // 20% of 500: 100, with a standard deviation of about 9.
  EXPECT_GE(canary, 65);
  EXPECT_LE(canary, 135);
}

TEST_F(ROOT_Gateway, HttpsListenersServeTheLabsCertificateAndSectionsAttachRoutesToOneListener) {
  for (const auto& [at, port] : {std::pair{address_, 443}, {node_ips_[1], node_ports_.at(443)}}) {
    auto answer =
        lab_->curl({"--cacert", ca(), "--resolve", fmt::format("match.example.com:{}:{}", port, at),
                    fmt::format("https://match.example.com:{}/p/exact", port), "-o", "/dev/null",
                    "-H", "X-Knetlab-Probe: 1", "-w", "%{http_code} %header{x-knetlab-upstream}"});
    EXPECT_EQ(answer, "404 " + lab_->pod_ips().at("shadow-0") + ":8080")
        << at << ": shadow has no /p/exact page, but nginx proxied it there";
    EXPECT_EQ(lab_->curl({"--cacert", ca(), "--resolve",
                          fmt::format("secure.example.com:{}:{}", port, at),
                          fmt::format("https://secure.example.com:{}/hostname", port)}),
              "v2-0");
  }
  auto verbose = lab_->exec("host/client",
                            {"curl", "-sv", "-o", "/dev/null", "--cacert", ca(), "--resolve",
                             "secure.example.com:443:" + address_, "https://secure.example.com/"});
  EXPECT_NE(verbose.err.find("subjectAltName: host \"secure.example.com\" matched cert's "
                             "\"*.example.com\""),
            std::string::npos)
      << verbose.err;
  EXPECT_EQ(get("secure.example.com", "/hostname").substr(0, 3), "404")
      << "the route is attached to the https listener only";
}

TEST_F(ROOT_Gateway, AllowedRoutesAdmitOtherNamespacesOnlyWhereAllAndStatusSaysSo) {
  auto body = lab_->curl({"-H", "Host: app.team.example", "http://" + shared_ + ":8000/hostname"});
  EXPECT_EQ(body, "t-0");
  EXPECT_EQ(get("app.team.example", "/hostname").substr(0, 3), "404")
      << "gw admits its own namespace's routes only";
  auto routes = knetlab({"get", "httproutes", "-A", "--lab", lab_->name()});
  EXPECT_TRUE(std::regex_search(routes.out,
                                std::regex("team +team +app[.]team[.]example +infra/shared,default/"
                                           "gw +True \\(Accepted\\),False "
                                           "\\(NotAllowedByListeners\\)")))
      << routes.out;
  EXPECT_TRUE(std::regex_search(
      routes.out, std::regex("filters +filters[.]example[.]com .*False \\(BackendNotFound\\)")))
      << routes.out;
  auto gateways = knetlab({"get", "gateways", "-A", "--lab", lab_->name()});
  EXPECT_TRUE(
      std::regex_search(gateways.out, std::regex("infra +shared +knetlab +" + shared_ + " +True")))
      << gateways.out;
  auto described = knetlab({"describe", "httproute/team/team", "--lab", lab_->name()});
  EXPECT_NE(described.out.find("infra/shared: Accepted True (Accepted)"), std::string::npos)
      << described.out;
  EXPECT_NE(described.out.find("default/gw: Accepted False (NotAllowedByListeners)"),
            std::string::npos)
      << described.out;
  described = knetlab({"describe", "gateway/shared", "-n", "infra", "--lab", lab_->name()});
  EXPECT_TRUE(std::regex_search(described.out, std::regex("web +8000 +HTTP +[*][.]team[.]example "
                                                          "+team/team\n")))
      << described.out;
  auto state = lab_->inspect();
  std::map<std::string, json> by_name;
  for (const auto& r : state["httpRoutes"]) by_name[r["name"]] = r;
  EXPECT_EQ(by_name["team"]["accepted"], false);
  EXPECT_EQ(by_name["matches"]["accepted"], true);
  EXPECT_EQ(by_name["filters"]["resolvedRefs"], false);
  EXPECT_EQ(state["gateways"][0]["addresses"][0]["value"], address_);
}

TEST_F(ROOT_Gateway, TheBackendSeesTheForwardedHeadersAndAPodClientsOwnAddress) {
  auto pods = lab_->pod_ips();
  auto header = [&](const std::string& key) {
    return lab_->curl(
        {"-H", "Host: match.example.com", "http://" + cluster_ip_ + "/header?key=" + key},
        "pod/api-0");
  };
  EXPECT_EQ(header("X-Real-IP"), pods.at("api-0"));
  EXPECT_EQ(header("X-Forwarded-For"), pods.at("api-0"));
  EXPECT_EQ(header("X-Forwarded-Proto"), "http");
  EXPECT_TRUE(std::regex_match(header("X-Request-ID"), std::regex("[0-9a-f]{32}")));
}

TEST_F(ROOT_Gateway, EndpointsAreFollowedWithoutLosingARequest) {
  auto loop = std::async(std::launch::async, [&] {
    return lab_->curl_many(
        300, "-o /dev/null -w '%{http_code}' -H 'Host: match.example.com' http://" + address_ +
                 "/hostname");
  });
  for (int replicas : {3, 1, 4, 2, 1, 2}) {
    EXPECT_EQ(knetlab({"scale", "--lab", lab_->name(), "deployment/web", "--replicas",
                       std::to_string(replicas)})
                  .status,
              0);
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }
  EXPECT_EQ(loop.get(), (std::map<std::string, int>{{"200", 300}}));
  auto events = read_text(fmt::format("/run/knetlab/{}/events.log", lab_->name()));
  EXPECT_NE(events.find("gateway: default/gw-gateway-0 reloaded nginx in"), std::string::npos);
}

TEST_F(ROOT_Gateway, CheckAsksEveryMatchFromTheOutsideHostAndSeesWhatAnswered) {
  auto r = knetlab({"check", "--lab", lab_->name(), "--format", "json"});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  auto report = json::parse(r.out);
  std::map<std::string, std::string> got;
  for (const auto& p : report["probes"])
    if (p["protocol"] == "HTTP" || p["protocol"] == "HTTPS") got[p["to"]] = p["got"];
  EXPECT_EQ(got["gateway default/gw GET http://match.example.com:80/p/exact"], "pod shadow-0");
  EXPECT_EQ(got["gateway default/gw POST http://match.example.com:80/"], "pod v2-0");
  EXPECT_EQ(got["gateway default/gw GET http://match.example.com:80/?v=2"], "pod v2-0");
  EXPECT_EQ(got["gateway default/gw GET http://filters.example.com:80/old"], "HTTP 301");
  EXPECT_EQ(got["gateway default/gw GET http://filters.example.com:80/missing"], "HTTP 500");
  EXPECT_EQ(got["gateway default/gw GET http://filters.example.com:80/empty"], "HTTP 503");
  EXPECT_EQ(got["gateway infra/shared GET http://app.team.example:8000/"], "pod t-0");
  EXPECT_EQ(report["differences"], 0);
}

}  // namespace
}  // namespace knl::test
