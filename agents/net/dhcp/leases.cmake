# Lease database (SQLite in the state directory, group commit) and the allocation engine.
# No sockets and no packet parsing: the server glues these to the codec.
add_library(labctl_dhcp_leases STATIC lease_db.cc allocator.cc)
target_include_directories(labctl_dhcp_leases PUBLIC ${CMAKE_SOURCE_DIR})
# SQLite::SQLite3 is the imported target the top-level find_package(SQLite3) made, as the
# controller's state store uses.
target_link_libraries(labctl_dhcp_leases PUBLIC labctl_common SQLite::SQLite3 Threads::Threads)

labctl_test(dhcp_leases_test SOURCES lease_db_test.cc allocator_test.cc LIBS labctl_dhcp_leases)
