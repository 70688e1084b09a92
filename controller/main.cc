#include "controller/cli.h"

int main(int argc, char** argv) {
  return labctl::controller::run_cli(argc, argv);
}
