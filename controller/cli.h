// The labctl command line (the contract in DESIGN.md).
//
// Exit codes: 0 success; 1 error (bad input, a failed command); 2 the command worked and found
// something to report (plan: devices unreachable or blocked); 3 the command is part of labctl's
// interface but not available in this build yet.
#pragma once

namespace labctl::controller {

int run_cli(int argc, char** argv);

}  // namespace labctl::controller
