#pragma once
// Reads the image folders (images/<name>/image.toml) into the catalog that
// make_plan() resolves containers against.

#include <map>
#include <string>

#include "knetlab/plan/plan.h"

namespace knl {

/// Every image folder under `images_dir`; programs are looked up in `bin_dir`.
std::map<std::string, ImageSpec> load_image_catalog(const std::string& images_dir,
                                                    const std::string& bin_dir);

}  // namespace knl
