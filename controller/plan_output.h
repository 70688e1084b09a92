// How a plan reads on a terminal (the JSON form is Plan::to_json).
#pragma once

#include <iosfwd>

#include "controller/planner.h"

namespace labctl::controller {

struct TextStyle {
  bool color = false;
};

void print_plan(std::ostream& out, const Plan& plan, const TextStyle& style = {});

}  // namespace labctl::controller
