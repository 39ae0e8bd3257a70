#include "knetlab/realize/certificates.h"

#include <fmt/format.h>

#include <filesystem>

#include "knetlab/plan/gateway.h"
#include "knetlab/util/error.h"

namespace knl {

namespace {

void run_openssl(Programs& programs, const std::string& what, std::vector<std::string> argv) {
  auto r = programs.run({"", std::move(argv), ""});
  if (r.status == 127)
    throw SystemError(fmt::format("{}: openssl is missing: install it with `apt-get install "
                                  "openssl` (scripts/setup does)",
                                  what),
                      0);
  if (r.status != 0)
    throw SystemError(
        fmt::format("{}: openssl exit status {}: {}", what, r.status, r.output.substr(0, 2000)), 0);
}

}  // namespace

void make_certificates(Programs& programs, const Plan& plan) {
  auto certs = ingress_certificates(plan);
  for (auto& c : gateway_certificates(plan)) certs.push_back(std::move(c));
  if (certs.empty()) return;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(lab_ca_key_path(plan)).parent_path(), ec);
  if (ec) throw SystemError(fmt::format("make {}: {}", lab_ca_key_path(plan), ec.message()), 0);
  // P-256 keys: made in milliseconds, where RSA's take a tenth of a second each.
  const std::vector<std::string> key = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                        "-nodes"};
  if (!fs::exists(lab_ca_cert_path(plan))) {
    std::vector<std::string> argv = {"openssl", "req", "-x509"};
    argv.insert(argv.end(), key.begin(), key.end());
    argv.insert(argv.end(),
                {"-keyout", lab_ca_key_path(plan), "-out", lab_ca_cert_path(plan), "-days", "3650",
                 "-subj", fmt::format("/O=knetlab/CN=knetlab lab {} CA", plan.lab)});
    run_openssl(programs, fmt::format("the CA of lab \"{}\"", plan.lab), argv);
  }
  for (const auto& c : certs) {
    if (fs::exists(c.cert) && fs::exists(c.key)) continue;
    std::vector<std::string> argv = {"openssl", "req", "-x509"};
    argv.insert(argv.end(), key.begin(), key.end());
    argv.insert(argv.end(),
                {"-keyout", c.key, "-out", c.cert, "-days", "825", "-subj", "/CN=" + c.host,
                 "-addext", "subjectAltName=DNS:" + c.host, "-addext",
                 "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth",
                 "-CA", lab_ca_cert_path(plan), "-CAkey", lab_ca_key_path(plan)});
    run_openssl(programs, fmt::format("the certificate of TLS host {}", c.host), argv);
  }
}

}  // namespace knl
