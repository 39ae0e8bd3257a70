#pragma once
// The Gateway API's data plane, decided without touching anything: each
// served Gateway's objects (deployment and LoadBalancer service
// NAME-gateway), the nginx configuration rendered from the routes attached
// to its listeners and the ready endpoints of their backends, the
// certificates of its HTTPS listeners, and which rule answers a request.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "knetlab/plan/ingress.h"
#include "knetlab/topology/gateway_api.h"

namespace knl {

/// The label of a gateway's data-plane pods, valued with its name.
inline constexpr const char* kGatewayNameLabel = "gateway.networking.k8s.io/gateway-name";

/// Adds, for each served gateway of `topology`, deployment NAME-gateway (1
/// replica, image nginx, labelled kGatewayNameLabel=NAME, a port per
/// listener port) and the LoadBalancer service of the same name serving
/// every listener port (nodePorts allocated), both marked `system`.
void add_gateway_objects(Topology& topology);

/// The gateway whose data plane `pod` is, or null.
const Gateway* gateway_of(const std::vector<Gateway>& gateways, const PodPlan& pod);

/// One match of one rule of a route, where a gateway serves it.
struct RouteEntry {
  const HttpRoute* route = nullptr;
  size_t rule = 0, match = 0;
  const RouteRule& the_rule() const { return route->rules[rule]; }
  const RouteMatch& the_match() const { return the_rule().matches[match]; }
};

/// What a gateway serves on one port for one hostname ("" any): its
/// entries in the order the Gateway API gives them precedence (Exact path,
/// then RegularExpression, then the longest PathPrefix; then a method, the
/// most headers, the most query parameters; then the routes' and rules'
/// order in the file).
struct GatewayServer {
  int port = 80;
  ListenerProtocol protocol = ListenerProtocol::http;
  std::string hostname;
  std::string listener_hostname;  // of the listener it came from: its certificate's
  std::vector<RouteEntry> entries;
};

/// The servers of `gateway` with the attached `routes`, by port then
/// hostname; every listener has one, with no entries if no route attaches.
std::vector<GatewayServer> gateway_servers(const Gateway& gateway,
                                           const std::vector<HttpRoute>& routes);

/// A request as a gateway sees it.
struct GatewayRequest {
  int port = 80;
  std::string host, method = "GET", path = "/", query;  // query without '?'
  std::map<std::string, std::string> headers;           // lower-case names
};

/// The server a request reaches (the listener port's server of exactly its
/// host, else of the longest wildcard matching it, else of any host) and
/// the entry that answers it there; nullopt entry: 404.
struct GatewayRoute {
  const GatewayServer* server = nullptr;
  std::optional<RouteEntry> entry;
};
GatewayRoute route_gateway_request(const std::vector<GatewayServer>& servers,
                                   const GatewayRequest& request);

/// The name an HTTPS listener's certificate is for: its hostname, or
/// "GATEWAY.NS.gateway.local" for a listener of any host.
std::string gateway_certificate_host(const Gateway& g, const std::string& listener_hostname);
/// Every certificate the served gateways' HTTPS listeners need, one per
/// gateway_certificate_host.
std::vector<Certificate> gateway_certificates(const Plan& plan);

/// The nginx configuration of `pod`, a data-plane pod of gateway `gateway`:
/// a server per port and hostname; a map from the request's method, path,
/// query and matched headers picks the entry, whose internal location
/// applies its filters and proxies to its backends' ready endpoints, split
/// by weight (a missing backend answers 500, one without endpoints 503, no
/// entry 404).
NginxConfig gateway_nginx_config(const Plan& plan, const PodPlan& pod,
                                 const EndpointMap& endpoints);

/// The configuration of any nginx pod: the ingress controller's or a
/// gateway's.
NginxConfig nginx_pod_config(const Plan& plan, const PodPlan& pod, const EndpointMap& endpoints);

/// The files of nginx pod `pod`: its configuration with every endpoint
/// taken as ready.
std::vector<FileSpec> nginx_pod_files(const Plan& plan, const PodPlan& pod);

}  // namespace knl
