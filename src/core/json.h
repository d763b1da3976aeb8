// Jansson values owned by RAII handles (STYLE: every C handle in a unique_ptr with its free
// function). Jansson counts references: a JsonPtr holds one, and json_decref drops it.
#pragma once

#include <jansson.h>

#include <memory>
#include <string>

namespace speedmimi::core {

struct JsonDecref {
  void operator()(json_t* value) const { json_decref(value); }
};
using JsonPtr = std::unique_ptr<json_t, JsonDecref>;

// A new reference to `value` (which may be null), for code that keeps a borrowed value.
inline JsonPtr jsonRef(json_t* value) { return JsonPtr(json_incref(value)); }

// `value` as compact JSON text with keys in insertion order; "" when Jansson cannot allocate.
inline std::string jsonText(const json_t* value, size_t flags = JSON_COMPACT) {
  char* text = json_dumps(value, flags | JSON_ENCODE_ANY);
  if (!text) return "";
  std::string out(text);
  free(text);
  return out;
}

}  // namespace speedmimi::core
