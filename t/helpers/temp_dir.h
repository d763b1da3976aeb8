// A test's own temporary directory name, as the unit and the integration tests make them.
#pragma once

#include <string>

namespace speedmimi::testing {

// Makes a new directory $TMPDIR/NAME-XXXXXX (/tmp without TMPDIR) with mkdtemp, mode 0700, and
// returns its path; "" with errno set when it cannot.
std::string makeTempDir(const std::string& name);

}  // namespace speedmimi::testing
