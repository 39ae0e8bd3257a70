#include "knetlab/plan/ingress.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include <strings.h>

#include "knetlab/plan/dns.h"
#include "nginx.h"

namespace knl {

namespace nginx {

const ServicePlan* find_service(const Plan& plan, const std::string& ns, const std::string& name) {
  for (const auto& s : plan.services)
    if (s.namespace_ == ns && s.name == name) return &s;
  return nullptr;
}

std::string endpoint_servers(const EndpointMap& endpoints, const ServicePlan& service,
                             size_t index) {
  auto eps = endpoints.find(service.key());
  if (eps == endpoints.end() || eps->second.size() <= index) return "";
  std::string out;
  for (const auto& e : eps->second[index])
    out += fmt::format("    server {};  # {}\n", e.str(), e.pod);
  return out;
}

std::string header_variable(const std::string& header) {
  std::string out = "http_";
  for (char c : header)
    out += c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string literal(const std::string& path) {
  std::string out;
  for (char c : path) out += c == '.' ? std::string("[.]") : std::string(1, c);
  return out;
}

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '\t') {
      out += "\\t";
      continue;
    }
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string preamble(const PodPlan& pod, const std::string& title) {
  return fmt::format(
      "# nginx.conf of {title}\n"
      "daemon off;\nmaster_process on;\nworker_processes 1;\npid {dir}/nginx.pid;\n"
      "error_log stderr notice;\n"
      "events {{\n  worker_connections 1024;\n}}\n"
      "http {{\n"
      "  access_log /dev/stdout;\n"
      "  client_body_temp_path {dir}/client_body;\n  proxy_temp_path {dir}/proxy;\n"
      "  fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n"
      "  scgi_temp_path {dir}/scgi;\n"
      "  server_names_hash_bucket_size 128;\n"
      "  proxy_set_header Host $host;\n"
      "  proxy_set_header X-Request-ID $request_id;\n"
      "  proxy_set_header X-Real-IP $remote_addr;\n"
      "  proxy_set_header X-Forwarded-For $remote_addr;\n"
      "  proxy_set_header X-Forwarded-Host $host;\n"
      "  proxy_set_header X-Forwarded-Port $server_port;\n"
      "  proxy_set_header X-Forwarded-Proto $scheme;\n"
      "  proxy_set_header X-Scheme $scheme;\n"
      "  proxy_http_version 1.1;\n"
      "  proxy_set_header Connection \"\";\n"
      "  proxy_connect_timeout 5s;\n"
      "  proxy_next_upstream error timeout;\n"
      "  # knetlab check asks which pod answered with the header {probe}; others never see it.\n"
      "  map ${probe_var} $knl_probe_upstream {{\n    \"\" \"\";\n    default "
      "$upstream_addr;\n  }}\n",
      fmt::arg("title", title), fmt::arg("dir", pod.dir), fmt::arg("probe", kIngressProbeHeader),
      fmt::arg("probe_var", header_variable(kIngressProbeHeader)));
}

NginxConfig finish(std::string text) {
  // FNV-1a of everything else names the configuration on the health port.
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  NginxConfig config{std::move(text), fmt::format("/knetlab/config/{:016x}", hash)};
  config.text += fmt::format(
      "  server {{\n    listen {};\n    location /healthz {{\n      return 200 \"ok\\n\";\n    "
      "}}\n    location = {} {{\n      return 200 \"served\\n\";\n    }}\n  }}\n}}\n",
      kNginxHealthPort, config.served_path);
  return config;
}

}  // namespace nginx

namespace {

using nginx::find_service;
using nginx::literal;

// The index of the service port a backend names, or -1.
int port_index(const ServicePlan& s, const IngressBackend& b) {
  for (size_t i = 0; i < s.ports.size(); ++i) {
    const auto& p = s.ports[i];
    if (p.protocol == Protocol::tcp &&
        (b.port_name.empty() ? p.port == b.port : p.name == b.port_name))
      return static_cast<int>(i);
  }
  return -1;
}

// A file name for a host: "*.example.com" -> "_wildcard.example.com".
std::string host_file(const std::string& host) {
  return host.rfind("*.", 0) == 0 ? "_wildcard" + host.substr(1) : host;
}

std::string without_trailing_slash(const std::string& path) {
  return path.size() > 1 && path.back() == '/' ? path.substr(0, path.size() - 1) : path;
}

// The routes of the served ingresses by host ("" for rules without one):
// main ingresses in file order, the first to name a host's path serving it
// (ingress-nginx keeps the oldest), each with the first canary ingress of the
// same host and path.
std::map<std::string, std::vector<IngressRoute>> routes_by_host(
    const std::vector<Ingress>& ingresses) {
  std::map<std::string, std::vector<IngressRoute>> hosts;
  for (const auto& in : ingresses) {
    if (!in.served() || in.options.canary) continue;
    for (const auto& rule : in.rules) {
      auto& routes = hosts[rule.host];
      for (const auto& p : rule.paths) {
        bool taken = std::any_of(routes.begin(), routes.end(), [&](const IngressRoute& r) {
          return r.path.path == p.path && r.path.type == p.type;
        });
        if (!taken) routes.push_back({&in, p, nullptr, {}});
      }
    }
  }
  for (const auto& in : ingresses) {
    if (!in.served() || !in.options.canary) continue;
    for (const auto& rule : in.rules) {
      auto it = hosts.find(rule.host);
      if (it == hosts.end()) continue;
      for (const auto& p : rule.paths)
        for (auto& r : it->second)
          if (r.path.path == p.path && r.path.type == p.type && !r.canary)
            r.canary = &in, r.canary_backend = p.backend;
    }
  }
  return hosts;
}

// Whether a host's paths are regular expressions: when any of its ingresses
// uses use-regex or rewrite-target, as in ingress-nginx.
bool regex_host(const std::vector<IngressRoute>& routes) {
  return std::any_of(routes.begin(), routes.end(), [](const IngressRoute& r) {
    return r.ingress->options.use_regex || !r.ingress->options.rewrite_target.empty();
  });
}

// The order in which a host's paths are tried as regular expressions: the
// longest first, an Exact one before a prefix of the same path.
std::vector<const IngressRoute*> match_order(const std::vector<IngressRoute>& routes) {
  std::vector<const IngressRoute*> order;
  for (const auto& r : routes) order.push_back(&r);
  std::stable_sort(order.begin(), order.end(), [](const IngressRoute* a, const IngressRoute* b) {
    if (a->path.path.size() != b->path.path.size())
      return a->path.path.size() > b->path.path.size();
    return a->path.type == PathType::exact && b->path.type != PathType::exact;
  });
  return order;
}

// What answers a request no path matches: the first main ingress's
// defaultBackend, or nothing (404).
IngressRoute default_route(const std::vector<Ingress>& ingresses) {
  for (const auto& in : ingresses)
    if (in.served() && !in.options.canary && in.default_backend)
      return {&in, {"/", PathType::prefix, *in.default_backend}, nullptr, {}};
  return {};
}

class Renderer {
 public:
  Renderer(const Plan& plan, const PodPlan& pod, const EndpointMap& endpoints)
      : plan_(plan), pod_(pod), endpoints_(endpoints) {}

  NginxConfig render() {
    hosts_ = routes_by_host(plan_.ingresses);
    std::string servers;
    servers += default_server();
    for (const auto& [host, routes] : hosts_)
      if (!host.empty()) servers += host_server(host, routes);
    return nginx::finish(header() + servers);
  }

 private:
  // The upstream of a backend, defined on first use; "" when the service has
  // no ready endpoint (the location answers 503).
  std::string upstream(const std::string& ns, const IngressBackend& b, const Ingress& in) {
    const auto* s = find_service(plan_, ns, b.service);
    if (!s) return "";
    int index = port_index(*s, b);
    if (index < 0) return "";
    auto servers = nginx::endpoint_servers(endpoints_, *s, static_cast<size_t>(index));
    if (servers.empty()) return "";
    auto name = fmt::format("{}-{}-{}", ns, b.service,
                            b.port_name.empty() ? std::to_string(b.port) : b.port_name);
    std::string balance;
    if (in.options.affinity_cookie) {
      auto cookie = cookie_index(in.options.session_cookie_name);
      name += fmt::format("-affinity-{}", cookie);
      balance = fmt::format("    hash $knl_affinity_{} consistent;\n", cookie);
    }
    if (upstreams_.count(name)) return name;
    upstreams_[name] = fmt::format("  upstream {} {{\n{}{}  }}\n", name, balance, servers);
    return name;
  }

  size_t cookie_index(const std::string& cookie) {
    auto it = std::find(cookies_.begin(), cookies_.end(), cookie);
    if (it != cookies_.end()) return static_cast<size_t>(it - cookies_.begin());
    cookies_.push_back(cookie);
    return cookies_.size() - 1;
  }

  // The variable or name a location proxies to: a canary's choice is made by
  // a map of the header and the weight's split.
  std::string target(const IngressRoute& r) {
    auto main = upstream(r.ingress->namespace_, r.path.backend, *r.ingress);
    if (!r.canary) return fmt::format("\"{}\"", main);
    auto canary = upstream(r.canary->namespace_, r.canary_backend, *r.canary);
    if (canary.empty()) return fmt::format("\"{}\"", main);
    const auto& o = r.canary->options;
    size_t n = canaries_.size();
    std::string block;
    std::string weight = "0";
    if (o.canary_weight >= 100) {
      weight = "1";
    } else if (o.canary_weight > 0) {
      block += fmt::format(
          "  split_clients \"${{request_id}}\" $knl_canary_weight_{} {{\n    {}% 1;\n    * 0;\n  "
          "}}\n",
          n, o.canary_weight);
      weight = fmt::format("$knl_canary_weight_{}", n);
    }
    std::string header =
        o.canary_by_header.empty() ? "" : "$" + nginx::header_variable(o.canary_by_header);
    block += fmt::format("  map \"{}:{}\" $knl_canary_{} {{\n    default \"{}\";\n", header, weight,
                         n, main);
    if (!o.canary_by_header.empty()) {
      if (!o.canary_by_header_value.empty()) {
        block += fmt::format("    \"~^{}:\" \"{}\";\n", literal(o.canary_by_header_value), canary);
      } else {
        block += fmt::format("    \"~^always:\" \"{}\";\n", canary);
        block += fmt::format("    \"~^never:\" \"{}\";\n", main);
      }
    }
    block += fmt::format("    \"~:1$\" \"{}\";\n  }}\n", canary);
    canaries_.push_back(block);
    return fmt::format("$knl_canary_{}", n);
  }

  // The body of a location serving `r` on a server of `host`.
  std::string location_body(const IngressRoute& r, const std::string& host,
                            const std::string& regex) {
    const auto& o = r.ingress->options;
    std::string body =
        fmt::format("      # {} {} {}: {}/{}\n", r.ingress->key(), enum_name(r.path.type),
                    r.path.path, r.ingress->namespace_, r.path.backend.str());
    bool tls = !host.empty() && ingress_tls_host(plan_.ingresses, host);
    if ((tls && o.ssl_redirect) || o.force_ssl_redirect)
      body +=
          "      if ($scheme = http) {\n        return 308 https://$host$request_uri;\n      }\n";
    for (const auto& net : o.whitelist) body += fmt::format("      allow {};\n", net.str());
    if (!o.whitelist.empty()) body += "      deny all;\n";
    // The upstream is chosen before the rewrite: "rewrite ... break" ends
    // the rewrite directives, a later "set" would never run.
    body += fmt::format("      set $knl_upstream {};\n", target(r));
    body += "      if ($knl_upstream = \"\") {\n        return 503;\n      }\n";
    if (!o.rewrite_target.empty())
      body += fmt::format("      rewrite \"(?i){}\" \"{}\" break;\n", regex, o.rewrite_target);
    if (o.affinity_cookie) {
      auto cookie = cookie_index(o.session_cookie_name);
      body += fmt::format("      add_header Set-Cookie $knl_set_cookie_{};\n", cookie);
    }
    body +=
        fmt::format("      add_header {} $knl_probe_upstream always;\n", kIngressUpstreamHeader);
    body += "      proxy_pass http://$knl_upstream;\n";
    return body;
  }

  // The locations of one server, and whether one of them is "/" as a prefix.
  std::string locations(const std::string& host, const std::vector<IngressRoute>& routes,
                        bool& has_root) {
    const bool regex = regex_host(routes);
    const auto order = match_order(routes);
    std::set<std::string> exact;
    for (const auto* r : order)
      if (r->path.type == PathType::exact) exact.insert(r->path.path);
    std::string out;
    for (const auto* r : order) {
      const auto& p = r->path;
      const bool custom =
          p.type == PathType::implementation_specific && r->ingress->options.use_regex;
      const auto prefix = without_trailing_slash(p.path);
      std::string re = custom                      ? p.path
                       : p.type == PathType::exact ? literal(p.path) + "$"
                       : prefix == "/"             ? std::string("/")
                                                   : literal(prefix) + "(?:/|$)";
      if (regex) {
        out +=
            fmt::format("    location ~* \"^{}\" {{\n{}    }}\n", re, location_body(*r, host, re));
        continue;
      }
      if (p.type == PathType::exact) {
        out += fmt::format("    location = {} {{\n{}    }}\n", p.path, location_body(*r, host, re));
        continue;
      }
      // Prefix (and ImplementationSpecific without use-regex, a prefix in
      // ingress-nginx): by path element.
      if (prefix == "/") {
        has_root = true;
        out += fmt::format("    location / {{\n{}    }}\n", location_body(*r, host, re));
        continue;
      }
      if (!exact.count(prefix))
        out += fmt::format("    location = {} {{\n{}    }}\n", prefix, location_body(*r, host, re));
      out += fmt::format("    location {}/ {{\n{}    }}\n", prefix, location_body(*r, host, re));
    }
    return out;
  }

  std::string default_answer() {
    auto r = default_route(plan_.ingresses);
    return r.ingress ? location_body(r, "", "/")
                     : "      return 404 \"default backend - 404\\n\";\n";
  }

  std::string default_server() {
    std::string out = fmt::format(
        "  # Requests for no host of any ingress, and rules without a host.\n"
        "  server {{\n    listen 80 default_server;\n    listen 443 ssl default_server;\n"
        "    server_name _;\n    ssl_certificate {};\n    ssl_certificate_key {};\n",
        default_cert_.cert, default_cert_.key);
    bool has_root = false;
    if (auto it = hosts_.find(""); it != hosts_.end()) out += locations("", it->second, has_root);
    if (!has_root) out += fmt::format("    location / {{\n{}    }}\n", default_answer());
    return out + "  }\n";
  }

  std::string host_server(const std::string& host, const std::vector<IngressRoute>& routes) {
    // A wildcard matches exactly one label, as Kubernetes defines it.
    auto name =
        host.rfind("*.", 0) == 0 ? fmt::format("\"~^[^.]+{}$\"", literal(host.substr(1))) : host;
    std::string out = fmt::format("  server {{\n    server_name {};\n    listen 80;\n", name);
    if (ingress_tls_host(plan_.ingresses, host)) {
      auto crt = std::find_if(certs_.begin(), certs_.end(),
                              [&](const Certificate& c) { return c.host == host; });
      out +=
          fmt::format("    listen 443 ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n",
                      crt->cert, crt->key);
    }
    bool has_root = false;
    out += locations(host, routes, has_root);
    if (!has_root) out += fmt::format("    location / {{\n{}    }}\n", default_answer());
    return out + "  }\n";
  }

  std::string header() {
    // Rendered last (the servers define the upstreams and maps), printed first.
    std::string out = nginx::preamble(
        pod_,
        fmt::format("the ingress controller {} in lab \"{}\", rendered by knetlab from the\n# "
                    "lab's ingresses and their services' ready endpoints, as ingress-nginx does.",
                    pod_.key(), plan_.lab));
    for (size_t i = 0; i < cookies_.size(); ++i)
      out += fmt::format(
          "  # Cookie affinity ({0}): a client without the cookie is placed by its request's\n"
          "  # id, which becomes its cookie, so that it stays on that endpoint.\n"
          "  map $cookie_{0} $knl_affinity_{1} {{\n    \"\" $request_id;\n    default "
          "$cookie_{0};\n  "
          "}}\n"
          "  map $cookie_{0} $knl_set_cookie_{1} {{\n    \"\" \"{0}=$request_id; Path=/; "
          "HttpOnly\";\n    default \"\";\n  }}\n",
          cookies_[i], i);
    for (const auto& [name, block] : upstreams_) out += block;
    for (const auto& block : canaries_) out += block;
    return out;
  }

 public:
  Certificate default_cert_;
  std::vector<Certificate> certs_;

 private:
  const Plan& plan_;
  const PodPlan& pod_;
  const EndpointMap& endpoints_;
  std::map<std::string, std::vector<IngressRoute>> hosts_;  // "" for rules without a host
  std::map<std::string, std::string> upstreams_;
  std::vector<std::string> canaries_, cookies_;
};

}  // namespace

bool PodPlan::runs_nginx() const {
  return std::any_of(containers.begin(), containers.end(),
                     [](const ContainerPlan& c) { return c.image == kNginxImage; });
}

bool PodPlan::serves_ingress() const {
  return namespace_ == kIngressNamespace && runs_nginx();
}

void add_ingress_objects(Topology& t) {
  if (std::none_of(t.ingresses.begin(), t.ingresses.end(),
                   [](const Ingress& in) { return in.served(); }))
    return;
  Where where{t.file, 1, 1};
  const Labels labels = {{"app.kubernetes.io/name", "ingress-nginx"},
                         {"app.kubernetes.io/component", "controller"}};
  if (std::none_of(t.namespaces.begin(), t.namespaces.end(),
                   [](const Namespace& n) { return n.name == kIngressNamespace; }))
    t.namespaces.push_back(
        {kIngressNamespace, {{"app.kubernetes.io/name", "ingress-nginx"}}, where});
  Deployment d;
  d.name = kIngressController, d.namespace_ = kIngressNamespace, d.replicas = 1;
  d.spec.labels = labels;
  Container nginx;
  nginx.name = "controller", nginx.image = kNginxImage, nginx.where = nginx.where_image = where;
  nginx.ports = {{"http", 80, Protocol::tcp}, {"https", 443, Protocol::tcp}};
  nginx.readiness = Readiness{"/healthz", kNginxHealthPort, ""};
  d.spec.containers.push_back(nginx);
  d.system = true, d.where = where;
  t.deployments.push_back(std::move(d));

  Service s;
  s.name = kIngressController, s.namespace_ = kIngressNamespace;
  s.type = ServiceType::load_balancer;
  s.selector = labels;
  s.ports = {{"http", 80, 0, "http", kIngressHttpNodePort, Protocol::tcp},
             {"https", 443, 0, "https", kIngressHttpsNodePort, Protocol::tcp}};
  s.system = true, s.where = where;
  t.services.push_back(std::move(s));
}

std::string lab_ca_cert_path(const Plan& plan) {
  return plan.run_dir + "/ca.crt";
}

std::string lab_ca_key_path(const Plan& plan) {
  return plan.run_dir + "/tls/ca.key";
}

std::vector<Certificate> ingress_certificates(const Plan& plan) {
  std::set<std::string> hosts;
  for (const auto& in : plan.ingresses)
    if (in.served())
      for (const auto& list : in.tls) hosts.insert(list.begin(), list.end());
  bool any = std::any_of(plan.ingresses.begin(), plan.ingresses.end(),
                         [](const Ingress& in) { return in.served(); });
  std::vector<Certificate> out;
  if (!any) return out;
  const auto dir = plan.run_dir + "/tls/";
  out.push_back({"ingress.local", dir + "default.crt", dir + "default.key"});
  for (const auto& h : hosts) out.push_back(lab_certificate(plan, h));
  return out;
}

Certificate lab_certificate(const Plan& plan, const std::string& host) {
  const auto dir = plan.run_dir + "/tls/";
  return {host, dir + host_file(host) + ".crt", dir + host_file(host) + ".key"};
}

std::string nginx_config_path(const PodPlan& pod) {
  return pod.dir + "/nginx.conf";
}

std::vector<std::string> nginx_test_argv(const std::string& path) {
  return {"nginx", "-t", "-q", "-c", path, "-e", "stderr"};
}

NginxConfig ingress_nginx_config(const Plan& plan, const PodPlan& pod,
                                 const EndpointMap& endpoints) {
  Renderer r(plan, pod, endpoints);
  auto certs = ingress_certificates(plan);
  if (!certs.empty()) r.default_cert_ = certs.front();
  r.certs_ = std::move(certs);
  return r.render();
}

bool ingress_tls_host(const std::vector<Ingress>& ingresses, const std::string& host) {
  for (const auto& in : ingresses)
    if (in.served())
      for (const auto& hosts : in.tls)
        if (std::find(hosts.begin(), hosts.end(), host) != hosts.end()) return true;
  return false;
}

IngressRoute route_ingress_request(const std::vector<Ingress>& ingresses, const std::string& host,
                                   const std::string& target) {
  const auto path = target.substr(0, target.find('?'));
  const auto hosts = routes_by_host(ingresses);
  // The server: exactly the host, else a wildcard host of its first label,
  // else the rules without a host.
  auto server = hosts.find(host);
  if (server == hosts.end()) {
    auto dot = host.find('.');
    server =
        dot == std::string::npos || dot == 0 ? hosts.end() : hosts.find("*" + host.substr(dot));
    if (server == hosts.end()) server = hosts.find("");
  }
  if (server == hosts.end()) return default_route(ingresses);
  const bool regex = regex_host(server->second);
  for (const auto* r : match_order(server->second)) {
    const auto& p = r->path;
    const auto prefix = without_trailing_slash(p.path);
    bool match = false;
    if (p.type == PathType::implementation_specific && r->ingress->options.use_regex) {
      match =
          regex && std::regex_search(path, std::regex("^(?:" + p.path + ")", std::regex::icase));
    } else if (p.type == PathType::exact) {
      match = regex ? strcasecmp(path.c_str(), p.path.c_str()) == 0 : path == p.path;
    } else {
      auto head = path.substr(0, prefix.size());
      bool same = regex ? strcasecmp(head.c_str(), prefix.c_str()) == 0 : head == prefix;
      match =
          prefix == "/" || (same && (path.size() == prefix.size() || path[prefix.size()] == '/'));
    }
    if (match) return *r;
  }
  return default_route(ingresses);
}

}  // namespace knl
