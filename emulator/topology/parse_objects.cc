// The parser's ingresses.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <regex>
#include <sstream>

#include "knetlab/util/error.h"
#include "parser.h"

namespace knl::parsing {

namespace {

constexpr const char* kAnnotationPrefix = "nginx.ingress.kubernetes.io/";

bool truth(const TableReader& t, const std::string& key, const std::string& value) {
  if (value == "true") return true;
  if (value == "false") return false;
  fail_at(
      t.find("annotations")->as_table().at(key),
      fmt::format("annotation \"{}\" = \"{}\": write \"true\" or \"false\"", key, excerpt(value)),
      key);
}

}  // namespace

bool fits_nginx(const std::string& text) {
  return !text.empty() && std::none_of(text.begin(), text.end(), [](unsigned char c) {
    return c <= ' ' || c >= 127 || c == '"' || c == '\'' || c == ';' || c == '{' || c == '}' ||
           c == '\\';
  });
}

bool is_token(const std::string& text, size_t max) {
  return !text.empty() && text.size() <= max &&
         std::all_of(text.begin(), text.end(), [](unsigned char c) {
           return std::isalnum(c) || c == '-' || c == '_' || c == '.';
         });
}

IngressAnnotations Parser::ingress_annotations(const TableReader& t, const Labels& annotations) {
  IngressAnnotations a;
  static const std::vector<std::string> served = {
      "rewrite-target", "use-regex",           "ssl-redirect",          "force-ssl-redirect",
      "canary",         "canary-weight",       "canary-by-header",      "canary-by-header-value",
      "affinity",       "session-cookie-name", "whitelist-source-range"};
  for (const auto& [key, value] : annotations) {
    const auto& at = t.find("annotations")->as_table().at(key);
    auto bad = [&](const std::string& what) {
      fail_at(at, fmt::format("annotation \"{}\" = \"{}\": {}", key, excerpt(value), what), key);
    };
    if (key.rfind(kAnnotationPrefix, 0) != 0) continue;  // another controller's, not ours
    auto name = key.substr(std::string(kAnnotationPrefix).size());
    if (name == "rewrite-target") {
      if (!fits_nginx(value) || value.front() != '/')
        bad("write a path starting with '/', without spaces, quotes, ';', '{', '}' or '\\'");
      a.rewrite_target = value;
    } else if (name == "use-regex") {
      a.use_regex = truth(t, key, value);
    } else if (name == "ssl-redirect") {
      a.ssl_redirect = truth(t, key, value);
    } else if (name == "force-ssl-redirect") {
      a.force_ssl_redirect = truth(t, key, value);
    } else if (name == "canary") {
      a.canary = truth(t, key, value);
    } else if (name == "canary-weight") {
      char* end = nullptr;
      long w = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end || w < 0 || w > 100) bad("write a percentage from 0 to 100");
      a.canary_weight = static_cast<int>(w);
    } else if (name == "canary-by-header") {
      if (!is_token(value, 64)) bad("write a header name of letters, digits and '-'");
      a.canary_by_header = value;
    } else if (name == "canary-by-header-value") {
      if (!is_token(value, 128)) bad("write letters, digits, '-', '_' and '.'");
      a.canary_by_header_value = value;
    } else if (name == "affinity") {
      if (value != "cookie") bad("the only affinity ingress-nginx knows is \"cookie\"");
      a.affinity_cookie = true;
    } else if (name == "session-cookie-name") {
      if (!is_token(value, 64)) bad("write a cookie name of letters, digits, '-', '_' and '.'");
      a.session_cookie_name = value;
    } else if (name == "whitelist-source-range") {
      std::string item;
      std::istringstream list(value);
      while (std::getline(list, item, ',')) {
        item.erase(0, item.find_first_not_of(' '));
        item.erase(item.find_last_not_of(' ') + 1);
        auto net = Ipv4Net::parse(item.find('/') == std::string::npos ? item + "/32" : item);
        if (!net) bad(fmt::format("\"{}\" is not an IPv4 address or network", excerpt(item)));
        a.whitelist.push_back(*net);
      }
      if (a.whitelist.empty()) bad("write networks separated by commas");
    } else {
      auto guess = nearest(name, served);
      topo_.warnings.push_back(
          {where_of(at, key),
           fmt::format("annotation \"{}\" is not served by the lab's ingress controller and has "
                       "no effect{}",
                       excerpt(key),
                       guess.empty()
                           ? ""
                           : fmt::format(" (did you mean \"{}{}\"?)", kAnnotationPrefix, guess))});
    }
  }
  if ((a.canary_weight || !a.canary_by_header.empty()) && !a.canary)
    topo_.warnings.push_back(
        {t.where(),
         "canary-weight and canary-by-header have no effect without the annotation "
         "\"nginx.ingress.kubernetes.io/canary\" = \"true\""});
  return a;
}

void Parser::ingress_host(const TableReader& t, const std::string& key, const std::string& host) {
  auto name = host.rfind("*.", 0) == 0 ? host.substr(2) : host;
  if (!is_domain_name(name) || name.find('.') == std::string::npos)
    t.fail(key, fmt::format("host \"{}\" is not a DNS name such as \"myapp.example.com\" (a "
                            "wildcard \"*.\" may start it)",
                            excerpt(host)));
}

void Parser::ingress_path(const TableReader& t, const IngressPath& path, bool use_regex) {
  bool regex = use_regex && path.type == PathType::implementation_specific;
  if (path.path.empty() || path.path.front() != '/' || !fits_nginx(path.path))
    t.fail("path", fmt::format("path \"{}\" must start with '/' and hold no spaces, quotes, ';', "
                               "'{{', '}}' or '\\'",
                               excerpt(path.path)));
  if (!regex && path.path.find_first_of("*?()[]^$|+") != std::string::npos)
    t.fail("path", fmt::format("path \"{}\" looks like a regular expression: write pathType = "
                               "\"ImplementationSpecific\" and the annotation "
                               "\"nginx.ingress.kubernetes.io/use-regex\" = \"true\"",
                               excerpt(path.path)));
  if (regex) {
    try {
      std::regex check(path.path);
    } catch (const std::regex_error& e) {
      t.fail("path", fmt::format("path \"{}\" is not a regular expression: {}", excerpt(path.path),
                                 e.what()));
    }
  }
}

IngressBackend Parser::ingress_backend(const TableReader& t, const std::string& ns) {
  t.allow_only({"path", "pathType", "service", "port"});
  IngressBackend b;
  service_ref(t, "service", ns);
  b.service = t.required_string("service");
  const auto* port = t.find("port");
  if (port && port->is_string())
    b.port_name = port->as_string().str;
  else
    b.port = static_cast<int>(t.integer("port", 80, 1, 65535));
  const auto& service =
      *std::find_if(topo_.services.begin(), topo_.services.end(),
                    [&](const Service& s) { return s.name == b.service && s.namespace_ == ns; });
  bool found = std::any_of(service.ports.begin(), service.ports.end(), [&](const ServicePort& p) {
    return p.protocol == Protocol::tcp &&
           (b.port_name.empty() ? p.port == b.port : p.name == b.port_name);
  });
  if (!found) {
    std::vector<std::string> ports;
    for (const auto& p : service.ports)
      if (p.protocol == Protocol::tcp)
        ports.push_back(p.name.empty() ? std::to_string(p.port)
                                       : fmt::format("{} ({})", p.port, p.name));
    t.fail("port", fmt::format("service {}/{} has no TCP port {}; its TCP ports: {}", ns, b.service,
                               b.port_name.empty() ? std::to_string(b.port)
                                                   : "\"" + excerpt(b.port_name) + "\"",
                               ports.empty() ? "none" : fmt::format("{}", fmt::join(ports, ", "))));
  }
  return b;
}

void Parser::ingresses() {
  UniqueNames ingress_names("ingress");
  for (const auto& t : root_.tables("ingresses")) {
    t.allow_only(
        {"name", "namespace", "ingressClassName", "annotations", "tls", "defaultBackend", "rules"});
    Ingress in;
    in.name = name_of(t), in.namespace_ = namespace_of(t), in.where = t.where();
    ingress_names.add(t, in.key());
    in.class_name = t.string("ingressClassName", "nginx");
    if (!in.served())
      topo_.warnings.push_back(
          {where_of(*t.find("ingressClassName"), "ingressClassName"),
           fmt::format("ingress {} has class \"{}\": kept, but only class \"nginx\" has a "
                       "controller in a lab",
                       in.key(), excerpt(in.class_name))});
    in.annotations = t.annotations("annotations");
    in.options = ingress_annotations(t, in.annotations);
    for (const auto& tls : t.tables("tls")) {
      tls.allow_only({"hosts", "secretName"});
      tls.string("secretName", "");
      auto hosts = tls.strings("hosts");
      for (const auto& h : hosts) ingress_host(tls, "hosts", h);
      in.tls.push_back(hosts);
    }
    if (auto d = t.table("defaultBackend")) in.default_backend = ingress_backend(*d, in.namespace_);
    for (const auto& rule : t.tables("rules")) {
      rule.allow_only({"host", "paths"});
      IngressRule r;
      r.host = rule.string("host", "");
      if (!r.host.empty()) ingress_host(rule, "host", r.host);
      for (const auto& path : rule.tables("paths")) {
        path.allow_only({"path", "pathType", "service", "port"});
        IngressPath ip;
        ip.path = path.string("path", "/");
        ip.type = path.choice("pathType", PathType::prefix);
        ingress_path(path, ip, in.options.use_regex);
        ip.backend = ingress_backend(path, in.namespace_);
        r.paths.push_back(std::move(ip));
      }
      if (r.paths.empty())
        rule.fail("paths",
                  "a rule needs paths = [{ path = \"/\", service = \"NAME\", port = 80 }]");
      in.rules.push_back(std::move(r));
    }
    if (in.rules.empty() && !in.default_backend)
      t.fail("rules", fmt::format("ingress {} has neither rules nor a defaultBackend", in.key()));
    topo_.ingresses.push_back(std::move(in));
  }
}

}  // namespace knl::parsing
