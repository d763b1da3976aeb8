#include "process/title.h"

#include <unistd.h>

#include <cstring>

extern char** environ;

namespace speedmimi::process {
namespace {

char* g_area = nullptr;   // argv[0]
size_t g_size = 0;        // bytes from argv[0] to the end of the last contiguous string

}  // namespace

std::vector<std::string> initTitle(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  if (argc == 0 || argv[0] == nullptr) return args;
  char* end = argv[0] + std::strlen(argv[0]) + 1;
  for (int i = 1; i < argc && argv[i] == end; ++i) end = argv[i] + std::strlen(argv[i]) + 1;
  // The environment usually follows the arguments: copy it out so its space can be used.
  size_t count = 0;
  while (environ[count]) ++count;
  char** copy = new char*[count + 1];  // lives as long as the process, as environ does
  for (size_t i = 0; i < count; ++i) {
    if (environ[i] == end) end = environ[i] + std::strlen(environ[i]) + 1;
    copy[i] = strdup(environ[i]);
  }
  copy[count] = nullptr;
  environ = copy;
  g_area = argv[0];
  g_size = static_cast<size_t>(end - argv[0]);
  for (int i = 1; i < argc; ++i) argv[i] = nullptr;  // ps reads one string from argv[0]
  return args;
}

void setTitle(const std::string& title) {
  if (g_area && g_size > 1) {
    size_t n = std::min(title.size(), g_size - 1);
    std::memcpy(g_area, title.data(), n);
    std::memset(g_area + n, 0, g_size - n);
  }
}

}  // namespace speedmimi::process
