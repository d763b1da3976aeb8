// Process titles as nginx shows them in ps and top ("speedmimi: master process ...",
// "speedmimi: worker process"). The title is written over the argv area, which is grown into
// the environment strings after those are copied elsewhere (as nginx's ngx_setproctitle).
#pragma once

#include <string>
#include <vector>

namespace speedmimi::process {

// Call once, first thing in main(): keeps a copy of the arguments (for the binary upgrade's
// exec) and moves the environment out of the way. Returns the copy.
std::vector<std::string> initTitle(int argc, char** argv);

// Sets the title shown by ps (/proc/PID/cmdline; comm stays "speedmimi", so pgrep and
// pkill keep working). Truncated to the space available.
void setTitle(const std::string& title);

}  // namespace speedmimi::process
