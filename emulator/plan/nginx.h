#pragma once
// What the ingress controller's and the gateways' nginx configurations
// share (plan/ingress.cc, plan/gateway.cc). Private to emulator/plan/.

#include <string>

#include "knetlab/plan/ingress.h"

namespace knl::nginx {

const ServicePlan* find_service(const Plan& plan, const std::string& ns, const std::string& name);

/// The "server ADDRESS;" lines of the ready endpoints of port `index` of
/// `service`; "" when it has none.
std::string endpoint_servers(const EndpointMap& endpoints, const ServicePlan& service,
                             size_t index);

/// The nginx variable of a request header: "X-Canary" -> "http_x_canary".
std::string header_variable(const std::string& header);

/// A literal path as a regular expression ('.' escaped; the parser refuses
/// the other metacharacters in literal paths).
std::string literal(const std::string& path);

/// `text` inside double quotes of nginx's configuration: '\', '"' and tab escaped.
std::string quoted(const std::string& text);

/// The start of a data-plane pod's configuration, up to and inside "http {":
/// its process, logs, temporary files, the headers every proxied request
/// gets, and the map that answers knetlab check's probe header.
std::string preamble(const PodPlan& pod, const std::string& title);

/// `text` (a preamble and its servers) closed with the health server, named
/// by a hash of everything else.
NginxConfig finish(std::string text);

}  // namespace knl::nginx
