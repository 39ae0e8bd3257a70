#pragma once
// The ingress controller as ingress-nginx runs it, decided without touching
// anything: its objects (deployment ingress-nginx/ingress-nginx-controller,
// a LoadBalancer service with nodePorts 30080 and 30443), the nginx
// configuration rendered from the lab's ingresses and the ready endpoints of
// their services (nginx proxies to the pods, not to the ClusterIP), and the
// certificates its TLS hosts need from the lab's CA.

#include <string>
#include <vector>

#include "knetlab/plan/plan.h"
#include "knetlab/topology/gateway_api.h"

namespace knl {

inline constexpr const char* kIngressNamespace = "ingress-nginx";
inline constexpr const char* kIngressController = "ingress-nginx-controller";
inline constexpr const char* kNginxImage = "nginx";
inline constexpr int kIngressHttpNodePort = 30080;
inline constexpr int kIngressHttpsNodePort = 30443;
/// A request carrying this header gets kIngressUpstreamHeader in its answer:
/// the pod address nginx proxied it to (knetlab check asks with it).
inline constexpr const char* kIngressProbeHeader = "X-Knetlab-Probe";
inline constexpr const char* kIngressUpstreamHeader = "X-Knetlab-Upstream";

/// Adds the controller's objects to `topology`, marked `system`, when it has
/// an ingress of class "nginx": namespace ingress-nginx (labelled
/// app.kubernetes.io/name=ingress-nginx), deployment ingress-nginx-controller
/// (1 replica, image nginx, ports http 80 and https 443) and the
/// LoadBalancer service of the same name (80 → nodePort 30080, 443 → 30443).
void add_ingress_objects(Topology& topology);

/// A TLS host's certificate and key, signed by the lab's CA.
struct Certificate {
  std::string host;  // "myapp.example.com" or "*.example.com" (the SAN)
  std::string cert, key;
  bool operator==(const Certificate&) const = default;
};

/// The lab's CA (clients trust `ca.crt` with curl --cacert).
std::string lab_ca_cert_path(const Plan& plan);
std::string lab_ca_key_path(const Plan& plan);
/// The files of `host`'s certificate from the lab's CA.
Certificate lab_certificate(const Plan& plan, const std::string& host);
/// Every certificate the served ingresses' TLS hosts need, and the
/// controller's own for requests naming no TLS host (CN "ingress.local").
std::vector<Certificate> ingress_certificates(const Plan& plan);

/// Where a controller pod's configuration is.
std::string nginx_config_path(const PodPlan& pod);
/// The command that checks the nginx configuration at `path` without
/// serving it (nginx -t); it fails with nginx's own message.
std::vector<std::string> nginx_test_argv(const std::string& path);

/// A rendered nginx configuration.
struct NginxConfig {
  std::string text;
  /// A path on the health port that answers 200 once, and only while, nginx
  /// serves this text: a reload is done when it answers.
  std::string served_path;
};

/// The nginx configuration of controller pod `pod` for the served ingresses
/// of `plan` with `endpoints` (the ready ones): one server per host (the
/// ingresses of one host merged, wildcard hosts matching one label), rules
/// without a host and unmatched hosts on the default server, whose answer
/// is 404 (or the first ingress's defaultBackend); a location per path by
/// its pathType (regular expressions, longest first, for a host any of whose
/// ingresses uses use-regex or rewrite-target); a backend without ready
/// endpoints answers 503. TLS hosts listen on 443 with their certificate and
/// redirect HTTP with 308 unless ssl-redirect is "false". Canary ingresses
/// split their host and path's requests by header and weight; cookie
/// affinity pins a client to an endpoint; whitelist-source-range answers 403
/// to other addresses.
NginxConfig ingress_nginx_config(const Plan& plan, const PodPlan& pod,
                                 const EndpointMap& endpoints);

/// Whether `host` is a TLS host of one of the served `ingresses`.
bool ingress_tls_host(const std::vector<Ingress>& ingresses, const std::string& host);

/// What serves a request, by Kubernetes' ingress semantics as ingress-nginx
/// applies them.
struct IngressRoute {
  const Ingress* ingress = nullptr;  // null: nothing matched and no defaultBackend (404)
  IngressPath path;                  // the path that matched, with its backend
  const Ingress* canary = nullptr;   // a canary of the same host and path, if any
  IngressBackend canary_backend;
};

/// The route of a request for `host` (no port) and `path` (a query is
/// ignored) among the served `ingresses`: the rules of exactly `host`, else
/// of a wildcard host matching its first label, else those without a host;
/// among their paths an Exact one equal to the path, else the longest
/// matching prefix by path element (or, on a host any of whose ingresses
/// uses use-regex or rewrite-target, the longest matching expression,
/// case-insensitive); else the first ingress's defaultBackend.
IngressRoute route_ingress_request(const std::vector<Ingress>& ingresses, const std::string& host,
                                   const std::string& path);

}  // namespace knl
