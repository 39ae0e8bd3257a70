#include "knetlab/topology/gateway_api.h"

#include <algorithm>

namespace knl {

namespace {

bool wildcard(const std::string& h) {
  return h.rfind("*.", 0) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const Gateway* find_gateway(const std::vector<Gateway>& gateways, const ParentRef& p) {
  for (const auto& g : gateways)
    if (g.name == p.name && g.namespace_ == p.namespace_) return &g;
  return nullptr;
}

}  // namespace

bool hostname_matches(const std::string& pattern, const std::string& host) {
  if (pattern.empty()) return true;
  if (!wildcard(pattern)) return pattern == host;
  const auto suffix = pattern.substr(1);  // ".example.com"
  return host.size() > suffix.size() && ends_with(host, suffix);
}

std::optional<std::string> hostname_intersection(const std::string& listener,
                                                 const std::string& route) {
  if (listener.empty()) return route;
  if (route.empty()) return listener;
  if (hostname_matches(listener, route)) return route;
  if (hostname_matches(route, listener)) return listener;
  return std::nullopt;
}

std::vector<Attachment> gateway_attachments(const Gateway& gateway,
                                            const std::vector<HttpRoute>& routes) {
  std::vector<Attachment> out;
  for (const auto& route : routes) {
    if (gateway.allowed_routes == RouteNamespaces::same && route.namespace_ != gateway.namespace_)
      continue;
    for (const auto& listener : gateway.listeners) {
      bool named = std::any_of(route.parents.begin(), route.parents.end(), [&](const ParentRef& p) {
        return p.name == gateway.name && p.namespace_ == gateway.namespace_ &&
               (p.section.empty() || p.section == listener.name);
      });
      if (!named) continue;
      Attachment a{&route, &listener, {}};
      if (route.hostnames.empty()) a.hostnames.push_back(listener.hostname);
      for (const auto& h : route.hostnames)
        if (auto both = hostname_intersection(listener.hostname, h)) a.hostnames.push_back(*both);
      if (!a.hostnames.empty()) out.push_back(std::move(a));
    }
  }
  return out;
}

std::vector<ParentStatus> route_status(const std::vector<Gateway>& gateways, const HttpRoute& route,
                                       const BackendExists& exists) {
  bool resolved = true;
  for (const auto& rule : route.rules) {
    for (const auto& b : rule.backends) resolved = resolved && exists(route.namespace_, b);
    for (const auto& f : rule.filters)
      if (f.mirror) resolved = resolved && exists(route.namespace_, *f.mirror);
  }
  std::vector<ParentStatus> out;
  for (const auto& parent : route.parents) {
    const auto* g = find_gateway(gateways, parent);
    if (!g || !g->served()) continue;
    ParentStatus s{parent, false, RouteReason::no_matching_parent, resolved,
                   resolved ? RouteReason::resolved_refs : RouteReason::backend_not_found};
    bool section_found = false, allowed = false, hostname = false;
    for (const auto& l : g->listeners) {
      if (!parent.section.empty() && parent.section != l.name) continue;
      section_found = true;
      if (g->allowed_routes == RouteNamespaces::same && route.namespace_ != g->namespace_) continue;
      allowed = true;
      bool any = route.hostnames.empty();
      for (const auto& h : route.hostnames) any = any || hostname_intersection(l.hostname, h);
      hostname = hostname || any;
    }
    s.accepted = section_found && allowed && hostname;
    s.accepted_reason = !section_found ? RouteReason::no_matching_parent
                        : !allowed     ? RouteReason::not_allowed_by_listeners
                        : !hostname    ? RouteReason::no_matching_listener_hostname
                                       : RouteReason::accepted;
    out.push_back(s);
  }
  return out;
}

}  // namespace knl
