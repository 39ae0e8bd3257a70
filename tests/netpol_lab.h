#pragma once
// The lab of the upstream netpol e2e tests, shared by the unit and the
// integration tests: namespaces x, y and z labelled ns=NAME, each with pods
// a, b and c labelled pod=NAME, whose two netexec containers serve TCP and
// UDP on 80 and on 81 (container ports serve-80-tcp, serve-80-udp, …).

#include <fmt/format.h>

#include <string>

namespace knl {

/// The namespaces and pods, as topology text to put after a lab's nodes.
inline std::string netpol_xyz_objects() {
  std::string text;
  for (const char* ns : {"x", "y", "z"})
    text += fmt::format("[[namespaces]]\nname = \"{0}\"\nlabels = {{ ns = \"{0}\" }}\n", ns);
  for (const char* ns : {"x", "y", "z"})
    for (const char* pod : {"a", "b", "c"}) {
      text += fmt::format(
          "[[pods]]\nname = \"{1}\"\nnamespace = \"{0}\"\nlabels = {{ pod = \"{1}\" }}\n", ns, pod);
      for (int port : {80, 81})
        text += fmt::format(
            "[[pods.containers]]\nname = \"c{0}\"\nimage = \"netexec\"\n"
            "args = [\"--http-port={0}\", \"--udp-port={0}\"]\n"
            "ports = [{{ name = \"serve-{0}-tcp\", containerPort = {0} }}, "
            "{{ name = \"serve-{0}-udp\", containerPort = {0}, protocol = \"UDP\" }}]\n",
            port);
    }
  return text;
}

}  // namespace knl
