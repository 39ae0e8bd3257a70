// The parser's Gateway API objects: gateways with their listeners, and
// HTTPRoutes with their parents, matches, filters and backends. What the
// API's validation refuses is an error at its line; what Kubernetes accepts
// and reports in a route's status (a missing backend, a listener that does
// not admit the route) is a warning.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <regex>
#include <set>

#include "knetlab/topology/gateway_api.h"
#include "knetlab/util/error.h"
#include "parser.h"

namespace knl::parsing {

namespace {

// A regular expression as the route writes it: PCRE in nginx, checked here
// with std::regex, whose ECMAScript grammar is close to it.
void check_regex(const TableReader& t, const std::string& key, const std::string& re) {
  bool fits = !re.empty() && std::none_of(re.begin(), re.end(), [](unsigned char c) {
    return c <= ' ' || c >= 127 || c == '"' || c == '\'';
  });
  if (!fits)
    t.fail(key, fmt::format("regular expression \"{}\" must not be empty or hold spaces or quotes",
                            excerpt(re)));
  try {
    std::regex check(re);
  } catch (const std::regex_error& e) {
    t.fail(key, fmt::format("\"{}\" is not a regular expression: {}", excerpt(re), e.what()));
  }
}

// An HTTP header name of letters, digits and '-': a token of RFC 9110 that
// nginx also offers as a variable ($http_x_env), which matching needs.
void check_header_name(const TableReader& t, const std::string& key, const std::string& name) {
  bool fits = !name.empty() && name.size() <= 256 &&
              std::all_of(name.begin(), name.end(),
                          [](unsigned char c) { return std::isalnum(c) || c == '-'; });
  if (!fits)
    t.fail(key, fmt::format("\"{}\" is not a header name of letters, digits and '-' such as "
                            "\"x-env\"",
                            excerpt(name)));
}

// A header or query value: it is written into nginx's configuration.
void check_value(const TableReader& t, const std::string& key, const std::string& value) {
  if (!fits_nginx(value) || value.find('$') != std::string::npos || value.size() > 4096)
    t.fail(key, fmt::format("value \"{}\" must be 1..4096 characters without spaces, quotes, "
                            "';', '{{', '}}', '\\' or '$'",
                            excerpt(value)));
}

void check_path(const TableReader& t, const std::string& key, const std::string& path) {
  if (path.empty() || path.front() != '/' || !fits_nginx(path) ||
      path.find_first_of("$?#") != std::string::npos)
    t.fail(key, fmt::format("path \"{}\" must start with '/' and hold no spaces, quotes, ';', "
                            "'{{', '}}', '\\', '$', '?' or '#'",
                            excerpt(path)));
}

}  // namespace

void Parser::route_hostname(const TableReader& t, const std::string& key, const std::string& host) {
  auto name = host.rfind("*.", 0) == 0 ? host.substr(2) : host;
  if (!is_domain_name(name) || name.find('.') == std::string::npos)
    t.fail(key, fmt::format("hostname \"{}\" is not a DNS name such as \"api.example.com\" (a "
                            "wildcard \"*.\" may start it)",
                            excerpt(host)));
}

void Parser::gateways() {
  UniqueNames names("gateway");
  for (const auto& t : root_.tables("gateways")) {
    t.allow_only({"name", "namespace", "gatewayClassName", "listeners", "allowedRoutes"});
    Gateway g;
    // The data plane's pods are "NAME-gateway-0": a deployment's name fits 30.
    g.name = name_of(t, 22), g.namespace_ = namespace_of(t), g.where = t.where();
    names.add(t, g.key());
    g.class_name = t.string("gatewayClassName", "knetlab");
    if (!g.served())
      topo_.warnings.push_back(
          {where_of(*t.find("gatewayClassName"), "gatewayClassName"),
           fmt::format("gateway {} has class \"{}\": kept, but only class \"knetlab\" has a "
                       "controller in a lab",
                       g.key(), excerpt(g.class_name))});
    if (auto allowed = t.table("allowedRoutes")) {
      allowed->allow_only({"namespaces"});
      const auto* ns = allowed->find("namespaces");
      if (ns && ns->is_table()) {
        TableReader from(*ns, "allowedRoutes.namespaces");
        from.allow_only({"from"});
        g.allowed_routes = from.choice("from", RouteNamespaces::same);
      } else {
        g.allowed_routes = allowed->choice("namespaces", RouteNamespaces::same);
      }
    }
    UniqueNames listener_names("listener");
    for (const auto& l : t.tables("listeners")) {
      l.allow_only({"name", "port", "protocol", "hostname"});
      Listener listener;
      listener.name = l.required_string("name");
      if (!is_dns_label(listener.name, 63))
        l.fail("name", fmt::format("listener name \"{}\" must be lower-case letters, digits and "
                                   "'-'",
                                   excerpt(listener.name)));
      listener_names.add(l, listener.name);
      listener.protocol = l.choice("protocol", ListenerProtocol::http);
      listener.port = static_cast<int>(
          l.integer("port", listener.protocol == ListenerProtocol::https ? 443 : 80, 1, 65535));
      if (listener.port == kNginxHealthPort)
        l.fail("port", fmt::format("port {} is where the gateway's nginx answers its readiness "
                                   "probe; choose another",
                                   kNginxHealthPort));
      listener.hostname = l.string("hostname", "");
      if (!listener.hostname.empty()) route_hostname(l, "hostname", listener.hostname);
      for (const auto& other : g.listeners) {
        if (other.port != listener.port) continue;
        if (other.protocol != listener.protocol)
          l.fail("protocol", fmt::format("listener \"{}\" serves port {} with {}; one port has one "
                                         "protocol",
                                         other.name, other.port, enum_name(other.protocol)));
        if (other.hostname == listener.hostname)
          l.fail("hostname",
                 fmt::format("listener \"{}\" already serves port {} for hostname \"{}\"",
                             other.name, other.port, other.hostname));
      }
      g.listeners.push_back(std::move(listener));
    }
    if (g.listeners.empty())
      t.fail("listeners",
             "a gateway needs listeners = [{ name = \"http\", port = 80, protocol = "
             "\"HTTP\" }]");
    const auto deployment = gateway_deployment_name(g);
    if (service_names_.contains(g.namespace_ + "/" + deployment))
      t.fail("name", fmt::format("gateway {} needs the service name \"{}\" for its data plane, "
                                 "which a service of the file already has",
                                 g.key(), deployment));
    if (g.served()) claim_pod_name(t, g.namespace_, deployment + "-0");
    topo_.gateways.push_back(std::move(g));
  }
}

ParentRef Parser::parent_ref(const TableReader& route, const TomlValue& value) {
  ParentRef p;
  if (value.is_string()) {
    p.name = value.as_string().str;
    p.namespace_ = namespace_of(route);
  } else if (value.is_table()) {
    TableReader t(value, "parentRefs");
    t.allow_only({"name", "namespace", "sectionName", "kind", "group"});
    t.one_of("kind", "Gateway", {"Gateway"});
    t.one_of("group", "gateway.networking.k8s.io", {"gateway.networking.k8s.io"});
    p.name = t.required_string("name");
    p.namespace_ = t.string("namespace", namespace_of(route));
    p.section = t.string("sectionName", "");
  } else {
    fail_at(value,
            "write a parentRef as \"GATEWAY\" or { name = \"GATEWAY\", namespace = \"NS\", "
            "sectionName = \"LISTENER\" }");
  }
  auto gateway = std::find_if(topo_.gateways.begin(), topo_.gateways.end(), [&](const Gateway& g) {
    return g.name == p.name && g.namespace_ == p.namespace_;
  });
  if (gateway == topo_.gateways.end()) {
    std::vector<std::string> known;
    for (const auto& g : topo_.gateways) known.push_back(g.key());
    auto guess = nearest(p.namespace_ + "/" + p.name, known);
    fail_at(value, fmt::format("unknown gateway \"{}/{}\"; define it under [[gateways]]{}",
                               p.namespace_, excerpt(p.name),
                               guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess)));
  }
  if (!p.section.empty() && std::none_of(gateway->listeners.begin(), gateway->listeners.end(),
                                         [&](const Listener& l) { return l.name == p.section; })) {
    std::vector<std::string> listeners;
    for (const auto& l : gateway->listeners) listeners.push_back(l.name);
    topo_.warnings.push_back(
        {where_of(value),
         fmt::format("gateway {} has no listener \"{}\" (its listeners: {}); the route is not "
                     "accepted there (NoMatchingParent)",
                     gateway->key(), excerpt(p.section), fmt::join(listeners, ", "))});
  }
  return p;
}

RouteMatch Parser::route_match(const TableReader& t) {
  t.allow_only({"path", "headers", "queryParams", "method"});
  RouteMatch m;
  if (auto path = t.table("path")) {
    path->allow_only({"type", "value"});
    m.path_type = path->choice("type", RoutePathType::path_prefix);
    m.path = path->string("value", "/");
    if (m.path_type == RoutePathType::regular_expression)
      check_regex(*path, "value", m.path);
    else
      check_path(*path, "value", m.path);
  }
  for (const char* key : {"headers", "queryParams"}) {
    auto& into = std::string(key) == "headers" ? m.headers : m.query_params;
    std::set<std::string> seen;
    for (const auto& v : t.tables(key)) {
      v.allow_only({"name", "value", "type"});
      ValueMatch vm{v.required_string("name"), v.required_string("value"),
                    v.choice("type", ValueMatchType::exact)};
      if (std::string(key) == "headers")
        check_header_name(v, "name", vm.name);
      else
        check_value(v, "name", vm.name);
      if (vm.type == ValueMatchType::regular_expression)
        check_regex(v, "value", vm.value);
      else
        check_value(v, "value", vm.value);
      auto folded = vm.name;
      if (std::string(key) == "headers")
        std::transform(folded.begin(), folded.end(), folded.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (!seen.insert(folded).second)
        v.fail("name", fmt::format("\"{}\" is matched twice in one match", excerpt(vm.name)));
      into.push_back(std::move(vm));
    }
  }
  m.method = t.one_of(
      "method", "",
      {"", "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"});
  return m;
}

BackendRef Parser::backend_ref(const TableReader& t, const std::string& ns, bool weighted) {
  if (weighted)
    t.allow_only({"name", "port", "weight", "namespace", "kind", "group"});
  else
    t.allow_only({"name", "port", "namespace", "kind", "group"});
  t.one_of("kind", "Service", {"Service"});
  t.one_of("group", "", {""});
  if (t.string("namespace", ns) != ns)
    t.fail("namespace",
           "a backendRef to another namespace needs a ReferenceGrant, which a lab "
           "does not have; put the route in the service's namespace");
  BackendRef b;
  b.name = t.required_string("name");
  if (!t.has("port")) t.fail("name", "a backendRef to a service needs \"port\"");
  b.port = static_cast<int>(t.integer("port", 80, 1, 65535));
  if (weighted) b.weight = static_cast<int>(t.integer("weight", 1, 0, 1000000));
  auto service = std::find_if(topo_.services.begin(), topo_.services.end(), [&](const Service& s) {
    return s.name == b.name && s.namespace_ == ns;
  });
  if (service == topo_.services.end()) {
    topo_.warnings.push_back(
        {where_of(*t.find("name"), "name"),
         fmt::format("unknown service \"{}\" in namespace \"{}\": the route's ResolvedRefs is "
                     "False (BackendNotFound) and its requests to it get 500",
                     excerpt(b.name), ns)});
  } else if (std::none_of(service->ports.begin(), service->ports.end(), [&](const ServicePort& p) {
               return p.protocol == Protocol::tcp && p.port == b.port;
             })) {
    topo_.warnings.push_back(
        {where_of(*t.find("port"), "port"),
         fmt::format("service {}/{} has no TCP port {}: the route's ResolvedRefs is False "
                     "(BackendNotFound) and its requests to it get 500",
                     ns, b.name, b.port)});
  }
  return b;
}

RouteFilter Parser::route_filter(const TableReader& t, const RouteRule& rule,
                                 const std::string& ns) {
  RouteFilter f;
  f.type = t.choice("type", RouteFilterType::request_header_modifier);
  if (!t.has("type"))
    t.fail("type",
           "a filter needs \"type\": RequestHeaderModifier, ResponseHeaderModifier, "
           "RequestRedirect, URLRewrite or RequestMirror");
  auto path_modifier = [&](const TableReader& p) {
    p.allow_only({"type", "value", "replaceFullPath", "replacePrefixMatch"});
    PathModifier m;
    m.type = p.choice("type", PathModifierType::replace_full_path);
    const char* key =
        m.type == PathModifierType::replace_full_path ? "replaceFullPath" : "replacePrefixMatch";
    m.value = p.string(key, p.string("value", "/"));
    check_path(p, p.has(key) ? key : "value", m.value);
    if (m.type == PathModifierType::replace_prefix_match)
      for (const auto& match : rule.matches)
        if (match.path_type != RoutePathType::path_prefix)
          p.fail("type",
                 "ReplacePrefixMatch needs every match of the rule to be a PathPrefix "
                 "path");
    return m;
  };
  switch (f.type) {
    case RouteFilterType::request_header_modifier:
    case RouteFilterType::response_header_modifier: {
      t.allow_only({"type", "set", "add", "remove"});
      std::set<std::string> seen;
      auto named = [&](const TableReader& at, const char* key, const std::string& name) {
        check_header_name(at, key, name);
        auto folded = name;
        std::transform(folded.begin(), folded.end(), folded.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (!seen.insert(folded).second)
          at.fail(key, fmt::format("header \"{}\" is changed twice by one filter", excerpt(name)));
      };
      for (const char* key : {"set", "add"})
        for (const auto& h : t.tables(key)) {
          h.allow_only({"name", "value"});
          HeaderValue v{h.required_string("name"), h.required_string("value")};
          named(h, "name", v.name);
          check_value(h, "value", v.value);
          (std::string(key) == "set" ? f.headers.set : f.headers.add).push_back(std::move(v));
        }
      for (const auto& name : t.strings("remove")) {
        named(t, "remove", name);
        f.headers.remove.push_back(name);
      }
      if (f.headers == HeaderChanges{})
        t.fail("type", "a header modifier needs set, add or remove");
      break;
    }
    case RouteFilterType::request_redirect:
      t.allow_only({"type", "scheme", "hostname", "port", "path", "statusCode"});
      f.scheme = t.one_of("scheme", "", {"", "http", "https"});
      f.hostname = t.string("hostname", "");
      if (!f.hostname.empty() && !is_domain_name(f.hostname))
        t.fail("hostname", fmt::format("\"{}\" is not a DNS name", excerpt(f.hostname)));
      f.port = static_cast<int>(t.integer("port", 0, 1, 65535));
      f.status_code = static_cast<int>(t.integer("statusCode", 302, 301, 308));
      if (f.status_code != 301 && f.status_code != 302 && f.status_code != 303 &&
          f.status_code != 307 && f.status_code != 308)
        t.fail("statusCode", "a redirect's statusCode is 301, 302, 303, 307 or 308");
      if (auto p = t.table("path")) f.path = path_modifier(*p);
      break;
    case RouteFilterType::url_rewrite:
      t.allow_only({"type", "hostname", "path"});
      f.hostname = t.string("hostname", "");
      if (!f.hostname.empty() && !is_domain_name(f.hostname))
        t.fail("hostname", fmt::format("\"{}\" is not a DNS name", excerpt(f.hostname)));
      if (auto p = t.table("path")) f.path = path_modifier(*p);
      if (f.hostname.empty() && !f.path) t.fail("type", "a URLRewrite needs hostname or path");
      break;
    case RouteFilterType::request_mirror: {
      t.allow_only({"type", "backendRef"});
      auto b = t.table("backendRef");
      if (!b) t.fail("type", "a RequestMirror needs backendRef = { name = \"SVC\", port = 80 }");
      f.mirror = backend_ref(*b, ns, false);
      break;
    }
  }
  return f;
}

void Parser::http_routes() {
  UniqueNames names("httpRoute");
  for (const auto& t : root_.tables("httpRoutes")) {
    t.allow_only({"name", "namespace", "parentRefs", "hostnames", "rules"});
    HttpRoute r;
    r.name = name_of(t), r.namespace_ = namespace_of(t), r.where = t.where();
    names.add(t, r.key());
    const auto* parents = t.find("parentRefs");
    if (!parents || !parents->is_array() || parents->as_array().empty())
      t.fail("parentRefs", "a route needs parentRefs = [\"GATEWAY\"]");
    for (const auto& p : parents->as_array()) r.parents.push_back(parent_ref(t, p));
    for (const auto& h : t.strings("hostnames")) {
      route_hostname(t, "hostnames", h);
      r.hostnames.push_back(h);
    }
    for (const auto& rule : t.tables("rules")) {
      rule.allow_only({"matches", "filters", "backendRefs"});
      RouteRule rr;
      for (const auto& m : rule.tables("matches")) rr.matches.push_back(route_match(m));
      if (rr.matches.empty()) rr.matches.push_back({});
      std::set<RouteFilterType> types;
      for (const auto& f : rule.tables("filters")) {
        rr.filters.push_back(route_filter(f, rr, r.namespace_));
        auto type = rr.filters.back().type;
        if (type != RouteFilterType::request_mirror && !types.insert(type).second)
          f.fail("type", fmt::format("a rule has at most one {} filter", enum_name(type)));
      }
      for (const auto& b : rule.tables("backendRefs"))
        rr.backends.push_back(backend_ref(b, r.namespace_, true));
      bool redirect = types.count(RouteFilterType::request_redirect) > 0;
      if (redirect && types.count(RouteFilterType::url_rewrite))
        rule.fail("filters", "a rule cannot have both RequestRedirect and URLRewrite");
      if (redirect && !rr.backends.empty())
        rule.fail("backendRefs",
                  "a rule with a RequestRedirect answers itself: it takes no "
                  "backendRefs");
      if (!redirect && rr.backends.empty())
        topo_.warnings.push_back({rule.where(),
                                  "a rule without backendRefs or a RequestRedirect "
                                  "answers every request it matches with 500"});
      r.rules.push_back(std::move(rr));
    }
    if (r.rules.empty()) t.fail("rules", "a route needs [[httpRoutes.rules]] with backendRefs");
    topo_.http_routes.push_back(std::move(r));
    const auto& route = topo_.http_routes.back();
    auto exists = [&](const std::string& ns, const BackendRef& b) {
      return std::any_of(topo_.services.begin(), topo_.services.end(), [&](const Service& s) {
        return s.namespace_ == ns && s.name == b.name &&
               std::any_of(s.ports.begin(), s.ports.end(), [&](const ServicePort& p) {
                 return p.protocol == Protocol::tcp && p.port == b.port;
               });
      });
    };
    for (const auto& s : route_status(topo_.gateways, route, exists))
      if (!s.accepted && s.accepted_reason != RouteReason::no_matching_parent)
        topo_.warnings.push_back(
            {where_of(*t.find("parentRefs"), "parentRefs"),
             fmt::format(
                 "route {} is not accepted by gateway {}/{}: {}", route.key(), s.parent.namespace_,
                 s.parent.name,
                 s.accepted_reason == RouteReason::not_allowed_by_listeners
                     ? "its listeners allow routes of their own namespace only "
                       "(NotAllowedByListeners)"
                     : "none of its hostnames is a listener's (NoMatchingListenerHostname)")});
  }
}

}  // namespace knl::parsing
