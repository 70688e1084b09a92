#include "inventory/diagnostics.h"

#include <algorithm>
#include <tuple>

namespace labctl::inventory {

std::string Diagnostic::format() const {
  std::string out = file;
  if (mark.line > 0) {
    out += ":" + std::to_string(mark.line);
    if (mark.column > 0) out += ":" + std::to_string(mark.column);
  }
  out += severity == Severity::Error ? ": error: " : ": warning: ";
  out += message;
  return out;
}

void Diagnostics::error(const std::string& file, Mark mark, std::string message) {
  items_.push_back({Severity::Error, file, mark, std::move(message)});
  ++errors_;
}

void Diagnostics::warning(const std::string& file, Mark mark, std::string message) {
  items_.push_back({Severity::Warning, file, mark, std::move(message)});
}

std::vector<Diagnostic> Diagnostics::sorted() const {
  auto out = items_;
  std::stable_sort(out.begin(), out.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.file, a.mark.line, a.mark.column) <
           std::tie(b.file, b.mark.line, b.mark.column);
  });
  return out;
}

void Diagnostics::merge(const Diagnostics& other) {
  for (const auto& d : other.items_) {
    items_.push_back(d);
    if (d.severity == Severity::Error) ++errors_;
  }
}

}  // namespace labctl::inventory
