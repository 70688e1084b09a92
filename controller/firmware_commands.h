// `labctl firmware import|list|verify`: the local firmware store (docs/firmware-store.md).
#pragma once

#include <string>
#include <vector>

#include "controller/context.h"

namespace labctl::controller {

// Imports each bundle (or catalog-named image) into <state-dir>/firmware; each is all or nothing.
// Exit 0 when every one was imported or already present, 1 when any failed.
int cmd_firmware_import(Context& ctx, const std::vector<std::string>& files, bool json);
// The bundles in the store, with their files and the pinned checksums.
int cmd_firmware_list(Context& ctx, bool json);
// No arguments: re-hash every blob against the index. Arguments: a path to a file checks that
// file against the store (same name, same sha256?) and, when it is in a format labctl can verify
// offline (a Supermicro ATEN BMC image, plugins/supermicro_bmc/aten_image.h), its structure and
// every checksum in it; such a file need not be in the store. Anything else is a stored file name
// whose blob(s) are re-hashed. Exit 0 when all is well, 1 otherwise.
int cmd_firmware_verify(Context& ctx, const std::vector<std::string>& files, bool json);
// Downloads catalog files from their mirrors (controller/firmware_fetch.h) and imports them like
// `firmware import`: NAME (a file the catalog lists), FAMILY@VERSION (a release's files), or every
// file with a mirror when no argument is given. A file already in the store (intact) is skipped.
// Exit 0 when every one is in the store afterwards, 1 otherwise.
int cmd_firmware_fetch(Context& ctx, const std::vector<std::string>& args, bool json);

}  // namespace labctl::controller
