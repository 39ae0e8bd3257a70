#pragma once
// What the machine must have for a lab to be built, checked before anything
// of it is made.

#include <string>

#include "knetlab/plan/plan.h"

namespace knl {

/// Throws UserError naming `file` and what to install when the machine lacks
/// what `plan` needs: FRRouting for its daemons, Knot DNS for the cluster
/// DNS, and the br_netfilter module for network policies (without it, pods
/// of one node talk over its bridge past the node's rules).
void require_machine_support(const Plan& plan, const std::string& file);

}  // namespace knl
