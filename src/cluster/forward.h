#pragma once
// Forwarding an API request to another node, streaming passed through.
//
// The request goes to the first replica that answers; a replica that cannot
// be reached, or fails before its response started, is skipped for the next
// one (the request had no effect there). Once a response has started, it is
// relayed as it arrives: an event stream (OpenAI's endpoints) or a JSON-lines
// stream (Ollama's) chunk by chunk, with the upstream's status and content
// type. If the upstream dies mid-stream, the stream ends with an error event
// (a {"error": ...} line for JSON lines) saying so, never silently truncated;
// a client that disconnects cancels the upstream request.
//
// A forwarded request carries `X-Tars-Forwarded-By: <node id>`; a node
// always serves such a request itself, so a stale route table can never make
// two nodes bounce a request between them.

#include <httplib.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "cluster/route_table.h"

namespace tars::cluster {

inline constexpr const char* kForwardedHeader = "X-Tars-Forwarded-By";

struct ForwardOptions {
  std::string self_id;  // this node's id, sent in kForwardedHeader
  // Connecting to a replica; past it the next replica is tried. Default 2 s.
  std::chrono::milliseconds connect_timeout{2000};
  // Waiting for the response to start (an on-demand model may be loading).
  // Default 120 s.
  std::chrono::milliseconds start_timeout{120000};
  // Between two reads once it started (a token can take a while). Default 120 s.
  std::chrono::milliseconds read_timeout{120000};
  // Called with a replica's node id when it could not be reached at all (the
  // coordinator checks it at once instead of waiting for missed heartbeats).
  std::function<void(const std::string& node_id)> on_unreachable;
  // Called once per replica tried, with what came of it: "answered" (its
  // answer, whatever its status, went to the client; a stream: it ended with
  // its closing marker), "skipped" (it failed before the answer started, or
  // a whole answer broke off: the next replica was tried), "broken" (a
  // stream broke off mid-way: the client got an error event), "cancelled"
  // (the client left during a stream). For metrics.
  std::function<void(const Replica& replica, const char* outcome)> on_outcome;
};

// Forwards `req` to the replicas in order and writes the answer into `res`.
// Throws tars::Error(kUnavailable) naming the nodes tried and why each
// failed when none of them could start the response.
void forward_request(const httplib::Request& req, httplib::Response& res,
                     const std::vector<Replica>& replicas, const ForwardOptions& options);

}  // namespace tars::cluster
