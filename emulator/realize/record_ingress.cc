// The JSON mapping of an ingress, in the shape of Kubernetes' Ingress
// (metadata's name, namespace and annotations beside its spec's fields),
// with the annotations the controller serves, as it read them, under "nginx".

#include "knetlab/realize/record.h"
#include "record_json.h"

namespace knl {

using nlohmann::json;
using record_json::enum_at;
using record_json::net_of;

namespace {

json backend_json(const IngressBackend& b) {
  json port = b.port_name.empty() ? json{{"number", b.port}} : json{{"name", b.port_name}};
  return {{"service", {{"name", b.service}, {"port", port}}}};
}

IngressBackend backend_at(const json& j) {
  const auto& s = j.at("service");
  const auto& port = s.at("port");
  return {s.at("name"), port.value("number", 0), port.value("name", "")};
}

}  // namespace

void to_json(json& j, const Ingress& in) {
  const auto& o = in.options;
  json rules = json::array(), tls = json::array(), whitelist = json::array();
  for (const auto& r : in.rules) {
    json paths = json::array();
    for (const auto& p : r.paths)
      paths.push_back({{"path", p.path},
                       {"pathType", enum_name(p.type)},
                       {"backend", backend_json(p.backend)}});
    json rule = {{"http", {{"paths", paths}}}};
    if (!r.host.empty()) rule["host"] = r.host;
    rules.push_back(std::move(rule));
  }
  for (const auto& hosts : in.tls) tls.push_back({{"hosts", hosts}});
  for (const auto& net : o.whitelist) whitelist.push_back(net.str());
  j = {{"name", in.name},
       {"namespace", in.namespace_},
       {"annotations", in.annotations},
       {"ingressClassName", in.class_name},
       {"rules", rules},
       {"tls", tls},
       {"nginx",
        {{"rewriteTarget", o.rewrite_target},
         {"useRegex", o.use_regex},
         {"sslRedirect", o.ssl_redirect},
         {"forceSslRedirect", o.force_ssl_redirect},
         {"canary", o.canary},
         {"canaryWeight", o.canary_weight},
         {"canaryByHeader", o.canary_by_header},
         {"canaryByHeaderValue", o.canary_by_header_value},
         {"affinityCookie", o.affinity_cookie},
         {"sessionCookieName", o.session_cookie_name},
         {"whitelistSourceRange", whitelist}}}};
  if (in.default_backend) j["defaultBackend"] = backend_json(*in.default_backend);
}

void from_json(const json& j, Ingress& in) {
  in = {};
  in.name = j.at("name"), in.namespace_ = j.at("namespace");
  in.annotations = j.at("annotations").get<Labels>();
  in.class_name = j.at("ingressClassName");
  for (const auto& r : j.at("rules")) {
    IngressRule rule{r.value("host", ""), {}};
    for (const auto& p : r.at("http").at("paths"))
      rule.paths.push_back(
          {p.at("path"), enum_at<PathType>(p, "pathType"), backend_at(p.at("backend"))});
    in.rules.push_back(std::move(rule));
  }
  for (const auto& t : j.at("tls")) in.tls.push_back(t.at("hosts").get<std::vector<std::string>>());
  if (j.contains("defaultBackend")) in.default_backend = backend_at(j["defaultBackend"]);
  const auto& n = j.at("nginx");
  auto& o = in.options;
  o.rewrite_target = n.at("rewriteTarget"), o.use_regex = n.at("useRegex");
  o.ssl_redirect = n.at("sslRedirect"), o.force_ssl_redirect = n.at("forceSslRedirect");
  o.canary = n.at("canary"), o.canary_weight = n.at("canaryWeight");
  o.canary_by_header = n.at("canaryByHeader"),
  o.canary_by_header_value = n.at("canaryByHeaderValue");
  o.affinity_cookie = n.at("affinityCookie"), o.session_cookie_name = n.at("sessionCookieName");
  for (const auto& net : n.at("whitelistSourceRange")) o.whitelist.push_back(net_of(net));
}

}  // namespace knl
