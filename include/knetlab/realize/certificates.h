#pragma once
// The lab's TLS certificates: a CA of its own (/run/knetlab/LAB/ca.crt, for
// `curl --cacert`) and a certificate per TLS host of its ingresses and per
// hostname of its gateways' HTTPS listeners, made by
// the machine's openssl before nginx needs them.

#include "knetlab/kernel/programs.h"
#include "knetlab/plan/plan.h"

namespace knl {

/// Makes the lab's CA when it has none, and every certificate of
/// ingress_certificates(plan) and gateway_certificates(plan) that is missing (a running lab's are
/// kept). Throws SystemError naming the host and openssl's output when openssl fails, or is
/// missing.
void make_certificates(Programs& programs, const Plan& plan);

}  // namespace knl
