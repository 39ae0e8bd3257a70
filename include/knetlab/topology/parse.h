#pragma once
// Text -> Topology. Everything wrong in a file is reported here, before any
// layer touches the kernel, as a knl::UserError whose message starts with
// "FILE:LINE:COLUMN: " and says what to write instead.

#include <string>

#include "knetlab/topology/model.h"

namespace knl {

/// Reads and validates the topology file at `path`.
Topology parse_topology_file(const std::string& path);

/// Same, from text; `file` is the name used in messages.
Topology parse_topology(const std::string& text, const std::string& file);

/// Refuses, with the location of the first offending line, what the file may
/// say but this version does not build yet. validate and deploy call it.
void check_buildable(const Topology& topology);

/// Kernel and shell-safe object name: [a-z0-9-], starts and ends alphanumeric.
bool is_dns_label(const std::string& name, size_t max_length);
/// Labels of is_dns_label (at most 63 characters) joined by dots, at most 253
/// characters in all, with no final dot: "db.example.com".
bool is_domain_name(const std::string& name);
/// Kubernetes' label key: an optional DNS subdomain and '/', then 1..63
/// characters of letters, digits, '-', '_' and '.', starting and ending with
/// a letter or digit ("app", "kubernetes.io/metadata.name").
bool is_label_key(const std::string& key);
/// Kubernetes' label value: empty, or as a label key's name part.
bool is_label_value(const std::string& value);

}  // namespace knl
