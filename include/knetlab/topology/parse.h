#pragma once
// Text -> Topology. Everything wrong in a file is reported here, before any
// layer touches the kernel, as a knl::UserError whose message starts with
// "FILE:LINE:COLUMN: " and says what to write instead.

#include <string>

#include "knetlab/topology/model.h"

namespace knl {

/// Far beyond any real lab (the benches' 10k-service labs included), and refused
/// before parsing: the TOML parser's time grows with size, its stack with nesting.
inline constexpr size_t kMaxTopologyBytes = 8u << 20;
inline constexpr size_t kMaxTopologyNesting = 64;

/// Reads and validates the topology file at `path`; a directory, a file
/// larger than kMaxTopologyBytes or nesting deeper than kMaxTopologyNesting
/// is refused with a message.
Topology parse_topology_file(const std::string& path);

/// Same, from text; `file` is the name used in messages.
Topology parse_topology(const std::string& text, const std::string& file);

/// Refuses, with the location of the first offending line, what the file may
/// say but this version does not build yet. validate and deploy call it.
void check_buildable(const Topology& topology);

/// Kernel and shell-safe object name: [a-z0-9-], starts and ends alphanumeric.
bool is_dns_label(const std::string& name, size_t max_length);
/// A port name as Kubernetes takes it (IANA_SVC_NAME): 1..15 characters of
/// a-z, 0-9 and '-', at least one letter, no "--", no '-' at either end.
bool is_iana_svc_name(const std::string& name);
inline constexpr const char* kIanaSvcNameRule =
    "1..15 characters of a-z, 0-9 and '-', at least one letter, no \"--\" and no '-' at "
    "either end";
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
