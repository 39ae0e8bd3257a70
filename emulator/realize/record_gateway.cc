// The JSON mappings of Gateway API objects, in the shape of Kubernetes'
// Gateway and HTTPRoute (metadata's name and namespace beside the spec's
// fields, a filter's settings under its type's key).

#include "knetlab/realize/record.h"
#include "record_json.h"

namespace knl {

using nlohmann::json;
using record_json::enum_at;

namespace {

json backend_json(const BackendRef& b, bool weighted) {
  json j = {{"name", b.name}, {"port", b.port}};
  if (weighted) j["weight"] = b.weight;
  return j;
}

BackendRef backend_at(const json& j) {
  return {j.at("name"), j.at("port"), j.value("weight", 1)};
}

json values_json(const std::vector<ValueMatch>& values) {
  json out = json::array();
  for (const auto& v : values)
    out.push_back({{"type", enum_name(v.type)}, {"name", v.name}, {"value", v.value}});
  return out;
}

std::vector<ValueMatch> values_at(const json& j) {
  std::vector<ValueMatch> out;
  for (const auto& v : j)
    out.push_back({v.at("name"), v.at("value"), enum_at<ValueMatchType>(v, "type")});
  return out;
}

json headers_json(const std::vector<HeaderValue>& headers) {
  json out = json::array();
  for (const auto& h : headers) out.push_back({{"name", h.name}, {"value", h.value}});
  return out;
}

std::vector<HeaderValue> headers_at(const json& j) {
  std::vector<HeaderValue> out;
  for (const auto& h : j) out.push_back({h.at("name"), h.at("value")});
  return out;
}

json path_json(const PathModifier& p) {
  return {{"type", enum_name(p.type)},
          {p.type == PathModifierType::replace_full_path ? "replaceFullPath" : "replacePrefixMatch",
           p.value}};
}

PathModifier path_at(const json& j) {
  auto type = enum_at<PathModifierType>(j, "type");
  return {type, j.at(type == PathModifierType::replace_full_path ? "replaceFullPath"
                                                                 : "replacePrefixMatch")};
}

// The key under which a filter of `type` keeps its settings.
const char* filter_key(RouteFilterType type) {
  switch (type) {
    case RouteFilterType::request_header_modifier:
      return "requestHeaderModifier";
    case RouteFilterType::response_header_modifier:
      return "responseHeaderModifier";
    case RouteFilterType::request_redirect:
      return "requestRedirect";
    case RouteFilterType::url_rewrite:
      return "urlRewrite";
    case RouteFilterType::request_mirror:
      return "requestMirror";
  }
  return "";
}

json filter_json(const RouteFilter& f) {
  json settings = json::object();
  switch (f.type) {
    case RouteFilterType::request_header_modifier:
    case RouteFilterType::response_header_modifier:
      settings = {{"set", headers_json(f.headers.set)},
                  {"add", headers_json(f.headers.add)},
                  {"remove", f.headers.remove}};
      break;
    case RouteFilterType::request_redirect:
      settings = {{"statusCode", f.status_code}};
      if (!f.scheme.empty()) settings["scheme"] = f.scheme;
      if (!f.hostname.empty()) settings["hostname"] = f.hostname;
      if (f.port) settings["port"] = f.port;
      if (f.path) settings["path"] = path_json(*f.path);
      break;
    case RouteFilterType::url_rewrite:
      if (!f.hostname.empty()) settings["hostname"] = f.hostname;
      if (f.path) settings["path"] = path_json(*f.path);
      break;
    case RouteFilterType::request_mirror:
      settings = {{"backendRef", backend_json(*f.mirror, false)}};
      break;
  }
  return {{"type", enum_name(f.type)}, {filter_key(f.type), settings}};
}

RouteFilter filter_at(const json& j) {
  RouteFilter f;
  f.type = enum_at<RouteFilterType>(j, "type");
  const auto& s = j.at(filter_key(f.type));
  switch (f.type) {
    case RouteFilterType::request_header_modifier:
    case RouteFilterType::response_header_modifier:
      f.headers = {headers_at(s.at("set")), headers_at(s.at("add")),
                   s.at("remove").get<std::vector<std::string>>()};
      break;
    case RouteFilterType::request_redirect:
      f.status_code = s.at("statusCode");
      f.scheme = s.value("scheme", ""), f.hostname = s.value("hostname", "");
      f.port = s.value("port", 0);
      if (s.contains("path")) f.path = path_at(s["path"]);
      break;
    case RouteFilterType::url_rewrite:
      f.hostname = s.value("hostname", "");
      if (s.contains("path")) f.path = path_at(s["path"]);
      break;
    case RouteFilterType::request_mirror:
      f.mirror = backend_at(s.at("backendRef"));
      break;
  }
  return f;
}

}  // namespace

void to_json(json& j, const Gateway& g) {
  json listeners = json::array();
  for (const auto& l : g.listeners) {
    json listener = {{"name", l.name}, {"port", l.port}, {"protocol", enum_name(l.protocol)}};
    if (!l.hostname.empty()) listener["hostname"] = l.hostname;
    listeners.push_back(std::move(listener));
  }
  j = {{"name", g.name},
       {"namespace", g.namespace_},
       {"gatewayClassName", g.class_name},
       {"listeners", listeners},
       {"allowedRoutes", {{"namespaces", {{"from", enum_name(g.allowed_routes)}}}}}};
}

void from_json(const json& j, Gateway& g) {
  g = {};
  g.name = j.at("name"), g.namespace_ = j.at("namespace"), g.class_name = j.at("gatewayClassName");
  for (const auto& l : j.at("listeners"))
    g.listeners.push_back({l.at("name"), l.at("port"), enum_at<ListenerProtocol>(l, "protocol"),
                           l.value("hostname", "")});
  g.allowed_routes = enum_at<RouteNamespaces>(j.at("allowedRoutes").at("namespaces"), "from");
}

void to_json(json& j, const HttpRoute& r) {
  json parents = json::array(), rules = json::array();
  for (const auto& p : r.parents) {
    json parent = {{"name", p.name}, {"namespace", p.namespace_}};
    if (!p.section.empty()) parent["sectionName"] = p.section;
    parents.push_back(std::move(parent));
  }
  for (const auto& rule : r.rules) {
    json matches = json::array(), filters = json::array(), backends = json::array();
    for (const auto& m : rule.matches) {
      json match = {{"path", {{"type", enum_name(m.path_type)}, {"value", m.path}}},
                    {"headers", values_json(m.headers)},
                    {"queryParams", values_json(m.query_params)}};
      if (!m.method.empty()) match["method"] = m.method;
      matches.push_back(std::move(match));
    }
    for (const auto& f : rule.filters) filters.push_back(filter_json(f));
    for (const auto& b : rule.backends) backends.push_back(backend_json(b, true));
    rules.push_back({{"matches", matches}, {"filters", filters}, {"backendRefs", backends}});
  }
  j = {{"name", r.name},
       {"namespace", r.namespace_},
       {"parentRefs", parents},
       {"hostnames", r.hostnames},
       {"rules", rules}};
}

void from_json(const json& j, HttpRoute& r) {
  r = {};
  r.name = j.at("name"), r.namespace_ = j.at("namespace");
  for (const auto& p : j.at("parentRefs"))
    r.parents.push_back({p.at("name"), p.at("namespace"), p.value("sectionName", "")});
  r.hostnames = j.at("hostnames").get<std::vector<std::string>>();
  for (const auto& x : j.at("rules")) {
    RouteRule rule;
    for (const auto& m : x.at("matches"))
      rule.matches.push_back({enum_at<RoutePathType>(m.at("path"), "type"),
                              m.at("path").at("value"), values_at(m.at("headers")),
                              values_at(m.at("queryParams")), m.value("method", "")});
    for (const auto& f : x.at("filters")) rule.filters.push_back(filter_at(f));
    for (const auto& b : x.at("backendRefs")) rule.backends.push_back(backend_at(b));
    r.rules.push_back(std::move(rule));
  }
}

}  // namespace knl
