# The server: sockets, the loop and commit threads, events, observe mode.
add_library(labctl_dhcp STATIC ${CMAKE_CURRENT_SOURCE_DIR}/server.cc)
target_include_directories(labctl_dhcp PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(labctl_dhcp PUBLIC labctl_dhcp_codec labctl_dhcp_leases labctl_sdk
  nlohmann_json::nlohmann_json Threads::Threads)
labctl_test(dhcp_server_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/server_test.cc LIBS labctl_dhcp)
