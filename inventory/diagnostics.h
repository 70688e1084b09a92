// Diagnostics: every problem found in an inventory or catalog, with its file:line:column.
//
// Loaders never stop at the first problem: they collect all of them so `labctl validate` can
// report every one at once, then refuse to hand out a half-valid model.
#pragma once

#include <string>
#include <vector>

namespace labctl::inventory {

// A position in a source file, 1-based. line 0 means "the file as a whole".
struct Mark {
  int line = 0;
  int column = 0;
};

enum class Severity { Error, Warning };

struct Diagnostic {
  Severity severity = Severity::Error;
  std::string file;
  Mark mark;
  std::string message;

  // "lab.yaml:12:7: error: unknown key 'modle' (did you mean 'model'?)"
  std::string format() const;
};

class Diagnostics {
 public:
  void error(const std::string& file, Mark mark, std::string message);
  void warning(const std::string& file, Mark mark, std::string message);

  bool has_errors() const { return errors_ > 0; }
  std::size_t error_count() const { return errors_; }
  // In the order found, which follows the file from top to bottom for a single pass.
  const std::vector<Diagnostic>& items() const { return items_; }
  // Items sorted by file, line, column (stable), for printing.
  std::vector<Diagnostic> sorted() const;
  void merge(const Diagnostics& other);

 private:
  std::vector<Diagnostic> items_;
  std::size_t errors_ = 0;
};

}  // namespace labctl::inventory
