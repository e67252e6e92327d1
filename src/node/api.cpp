#include "node/api.h"

#include "node/node.h"

namespace tars::node {

std::vector<Route> api_routes(Node& node, const HttpServer& server) {
  auto get_json = [](auto fn) {
    return [fn](const httplib::Request&, httplib::Response& res) { reply_json(res, 200, fn()); };
  };
  // Generation and embeddings arrive with the engine (issues 3-5); until a
  // model is loaded they answer 503 after checking the body is JSON.
  auto needs_model = [&node](const char* what) {
    return [&node, what](const httplib::Request& req, httplib::Response&) {
      parse_json_object(req);
      throw HttpError(503, "no_model_loaded",
                      std::string("no model loaded: this node cannot serve ") + what +
                          " yet (start it with --model FILE)");
    };
  };
  return {
      // method  path          handler
      {"GET", "/health", get_json([&node] { return node.health(); })},
      {"GET", "/status", get_json([&node, &server] { return node.status(server.in_flight()); })},
      {"GET", "/models", get_json([&node] { return node.models(); })},
      {"GET", "/config", get_json([&node] { return node.config_json(); })},
      {"POST", "/inference", needs_model("generation")},
      {"POST", "/embed", needs_model("embeddings")},
  };
}

}  // namespace tars::node
