#pragma once
// The planner's parts that live in files of their own. Private to emulator/plan/.

#include "knetlab/plan/plan.h"

namespace knl {

/// FRR: which namespaces of `plan` run it (the racks' routers and the spine,
/// the LAN's router and the nodes when they peer), whom each peers with,
/// what each originates and which routes each kernel must hold once BGP has
/// converged; their configuration files and daemons. Runs after the nodes,
/// routers and services are planned.
void plan_bgp(const Topology& topology, const PlanContext& context, Plan& plan);

}  // namespace knl
