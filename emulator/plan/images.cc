#include "knetlab/plan/images.h"

#include <fmt/format.h>

#include <filesystem>

#include "knetlab/topology/schema.h"
#include "knetlab/util/error.h"

namespace knl {

std::map<std::string, ImageSpec> load_image_catalog(const std::string& images_dir,
                                                    const std::string& bin_dir) {
  std::map<std::string, ImageSpec> catalog;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(images_dir, ec)) {
    auto manifest = entry.path() / "image.toml";
    if (!std::filesystem::exists(manifest)) continue;
    TomlValue root;
    try {
      root = toml::parse<toml::discard_comments, std::map, std::vector>(manifest.string());
    } catch (const toml::exception& e) {
      throw UserError(fmt::format("{}: not valid TOML: {}", manifest.string(), e.what()));
    }
    TableReader t(root, "image");
    t.allow_only({"program", "args", "description", "ports"});
    ImageSpec spec{entry.path().filename().string(), t.required_string("program"),
                   t.strings("args")};
    if (spec.program.front() != '/') spec.program = bin_dir + "/" + spec.program;
    catalog.emplace(spec.name, spec);
  }
  if (ec)
    throw UserError(fmt::format("{}: cannot list the image folders: {}", images_dir, ec.message()));
  return catalog;
}

}  // namespace knl
