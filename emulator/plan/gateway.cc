#include "knetlab/plan/gateway.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

#include "knetlab/plan/dns.h"
#include "knetlab/topology/parse.h"
#include "nginx.h"

namespace knl {

namespace {

// A PathPrefix's prefix as it matches by element: "/api/" -> "/api", "/" -> "".
std::string element_prefix(const std::string& path) {
  auto p = path;
  while (!p.empty() && p.back() == '/') p.pop_back();
  return p;
}

// Exact, then RegularExpression, then PathPrefix: the API leaves regular
// expressions' place to the implementation, and after the prefixes one would
// never be reached past a "/".
int rank(const RouteMatch& m) {
  switch (m.path_type) {
    case RoutePathType::exact:
      return 0;
    case RoutePathType::regular_expression:
      return 1;
    case RoutePathType::path_prefix:
      return 2;
  }
  return 2;
}

// Whether `a` takes precedence over `b`; equal ones keep the file's order.
bool precedes(const RouteEntry& a, const RouteEntry& b) {
  const auto &x = a.the_match(), &y = b.the_match();
  if (rank(x) != rank(y)) return rank(x) < rank(y);
  if (x.path_type == RoutePathType::path_prefix) {
    auto lx = element_prefix(x.path).size(), ly = element_prefix(y.path).size();
    if (lx != ly) return lx > ly;
  }
  if (x.method.empty() != y.method.empty()) return !x.method.empty();
  if (x.headers.size() != y.headers.size()) return x.headers.size() > y.headers.size();
  return x.query_params.size() > y.query_params.size();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool value_matches(const ValueMatch& m, const std::string& value) {
  return m.type == ValueMatchType::exact ? value == m.value
                                         : std::regex_match(value, std::regex(m.value));
}

bool request_matches(const RouteMatch& m, const GatewayRequest& r) {
  if (!m.method.empty() && m.method != r.method) return false;
  switch (m.path_type) {
    case RoutePathType::exact:
      if (r.path != m.path) return false;
      break;
    case RoutePathType::path_prefix: {
      auto p = element_prefix(m.path);
      if (r.path.compare(0, p.size(), p) != 0 ||
          (r.path.size() > p.size() && r.path[p.size()] != '/'))
        return false;
      break;
    }
    case RoutePathType::regular_expression:
      if (!std::regex_match(r.path, std::regex(m.path))) return false;
      break;
  }
  for (const auto& h : m.headers) {
    auto it = r.headers.find(lower(h.name));
    if (it == r.headers.end() || !value_matches(h, it->second)) return false;
  }
  for (const auto& q : m.query_params) {
    bool found = false;
    size_t start = 0;
    while (!found && start <= r.query.size()) {
      auto end = std::min(r.query.find('&', start), r.query.size());
      auto pair = r.query.substr(start, end - start);
      auto eq = pair.find('=');
      found = eq != std::string::npos && pair.substr(0, eq) == q.name &&
              value_matches(q, pair.substr(eq + 1));
      start = end + 1;
    }
    if (!found) return false;
  }
  return true;
}

// `text` as a PCRE literal.
std::string regex_literal(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (std::string_view(".^$|?*+()[]{}\\").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

constexpr char kTab = '\t';

class GatewayRenderer {
 public:
  GatewayRenderer(const Plan& plan, const PodPlan& pod, const Gateway& gateway,
                  const EndpointMap& endpoints)
      : plan_(plan), pod_(pod), gateway_(gateway), endpoints_(endpoints) {}

  NginxConfig render() {
    const auto servers = gateway_servers(gateway_, plan_.http_routes);
    for (const auto& s : servers)
      for (const auto& e : s.entries)
        for (const auto& h : e.the_match().headers)
          if (std::find(headers_.begin(), headers_.end(), lower(h.name)) == headers_.end())
            headers_.push_back(lower(h.name));
    std::set<int> ports, defaults;
    for (const auto& s : servers) {
      ports.insert(s.port);
      if (s.hostname.empty()) defaults.insert(s.port);
    }
    std::string text;
    for (const auto& s : servers) text += server(s);
    // A port without a listener of any hostname answers 404 to other hosts.
    for (int port : ports)
      if (!defaults.count(port)) {
        auto it = std::find_if(servers.begin(), servers.end(),
                               [&](const GatewayServer& s) { return s.port == port; });
        GatewayServer fallback{port, it->protocol, "", it->listener_hostname, {}};
        text += server(fallback);
      }
    auto head = nginx::preamble(
        pod_, fmt::format("gateway {} (pod {}) in lab \"{}\", rendered by knetlab from the\n# "
                          "routes attached to its listeners and their backends' ready endpoints.",
                          gateway_.key(), pod_.key(), plan_.lab));
    for (const auto& [name, block] : upstreams_) head += block;
    head += blocks_;
    if (!entries_map_.empty()) {
      // One map for every server: nginx sets up each map's tables on its
      // own, which with a map per server was most of nginx -t's time.
      std::string key = std::string("$knl_server") + kTab + "$request_method" + kTab + "$uri" +
                        kTab + "?&$args&" + kTab;
      for (const auto& h : headers_) key += "$" + nginx::header_variable(h) + kTab;
      head += fmt::format(
          "  # The entry that answers a request: the first that matches the server (set in\n"
          "  # its location /), method, path, query and headers.\n  map {} $knl_match {{\n{}  "
          "}}\n",
          nginx::quoted(key), entries_map_);
    }
    return nginx::finish(head + text);
  }

 private:
  // An upstream of the backend's ready endpoints; "!500" for a missing
  // service or port, "!503" for one without ready endpoints.
  std::string backend_target(const std::string& ns, const BackendRef& b) {
    const auto* s = nginx::find_service(plan_, ns, b.name);
    if (!s) return "!500";
    auto port = std::find_if(s->ports.begin(), s->ports.end(), [&](const auto& p) {
      return p.protocol == Protocol::tcp && p.port == b.port;
    });
    if (port == s->ports.end()) return "!500";
    auto servers =
        nginx::endpoint_servers(endpoints_, *s, static_cast<size_t>(port - s->ports.begin()));
    if (servers.empty()) return "!503";
    auto name = fmt::format("{}-{}-{}", ns, b.name, b.port);
    if (!upstreams_.count(name))
      upstreams_[name] = fmt::format("  upstream {} {{\n{}  }}\n", name, servers);
    return name;
  }

  // What $knl_up is set to for `rule`: a quoted target, or the variable of
  // a split by weight.
  std::string rule_target(const HttpRoute& route, const RouteRule& rule) {
    auto cached = rule_targets_.find(&rule);
    if (cached != rule_targets_.end()) return cached->second;
    std::vector<std::pair<int, std::string>> parts;
    long total = 0;
    for (const auto& b : rule.backends)
      if (b.weight > 0) {
        parts.emplace_back(b.weight, backend_target(route.namespace_, b));
        total += b.weight;
      }
    std::string target;
    if (parts.empty()) {
      target = "\"!500\"";
    } else if (parts.size() == 1) {
      target = nginx::quoted(parts.front().second);
    } else {
      auto name = fmt::format("$knl_split_{}", splits_++);
      blocks_ +=
          fmt::format("  # {}: backends by weight\n  split_clients \"${{request_id}}\" {} {{\n",
                      route.key(), name);
      for (size_t i = 0; i + 1 < parts.size(); ++i)
        blocks_ +=
            fmt::format("    {:.2f}% {};\n",
                        std::floor(10000.0 * parts[i].first / static_cast<double>(total)) / 100.0,
                        nginx::quoted(parts[i].second));
      blocks_ += fmt::format("    * {};\n  }}\n", nginx::quoted(parts.back().second));
      target = name;
    }
    rule_targets_[&rule] = target;
    return target;
  }

  // The PCRE of a match over the key "METHOD\tPATH\t?&QUERY&\tHEADER1\t…".
  static std::string match_regex(const RouteMatch& m, const std::vector<std::string>& headers) {
    const std::string field = std::string("[^") + kTab + "]*";
    std::string re = "^" + (m.method.empty() ? field : m.method) + kTab;
    switch (m.path_type) {
      case RoutePathType::exact:
        re += regex_literal(m.path);
        break;
      case RoutePathType::path_prefix: {
        auto p = element_prefix(m.path);
        re += p.empty() ? "/" + field : regex_literal(p) + "(?:/" + field + ")?";
        break;
      }
      case RoutePathType::regular_expression:
        re += "(?:" + m.path + ")";
        break;
    }
    re += std::string(1, kTab) + "\\?";
    for (const auto& q : m.query_params)
      re += "(?=" + field + "&" + regex_literal(q.name) + "=" +
            (q.type == ValueMatchType::exact ? regex_literal(q.value) : "(?:" + q.value + ")") +
            "&)";
    re += "&" + field + kTab;
    for (const auto& name : headers) {
      auto h = std::find_if(m.headers.begin(), m.headers.end(),
                            [&](const ValueMatch& v) { return lower(v.name) == name; });
      re += h == m.headers.end()               ? field
            : h->type == ValueMatchType::exact ? regex_literal(h->value)
                                               : "(?:" + h->value + ")";
      re += kTab;
    }
    return re + "$";
  }

  // Sets $knl_target to the request's path and query after `modifier`,
  // for a request that `match` matched.
  static std::string target_after(const RouteMatch& match, const PathModifier& modifier) {
    if (modifier.type == PathModifierType::replace_full_path)
      return fmt::format("      set $knl_target \"{}$is_args$args\";\n", modifier.value);
    const bool slash = modifier.value.back() == '/';
    auto re = "^" + regex_literal(element_prefix(match.path)) + (slash ? "/?(.*)$" : "(.*)$");
    return fmt::format(
        "      set $knl_target $request_uri;\n      if ($request_uri ~ {}) {{\n        set "
        "$knl_target \"{}$1\";\n      }}\n",
        nginx::quoted(re), modifier.value);
  }

  static const RouteFilter* filter(const RouteRule& rule, RouteFilterType type) {
    for (const auto& f : rule.filters)
      if (f.type == type) return &f;
    return nullptr;
  }

  std::string request_headers(const RouteFilter* modifier, const RouteFilter* rewrite) {
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Host", rewrite && !rewrite->hostname.empty() ? rewrite->hostname : "$host"},
        {"X-Request-ID", "$request_id"},
        {"X-Real-IP", "$remote_addr"},
        {"X-Forwarded-For", "$remote_addr"},
        {"X-Forwarded-Host", "$host"},
        {"X-Forwarded-Port", "$server_port"},
        {"X-Forwarded-Proto", "$scheme"},
        {"X-Scheme", "$scheme"},
        {"Connection", ""}};
    auto put = [&](const std::string& name, const std::string& value) {
      auto it = std::find_if(headers.begin(), headers.end(),
                             [&](const auto& h) { return lower(h.first) == lower(name); });
      if (it == headers.end())
        headers.emplace_back(name, value);
      else
        it->second = value;
    };
    if (modifier) {
      for (const auto& h : modifier->headers.set) put(h.name, h.value);
      for (const auto& h : modifier->headers.add) {
        auto var = fmt::format("$knl_add_{}", adds_++);
        blocks_ += fmt::format("  map ${} {} {{\n    \"\" {};\n    default \"${},{}\";\n  }}\n",
                               nginx::header_variable(h.name), var, nginx::quoted(h.value),
                               nginx::header_variable(h.name), h.value);
        put(h.name, var);
      }
      for (const auto& name : modifier->headers.remove) put(name, "");
    }
    std::string out;
    for (const auto& [name, value] : headers)
      out += fmt::format("      proxy_set_header {} {};\n", name,
                         value.rfind('$', 0) == 0 ? value : nginx::quoted(value));
    return out;
  }

  std::string entry_location(const GatewayServer& s, const RouteEntry& e, const std::string& id) {
    const auto& route = *e.route;
    const auto& rule = e.the_rule();
    const auto& match = e.the_match();
    std::string body = fmt::format(
        "    # {} rule {} match {}: {} {}\n    location = /.knl/{} {{\n      internal;\n",
        route.key(), e.rule + 1, e.match + 1, enum_name(match.path_type), match.path, id);
    if (const auto* f = filter(rule, RouteFilterType::request_redirect)) {
      const auto scheme = !f->scheme.empty()                      ? f->scheme
                          : s.protocol == ListenerProtocol::https ? "https"
                                                                  : "http";
      const int port = f->port ? f->port : f->scheme.empty() ? s.port : 0;
      const bool usual =
          port == 0 || (scheme == "http" && port == 80) || (scheme == "https" && port == 443);
      body += f->path ? target_after(match, *f->path) : "      set $knl_target $request_uri;\n";
      body += fmt::format("      return {} \"{}://{}{}$knl_target\";\n    }}\n", f->status_code,
                          scheme, f->hostname.empty() ? "$host" : f->hostname,
                          usual ? "" : fmt::format(":{}", port));
      return body;
    }
    body += fmt::format(
        "      set $knl_up {};\n      if ($knl_up = \"!500\") {{\n        return 500;\n      }}\n"
        "      if ($knl_up = \"!503\") {{\n        return 503;\n      }}\n",
        rule_target(route, rule));
    const auto* rewrite = filter(rule, RouteFilterType::url_rewrite);
    body += rewrite && rewrite->path ? target_after(match, *rewrite->path)
                                     : "      set $knl_target $request_uri;\n";
    const auto* modifier = filter(rule, RouteFilterType::request_header_modifier);
    if (modifier || (rewrite && !rewrite->hostname.empty()))
      body += request_headers(modifier, rewrite);
    if (const auto* f = filter(rule, RouteFilterType::response_header_modifier)) {
      for (const auto& h : f->headers.set)
        body += fmt::format("      proxy_hide_header {0};\n      add_header {0} {1} always;\n",
                            h.name, nginx::quoted(h.value));
      for (const auto& h : f->headers.add)
        body += fmt::format("      add_header {} {} always;\n", h.name, nginx::quoted(h.value));
      for (const auto& name : f->headers.remove)
        body += fmt::format("      proxy_hide_header {};\n", name);
    }
    body +=
        fmt::format("      add_header {} $knl_probe_upstream always;\n", kIngressUpstreamHeader);
    for (const auto& f : rule.filters) {
      if (!f.mirror) continue;
      auto target = backend_target(route.namespace_, *f.mirror);
      if (target.front() == '!') continue;  // nothing to copy the request to
      body += fmt::format("      mirror /.knl/mirror/{};\n", target);
      mirrors_.insert(target);
    }
    return body + "      proxy_pass http://$knl_up$knl_target;\n    }\n";
  }

  std::string server(const GatewayServer& s) {
    const bool https = s.protocol == ListenerProtocol::https;
    std::string out =
        fmt::format("  # port {} ({}), hostname {}\n  server {{\n    listen {}{}{};\n", s.port,
                    enum_name(s.protocol), s.hostname.empty() ? "any" : s.hostname, s.port,
                    https ? " ssl" : "", s.hostname.empty() ? " default_server" : "");
    out += fmt::format("    server_name {};\n", s.hostname.empty() ? "_" : s.hostname);
    if (https) {
      auto cert = lab_certificate(plan_, gateway_certificate_host(gateway_, s.listener_hostname));
      out += fmt::format("    ssl_certificate {};\n    ssl_certificate_key {};\n", cert.cert,
                         cert.key);
    }
    if (s.entries.empty()) return out + "    location / {\n      return 404;\n    }\n  }\n";
    const auto server_id = fmt::format("s{}", servers_++);
    entries_map_ += fmt::format("    # {}: port {}, hostname {}\n", server_id, s.port,
                                s.hostname.empty() ? "any" : s.hostname);
    std::string locations;
    mirrors_.clear();
    for (const auto& e : s.entries) {
      auto id = fmt::format("m{}", entries_++);
      entries_map_ += fmt::format(
          "    {} {};\n",
          nginx::quoted("~^" + server_id + kTab + match_regex(e.the_match(), headers_).substr(1)),
          id);
      locations += entry_location(s, e, id);
    }
    out += fmt::format(
        "    location / {{\n      set $knl_server {};\n      set $knl_entry $knl_match;\n      "
        "if ($knl_entry = \"\") {{\n        return 404;\n      }}\n      rewrite ^ "
        "/.knl/$knl_entry last;\n    }}\n",
        server_id);
    out += locations;
    for (const auto& m : mirrors_)
      out += fmt::format(
          "    location = /.knl/mirror/{0} {{\n      internal;\n      proxy_pass "
          "http://{0}$request_uri;\n    }}\n",
          m);
    return out + "  }\n";
  }

  const Plan& plan_;
  const PodPlan& pod_;
  const Gateway& gateway_;
  const EndpointMap& endpoints_;
  std::map<std::string, std::string> upstreams_;
  std::map<const RouteRule*, std::string> rule_targets_;
  std::set<std::string> mirrors_;
  std::string blocks_;                // maps and splits, in the http block
  std::string entries_map_;           // the entries of every server, in the order they are tried
  std::vector<std::string> headers_;  // the headers any entry matches on: fields of the key
  int splits_ = 0, adds_ = 0, servers_ = 0, entries_ = 0;
};

}  // namespace

void add_gateway_objects(Topology& t) {
  for (const auto& g : t.gateways) {
    if (!g.served()) continue;
    const auto name = gateway_deployment_name(g);
    const Labels labels = {{kGatewayNameLabel, g.name}};
    Deployment d;
    d.name = name, d.namespace_ = g.namespace_, d.replicas = 1;
    d.spec.labels = labels;
    Container nginx;
    nginx.name = "nginx", nginx.image = kNginxImage, nginx.where = nginx.where_image = g.where;
    nginx.readiness = Readiness{"/healthz", kNginxHealthPort, ""};
    Service s;
    s.name = name, s.namespace_ = g.namespace_;
    s.type = ServiceType::load_balancer;
    s.selector = labels;
    for (const auto& l : g.listeners) {
      if (std::any_of(nginx.ports.begin(), nginx.ports.end(),
                      [&](const ContainerPort& p) { return p.container_port == l.port; }))
        continue;
      auto port_name = is_iana_svc_name(l.name) ? l.name : fmt::format("port-{}", l.port);
      nginx.ports.push_back({port_name, l.port, Protocol::tcp});
      s.ports.push_back({port_name, l.port, l.port, "", std::nullopt, Protocol::tcp});
    }
    d.spec.containers.push_back(nginx);
    d.system = true, d.where = g.where;
    s.system = true, s.where = g.where;
    t.deployments.push_back(std::move(d));
    t.services.push_back(std::move(s));
  }
}

const Gateway* gateway_of(const std::vector<Gateway>& gateways, const PodPlan& pod) {
  auto label = pod.labels.find(kGatewayNameLabel);
  if (label == pod.labels.end() || !pod.runs_nginx()) return nullptr;
  for (const auto& g : gateways)
    if (g.name == label->second && g.namespace_ == pod.namespace_ && g.served()) return &g;
  return nullptr;
}

std::vector<GatewayServer> gateway_servers(const Gateway& gateway,
                                           const std::vector<HttpRoute>& routes) {
  std::vector<GatewayServer> servers;
  auto at = [&](const Listener& l, const std::string& hostname) -> GatewayServer& {
    for (auto& s : servers)
      if (s.port == l.port && s.hostname == hostname) return s;
    servers.push_back({l.port, l.protocol, hostname, l.hostname, {}});
    return servers.back();
  };
  for (const auto& l : gateway.listeners) at(l, l.hostname);
  for (const auto& a : gateway_attachments(gateway, routes))
    for (const auto& h : a.hostnames) {
      auto& s = at(*a.listener, h);
      for (size_t r = 0; r < a.route->rules.size(); ++r)
        for (size_t m = 0; m < a.route->rules[r].matches.size(); ++m) {
          bool present = std::any_of(s.entries.begin(), s.entries.end(), [&](const RouteEntry& e) {
            return e.route == a.route && e.rule == r && e.match == m;
          });
          if (!present) s.entries.push_back({a.route, r, m});
        }
    }
  for (auto& s : servers) std::stable_sort(s.entries.begin(), s.entries.end(), precedes);
  return servers;
}

GatewayRoute route_gateway_request(const std::vector<GatewayServer>& servers,
                                   const GatewayRequest& request) {
  GatewayRoute out;
  size_t best = 0;
  for (const auto& s : servers) {
    if (s.port != request.port || !hostname_matches(s.hostname, request.host)) continue;
    // An exact name before the longest wildcard before any host, as nginx picks.
    size_t score = s.hostname.empty()          ? 1
                   : s.hostname.front() == '*' ? 2 + s.hostname.size()
                                               : SIZE_MAX;
    if (score > best) best = score, out.server = &s;
  }
  if (!out.server) return out;
  for (const auto& e : out.server->entries)
    if (request_matches(e.the_match(), request)) {
      out.entry = e;
      break;
    }
  return out;
}

std::string gateway_certificate_host(const Gateway& g, const std::string& listener_hostname) {
  return listener_hostname.empty() ? fmt::format("{}.{}.gateway.local", g.name, g.namespace_)
                                   : listener_hostname;
}

std::vector<Certificate> gateway_certificates(const Plan& plan) {
  std::vector<Certificate> out;
  for (const auto& g : plan.gateways) {
    if (!g.served()) continue;
    for (const auto& l : g.listeners) {
      if (l.protocol != ListenerProtocol::https) continue;
      auto cert = lab_certificate(plan, gateway_certificate_host(g, l.hostname));
      if (std::find(out.begin(), out.end(), cert) == out.end()) out.push_back(cert);
    }
  }
  return out;
}

NginxConfig gateway_nginx_config(const Plan& plan, const PodPlan& pod,
                                 const EndpointMap& endpoints) {
  const auto* gateway = gateway_of(plan.gateways, pod);
  return GatewayRenderer(plan, pod, *gateway, endpoints).render();
}

NginxConfig nginx_pod_config(const Plan& plan, const PodPlan& pod, const EndpointMap& endpoints) {
  return gateway_of(plan.gateways, pod) ? gateway_nginx_config(plan, pod, endpoints)
                                        : ingress_nginx_config(plan, pod, endpoints);
}

std::vector<FileSpec> nginx_pod_files(const Plan& plan, const PodPlan& pod) {
  return {{nginx_config_path(pod), nginx_pod_config(plan, pod, endpoints_all_ready(plan)).text}};
}

}  // namespace knl
