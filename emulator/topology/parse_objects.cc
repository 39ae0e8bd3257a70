// The parser's objects whose layers come later: ingresses and Gateway API
// objects, checked for shape and references.

#include <fmt/format.h>

#include "knetlab/util/error.h"
#include "parser.h"

namespace knl::parsing {

// Shapes of the objects whose layers come later: keys, names, references.
void Parser::shapes() {
  auto objects = [&](const char* key, const char* kind, std::initializer_list<const char*> keys,
                     std::vector<NamedObject>& into) {
    UniqueNames names(kind);
    for (const auto& t : root_.tables(key)) {
      t.allow_only(keys);
      NamedObject o{kind, name_of(t), namespace_of(t), t.where()};
      names.add(t, o.namespace_ + "/" + o.name);
      into.push_back(o);
    }
    return names;
  };
  objects("ingresses", "ingress",
          {"name", "namespace", "ingressClassName", "annotations", "tls", "rules"},
          topo_.ingresses);
  for (const auto& t : root_.tables("ingresses")) {
    t.string("ingressClassName", "nginx");
    t.annotations("annotations");
    for (const auto& tls : t.tables("tls")) {
      tls.allow_only({"hosts", "secretName"});
      tls.strings("hosts");
    }
    for (const auto& rule : t.tables("rules")) {
      rule.allow_only({"host", "paths"});
      rule.string("host", "");
      for (const auto& path : rule.tables("paths")) {
        path.allow_only({"path", "pathType", "service", "port"});
        path.one_of("pathType", "Prefix", {"Prefix", "Exact", "ImplementationSpecific"});
        service_ref(path, "service", namespace_of(t));
        path.integer("port", 80, 1, 65535);
      }
    }
  }
  auto gateways = objects("gateways", "gateway",
                          {"name", "namespace", "gatewayClassName", "listeners"}, topo_.gateways);
  for (const auto& t : root_.tables("gateways")) {
    for (const auto& l : t.tables("listeners")) {
      l.allow_only({"name", "port", "protocol", "hostname"});
      l.integer("port", 80, 1, 65535);
      l.one_of("protocol", "HTTP", {"HTTP", "HTTPS"});
    }
  }
  objects("httpRoutes", "httpRoute", {"name", "namespace", "parentRefs", "hostnames", "rules"},
          topo_.http_routes);
  for (const auto& t : root_.tables("httpRoutes")) {
    for (const auto& parent : t.strings("parentRefs"))
      if (!gateways.contains(namespace_of(t) + "/" + parent))
        t.fail("parentRefs",
               fmt::format("unknown gateway \"{}\"; define it under [[gateways]]", parent));
    t.strings("hostnames");
    for (const auto& rule : t.tables("rules")) {
      rule.allow_only({"matches", "backendRefs"});
      for (const auto& m : rule.tables("matches")) m.allow_only({"path", "headers", "method"});
      for (const auto& b : rule.tables("backendRefs")) {
        b.allow_only({"name", "port", "weight"});
        service_ref(b, "name", namespace_of(t));
        b.integer("weight", 1, 0, 1000000);
      }
    }
  }
}

}  // namespace knl::parsing
