// The ingress controller without root: what the parser accepts, refuses and
// warns about, the nginx configuration rendered for a plan, and the ingress
// reconciler's reloads (nginx -t first, SIGHUP, the served-config check).

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>

#include "fakes.h"
#include "knetlab/plan/dns.h"
#include "knetlab/plan/endpoints.h"
#include "knetlab/plan/ingress.h"
#include "knetlab/realize/controller.h"
#include "knetlab/realize/executor.h"
#include "knetlab/topology/parse.h"

namespace knl {
namespace {

constexpr const char* kLab = R"~(
name = "ing"
[[nodes]]
name = "cp"
role = "control-plane"
[[nodes]]
name = "w1"
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
replicas = 1
labels = { app = "api" }
[[deployments.containers]]
name = "c"
image = "netexec"
ports = [{ name = "http", containerPort = 8080 }]
[[services]]
name = "web"
selector = { app = "web" }
ports = [{ name = "http", port = 80, targetPort = "http" }]
[[services]]
name = "api"
selector = { app = "api" }
ports = [{ port = 80, targetPort = 8080 }]
[[ingresses]]
name = "main"
tls = [{ hosts = ["app.example.com"] }]
[[ingresses.rules]]
host = "app.example.com"
paths = [{ path = "/", pathType = "Prefix", service = "web", port = "http" }, { path = "/v1/", pathType = "Prefix", service = "api", port = 80 }, { path = "/exact", pathType = "Exact", service = "api", port = 80 }]
[[ingresses]]
name = "canary"
annotations = { "nginx.ingress.kubernetes.io/canary" = "true", "nginx.ingress.kubernetes.io/canary-weight" = "20", "nginx.ingress.kubernetes.io/canary-by-header" = "X-Canary" }
[[ingresses.rules]]
host = "app.example.com"
paths = [{ path = "/", pathType = "Prefix", service = "api", port = 80 }]
[[ingresses]]
name = "regex"
annotations = { "nginx.ingress.kubernetes.io/use-regex" = "true", "nginx.ingress.kubernetes.io/rewrite-target" = "/$2" }
[[ingresses.rules]]
host = "*.example.org"
paths = [{ path = "/svc(/|$)(.*)", pathType = "ImplementationSpecific", service = "api", port = 80 }]
)~";

std::string rejection(const std::string& extra) {
  try {
    parse_topology(std::string(kLab) + extra, "lab.toml");
  } catch (const UserError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(Ingress, TheControllerIsMadeOnlyForALabWithAnIngressOfClassNginx) {
  auto plan = plan_of(kLab);
  const auto& controller = pod_named(plan, "ingress-nginx-controller-0");
  EXPECT_EQ(controller.namespace_, "ingress-nginx");
  EXPECT_TRUE(controller.serves_ingress());
  auto service = std::find_if(plan.services.begin(), plan.services.end(), [](const auto& s) {
    return s.namespace_ == "ingress-nginx" && s.name == "ingress-nginx-controller";
  });
  ASSERT_NE(service, plan.services.end());
  EXPECT_EQ(service->type, ServiceType::load_balancer);
  ASSERT_EQ(service->ports.size(), 2u);
  EXPECT_EQ(service->ports[0].node_port, 30080);
  EXPECT_EQ(service->ports[1].node_port, 30443);

  auto other = lab_topology(R"~(
name = "ing"
[[nodes]]
name = "n"
[[services]]
name = "s"
ports = [{ port = 80 }]
[[ingresses]]
name = "x"
ingressClassName = "traefik"
defaultBackend = { service = "s", port = 80 }
)~");
  EXPECT_TRUE(std::none_of(other.pods.begin(), other.pods.end(),
                           [](const auto& p) { return p.namespace_ == "ingress-nginx"; }));
  ASSERT_EQ(other.warnings.size(), 1u);
  EXPECT_TRUE(
      contains(other.warnings[0].where.str() + ": " + other.warnings[0].message, "lab.toml:10:"))
      << other.warnings[0].message;
}

TEST(Ingress, AnAnnotationNotServedIsAWarningAtItsLineWithAGuess) {
  auto t = parse_topology(std::string(kLab) + R"~(
[[ingresses]]
name = "typo"
annotations = { "nginx.ingress.kubernetes.io/rewrite-targt" = "/", "example.com/other" = "x" }
defaultBackend = { service = "web", port = 80 }
)~",
                          "lab.toml");
  ASSERT_EQ(t.warnings.size(), 1u) << "another controller's annotation is not ours to judge";
  EXPECT_EQ(t.warnings[0].where.line, 53u);
  EXPECT_TRUE(contains(t.warnings[0].message,
                       "did you mean "
                       "\"nginx.ingress.kubernetes.io/rewrite-target\""))
      << t.warnings[0].message;
}

TEST(Ingress, ParseRefusesWhatWouldBreakTheConfigurationOrPointNowhere) {
  auto ingress = [](const std::string& annotations, const std::string& path) {
    return "[[ingresses]]\nname = \"bad\"\nannotations = { " + annotations +
           " }\n[[ingresses.rules]]\npaths = [" + path + "]\n";
  };
  const std::string ok = R"~({ path = "/", pathType = "Prefix", service = "web", port = 80 })~";
  EXPECT_TRUE(
      contains(rejection(ingress(
                   "", R"~({ path = "/a;b", pathType = "Prefix", service = "web", port = 80 })~")),
               "lab.toml:54:"));
  EXPECT_TRUE(contains(
      rejection(
          ingress("", R"~({ path = "/a(.*)", pathType = "Prefix", service = "web", port = 80 })~")),
      "looks like a regular expression"));
  EXPECT_TRUE(
      contains(rejection(ingress(
                   "", R"~({ path = "/", pathType = "Prefix", service = "nope", port = 80 })~")),
               "nope"));
  EXPECT_TRUE(
      contains(rejection(ingress(
                   "", R"~({ path = "/", pathType = "Prefix", service = "web", port = 81 })~")),
               "service default/web has no TCP port 81; its TCP ports: 80 (http)"));
  EXPECT_TRUE(
      contains(rejection(ingress("\"nginx.ingress.kubernetes.io/canary-weight\" = \"101\"", ok)),
               "a percentage from 0 to 100"));
  EXPECT_TRUE(contains(rejection(ingress("\"nginx.ingress.kubernetes.io/affinity\" = \"ip\"", ok)),
                       "only affinity ingress-nginx knows is \"cookie\""));
  EXPECT_TRUE(contains(
      rejection(ingress("\"nginx.ingress.kubernetes.io/rewrite-target\" = \"/x\\\"; evil\"", ok)),
      "without spaces, quotes"));
  EXPECT_TRUE(contains(
      rejection(ingress(
          "\"nginx.ingress.kubernetes.io/whitelist-source-range\" = \"10.0.0.0/8, nope\"", ok)),
      "\"nope\" is not an IPv4 address or network"));
  EXPECT_TRUE(contains(rejection("[[ingresses]]\nname = \"empty\"\n"),
                       "neither rules nor a defaultBackend"));
  EXPECT_TRUE(contains(
      rejection(
          "[[ingresses]]\nname = \"main\"\ndefaultBackend = { service = \"web\", port = 80 }\n"),
      "main"));
}

TEST(IngressConfig, PathsFollowIngressNginxAndUpstreamsAreTheReadyEndpoints) {
  auto plan = plan_of(kLab);
  const auto& controller = pod_named(plan, "ingress-nginx-controller-0");
  auto all = ingress_nginx_config(plan, controller, endpoints_all_ready(plan)).text;
  // Prefix by path element: /v1/ matches /v1 and /v1/x, never /v1x.
  EXPECT_TRUE(contains(all, "    location = /v1 {\n")) << all;
  EXPECT_TRUE(contains(all, "    location /v1/ {\n")) << all;
  EXPECT_TRUE(contains(all, "    location = /exact {\n")) << all;
  // The pods themselves, not the ClusterIP.
  const auto& web0 = pod_named(plan, "web-0");
  EXPECT_TRUE(contains(all, "server " + web0.ip.str() + ":8080;  # default/web-0")) << all;
  // TLS: a 443 server with the host's certificate, HTTP redirected with 308.
  EXPECT_TRUE(contains(all, "return 308 https://$host$request_uri;")) << all;
  EXPECT_TRUE(contains(all, "/tls/app.example.com.crt;")) << all;
  // Canary by header, then by weight.
  EXPECT_TRUE(contains(all, "20% 1;")) << all;
  EXPECT_TRUE(contains(all, "\"~^always:\" \"default-api-80\";")) << all;
  // A wildcard host matches one label; regex paths of a use-regex host.
  EXPECT_TRUE(contains(all, "server_name \"~^[^.]+[.]example[.]org$\";")) << all;
  EXPECT_TRUE(contains(all, "location ~* \"^/svc(/|$)(.*)\"")) << all;
  EXPECT_TRUE(contains(all, "rewrite \"(?i)/svc(/|$)(.*)\" \"/$2\" break;")) << all;
  // The upstream is chosen before a rewrite ends the rewrite phase.
  EXPECT_LT(all.find("set $knl_upstream \"default-api-80\";", all.find("location ~* ")),
            all.find("rewrite \"(?i)/svc"));

  // Without ready endpoints, the service's locations answer 503.
  EndpointMap none = endpoints_all_ready(plan);
  for (auto& [key, eps] : none)
    if (key.find("api") != std::string::npos) eps.clear();
  auto without = ingress_nginx_config(plan, controller, none);
  EXPECT_FALSE(contains(without.text, "upstream default-api-80 {")) << without.text;
  EXPECT_TRUE(contains(without.text, "return 503;")) << without.text;
  EXPECT_NE(without.served_path,
            ingress_nginx_config(plan, controller, endpoints_all_ready(plan)).served_path)
      << "each configuration is told apart by what it serves";
}

TEST(IngressRoute, ExactThenTheLongestPrefixByElementThenTheDefaultBackend) {
  auto t = parse_topology(std::string(kLab) + R"~(
[[ingresses]]
name = "fallback"
defaultBackend = { service = "web", port = 80 }
)~",
                          "lab.toml");
  auto route = [&](const std::string& host, const std::string& path) {
    auto r = route_ingress_request(t.ingresses, host, path);
    if (!r.ingress) return std::string("404");
    auto out = r.ingress->name + " " + r.path.backend.service;
    if (r.canary) out += " canary " + r.canary_backend.service;
    return out;
  };
  EXPECT_EQ(route("app.example.com", "/exact"), "main api");
  EXPECT_EQ(route("app.example.com", "/exact?q=1"), "main api") << "a query is not the path";
  EXPECT_EQ(route("app.example.com", "/exact/"), "main web canary api");
  EXPECT_EQ(route("app.example.com", "/v1"), "main api") << "a trailing '/' is no element";
  EXPECT_EQ(route("app.example.com", "/v1/x"), "main api");
  EXPECT_EQ(route("app.example.com", "/v1x"), "main web canary api");
  EXPECT_EQ(route("a.example.org", "/svc/x"), "regex api");
  EXPECT_EQ(route("a.example.org", "/SVC"), "regex api") << "expressions ignore case";
  EXPECT_EQ(route("a.example.org", "/svcx"), "fallback web");
  EXPECT_EQ(route("a.b.example.org", "/svc"), "fallback web") << "a wildcard is one label";
  EXPECT_EQ(route("other.example.com", "/"), "fallback web");
  t.ingresses.pop_back();
  EXPECT_EQ(route("other.example.com", "/"), "404");
}

// A lab with the ingress controller deployed into the fakes, under a controller.
struct IngressLab : FakeLab {
  std::string config_path =
      nginx_config_path(pod_named(state().plan, "ingress-nginx-controller-0"));
  size_t deployed = injector.log.size();  // how much of the injector's log deploy wrote
  IngressLab() : FakeLab(kLab) {}
  // What the controller did to nginx after deploy.
  std::vector<std::string> reloads() const {
    std::vector<std::string> out;
    for (const auto& c : std::vector(injector.log.begin() + deployed, injector.log.end()))
      if (c.rfind("signal ", 0) == 0 || c.rfind("http ", 0) == 0 ||
          c.rfind("program nginx", 0) == 0 || c.rfind("write_file " + config_path, 0) == 0)
        out.push_back(c);
    return out;
  }
};

TEST(NginxReconciler, ChecksTheNewConfigurationThenSignalsNginxAndWaitsUntilItIsServed) {
  IngressLab lab;
  EXPECT_TRUE(lab.reloads().empty()) << "deploy wrote the configuration with every pod ready";
  lab.controller->request(ScaleRequest{"api", 0});
  auto calls = lab.reloads();
  ASSERT_GE(calls.size(), 5u);
  EXPECT_EQ(calls[0], "write_file " + lab.config_path + ".next");
  EXPECT_EQ(calls[1], "program nginx ");
  EXPECT_EQ(calls[2], "write_file " + lab.config_path);
  EXPECT_EQ(calls[3].rfind("signal ", 0), 0u);
  EXPECT_TRUE(contains(calls[3], " " + std::to_string(SIGHUP)));
  EXPECT_TRUE(contains(calls[4], ":10254/knetlab/config/")) << calls[4];
  EXPECT_TRUE(contains(lab.runtime.files.at(lab.config_path), "return 503;"));
  EXPECT_EQ(lab.programs.runs_of("nginx").back(),
            "nginx -t -q -c " + lab.config_path + ".next -e stderr");
}

TEST(NginxReconciler, ARefusedConfigurationIsNotServedAndIsTriedAgain) {
  IngressLab lab;
  auto before = lab.runtime.files.at(lab.config_path);
  lab.programs.answer = [](const ProgramCall& c) {
    return c.argv.at(0) == "nginx" ? ProgramResult{1, "nginx: [emerg] unexpected \"}\""}
                                   : ProgramResult{};
  };
  EXPECT_THROW(lab.controller->request(ScaleRequest{"api", 0}), SystemError);
  EXPECT_EQ(lab.runtime.files.at(lab.config_path), before) << "nginx keeps what it serves";
  EXPECT_TRUE(std::none_of(lab.injector.log.begin(), lab.injector.log.end(),
                           [](const auto& c) { return c.rfind("signal ", 0) == 0; }));
  lab.programs.answer = nullptr;
  lab.controller->tick();
  EXPECT_TRUE(contains(lab.runtime.files.at(lab.config_path), "return 503;"));
}

TEST(NginxReconciler, ANginxThatNeverServesTheNewConfigurationFailsTheChange) {
  IngressLab lab;
  lab.runtime.answering = {"/healthz"};
  EXPECT_THROW(lab.controller->request(ScaleRequest{"api", 0}), SystemError);
  lab.runtime.answering.clear();
  lab.controller->tick();
  EXPECT_TRUE(contains(lab.reloads().back(), "http ")) << "the retry waits for it again";
}

}  // namespace
}  // namespace knl
