// Replacing a file so that a crash at any moment leaves either the old contents or the new ones,
// never a mix (the state file, a configuration written by the API): write a temporary file in
// the same directory, fsync it, rename it over the target, fsync the directory.
#pragma once

#include <string>
#include <string_view>

namespace speedmimi::core {

// Writes `contents` to `path` atomically, with `mode` for a file that did not exist (an existing
// file keeps its mode). When `backup` is not empty the previous file, if any, is kept there
// (a hard link made before the rename, so it too is never half written). False with `error`
// ("PATH: what failed: strerror") and the target untouched.
bool writeFileAtomically(const std::string& path, std::string_view contents, std::string& error,
                         const std::string& backup = "", unsigned mode = 0644);

// The whole file. False with `error` ("PATH: cannot open: strerror"); `missing` is set, and
// `error` empty, when the file does not exist.
bool readWholeFile(const std::string& path, std::string& contents, std::string& error,
                   bool* missing = nullptr);

}  // namespace speedmimi::core
