#include "inventory/schema.h"

namespace labctl::inventory {

std::string_view kind_name(Kind k) {
  switch (k) {
    case Kind::String:
      return "string";
    case Kind::Int:
      return "integer";
    case Kind::Bool:
      return "boolean";
    case Kind::Enum:
      return "one of a list";
    case Kind::Secret:
      return "secret";
    case Kind::DeviceRef:
      return "device name";
    case Kind::Mac:
      return "MAC address";
    case Kind::Ipv4:
      return "IPv4 address";
    case Kind::Version:
      return "firmware version";
    case Kind::Duration:
      return "duration";
    case Kind::List:
      return "list";
    case Kind::Map:
      return "mapping";
    case Kind::Path:
      return "file path";
  }
  return "value";
}

namespace key {
namespace {
KeySpec make(std::string name, Kind kind) {
  KeySpec k;
  k.name = std::move(name);
  k.kind = kind;
  return k;
}
}  // namespace

KeySpec string(std::string name) {
  return make(std::move(name), Kind::String);
}
KeySpec integer(std::string name) {
  return make(std::move(name), Kind::Int);
}
KeySpec boolean(std::string name) {
  return make(std::move(name), Kind::Bool);
}
KeySpec choice(std::string name, std::vector<std::string> choices) {
  auto k = make(std::move(name), Kind::Enum);
  k.choices = std::move(choices);
  return k;
}
KeySpec secret(std::string name) {
  return make(std::move(name), Kind::Secret);
}
KeySpec device_ref(std::string name, std::vector<std::string> capabilities) {
  auto k = make(std::move(name), Kind::DeviceRef);
  k.ref_capabilities = std::move(capabilities);
  return k;
}
KeySpec mac(std::string name) {
  return make(std::move(name), Kind::Mac);
}
KeySpec ipv4(std::string name) {
  return make(std::move(name), Kind::Ipv4);
}
KeySpec version(std::string name) {
  return make(std::move(name), Kind::Version);
}
KeySpec duration(std::string name) {
  return make(std::move(name), Kind::Duration);
}
KeySpec list(std::string name, KeySpec item) {
  auto k = make(std::move(name), Kind::List);
  k.item.push_back(std::move(item));
  return k;
}
KeySpec map(std::string name, std::vector<KeySpec> fields) {
  auto k = make(std::move(name), Kind::Map);
  k.fields = std::move(fields);
  return k;
}
KeySpec open_map(std::string name) {
  auto k = make(std::move(name), Kind::Map);
  k.open = true;
  return k;
}
KeySpec path(std::string name) {
  return make(std::move(name), Kind::Path);
}
}  // namespace key

}  // namespace labctl::inventory
