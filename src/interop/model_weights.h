// Moves weights between an aero Model and the name -> tensor form used by import/export.
#pragma once
#include "interop/hf.h"
#include "model/model.h"

namespace aero::interop {

// Every parameter and buffer of the model, by its docs/config.md name.
AeroWeights weights_of(model::Model& m);
// Fills every parameter of m from w. A tensor the model needs but w lacks, or one of the
// wrong shape, is an error naming it; a tensor w has but the model does not use, too.
void load_into(const AeroWeights& w, model::Model& m);

}  // namespace aero::interop
