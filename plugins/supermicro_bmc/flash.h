// Firmware flashing through the BMC's web interface, as journaled steps (plan) and their
// executors. One hop to version V is:
//
//   verify-image@V    the image re-verified: sha256 against its pin, every ATEN checksum, the
//                     board generation and version V (aten_image.h)
//   identify@V        Get Device ID over IPMI: Supermicro (10876), the product ids the catalog
//                     lists, the version the plan started from, no update already running
//   upload@V          web login, the upload lock, the multipart upload
//   check-upload@V    the version the BMC reads from the upload is V
//   start-flash@V     the start request (preserve configuration or reset to factory settings),
//                     confirmed by the progress rising
//   flash-progress@V  the progress polled to 100% (or until the BMC goes away to restart)
//   wait-offline@V    the BMC restarts: its web interface goes away
//   wait-online@V     IPMI answers again (with the inventory's login or, after a reset, ADMIN)
//   verify-version@V  Get Device ID reports V
//
// Every step is idempotent and asks the device whether it is done: a BMC that already runs V has
// done all of them. Nothing reaches the BMC's web interface before verify-image and identify have
// passed in the same run. The web session (its cookie, the upload lock, the uploaded image) lives
// in memory only, between the steps of one process; a step that finds it gone (labctl restarted,
// the session expired) logs in and uploads again before it goes on.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "inventory/schema.h"
#include "plugins/sdk/plugin.h"
#include "plugins/supermicro_bmc/web_flasher.h"

namespace labctl::supermicro_bmc {

// The `web:` key of the inventory: how to reach the web interface and flash through it.
inventory::KeySpec web_schema();
// Inventory checks of `web:` beyond the schema (a profile that exists, a readable profile file).
void check_web_keys(const sdk::Device& d, inventory::DeviceReport& report);

// What one flash needs to know, besides the device.
struct FlashRequest {
  std::string to, from;  // versions; `from` "" when unknown (the verb on an unreachable BMC)
  int hop = 1, hops = 1;
  std::string reason;
  bool preserve_config = true;
  std::string preserve_why;  // "the catalog recommends a reset to factory settings for 2.50"
  sdk::json image;           // {"model", "release"} (firmware store) or {"file", "name", "sha256"}
  std::string profile;       // a built-in profile's name, or "" with profile_file
  std::string profile_file;
  bool accept_unconfirmed = false;
};

// The request for a catalog hop: profile, preserve-config and image from the catalog release's
// options and the inventory's `web:` keys.
Result<FlashRequest> hop_request(const sdk::Device& d, const sdk::HopInfo& hop);
// The flash steps of a request (pure; reads a profile file when the inventory names one).
// PreconditionFailed for an unconfirmed profile the operator has not accepted.
Result<std::vector<sdk::Step>> flash_steps(const sdk::Device& d, const FlashRequest& req);
// Whether these firmware steps end with the BMC at factory settings (so the reconcile steps must
// set the inventory's login and LAN settings again).
bool resets_to_factory(const std::vector<sdk::Step>& firmware_steps);

bool is_flash_action(const std::string& action);

// An image file's bytes, refused over 64 MiB (no BMC image of these boards is that big).
Result<std::vector<std::uint8_t>> read_image_file(const std::string& path);

// The executors. Holds each device's web session between its steps (steps of one device never
// run at once; different devices may).
class FlashRunner {
 public:
  FlashRunner();
  ~FlashRunner();
  Result<bool> step_done(sdk::DeviceContext& ctx, const sdk::Device& d, const sdk::Step& step);
  Status run_step(sdk::DeviceContext& ctx, const sdk::Device& d, const sdk::Step& step);
  // `labctl bmc NAME firmware flash FILE`: the image checked, then the steps (in `data`) that
  // the controller runs as a journaled run.
  Result<sdk::VerbResult> plan_verb(sdk::DeviceContext& ctx, const sdk::Device& d,
                                    const sdk::json& args);

  struct DeviceWeb;

 private:
  DeviceWeb& web_of(const sdk::Device& d);
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<DeviceWeb>> web_;
};

}  // namespace labctl::supermicro_bmc
