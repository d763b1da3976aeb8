#include "t/helpers/temp_dir.h"

#include <stdlib.h>

#include <cstdlib>

namespace speedmimi::testing {

std::string makeTempDir(const std::string& name) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" + name + "-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) return "";
  return pattern;
}

}  // namespace speedmimi::testing
