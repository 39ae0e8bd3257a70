// The Gateway API without root: what the parser refuses (at its line) and
// warns about, the hostname and status rules, which entry answers a request
// by the API's precedence, the nginx configuration rendered for a gateway,
// and the gateway reconciler's reload when a backend's endpoints change.

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>

#include "fakes.h"
#include "knetlab/plan/dns.h"
#include "knetlab/plan/gateway.h"
#include "knetlab/realize/controller.h"
#include "knetlab/topology/parse.h"

namespace knl {
namespace {

constexpr const char* kLab = R"~(
name = "gwlab"
[[nodes]]
name = "cp"
role = "control-plane"
[[nodes]]
name = "w1"
[[namespaces]]
name = "team"
[[deployments]]
name = "web"
replicas = 2
labels = { app = "web" }
[[deployments.containers]]
name = "c"
image = "netexec"
ports = [{ name = "http", containerPort = 8080 }]
[[deployments]]
name = "api"
labels = { app = "api" }
[[deployments.containers]]
name = "c"
image = "netexec"
ports = [{ name = "http", containerPort = 8080 }]
[[services]]
name = "web"
selector = { app = "web" }
ports = [{ port = 80, targetPort = 8080 }]
[[services]]
name = "api"
selector = { app = "api" }
ports = [{ port = 80, targetPort = 8080 }]
[[gateways]]
name = "gw"
listeners = [{ name = "http", port = 80 }, { name = "https", port = 443, protocol = "HTTPS", hostname = "*.example.com" }]
[[httpRoutes]]
name = "r"
parentRefs = ["gw"]
hostnames = ["app.example.com"]
[[httpRoutes.rules]]
matches = [{ path = { value = "/" } }]
backendRefs = [{ name = "web", port = 80, weight = 90 }, { name = "api", port = 80, weight = 10 }]
[[httpRoutes.rules]]
matches = [{ path = { value = "/api" } }, { path = { type = "Exact", value = "/x" } }]
backendRefs = [{ name = "api", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { value = "/" }, method = "POST" }]
backendRefs = [{ name = "api", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { value = "/" }, headers = [{ name = "X-A", value = "1" }] }, { path = { value = "/" }, queryParams = [{ name = "v", value = "2" }] }]
backendRefs = [{ name = "api", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { type = "RegularExpression", value = "/re/[0-9]+" } }]
backendRefs = [{ name = "api", port = 80 }]
[[httpRoutes.rules]]
matches = [{ path = { value = "/old" } }]
filters = [{ type = "RequestRedirect", scheme = "https", statusCode = 301, path = { type = "ReplacePrefixMatch", value = "/new" } }]
)~";

std::string rejection(const std::string& extra) {
  try {
    parse_topology(std::string(kLab) + extra, "lab.toml");
  } catch (const UserError& e) {
    return e.what();
  }
  return "accepted";
}

std::vector<std::string> warnings(const std::string& extra) {
  std::vector<std::string> out;
  for (const auto& w : parse_topology(std::string(kLab) + extra, "lab.toml").warnings)
    out.push_back(w.where.str() + ": " + w.message);
  return out;
}

TEST(Gateway, EachServedGatewayGetsADeploymentAndALoadBalancerServiceOfItsListenerPorts) {
  auto plan = plan_of(kLab);
  const auto& pod = pod_named(plan, "gw-gateway-0");
  EXPECT_EQ(pod.namespace_, "default");
  EXPECT_EQ(pod.labels.at(kGatewayNameLabel), "gw");
  ASSERT_NE(gateway_of(plan.gateways, pod), nullptr);
  EXPECT_FALSE(pod.serves_ingress());
  auto service = std::find_if(plan.services.begin(), plan.services.end(),
                              [](const auto& s) { return s.name == "gw-gateway"; });
  ASSERT_NE(service, plan.services.end());
  EXPECT_EQ(service->type, ServiceType::load_balancer);
  ASSERT_EQ(service->ports.size(), 2u);
  EXPECT_EQ(service->ports[0].port, 80);
  EXPECT_EQ(service->ports[1].port, 443);
  auto other = lab_topology(std::string(kLab) + R"~(
[[gateways]]
name = "istio"
gatewayClassName = "istio"
listeners = [{ name = "http", port = 80 }]
)~");
  EXPECT_EQ(std::count_if(other.deployments.begin(), other.deployments.end(),
                          [](const Deployment& d) { return d.name == "istio-gateway"; }),
            0)
      << "another class's gateway has no data plane";
}

TEST(Gateway, TheParserRefusesWhatTheApiRefusesAtItsLine) {
  auto starts = [](const std::string& what, const std::string& prefix) {
    return what.rfind(prefix, 0) == 0;
  };
  auto r = rejection(R"~(
[[httpRoutes]]
name = "bad"
parentRefs = ["nosuch"]
)~");
  EXPECT_TRUE(starts(r, "lab.toml:61:")) << r;
  EXPECT_TRUE(contains(r, "unknown gateway \"default/nosuch\"")) << r;
  r = rejection(R"~(
[[httpRoutes]]
name = "bad"
parentRefs = ["gw"]
[[httpRoutes.rules]]
filters = [{ type = "Rewrite" }]
)~");
  EXPECT_TRUE(starts(r, "lab.toml:63:")) << r;
  EXPECT_TRUE(contains(r, "URLRewrite")) << r;
  r = rejection(R"~(
[[httpRoutes]]
name = "bad"
parentRefs = ["gw"]
[[httpRoutes.rules]]
matches = [{ path = { type = "Exact", value = "/a" } }]
filters = [{ type = "URLRewrite", path = { type = "ReplacePrefixMatch", value = "/" } }]
backendRefs = [{ name = "web", port = 80 }]
)~");
  EXPECT_TRUE(starts(r, "lab.toml:64:")) << r;
  EXPECT_TRUE(contains(r, "ReplacePrefixMatch needs every match of the rule to be a PathPrefix"))
      << r;
  r = rejection(R"~(
[[httpRoutes]]
name = "bad"
parentRefs = ["gw"]
[[httpRoutes.rules]]
filters = [{ type = "RequestRedirect", statusCode = 301 }]
backendRefs = [{ name = "web", port = 80 }]
)~");
  EXPECT_TRUE(contains(r, "a rule with a RequestRedirect answers itself")) << r;
  r = rejection(R"~(
[[httpRoutes]]
name = "bad"
parentRefs = ["gw"]
[[httpRoutes.rules]]
matches = [{ path = { type = "RegularExpression", value = "/a(" } }]
backendRefs = [{ name = "web", port = 80 }]
)~");
  EXPECT_TRUE(starts(r, "lab.toml:63:")) << r;
  EXPECT_TRUE(contains(r, "is not a regular expression")) << r;
  r = rejection(R"~(
[[gateways]]
name = "g2"
listeners = [{ name = "a", port = 80 }, { name = "b", port = 80 }]
)~");
  EXPECT_TRUE(contains(r, "listener \"a\" already serves port 80 for hostname \"\"")) << r;
  r = rejection(R"~(
[[gateways]]
name = "g2"
listeners = [{ name = "a", port = 10254 }]
)~");
  EXPECT_TRUE(contains(r, "readiness probe")) << r;
  r = rejection(R"~(
[[services]]
name = "gw-gateway"
ports = [{ port = 80 }]
)~");
  EXPECT_TRUE(contains(r, "needs the service name \"gw-gateway\"")) << r;
}

TEST(Gateway, WhatKubernetesAcceptsButReportsInStatusIsAWarningAtItsLine) {
  auto w = warnings(R"~(
[[httpRoutes]]
name = "w"
namespace = "team"
parentRefs = [{ name = "gw", namespace = "default", sectionName = "ftp" }]
hostnames = ["other.org"]
[[httpRoutes.rules]]
backendRefs = [{ name = "nosuch", port = 80 }]
)~");
  ASSERT_EQ(w.size(), 2u) << ::testing::PrintToString(w);
  EXPECT_TRUE(contains(w[0], "lab.toml:62:") && contains(w[0], "no listener \"ftp\"")) << w[0];
  EXPECT_TRUE(contains(w[1], "lab.toml:65:") && contains(w[1], "BackendNotFound")) << w[1];
  w = warnings(R"~(
[[httpRoutes]]
name = "w"
namespace = "team"
parentRefs = [{ name = "gw", namespace = "default" }]
[[httpRoutes.rules]]
backendRefs = [{ name = "nosuch", port = 80 }]
)~");
  ASSERT_EQ(w.size(), 2u) << ::testing::PrintToString(w);
  EXPECT_TRUE(contains(w[1], "lab.toml:62:") && contains(w[1], "NotAllowedByListeners")) << w[1];
}

TEST(Gateway, HostnamesIntersectAsTheApiSays) {
  EXPECT_EQ(hostname_intersection("", "a.example.com"), "a.example.com");
  EXPECT_EQ(hostname_intersection("*.example.com", ""), "*.example.com");
  EXPECT_EQ(hostname_intersection("*.example.com", "a.example.com"), "a.example.com");
  EXPECT_EQ(hostname_intersection("a.example.com", "*.example.com"), "a.example.com");
  EXPECT_EQ(hostname_intersection("*.example.com", "*.a.example.com"), "*.a.example.com");
  EXPECT_EQ(hostname_intersection("*.example.com", "example.com"), std::nullopt);
  EXPECT_EQ(hostname_intersection("a.example.com", "b.example.com"), std::nullopt);
  EXPECT_TRUE(hostname_matches("*.example.com", "a.b.example.com")) << "a suffix, any depth";
  EXPECT_FALSE(hostname_matches("*.example.com", "example.com"));
}

TEST(Gateway, RouteStatusNamesEachParentsReasons) {
  auto t = parse_topology(std::string(kLab) + R"~(
[[gateways]]
name = "strict"
namespace = "team"
listeners = [{ name = "http", port = 80, hostname = "only.example.com" }]
[[httpRoutes]]
name = "s"
namespace = "team"
parentRefs = ["strict", { name = "gw", namespace = "default" }]
hostnames = ["other.example.com"]
[[httpRoutes.rules]]
backendRefs = [{ name = "nosuch", port = 80 }]
)~",
                          "lab.toml");
  auto exists = [](const std::string&, const BackendRef& b) { return b.name != "nosuch"; };
  auto status = route_status(t.gateways, t.http_routes.back(), exists);
  ASSERT_EQ(status.size(), 2u);
  EXPECT_FALSE(status[0].accepted);
  EXPECT_EQ(status[0].accepted_reason, RouteReason::no_matching_listener_hostname);
  EXPECT_FALSE(status[1].accepted);
  EXPECT_EQ(status[1].accepted_reason, RouteReason::not_allowed_by_listeners);
  EXPECT_FALSE(status[0].resolved);
  EXPECT_EQ(status[0].resolved_reason, RouteReason::backend_not_found);
  auto fine = route_status(t.gateways, t.http_routes.front(), exists);
  ASSERT_EQ(fine.size(), 1u);
  EXPECT_TRUE(fine[0].accepted && fine[0].resolved);
}

TEST(Gateway, ARequestIsAnsweredByTheEntryOfHighestPrecedence) {
  auto t = parse_topology(kLab, "lab.toml");
  auto servers = gateway_servers(t.gateways.front(), t.http_routes);
  auto answer = [&](int port, const std::string& host, const std::string& method,
                    const std::string& path, const std::string& query = "",
                    std::map<std::string, std::string> headers = {}) -> std::string {
    auto r = route_gateway_request(servers, {port, host, method, path, query, headers});
    if (!r.server) return "no server";
    if (!r.entry) return "404";
    return fmt::format("rule {} match {}", r.entry->rule + 1, r.entry->match + 1);
  };
  EXPECT_EQ(answer(80, "app.example.com", "GET", "/"), "rule 1 match 1");
  EXPECT_EQ(answer(80, "app.example.com", "GET", "/x"), "rule 2 match 2") << "Exact first";
  EXPECT_EQ(answer(80, "app.example.com", "GET", "/x/"), "rule 1 match 1");
  EXPECT_EQ(answer(80, "app.example.com", "GET", "/api/v"), "rule 2 match 1");
  EXPECT_EQ(answer(80, "app.example.com", "GET", "/apix"), "rule 1 match 1") << "by element";
  EXPECT_EQ(answer(80, "app.example.com", "POST", "/", "v=2", {{"x-a", "1"}}), "rule 3 match 1")
      << "a method before headers and query parameters";
  EXPECT_EQ(answer(80, "app.example.com", "GET", "/", "v=2", {{"x-a", "1"}}), "rule 4 match 1");
  EXPECT_EQ(answer(80, "app.example.com", "GET", "/", "a=1&v=2"), "rule 4 match 2");
  EXPECT_EQ(answer(80, "app.example.com", "GET", "/", "v=22"), "rule 1 match 1");
  EXPECT_EQ(answer(80, "app.example.com", "GET", "/re/42"), "rule 5 match 1")
      << "a regular expression before the prefixes";
  EXPECT_EQ(answer(80, "app.example.com", "GET", "/re/42/x"), "rule 1 match 1")
      << "a regular expression matches the whole path";
  EXPECT_EQ(answer(443, "app.example.com", "GET", "/api"), "rule 2 match 1");
  EXPECT_EQ(answer(80, "other.example.com", "GET", "/"), "404");
  EXPECT_EQ(answer(8080, "app.example.com", "GET", "/"), "no server");
}

TEST(Gateway, TheConfigurationSplitsByWeightRedirectsAndAnswersForMissingBackends) {
  auto plan = plan_of(kLab);
  const auto& pod = pod_named(plan, "gw-gateway-0");
  auto text = gateway_nginx_config(plan, pod, endpoints_all_ready(plan)).text;
  EXPECT_TRUE(contains(text,
                       "split_clients \"${request_id}\" $knl_split_0 {\n    90.00% "
                       "\"default-web-80\";\n    * \"default-api-80\";\n  }"))
      << text;
  EXPECT_TRUE(contains(text, "return 301 \"https://$host$knl_target\";")) << text;
  EXPECT_TRUE(contains(text,
                       "if ($request_uri ~ \"^/old(.*)$\") {\n        set $knl_target "
                       "\"/new$1\";"))
      << text;
  EXPECT_TRUE(contains(text, "listen 443 ssl;\n    server_name app.example.com;")) << text;
  EXPECT_TRUE(contains(text,
                       "listen 80 default_server;\n    server_name _;\n    location / {\n"
                       "      return 404;"))
      << "a host no route names gets 404: " << text;
  // Without endpoints the backend answers 503; without the service, 500.
  auto none = endpoints_all_ready(plan);
  for (auto& [key, ports] : none)
    if (key == "default/api")
      for (auto& p : ports) p.clear();
  text = gateway_nginx_config(plan, pod, none).text;
  EXPECT_TRUE(contains(text, "90.00% \"default-web-80\";\n    * \"!503\";")) << text;
  auto missing = plan_of(std::string(kLab) + R"~(
[[httpRoutes]]
name = "m"
parentRefs = ["gw"]
hostnames = ["m.example.com"]
[[httpRoutes.rules]]
backendRefs = [{ name = "nosuch", port = 80 }]
)~");
  text = gateway_nginx_config(missing, pod_named(missing, "gw-gateway-0"),
                              endpoints_all_ready(missing))
             .text;
  EXPECT_TRUE(contains(text, "set $knl_up \"!500\";")) << text;
}

TEST(NginxReconciler, AGatewaysBackendScaledToZeroIsReloadedTo503) {
  FakeLab lab(kLab);
  const auto path = nginx_config_path(pod_named(lab.state().plan, "gw-gateway-0"));
  ASSERT_FALSE(contains(lab.runtime.files.at(path), "!503\";\n"));
  lab.controller->request(ScaleRequest{"api", 0});
  EXPECT_TRUE(contains(lab.runtime.files.at(path), "* \"!503\";")) << lab.runtime.files.at(path);
  EXPECT_TRUE(std::any_of(lab.events.begin(), lab.events.end(), [](const std::string& e) {
    return e.rfind("gateway: default/gw-gateway-0 reloaded nginx in", 0) == 0;
  }));
}

}  // namespace
}  // namespace knl
