#include "controller/run_signals.h"

#include <unistd.h>

namespace labctl::controller {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_cancel{false};

void on_signal(int) {
  if (!g_stop.exchange(true)) {
    const char msg[] =
        "\nlabctl: stopping after the running steps finish (interrupt again to abort them)\n";
    (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
  } else {
    g_cancel.store(true);
  }
}

}  // namespace

RunSignals::RunSignals() {
  g_stop = false;
  g_cancel = false;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int_);
  ::sigaction(SIGTERM, &sa, &old_term_);
}

RunSignals::~RunSignals() {
  ::sigaction(SIGINT, &old_int_, nullptr);
  ::sigaction(SIGTERM, &old_term_, nullptr);
}

const std::atomic<bool>& RunSignals::stop() const {
  return g_stop;
}
const std::atomic<bool>& RunSignals::cancel() const {
  return g_cancel;
}

}  // namespace labctl::controller
