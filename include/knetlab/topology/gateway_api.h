#pragma once
// The Gateway API's rules for which listeners a route attaches to, under
// which hostnames, and the status conditions a controller writes: pure
// functions of the model, shared by the parser's warnings, the data plane's
// configuration and the listings.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "knetlab/topology/model.h"

namespace knl {

/// The reasons of an HTTPRoute parent's Accepted and ResolvedRefs conditions.
enum class RouteReason {
  accepted,
  not_allowed_by_listeners,
  no_matching_listener_hostname,
  no_matching_parent,
  resolved_refs,
  backend_not_found
};

template <>
struct EnumNames<RouteReason> {
  static constexpr std::array table{
      std::pair{RouteReason::accepted, std::string_view("Accepted")},
      std::pair{RouteReason::not_allowed_by_listeners, std::string_view("NotAllowedByListeners")},
      std::pair{RouteReason::no_matching_listener_hostname,
                std::string_view("NoMatchingListenerHostname")},
      std::pair{RouteReason::no_matching_parent, std::string_view("NoMatchingParent")},
      std::pair{RouteReason::resolved_refs, std::string_view("ResolvedRefs")},
      std::pair{RouteReason::backend_not_found, std::string_view("BackendNotFound")}};
};

/// Whether hostname pattern `pattern` ("" matches any; "*.example.com"
/// matches any name ending in ".example.com") matches `host`.
bool hostname_matches(const std::string& pattern, const std::string& host);

/// The hostnames a request must carry for a route of hostname `route` on a
/// listener of hostname `listener` ("" is any): the more specific of the
/// two when one matches the other, nothing when they do not intersect.
std::optional<std::string> hostname_intersection(const std::string& listener,
                                                 const std::string& route);

/// A route on one listener of a gateway, with the hostnames it serves there
/// ("" alone: any host).
struct Attachment {
  const HttpRoute* route = nullptr;
  const Listener* listener = nullptr;
  std::vector<std::string> hostnames;
};

/// The routes attached to `gateway`'s listeners: those whose parentRef names
/// it (and the listener, when it names a section), that the listener's
/// allowedRoutes admits and whose hostnames intersect the listener's, in
/// `routes`' order.
std::vector<Attachment> gateway_attachments(const Gateway& gateway,
                                            const std::vector<HttpRoute>& routes);

/// Whether a backendRef of a route in namespace `ns` names a service with
/// that TCP port.
using BackendExists = std::function<bool(const std::string& ns, const BackendRef&)>;

/// One parentRef's conditions, as a Gateway API controller reports them.
struct ParentStatus {
  ParentRef parent;  // its namespace filled in
  bool accepted = false;
  RouteReason accepted_reason = RouteReason::accepted;
  bool resolved = false;
  RouteReason resolved_reason = RouteReason::resolved_refs;
  bool operator==(const ParentStatus&) const = default;
};

/// The status of `route` for each parentRef naming a served gateway of
/// `gateways` (another class's gateway has no controller to report).
std::vector<ParentStatus> route_status(const std::vector<Gateway>& gateways, const HttpRoute& route,
                                       const BackendExists& exists);

}  // namespace knl

namespace knl {

/// The data plane of gateway `g`: deployment and LoadBalancer service
/// "NAME-gateway" in its namespace.
inline std::string gateway_deployment_name(const Gateway& g) {
  return g.name + "-gateway";
}
/// Where an nginx data plane (ingress controller or gateway) answers its
/// readiness probe, /healthz, as ingress-nginx does; no listener may take it.
inline constexpr int kNginxHealthPort = 10254;

}  // namespace knl
