#pragma once
// Network policies as the command line shows them: get's table, describe's
// text and the world check compares packets with. Private to emulator/cli/.

#include <string>

#include "knetlab/cli/commands.h"
#include "knetlab/plan/policy.h"
#include "knetlab/realize/record.h"

namespace knl::cli {

/// The record's policies, namespaces and pods as plan/policy.h sees them;
/// the world points into nothing else, so `state` may go away.
PolicyWorld record_world(const LabRecord& state);

/// get networkpolicies: one row per policy (named `name`, if given).
void print_network_policies(const LabRecord& state, bool wide, const std::string& name);

/// describe networkpolicy/NAME: the spec as kubectl describes it, the pods
/// it selects and each peer matches now, and its rules' packet counters,
/// read from every node's table.
void describe_network_policy(const LabRecord& state, const NetworkPolicy& policy);

/// check --policies: every pod's served ports probed from every pod, as the
/// upstream network-policy e2e tests' truth tables; 1 when any cell differs
/// from policy_verdict().
int check_policies(const CheckOptions& options);

}  // namespace knl::cli
