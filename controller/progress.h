// Progress of a run as people read it: live lines on a terminal (one per active device, with its
// step, hop and transfer progress, and an overall bar), plain timestamped lines otherwise.
#pragma once

#include <iosfwd>
#include <memory>

#include "controller/executor.h"

namespace labctl::controller {

std::unique_ptr<ProgressSink> make_plain_progress(std::ostream& out);
// Cursor movement always (it is a terminal); colour only when `color`.
std::unique_ptr<ProgressSink> make_terminal_progress(std::ostream& out, bool color);

}  // namespace labctl::controller
