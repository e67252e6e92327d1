#pragma once
// A node's identity: a random id created on first start and kept in
// <data dir>/node_id, so a restarted node rejoins the cluster as itself.

#include <string>

namespace tars::node {

// Reads <data_dir>/node_id, creating the folder and a new id when missing.
// Throws tars::Error(kIo) when the folder cannot be written.
std::string identity_load_or_create(const std::string& data_dir);

// A random RFC 4122 version 4 UUID.
std::string identity_new_uuid();

}  // namespace tars::node
