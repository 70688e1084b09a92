# DHCPv4 packet codec (no sockets) and the snippets for other DHCP servers (`labctl dhcp options`).
add_library(labctl_dhcp_codec STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/codec.cc ${CMAKE_CURRENT_SOURCE_DIR}/snippets.cc)
target_include_directories(labctl_dhcp_codec PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(labctl_dhcp_codec PUBLIC labctl_common)

labctl_test(dhcp_codec_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/codec_test.cc ${CMAKE_CURRENT_SOURCE_DIR}/snippets_test.cc
  LIBS labctl_dhcp_codec)

# Prints one snippet, for tests/dhcp/test_snippets.py (which feeds it to dhcpd, Kea and dnsmasq):
#   dhcp_snippet_tool FORMAT IP[,IP...] [NAME]
if(LABCTL_TESTS)
  add_executable(dhcp_snippet_tool ${CMAKE_CURRENT_SOURCE_DIR}/snippet_tool.cc)
  target_link_libraries(dhcp_snippet_tool PRIVATE labctl_dhcp_codec)
endif()
