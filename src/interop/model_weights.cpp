#include "interop/model_weights.h"

#include <algorithm>
#include <set>

#include "core/error.h"

namespace aero::interop {

AeroWeights weights_of(model::Model& m) {
  AeroWeights w;
  w.config = m.config();
  for (auto& p : m.params()) {
    w.tensors[p.name] = std::vector<float>(p.data, p.data + p.size);
    w.shapes[p.name] = p.shape;
  }
  return w;
}

void load_into(const AeroWeights& w, model::Model& m) {
  std::set<std::string> used;
  for (auto& p : m.params()) {
    auto it = w.tensors.find(p.name);
    if (it == w.tensors.end()) {
      // Buffers (spectral-norm vectors) and learnable extras keep their initial values.
      AERO_CHECK(!p.trainable, "imported weights lack tensor '", p.name, "'");
      continue;
    }
    AERO_CHECK(w.shapes.at(p.name) == p.shape, "tensor '", p.name, "' has the wrong shape for ",
               "this model");
    std::copy(it->second.begin(), it->second.end(), p.data);
    used.insert(p.name);
  }
  for (auto& [name, v] : w.tensors)
    AERO_CHECK(used.count(name), "tensor '", name, "' has no place in this model's configuration");
}

}  // namespace aero::interop
