#include "cluster/router.h"

#include <algorithm>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "node/model_host.h"

namespace tars::cluster {

std::string router_role_for_path(const std::string& method, const std::string& path) {
  if (method != "POST") return "";
  if (path == "/v1/chat/completions" || path == "/v1/completions" || path == "/inference" || path == "/tokenize" ||
      path == "/detokenize" || path == "/api/chat" || path == "/api/generate" || path == "/v1/messages" ||
      path == "/v1/messages/count_tokens" || path == "/v1/responses" || path == "/apply-template" ||
      path == "/completion" || path == "/completions" || path == "/infill" || path == "/chat/completions") {
    return "chat";
  }
  if (path == "/embed" || path == "/v1/embeddings" || path == "/api/embed" || path == "/api/embeddings" ||
      path == "/embedding" || path == "/embeddings") {
    return "embedding";
  }
  if (path == "/v1/rerank" || path == "/v1/reranking" || path == "/rerank" || path == "/reranking") return "rerank";
  if (path == "/api/show") return "any";  // a model of any role, by name
  return "";
}

namespace {

bool declares(const node::ModelHost& host, const std::string& model, const std::string& role) {
  for (const auto& m : host.list()) {
    if (model.empty() ? m.decl.role == role : m.id == model) return true;
  }
  return false;
}

std::string joined(const std::vector<std::string>& ids) {
  std::string s;
  for (const auto& id : ids) s += (s.empty() ? "" : ", ") + id;
  return s;
}

// The model-bearing handler: here, or forwarded, or a 404 naming the
// cluster's models.
node::HttpHandler route_model(node::HttpHandler local, std::string role_in, node::ModelHost& host,
                              const RouteTable& table, RouterOptions opt) {
  return [local = std::move(local), role_in, &host, &table, opt](const httplib::Request& req,
                                                               httplib::Response& res) {
    auto serve_here = [&] {
      res.set_header("X-Tars-Served-By", opt.self_id);
      local(req, res);
    };
    // A request another node forwarded is always served here.
    if (req.has_header(kForwardedHeader)) return serve_here();
    nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
    // Malformed bodies and a wrong "model" type get the local handler's 400.
    if (!body.is_object()) return serve_here();
    auto it = body.find("model");
    if (it != body.end() && !it->is_string() && !it->is_null()) return serve_here();
    std::string model = it != body.end() && it->is_string() ? it->get<std::string>() : "";
    // "any" (/api/show): the role of the model of that name, wherever it is.
    std::string role = role_in;
    if (role_in == "any") {
      role = "embedding";
      for (const char* r : {"chat", "rerank"}) {
        if (declares(host, model, r) || table.find(model, r)) role = r;
      }
    }
    auto entry = table.find(model, role);
    std::vector<Replica> replicas;
    if (entry) replicas = route_order(*entry, opt.self_id);
    if (declares(host, model, role)) {
      // Load balancing between copies: another node's copy takes the
      // request only when it is loaded and less busy than this node's (as
      // of the last heartbeats); ties stay here.
      int here = -1;
      if (entry) {
        for (const auto& r : entry->replicas) {
          if (r.node_id == opt.self_id) here = r.load;
        }
      }
      if (here < 0 || replicas.empty() || !replicas.front().loaded || replicas.front().load >= here) {
        return serve_here();
      }
      ForwardOptions fwd = opt.forward;
      fwd.self_id = opt.self_id;
      try {
        return forward_request(req, res, {replicas.front()}, fwd);
      } catch (const Error&) {
        return serve_here();  // that copy is gone: this one still works
      }
    }
    if (replicas.empty()) {
      // Nobody else has it: the local handler says what this node has,
      // unless the cluster knows more models.
      std::vector<std::string> ids = table.ids(role);
      if (ids.empty() || model.empty()) return serve_here();
      if (entry) {
        // The cluster has the model but no node holds it right now: it is
        // being placed (its node failed, or it is loading elsewhere).
        throw node::HttpError(503, "model_moving",
                              "model '" + model + "' is being placed on another node (its node "
                              "failed or it is loading); retry shortly");
      }
      for (const auto& m : host.list()) {  // this node's, unless the table already lists them
        if (m.decl.role == role && std::find(ids.begin(), ids.end(), m.id) == ids.end()) ids.push_back(m.id);
      }
      throw Error(ErrorCode::kNotFound, "model '" + model + "' is not served by any node of the cluster " +
                                            "(" + role + " models: " + joined(ids) + ")");
    }
    ForwardOptions fwd = opt.forward;
    fwd.self_id = opt.self_id;
    forward_request(req, res, replicas, fwd);
  };
}

// A model list (GET /v1/models, GET /api/tags): this node's answer, whose
// array `list` names each model by `id_key`, plus an entry made by `entry`
// for each model other nodes serve.
using ListEntry = std::function<nlohmann::json(const RouteEntry&)>;
node::HttpHandler route_list(node::HttpHandler local, const RouteTable& table, std::string list, std::string id_key,
                             ListEntry entry) {
  return [local = std::move(local), &table, list, id_key, entry](const httplib::Request& req,
                                                                  httplib::Response& res) {
    local(req, res);
    nlohmann::json body = nlohmann::json::parse(res.body, nullptr, false);
    if (res.status != 200 || !body.is_object() || !body.contains(list) || !body[list].is_array()) return;
    std::set<std::string> have;
    for (const auto& m : body[list]) have.insert(m.value(id_key, ""));
    for (const auto& e : table.entries()) {
      if (have.count(e.model) || e.replicas.empty()) continue;
      body[list].push_back(entry(e));
      have.insert(e.model);
    }
    res.set_content(body.dump(), "application/json");
  };
}

// GET /v1/models: this node's list plus the models other nodes serve.
node::HttpHandler route_model_list(node::HttpHandler local, const RouteTable& table) {
  return route_list(std::move(local), table, "data", "id", [](const RouteEntry& e) {
    return nlohmann::json{{"id", e.model}, {"object", "model"}, {"created", 0},
                          {"owned_by", "tars:" + e.replicas.front().node_name}};
  });
}

// Each other node of the route table once: id -> (name, base URL).
std::map<std::string, std::pair<std::string, std::string>> other_nodes(const RouteTable& table,
                                                                       const std::string& self_id) {
  std::map<std::string, std::pair<std::string, std::string>> nodes;
  for (const auto& e : table.entries()) {
    for (const auto& r : e.replicas) {
      if (r.node_id != self_id) nodes.emplace(r.node_id, std::make_pair(r.node_name, r.url));
    }
  }
  return nodes;
}

// GET /api/tags and GET /api/ps (Ollama's lists) in a cluster: this node's
// own list, then each other node's own entries (asked with kForwardedHeader,
// so it answers for itself: file details, sizes, expiry), marked with
// "served_by". A node that does not answer within the time-out is left out;
// for /api/tags its models still appear by name from the route table.
node::HttpHandler route_ollama_list(node::HttpHandler local, const RouteTable& table, RouterOptions opt,
                                    bool names_from_table) {
  return [local = std::move(local), &table, opt, names_from_table](const httplib::Request& req,
                                                                   httplib::Response& res) {
    local(req, res);
    if (req.has_header(kForwardedHeader)) return;  // a node asking for this one's own
    nlohmann::json body = nlohmann::json::parse(res.body, nullptr, false);
    if (res.status != 200 || !body.is_object() || !body.contains("models") || !body["models"].is_array()) return;
    std::set<std::string> have;
    for (const auto& m : body["models"]) have.insert(m.value("name", ""));
    for (const auto& [id, node] : other_nodes(table, opt.self_id)) {
      httplib::Client cli(node.second);
      const auto timeout = opt.forward.connect_timeout;
      cli.set_connection_timeout(timeout);
      cli.set_read_timeout(timeout);
      auto r = cli.Get(req.path, {{kForwardedHeader, opt.self_id}});
      if (!r || r->status != 200) continue;
      nlohmann::json theirs = nlohmann::json::parse(r->body, nullptr, false);
      if (!theirs.is_object() || !theirs.contains("models") || !theirs["models"].is_array()) continue;
      for (auto& m : theirs["models"]) {
        if (!m.is_object() || !m.contains("name") || !m["name"].is_string()) continue;
        if (!have.insert(m["name"].get<std::string>()).second) continue;
        m["served_by"] = node.first;
        body["models"].push_back(std::move(m));
      }
    }
    if (names_from_table) {
      for (const auto& e : table.entries()) {
        if (have.count(e.model) || e.replicas.empty()) continue;
        body["models"].push_back(
            {{"name", e.model}, {"model", e.model}, {"modified_at", "1970-01-01T00:00:00Z"}, {"size", 0},
             {"digest", ""},
             {"details", {{"parent_model", ""}, {"format", "gguf"}, {"family", ""},
                          {"families", nlohmann::json::array()}, {"parameter_size", ""},
                          {"quantization_level", ""}}},
             {"served_by", e.replicas.front().node_name}});
        have.insert(e.model);
      }
    }
    res.set_content(body.dump(), "application/json");
  };
}

}  // namespace

std::vector<node::Route> router_wrap(std::vector<node::Route> routes, node::ModelHost& host,
                                     const RouteTable& table, RouterOptions options) {
  for (auto& r : routes) {
    std::string role = router_role_for_path(r.method, r.path);
    if (!role.empty()) {
      r.handler = route_model(std::move(r.handler), role, host, table, options);
    } else if (r.method == "GET" && r.path == "/v1/models") {
      r.handler = route_model_list(std::move(r.handler), table);
    } else if (r.method == "GET" && (r.path == "/api/tags" || r.path == "/api/ps")) {
      r.handler = route_ollama_list(std::move(r.handler), table, options, r.path == "/api/tags");
    }
  }
  return routes;
}

}  // namespace tars::cluster
