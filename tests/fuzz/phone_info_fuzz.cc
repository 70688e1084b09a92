// libFuzzer target: the phone's DeviceInformationX parser (untrusted bytes from the network).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "plugins/cisco_phone/device_info.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto r = labctl::cisco_phone::parse_device_info(in);
  if (r && r->app_load_id.empty()) __builtin_trap();  // a success always names the load
  if (r) (void)labctl::cisco_phone::load_protocol(r->app_load_id);
  return 0;
}
